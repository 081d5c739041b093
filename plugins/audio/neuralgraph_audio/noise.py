"""Background noise: noise recordings named by a manifest or a folder, coloured noise, mixing
at a signal-to-noise ratio, and clips of noise alone (a classifier's ``silence`` class, a VAD's
non-speech).

Used by :class:`~neuralgraph_audio.AudioAugmentor`'s ``noise`` perturbation (with a
``manifest_path``) and by data sources that generate noise clips
(:class:`NoiseClips`). Nothing here reads a file before it is needed: a data source builds
these objects while a graph is checked, and reads the noise only in its data loader.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import torch

from neuralgraph import UserError
from neuralgraph_audio.io import read_audio
from neuralgraph_audio.manifest import file_problem, read_manifest

__all__ = ["AUDIO_SUFFIXES", "NoiseClips", "NoiseFiles", "coloured_noise", "mix_at_snr"]

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".opus", ".mp3", ".aiff", ".aif", ".au", ".sph")


def _rand(generator: torch.Generator | None) -> float:
    """A uniform draw in [0, 1) from ``generator`` (torch's default one when None)."""
    return float(torch.rand((), generator=generator))


def _uniform(low: float, high: float, generator: torch.Generator | None) -> float:
    return low + (high - low) * _rand(generator)


def coloured_noise(n: int, exponent: float | None = None,
                   generator: torch.Generator | None = None) -> torch.Tensor:
    """``(n,)`` float32 noise of unit RMS whose power spectrum falls as ``1/f^exponent``.

    ``exponent`` 0 is white noise, 1 pink, 2 brown (red); None draws one in [0, 2]. No DC.
    """
    if n <= 0:
        return torch.zeros(max(n, 0))
    if exponent is None:
        exponent = _uniform(0.0, 2.0, generator)
    spectrum = torch.fft.rfft(torch.randn(n, generator=generator, dtype=torch.float64))
    freqs = torch.fft.rfftfreq(n, dtype=torch.float64)
    if n > 1:
        freqs[0] = freqs[1]
    spectrum = spectrum / freqs.clamp_min(1e-12) ** (exponent / 2)
    spectrum[0] = 0.0
    noise = torch.fft.irfft(spectrum, n)
    rms = noise.pow(2).mean().sqrt()
    if not bool(rms > 0):
        return torch.zeros(n)
    return (noise / rms).float()


def mix_at_snr(signal: torch.Tensor, noise: torch.Tensor, snr_db: float) -> torch.Tensor:
    """``signal + noise`` (both ``(T,)``), the noise scaled to ``snr_db`` below the signal's RMS.

    A silent signal (RMS 0) or silent noise is returned unchanged.
    """
    signal_rms = signal.pow(2).mean().sqrt()
    noise_rms = noise.pow(2).mean().sqrt()
    if not bool(signal_rms > 0) or not bool(noise_rms > 0):
        return signal
    scale = signal_rms / noise_rms / 10.0 ** (snr_db / 20.0)
    return signal + noise * scale


class NoiseFiles:
    """Noise recordings: the files of a NeMo manifest (``audio_filepath``, ``duration``,
    optional ``offset``) or every audio file under a folder (``AUDIO_SUFFIXES``, recursively).

    ``segment(n)`` returns ``n`` samples of one file drawn uniformly, from a random position
    (a file shorter than ``n`` samples is repeated). Nothing is read when the object is built;
    the list of files is read on first use, in each data-loader worker. :meth:`problems` checks
    everything before training (a missing manifest or folder, files that cannot be read).
    """

    def __init__(self, path: str | os.PathLike[str], sample_rate: int) -> None:
        self.path = str(path)
        self.sample_rate = sample_rate
        self._files: list[tuple[str, float, float]] | None = None  # (path, offset, seconds)

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_files": None}  # workers list the files themselves

    def problems(self) -> list[str]:
        """What stops the noise from being used, one line each (empty: nothing)."""
        try:
            files = self._list()
        except UserError as err:
            return [str(err)]
        found = []
        for path, _, _ in files:
            problem = file_problem(path)
            if problem is not None:
                found.append(f"{self.path}: noise file {path} is {problem}")
                continue
            try:
                import soundfile

                with soundfile.SoundFile(path) as f:
                    if f.frames <= 0:
                        found.append(f"{self.path}: noise file {path} has no samples")
            except Exception as err:  # any failure to read the header is the file's problem
                reason = str(err).strip().splitlines()[-1] if str(err).strip() else "unknown"
                found.append(f"{self.path}: noise file {path} is unreadable ({reason})")
        return found

    def _list(self) -> list[tuple[str, float, float]]:
        if self._files is not None:
            return self._files
        root = Path(os.path.expanduser(self.path))
        if root.is_dir():
            paths = sorted(str(p) for p in root.rglob("*")
                           if p.suffix.lower() in AUDIO_SUFFIXES and p.is_file())
            if not paths:
                raise UserError(f"noise folder {self.path} holds no audio files "
                                f"({', '.join(AUDIO_SUFFIXES[:3])}, ...)")
            files = [(p, 0.0, 0.0) for p in paths]  # 0 s: the whole file (measured on use)
        else:
            if file_problem(root) == "not found":
                raise UserError(f"noise manifest or folder not found: {self.path}")
            entries, _ = read_manifest(root)
            if not entries:
                raise UserError(f"noise manifest {self.path} has no entries")
            files = [(e.audio_filepath, e.offset, e.duration) for e in entries]
        self._files = files
        return files

    def __len__(self) -> int:
        return len(self._list())

    def _seconds(self, index: int) -> float:
        path, offset, seconds = self._list()[index]
        if seconds <= 0:
            import soundfile

            with soundfile.SoundFile(path) as f:
                seconds = max(0.0, f.frames / f.samplerate - offset)
            files = self._list()
            files[index] = (path, offset, seconds)
        return seconds

    def segment(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``(n,)`` samples of a noise file drawn uniformly, from a random offset."""
        files = self._list()
        index = min(int(_rand(generator) * len(files)), len(files) - 1)
        path, offset, _ = files[index]
        seconds = self._seconds(index)
        want = n / self.sample_rate
        start = offset + max(0.0, seconds - want) * _rand(generator)
        samples = read_audio(path, sample_rate=self.sample_rate, offset=start,
                             duration=min(want, seconds) if seconds > 0 else None)
        if samples.numel() == 0:
            return torch.zeros(n)
        if samples.numel() < n:
            samples = samples.repeat(math.ceil(n / samples.numel()))
        return samples[:n]


class NoiseClips:
    """``count`` clips of background noise alone, each ``length`` samples, at an RMS level
    drawn in ``[min_level_db, max_level_db]`` dBFS: a segment of ``files`` when given, else
    coloured noise (:func:`coloured_noise`, white to brown).

    ``clip(i)`` draws from torch's default generator (new noise every epoch: training);
    ``clip(i, seed=s)`` is the same clip every time for the same ``(s, i)`` (evaluation).
    """

    def __init__(self, count: int, length: int, files: NoiseFiles | None = None,
                 min_level_db: float = -70.0, max_level_db: float = -25.0) -> None:
        if count < 0 or length <= 0:
            raise ValueError(f"count must be >= 0 and length > 0 (got {count}, {length})")
        if min_level_db > max_level_db:
            raise ValueError(f"min_level_db must be <= max_level_db (got {min_level_db} > "
                             f"{max_level_db})")
        self.count = count
        self.length = length
        self.files = files
        self.min_level_db = min_level_db
        self.max_level_db = max_level_db

    def clip(self, index: int, seed: int | None = None) -> torch.Tensor:
        """Noise clip ``index``: ``(length,)`` float32."""
        generator = None
        if seed is not None:
            generator = torch.Generator().manual_seed(seed * 1_000_003 + index)
        if self.files is not None:
            noise = self.files.segment(self.length, generator)
            rms = noise.pow(2).mean().sqrt()
            noise = noise / rms if bool(rms > 0) else noise
        else:
            noise = coloured_noise(self.length, generator=generator)
        level = _uniform(self.min_level_db, self.max_level_db, generator)
        return (noise * 10.0 ** (level / 20.0)).clamp(-1.0, 1.0)
