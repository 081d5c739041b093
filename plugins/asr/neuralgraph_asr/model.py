"""``ASRModel``: a GraphModel that turns audio files into text.

It needs nothing from the graph but its data ports ``audio_signal``/``audio_length`` and one
output of type LogprobsType (B, T, D) with its LengthsType lengths: any CTC graph qualifies.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

import neuralgraph as ng

__all__ = ["ASRModel"]

AUDIO_INPUTS = ("data.audio_signal", "data.audio_length")


class ASRModel(ng.GraphModel):
    """A CTC speech recognizer built from a graph; ``transcribe(paths)`` returns their text.

    ``ASRModel.restore_from("m.ngm").transcribe(["a.flac"], batch_size=8)``. Decoding is greedy
    by default; ``decoder="beam"`` runs CTC beam search (``beam_size``, and with
    flashlight-text installed a ``lexicon`` and a KenLM ``lm``).
    """

    def _outputs(self) -> tuple[str, str]:
        """Keys of the log-probs and their lengths reached from audio in eval mode."""
        sinks = self.sinks(AUDIO_INPUTS)
        logprobs = [k for k in sinks if isinstance(self._type(k), ng.LogprobsType)]
        if not logprobs:
            raise ng.UserError("this graph computes no LogprobsType output from audio alone; "
                               "it cannot transcribe")
        lengths = [k for k in self._reached() if isinstance(self._type(k), ng.LengthsType)
                   and k.split(".")[0] != logprobs[0].split(".")[0]]
        encoded = [k for k in lengths if k in sinks] or lengths
        return logprobs[0], encoded[-1]

    def _type(self, key: str) -> ng.ElementType | None:
        found = self.plan.port_type(key)
        return found.elements_type if found is not None else None

    def _reached(self) -> list[str]:
        keys: list[str] = []
        for kind, step in self._steps(frozenset(AUDIO_INPUTS), False):
            if kind == "run":
                keys.extend(step[3])
        return keys

    @torch.no_grad()
    def log_probs(self, audio: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Log-probs (B, T, D) and valid frames (B,) for a batch of (T_i,) waveforms."""
        self.eval()
        lengths = torch.tensor([len(a) for a in audio], dtype=torch.long)
        signal = torch.zeros(len(audio), int(lengths.max()))
        for i, wave in enumerate(audio):
            signal[i, : len(wave)] = wave
        logprobs_key, lengths_key = self._outputs()
        env = self.run({AUDIO_INPUTS[0]: signal.to(self.device),
                        AUDIO_INPUTS[1]: lengths.to(self.device)})
        return env[logprobs_key], env[lengths_key]

    def _decoder(self, decoder: str, **options: Any) -> Any:
        from neuralgraph_asr.decoding import CTCBeamSearchDecoder, ctc_greedy_decode

        source = self.data_source
        blank = _vocab_size(source)
        if decoder == "greedy":
            return lambda lp, n: ctc_greedy_decode(lp, n, blank)
        if decoder == "beam":
            tokens = _tokens(source)
            beam = CTCBeamSearchDecoder(tokens, blank=blank, **options)
            return beam.decode
        raise ng.UserError(f"decoder must be 'greedy' or 'beam' (got {decoder!r})")

    def transcribe(self, paths: Sequence[str | Path], batch_size: int = 4,
                   decoder: str = "greedy", **decoder_options: Any) -> list[str]:
        """Text of each audio file (read with soundfile, resampled to the model's rate)."""
        from neuralgraph_asr.data import read_audio

        source = self.data_source
        rate = int(getattr(source, "sample_rate", 16000))
        decode = self._decoder(decoder, **decoder_options)
        texts: list[str] = []
        for start in range(0, len(paths), max(1, batch_size)):
            chunk = paths[start: start + batch_size]
            audio = []
            for path in chunk:
                if not Path(path).is_file():
                    raise ng.UserError(f"audio file not found: {path}")
                try:
                    audio.append(read_audio(str(path), sample_rate=rate))
                except RuntimeError as exc:  # soundfile's error for unreadable audio
                    raise ng.UserError(f"cannot read audio {path}: {exc}") from None
            log_probs, lengths = self.log_probs(audio)
            for ids in decode(log_probs.float().cpu(), lengths.cpu()):
                texts.append(source.ids_to_text(ids))
        return texts


def _vocab_size(source: Any) -> int:
    if hasattr(source, "labels"):
        return len(source.labels)
    return int(source.vocab_size)


def _tokens(source: Any) -> list[str]:
    if hasattr(source, "labels"):
        return list(source.labels)
    return list(source.tokenizer.tokens)
