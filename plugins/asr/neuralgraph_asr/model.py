"""``ASRModel``: a GraphModel that turns audio files into text.

It needs nothing from the graph but its data ports ``audio_signal``/``audio_length`` and one
output of type LogprobsType (B, T, D) with its LengthsType lengths: any CTC graph qualifies.
From the data source it reads ``sample_rate`` (an ``AudioDataSource``), ``vocab_size`` (the
CTC blank's id), ``tokens`` (beam search) and ``ids_to_text``. It is built on GraphModel's
public API only: ``execution_plan`` finds the outputs, ``run`` runs the graph from the audio
and, for VTLN, again from the warped mel features.
"""

from __future__ import annotations

import os
import stat
from collections import Counter
from collections.abc import Hashable, Sequence
from pathlib import Path
from typing import Any

import torch

import neuralgraph as ng
from neuralgraph_asr.vtln import DEFAULT_WARPS, VTLN_MODES, best_path_scores, choose_warps

__all__ = ["ASRModel", "path_problem"]

AUDIO_INPUTS = ("data.audio_signal", "data.audio_length")
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".opus", ".mp3", ".aiff", ".aif", ".au", ".sph")


class ASRModel(ng.GraphModel):
    """A CTC speech recognizer built from a graph; ``transcribe(paths)`` returns their text.

    ``ASRModel.restore_from("m.ngm").transcribe(["a.flac"], batch_size=8)``. Decoding is greedy
    by default; ``decoder="beam"`` runs CTC beam search (``beam_size``, and with
    flashlight-text installed a ``lexicon`` and a KenLM ``lm``). ``vtln="speaker"`` or
    ``"utterance"`` warps the mel features of each speaker (or utterance) to the vocal tract
    length the model is most confident about (:mod:`neuralgraph_asr.vtln`).
    """

    def _outputs(self) -> tuple[str, str]:
        """Keys of the log-probs and their lengths reached from audio in eval mode."""
        plan = self.execution_plan(AUDIO_INPUTS)
        sinks = plan.sinks
        logprobs = [k for k in sinks if isinstance(self._type(k), ng.LogprobsType)]
        if not logprobs:
            raise ng.UserError("this graph computes no LogprobsType output from audio alone; "
                               "it cannot transcribe")
        lengths = [k for k in plan.outputs if isinstance(self._type(k), ng.LengthsType)
                   and k.split(".")[0] != logprobs[0].split(".")[0]]
        encoded = [k for k in lengths if k in sinks] or lengths
        return logprobs[0], encoded[-1]

    def _type(self, key: str) -> ng.ElementType | None:
        found = self.plan.port_type(key)
        return found.elements_type if found is not None else None

    def _mel_features(self) -> tuple[str, str, Any]:
        """Keys of the mel spectrogram and its lengths, and a warper of its filterbank."""
        from neuralgraph_audio import (
            AudioToMelSpectrogramPreprocessor,
            VocalTractLengthPerturbation,
        )

        for name, module in self.nodes.items():
            if isinstance(module, AudioToMelSpectrogramPreprocessor):
                if module.frame_splicing != 1:
                    raise ng.UserError(f"vtln needs unspliced mel features; node '{name}' has "
                                       f"frame_splicing {module.frame_splicing}")
                warper = VocalTractLengthPerturbation(
                    sample_rate=module.sample_rate, lowfreq=module.lowfreq,
                    highfreq=module.highfreq)
                return f"{name}.processed_signal", f"{name}.processed_length", warper
        raise ng.UserError("vtln warps mel features: this graph has no "
                           "AudioToMelSpectrogramPreprocessor node")

    @torch.no_grad()
    def log_probs(
        self, audio: Sequence[torch.Tensor], warps: Sequence[float] | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Log-probs (B, T, D) and valid frames (B,) for a batch of (T_i,) waveforms.

        ``warps``: a VTLN frequency warp per waveform applied to the mel features (1: none).
        """
        if warps is None:
            return self._warped_log_probs(audio, [None])[0]
        if len(warps) != len(audio):
            raise ValueError(f"need one warp per waveform ({len(audio)}); got {len(warps)}")
        return self._warped_log_probs(audio, [torch.tensor(warps, dtype=torch.float32)])[0]

    @torch.no_grad()
    def _warped_log_probs(
        self, audio: Sequence[torch.Tensor], warps: Sequence[torch.Tensor | None]
    ) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """(log-probs (B, T, D), lengths (B,)) of a batch under each (B,) warp (None: none).

        The graph runs once on the audio; each warp other than 1 reruns only the part after
        the mel features.
        """
        self.eval()
        lengths = torch.tensor([len(a) for a in audio], dtype=torch.long)
        signal = torch.zeros(len(audio), int(lengths.max()))
        for i, wave in enumerate(audio):
            signal[i, : len(wave)] = wave
        logprobs_key, lengths_key = self._outputs()
        env = self.run({AUDIO_INPUTS[0]: signal.to(self.device),
                        AUDIO_INPUTS[1]: lengths.to(self.device)})
        plain = (env[logprobs_key], env[lengths_key])
        results = []
        mel: tuple[str, str, Any] | None = None
        for factors in warps:
            if factors is None or bool((factors == 1.0).all()):
                results.append(plain)
                continue
            mel = mel or self._mel_features()
            spec_key, spec_lengths_key, warper = mel
            spec = warper.warp(env[spec_key], factors.to(env[spec_key].device))
            out = self.run({spec_key: spec, spec_lengths_key: env[spec_lengths_key]},
                           outputs=(logprobs_key, lengths_key))
            results.append((out[logprobs_key], out[lengths_key]))
        return results

    def decoder(self, decoder: str = "greedy", **options: Any) -> Any:
        """The CTC decoder ``transcribe`` uses: ``(log_probs (B, T, D), lengths (B,)) -> ids``.

        ``"greedy"``, or ``"beam"`` with :class:`~neuralgraph_asr.decoding.CTCBeamSearchDecoder`'s
        ``options``; the blank and the tokens are the model's. Decode :meth:`log_probs` with it
        and turn ids into text with ``data_source.ids_to_text``.
        """
        from neuralgraph_asr.decoding import CTCBeamSearchDecoder, ctc_greedy_decode

        source = self.data_source
        blank = source.vocab_size
        if decoder == "greedy":
            return lambda lp, n: ctc_greedy_decode(lp, n, blank)
        if decoder == "beam":
            beam = CTCBeamSearchDecoder(source.tokens, blank=blank, **options)
            return beam.decode
        raise ng.UserError(f"decoder must be 'greedy' or 'beam' (got {decoder!r})")

    def transcribe(self, paths: Sequence[str | Path], batch_size: int = 4,
                   decoder: str = "greedy", vtln: str | None = None,
                   speakers: Sequence[Hashable] | None = None,
                   vtln_warps: Sequence[float] = DEFAULT_WARPS, progress: bool = False,
                   **decoder_options: Any) -> list[str]:
        """Text of each audio file (read with soundfile, resampled to the model's rate).

        ``vtln``: None, ``"utterance"`` (a warp per file) or ``"speaker"`` (one warp per
        speaker: ``speakers`` names each file's speaker; without it all files are one
        speaker), chosen from ``vtln_warps`` (:mod:`neuralgraph_asr.vtln`). Costs one forward
        pass of the graph after the features per warp. ``progress``: show files done on
        stderr (:class:`neuralgraph.Progress`; VTLN's scoring pass is shown apart).

        Raises:
            UserError: a path is missing, a directory or not a regular file (checked before
                anything is read), or a file cannot be decoded.
        """
        for path in paths:
            problem = path_problem(path)
            if problem is not None:
                raise ng.UserError(problem)
        decode = self.decoder(decoder, **decoder_options)
        warps: list[float] | None = None
        if vtln is not None:
            warps = self._vtln_warps(paths, batch_size, vtln, speakers, vtln_warps, progress)
        source = self.data_source
        texts: list[str] = []
        step = max(1, batch_size)
        with ng.Progress(len(paths), "transcribe", unit="files", disable=not progress) as shown:
            for start in range(0, len(paths), step):
                chunk = paths[start: start + step]
                chunk_warps = None if warps is None else warps[start: start + len(chunk)]
                log_probs, lengths = self.log_probs(self._read(chunk), chunk_warps)
                for ids in decode(log_probs.float().cpu(), lengths.cpu()):
                    texts.append(source.ids_to_text(ids))
                shown.update(len(chunk))
        return texts

    def _vtln_warps(self, paths: Sequence[str | Path], batch_size: int, mode: str,
                    speakers: Sequence[Hashable] | None,
                    grid: Sequence[float], progress: bool = False) -> list[float]:
        """The VTLN warp of each file: the grid's best-scoring warp per speaker or file."""
        if mode not in VTLN_MODES:
            raise ng.UserError(f"vtln must be one of {list(VTLN_MODES)} or None (got {mode!r})")
        if not grid or any(not 0.5 <= float(w) <= 2.0 for w in grid):
            raise ng.UserError(f"vtln_warps must be a non-empty list of factors in [0.5, 2] "
                               f"(got {list(grid)})")
        if speakers is not None and len(speakers) != len(paths):
            raise ng.UserError(f"speakers must name one speaker per file ({len(paths)}); "
                               f"got {len(speakers)}")
        self._mel_features()  # a graph without mel features cannot be warped: say so now
        rows = []
        step = max(1, batch_size)
        with ng.Progress(len(paths), f"vtln: scoring {len(grid)} warps", unit="files",
                         disable=not progress) as shown:
            for start in range(0, len(paths), step):
                audio = self._read(paths[start: start + step])
                factors = [torch.full((len(audio),), float(w)) for w in grid]
                scores = [best_path_scores(lp.float().cpu(), n.cpu())
                          for lp, n in self._warped_log_probs(audio, factors)]
                rows.append(torch.stack(scores, dim=1))  # (B, K)
                shown.update(len(audio))
        if mode == "speaker" and speakers is None:
            speakers = [0] * len(paths)
        return choose_warps(torch.cat(rows), [float(w) for w in grid],
                            speakers if mode == "speaker" else None)

    def _read(self, paths: Sequence[str | Path]) -> list[torch.Tensor]:
        """Waveforms (T_i,) of audio files at the model's rate; a bad file is a UserError."""
        from neuralgraph_audio import AudioDataSource, read_audio

        source = self.data_source
        if not isinstance(source, AudioDataSource):
            raise ng.UserError(f"ASRModel reads audio at its data source's sample_rate, but the "
                               f"graph's data source ({type(source).__name__}) is not an "
                               "AudioDataSource")
        rate = source.sample_rate
        audio = []
        for path in paths:
            try:  # a missing path or one that is not a regular file is a UserError of its own
                audio.append(read_audio(str(path), sample_rate=rate))
            except RuntimeError as exc:  # soundfile's error for unreadable audio
                raise ng.UserError(f"cannot read audio {path}: {exc}") from None
        return audio


def path_problem(path: str | Path) -> str | None:
    """Why ``path`` cannot be transcribed (missing, a directory, a FIFO or a device: only
    regular files are opened), or None. Nothing is opened: a FIFO would block the reader."""
    try:
        mode = os.stat(path).st_mode
    except (OSError, ValueError):
        return f"audio file not found: {path}"
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISDIR(mode):
        return f"audio path {path} is a directory, not an audio file; {_glob_hint(path)}"
    kind = ("a FIFO (named pipe)" if stat.S_ISFIFO(mode) else "a character device"
            if stat.S_ISCHR(mode) else "a block device" if stat.S_ISBLK(mode) else "a socket")
    if os.path.islink(path):
        kind += f" (a symbolic link to {os.path.realpath(path)})"
    return f"audio path {path} is {kind}, not a regular file: only regular files are read as audio"


def _glob_hint(folder: str | Path, scan: int = 10000) -> str:
    """How to name the audio files of ``folder``: a glob of its commonest audio suffix."""
    suffixes: Counter[str] = Counter()
    try:
        with os.scandir(folder) as found:
            for i, item in enumerate(found):
                if i >= scan:
                    break
                suffix = os.path.splitext(item.name)[1].lower()
                if suffix in AUDIO_SUFFIXES:
                    suffixes[suffix] += 1
    except OSError:
        pass
    if not suffixes:
        return f"it holds no audio files ({', '.join(AUDIO_SUFFIXES[:3])}, ...)"
    suffix = suffixes.most_common(1)[0][0]
    return f"to transcribe the files in it, give them with a glob: {Path(folder) / ('*' + suffix)}"
