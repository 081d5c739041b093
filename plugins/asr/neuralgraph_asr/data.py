"""ASR data sources (NeMo 1.x names): audio + transcripts (characters or BPE) or class labels.

A data source is built from the graph's ``data.params`` without touching files; each split's YAML
keys (``data.train: {manifest_filepath: ..., batch_size: ...}``) are the keyword arguments of
``dataloader`` and ``validate``. Batches are dicts keyed by output port::

    audio_signal       (B, T) float32   waveform at ``sample_rate``, zero padded
    audio_length       (B,)   int64     valid samples per row
    transcripts        (B, U) int64     token ids, zero padded       (ASR sources)
    transcript_length  (B,)   int64     tokens per row               (ASR sources)
    label              (B,)   int64     class index                  (classification)
    label_length       (B,)   int64     ones                         (classification)

Reading, augmentation, validation and batching are the shared audio home's
(:class:`neuralgraph_audio.AudioDataSource`); tokenizers are the shared text home's
(:mod:`neuralgraph_text`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import torch
from torch.utils.data import DataLoader

import neuralgraph as ng
from neuralgraph.validators import (
    ParameterError,
    and_,
    check,
    gt,
    non_empty,
    number,
    optional,
    satisfies,
    sequence,
)
from neuralgraph_audio import (
    AudioDataSource,
    ManifestEntry,
    NoiseClips,
    NoiseFiles,
    crop_or_pad,
    trim_silence,
)
from neuralgraph_text import CharTokenizer, SentencePieceTokenizer

__all__ = ["AudioToBPEDataset", "AudioToCharDataset", "AudioToClassificationLabelDataset"]


class _TranscriptDataSource(AudioDataSource):
    """Audio and tokenized transcripts: what the char and BPE sources share (``self.tokenizer``
    is a CharTokenizer or a SentencePieceTokenizer).

    Public, for ``ASRModel`` and decoders: ``vocab_size``, ``tokens``, ``text_to_ids``,
    ``ids_to_text`` and ``sample_rate``.
    """

    tokenizer: CharTokenizer | SentencePieceTokenizer

    @property
    def vocab_size(self) -> int:
        """Number of tokens (the CTC blank comes after them)."""
        return self.tokenizer.vocab_size

    @property
    def tokens(self) -> list[str]:
        """The text of each token id, ``vocab_size`` of them: the labels of a character
        vocabulary, the pieces of a SentencePiece one (``▁`` starts a word)."""
        if isinstance(self.tokenizer, CharTokenizer):
            return list(self.tokenizer.labels)
        return list(self.tokenizer.tokens)

    @property
    def output_types(self) -> dict[str, ng.NeuralType]:
        """Ports: audio_signal (B, T), audio_length, transcripts (B, U), transcript_length."""
        return {
            **self._audio_types(),
            "transcripts": ng.NeuralType(("B", "T"), ng.LabelsType(vocab_size=self.vocab_size)),
            "transcript_length": ng.NeuralType(("B",), ng.LengthsType()),
        }

    def _vocabulary(self) -> CharTokenizer | SentencePieceTokenizer:
        return self.tokenizer

    def _target(self, entry: ManifestEntry) -> list[int]:
        return self.tokenizer.text_to_ids(entry.text)

    def text_to_ids(self, text: str) -> list[int]:
        """Token ids of a transcript (normalized first when ``normalize_transcripts``)."""
        return self.tokenizer.text_to_ids(text)

    def ids_to_text(self, ids: Sequence[int]) -> str:
        """The transcript of token ids."""
        return self.tokenizer.ids_to_text(ids)


class AudioToCharDataset(_TranscriptDataSource):
    """Audio and character transcripts from NeMo manifests (CTC targets over ``labels``).

    Args:
        labels: the characters of the vocabulary (the CTC blank is not one of them), e.g. space,
            a-z and the apostrophe.
        sample_rate: rate of ``audio_signal`` in Hz; files at other rates are resampled.
        normalize_transcripts: lowercase (unless a label is upper case) and remove punctuation
            that is not a label before checking and tokenizing.
        int_values: read samples as 32-bit integers (NeMo's option).
        trim_silence: cut leading and trailing silence (60 dB below the peak).
        augmentor: training-time perturbations (:class:`AudioAugmentor`), e.g.
            ``{speed: {prob: 0.5, rates: [0.9, 1.1]}, gain: {prob: 0.5}, noise: {prob: 0.3}}``.
        bad_data: "fail" stops before training with every bad manifest entry listed; "skip"
            drops them (counts are logged).
    """

    def __init__(
        self,
        labels: Sequence[str],
        sample_rate: int = 16000,
        normalize_transcripts: bool = True,
        int_values: bool = False,
        trim_silence: bool = False,
        augmentor: Mapping[str, Mapping[str, Any]] | None = None,
        bad_data: str = "fail",
    ) -> None:
        super().__init__(sample_rate, int_values, trim_silence, augmentor, bad_data)
        check("labels", labels, satisfies(sequence.accepts, "a list of characters"))
        self.tokenizer = CharTokenizer(labels, normalize=normalize_transcripts)
        self.labels = self.tokenizer.labels

    labels_to_ids = _TranscriptDataSource.text_to_ids


class AudioToBPEDataset(_TranscriptDataSource):
    """Audio and SentencePiece (BPE / unigram) transcripts from NeMo manifests.

    Args:
        tokenizer_model: the SentencePiece ``tokenizer.model`` (``neuralgraph asr tokenizer``
            writes one). It is an artifact: model archives carry the file and point this
            parameter at their copy. The constructor reads it (a small file) for the vocabulary
            size that ``transcripts`` declares.
        normalize_transcripts: lowercase and remove punctuation other than ``'`` before
            tokenizing (as ``neuralgraph asr tokenizer`` does to its training text).
        sample_rate, int_values, trim_silence, augmentor, bad_data: as in
            :class:`AudioToCharDataset`.

    Raises:
        ValueError: ``tokenizer_model file not found: PATH``, or it is not a SentencePiece model.
    """

    artifacts: ClassVar[tuple[str, ...]] = ("tokenizer_model",)

    def __init__(
        self,
        tokenizer_model: str,
        sample_rate: int = 16000,
        normalize_transcripts: bool = True,
        int_values: bool = False,
        trim_silence: bool = False,
        augmentor: Mapping[str, Mapping[str, Any]] | None = None,
        bad_data: str = "fail",
    ) -> None:
        super().__init__(sample_rate, int_values, trim_silence, augmentor, bad_data)
        self.tokenizer_model = str(tokenizer_model)
        self.tokenizer = SentencePieceTokenizer(tokenizer_model, normalize=normalize_transcripts)


SILENCE = "silence"  # the label of generated background-noise clips


class AudioToClassificationLabelDataset(AudioDataSource):
    """Audio and one class label per utterance (the manifest's ``label`` key), e.g. commands.

    Manifests are NeMo's classification manifests: ``audio_filepath``, ``duration``, ``label``
    and an optional ``offset`` per line.

    Args:
        labels: the class names; ``label`` is the index of the manifest's label among them.
        fixed_length: seconds (NeMo's speech commands: 1.0); every clip is cropped or zero
            padded to this length, at a random position in training and centrally otherwise
            (``inference_clip`` does the same for ``classify``). None: clips keep their
            length and batches are padded.
        sample_rate, int_values, trim_silence, augmentor, bad_data: as in
            :class:`AudioToCharDataset`; the augmentor also has ``shift`` (a time shift) and
            ``noise`` with a ``manifest_path`` (background recordings mixed in at an SNR).

    Split parameters (``data.train`` ...) beyond the audio ones: ``silence_fraction`` adds
    that many clips of background noise alone per manifest clip, labelled ``silence`` (which
    must be one of ``labels``): segments of the files of ``silence_noise`` (a NeMo manifest or
    a folder of audio files) or, without it, coloured noise, at random levels. Training draws
    new noise each epoch; validation and test clips are the same every time.
    """

    target_key: ClassVar[str] = "label"
    target_length_key: ClassVar[str] = "label_length"
    manifest_target: ClassVar[str] = "label"

    def __init__(
        self,
        labels: Sequence[str],
        sample_rate: int = 16000,
        int_values: bool = False,
        trim_silence: bool = False,
        augmentor: Mapping[str, Mapping[str, Any]] | None = None,
        bad_data: str = "fail",
        fixed_length: float | None = None,
    ) -> None:
        super().__init__(sample_rate, int_values, trim_silence, augmentor, bad_data)
        check("fixed_length", fixed_length, optional(and_(number, gt(0))))
        self.fixed_length = None if fixed_length is None else float(fixed_length)
        check("labels", labels, satisfies(lambda value: sequence.accepts(value)
                                          and non_empty.accepts(value),
                                          "a non-empty list of class names"))
        for i, label in enumerate(labels):
            if isinstance(label, bool):
                raise ParameterError(
                    f"labels.{i}", "a class name (YAML reads yes, no, on and off bare as "
                    "booleans: quote them, 'yes')", label)
        labels = [str(label) for label in labels]
        first: dict[str, int] = {}
        for i, label in enumerate(labels):
            if label in first:
                raise ParameterError(f"labels.{i}",
                                     f"unique: labels[{first[label]}] is {label!r} too", label)
            first[label] = i
        self.labels = labels
        self._index = {label: i for i, label in enumerate(labels)}

    @property
    def output_types(self) -> dict[str, ng.NeuralType]:
        """Ports: audio_signal (B, T), audio_length (B,), label (B,), label_length (B,)."""
        return {
            **self._audio_types(),
            "label": ng.NeuralType(("B",), ng.LabelsType(vocab_size=len(self.labels))),
            "label_length": ng.NeuralType(("B",), ng.LengthsType()),
        }

    def _vocabulary(self) -> list[str]:
        return self.labels

    def _target(self, entry: ManifestEntry) -> int:
        return self._index[str(entry.label)]

    @property
    def fixed_samples(self) -> int | None:
        """``fixed_length`` in samples, or None."""
        if self.fixed_length is None:
            return None
        return max(1, round(self.fixed_length * self.sample_rate))

    def inference_clip(self, samples: torch.Tensor) -> torch.Tensor:
        """A ``(T,)`` waveform as evaluation sees it: trimmed (with ``trim_silence``), then
        cropped centrally or zero padded to ``fixed_length`` (if set)."""
        if self.trim_silence:
            samples = trim_silence(samples)
        length = self.fixed_samples
        return samples if length is None else crop_or_pad(samples, length)

    def _silence_problems(self, silence_fraction: Any, silence_noise: Any) -> list[str]:
        if (isinstance(silence_fraction, bool) or not isinstance(silence_fraction, (int, float))
                or math.isnan(silence_fraction) or not 0 <= silence_fraction <= 10):
            return [f"silence_fraction must be a number in [0, 10] (got {silence_fraction!r})"]
        if silence_noise is not None and not isinstance(silence_noise, str):
            return [f"silence_noise must be a manifest or folder path (got {silence_noise!r})"]
        if silence_fraction > 0 and SILENCE not in self.labels:
            return [f"silence_fraction {silence_fraction} generates '{SILENCE}' clips, but "
                    f"'{SILENCE}' is not one of the labels {self.labels}"]
        return []

    def validate(self, split: str, **split_params: Any) -> list[str]:
        """The manifests' problems (:meth:`AudioDataSource.validate`), and those of the silence
        clips: a bad ``silence_fraction``, no ``silence`` label, ``silence_noise`` files."""
        problems = super().validate(split, **split_params)
        fraction = split_params.get("silence_fraction", 0.0)
        noise = split_params.get("silence_noise")
        found = self._silence_problems(fraction, noise)
        if not found and fraction and noise is not None:
            found = [f"silence_noise: {p}" for p in NoiseFiles(noise, self.sample_rate)
                     .problems()]
        return problems + [f"data.{split}: {p}" for p in found]

    def dataloader(
        self,
        split: str,
        manifest_filepath: str | Sequence[str],
        batch_size: int = 32,
        shuffle: bool = False,
        num_workers: int = 0,
        min_duration: float | None = None,
        max_duration: float | None = None,
        drop_last: bool = False,
        pin_memory: bool = False,
        bucketing: bool = False,
        silence_fraction: float = 0.0,
        silence_noise: str | None = None,
    ) -> DataLoader:
        """The loader of one split (:meth:`AudioDataSource.dataloader`), every clip
        ``fixed_length`` long when set, with ``silence_fraction`` generated ``silence`` clips
        per manifest clip (noise from ``silence_noise``, or coloured noise).

        Raises:
            UserError: what :meth:`AudioDataSource.dataloader` raises, or a silence setting
                that cannot work.
        """
        problems = self._silence_problems(silence_fraction, silence_noise)
        if problems:
            raise ng.UserError(f"data.{split}: {problems[0]}")
        clips = None
        if silence_fraction > 0:
            entries, _ = self._load(manifest_filepath, min_duration, max_duration)
            files = None if silence_noise is None else NoiseFiles(silence_noise,
                                                                  self.sample_rate)
            clips = NoiseClips(round(silence_fraction * len(entries)),
                               self.fixed_samples or self.sample_rate, files)
        return self._build_loader(
            split, manifest_filepath, batch_size, shuffle, num_workers, min_duration,
            max_duration, drop_last, pin_memory, bucketing, fixed_length=self.fixed_samples,
            noise_clips=clips, noise_target=self._index.get(SILENCE, 0))
