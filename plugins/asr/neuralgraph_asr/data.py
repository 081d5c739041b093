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

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import neuralgraph as ng
from neuralgraph.validators import ParameterError, check, non_empty, satisfies, sequence
from neuralgraph_audio import AudioDataSource, ManifestEntry
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


class AudioToClassificationLabelDataset(AudioDataSource):
    """Audio and one class label per utterance (the manifest's ``label`` key), e.g. commands.

    Args:
        labels: the class names; ``label`` is the index of the manifest's label among them.
        sample_rate, int_values, trim_silence, augmentor, bad_data: as in
            :class:`AudioToCharDataset`.
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
    ) -> None:
        super().__init__(sample_rate, int_values, trim_silence, augmentor, bad_data)
        check("labels", labels, satisfies(lambda value: sequence.accepts(value)
                                          and non_empty.accepts(value),
                                          "a non-empty list of class names"))
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
