"""``ClassificationModel``: a GraphModel that gives each audio file a class label and its
confidence (speech commands; the base of a VAD's window classifier).

It needs nothing from the graph but its data source's inference ports (``audio_signal``,
``audio_length``) and one output of type LogitsType (or ProbsType) (B, D) reached from them:
any utterance classifier qualifies. From the data source it reads ``sample_rate`` and
``labels`` (an ``AudioToClassificationLabelDataset``) and, when it has one,
``inference_clip`` (the fixed length evaluation uses). It is built on GraphModel's public API
only: ``execution_plan`` finds the output, ``run`` runs the graph from the audio. The command
``neuralgraph classify`` is in :mod:`neuralgraph_asr.classify_cli`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

import neuralgraph as ng
from neuralgraph_asr.model import AUDIO_INPUTS, path_problem

__all__ = ["ClassificationModel"]


class ClassificationModel(ng.GraphModel):
    """An utterance classifier built from a graph: ``classify(paths)`` returns a
    ``(label, confidence)`` per file, the confidence being the label's softmax
    probability.

    ``ClassificationModel.restore_from("m.ngm").classify(["yes.wav"])`` ->
    ``[("yes", 0.97)]``. Files are read at the data source's ``sample_rate`` and prepared
    as evaluation prepares them (``inference_clip``: cropped centrally or zero padded to
    the data source's ``fixed_length``).
    """

    def logits_key(self) -> str:
        """The key of the class scores reached from audio alone, in eval mode."""
        given = [f"data.{port}" for port in getattr(self.data_source, "inference_ports",
                                                   ())] or list(AUDIO_INPUTS)
        sinks = self.execution_plan(given).sinks
        for kinds in ((ng.LogitsType,), (ng.ProbsType,)):
            found = [k for k in sinks if self._is(k, kinds)]
            if found:
                return found[0]
        raise ng.UserError("this graph computes no LogitsType (B, D) output from audio "
                           "alone; it cannot classify")

    def _is(self, key: str, kinds: tuple[type, ...]) -> bool:
        port = self.plan.port_type(key)
        return (port is not None and isinstance(port.elements_type, kinds)
                and len(port.axes) == 2)

    @property
    def labels(self) -> list[str]:
        """The class names, in the order of the logits."""
        labels = getattr(self.data_source, "labels", None)
        if labels is None:
            raise ng.UserError(f"the graph's data source ({type(self.data_source).__name__})"
                               " has no labels: it is not a classification data source")
        return [str(label) for label in labels]

    def min_samples(self) -> int:
        """The shortest audio that fills one analysis window of the graph's feature
        extractor (its ``win_length``), in samples; 1 without one."""
        windows = [getattr(module, "win_length", None) for module in self.nodes.values()]
        return max([w for w in windows if isinstance(w, int)], default=1)

    @torch.no_grad()
    def probabilities(self, audio: Sequence[torch.Tensor]) -> torch.Tensor:
        """Class probabilities (B, D) of a batch of (T_i,) waveforms, prepared with the
        data source's ``inference_clip`` when it has one."""
        self.eval()
        prepare = getattr(self.data_source, "inference_clip", None)
        waves = [prepare(a) if prepare is not None else a for a in audio]
        lengths = torch.tensor([len(w) for w in waves], dtype=torch.long)
        signal = torch.zeros(len(waves), int(lengths.max()))
        for i, wave in enumerate(waves):
            signal[i, : len(wave)] = wave
        key = self.logits_key()
        out = self.run({AUDIO_INPUTS[0]: signal.to(self.device),
                        AUDIO_INPUTS[1]: lengths.to(self.device)}, outputs=[key])[key]
        out = out.float().cpu()
        if self._is(key, (ng.ProbsType,)):
            return out
        return torch.softmax(out, dim=-1)

    def classify(self, paths: Sequence[str | Path], batch_size: int = 16,
                 progress: bool = False,
                 where: Sequence[str] | None = None) -> list[tuple[str, float]]:
        """``(label, confidence)`` of each audio file.

        ``where``: how to name each file in an error (a manifest's ``path:LINE``);
        default the path itself.

        Raises:
            UserError: a path is missing or not a regular file, a file cannot be decoded,
                or its audio is shorter than one analysis window.
        """
        names = list(where) if where is not None else [str(p) for p in paths]
        for path, name in zip(paths, names, strict=True):
            problem = path_problem(path)
            if problem is not None:
                raise ng.UserError(problem if name == str(path) else f"{name}: {problem}")
        labels = self.labels
        results: list[tuple[str, float]] = []
        step = max(1, batch_size)
        with ng.Progress(len(paths), "classify", unit="files",
                         disable=not progress) as shown:
            for start in range(0, len(paths), step):
                chunk = list(paths[start: start + step])
                audio = self._read(chunk, names[start: start + step])
                probs = self.probabilities(audio)
                if probs.shape[-1] != len(labels):
                    raise ng.UserError(f"the graph gives {probs.shape[-1]} class scores "
                                       f"but its data source has {len(labels)} labels")
                confidence, index = probs.max(dim=-1)
                results.extend((labels[int(i)], float(c)) for c, i in zip(confidence,
                                                                          index))
                shown.update(len(chunk))
        return results

    def _read(self, paths: Sequence[str | Path],
              names: Sequence[str]) -> list[torch.Tensor]:
        from neuralgraph_audio import read_audio

        rate = getattr(self.data_source, "sample_rate", None)
        if not isinstance(rate, int):
            raise ng.UserError(f"the graph's data source ({type(self.data_source).__name__})"
                               " declares no sample_rate to read audio at")
        shortest = self.min_samples()
        audio = []
        for path, name in zip(paths, names, strict=True):
            try:
                wave = read_audio(str(path), sample_rate=rate)
            except RuntimeError as exc:  # soundfile's error for unreadable audio
                reason = str(exc).strip().splitlines()[-1] if str(exc).strip() else "?"
                raise ng.UserError(f"{name}: cannot read audio ({reason})"
                                   + ("" if name == str(path) else f" ({path})")) from None
            if wave.numel() < shortest:
                raise ng.UserError(
                    f"{name}: the audio is {wave.numel()} samples "
                    f"({1000 * wave.numel() / rate:.1f} ms), shorter than one analysis "
                    f"window of the model ({shortest} samples, {1000 * shortest / rate:g} "
                    "ms)" + ("" if name == str(path) else f" ({path})"))
            audio.append(wave)
        return audio
