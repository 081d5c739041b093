"""A data source that needs no files: random sine waves and the same waves scaled by a target gain.

Use it to try a graph end to end (``neuralgraph check`` / ``train``) before real data exists.
"""

from __future__ import annotations

import math

import torch

import neuralgraph as ng
from neuralgraph.validators import ParameterError, check, finite, number, positive_int

__all__ = ["SineWaves"]

_SPLIT_OFFSET = {"train": 0, "validation": 1, "test": 2}


class _Waves(torch.utils.data.Dataset):
    """``n`` sine waves of ``length`` samples, drawn from one seed; items are port dicts."""

    def __init__(self, n: int, length: int, sample_rate: int, target_gain: float,
                 seed: int) -> None:
        gen = torch.Generator().manual_seed(seed)
        freq = 100.0 + 900.0 * torch.rand(n, 1, generator=gen)
        amplitude = 0.1 + 0.8 * torch.rand(n, 1, generator=gen)
        phase = 2 * math.pi * torch.rand(n, 1, generator=gen)
        t = torch.arange(length, dtype=torch.float32) / sample_rate
        self.audio = amplitude * torch.sin(2 * math.pi * freq * t + phase)
        self.target = target_gain * self.audio

    def __len__(self) -> int:
        return self.audio.shape[0]

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"audio_signal": self.audio[i], "target_signal": self.target[i]}


class SineWaves(ng.DataSource):
    """Random sine waves (100-1000 Hz) and the same waves times ``target_gain``.

    Output ports: ``audio_signal`` and ``target_signal``, both (B, T) AudioSignal(sample_rate)
    with ``T = int(duration * sample_rate)``. Each split is a different, reproducible draw.
    """

    # What an exported model takes as input (`neuralgraph export`): the waveform, not the target.
    inference_ports = ("audio_signal",)

    def __init__(self, sample_rate: int = 16000, duration: float = 0.1,
                 target_gain: float = 0.5, seed: int = 0) -> None:
        check("sample_rate", sample_rate, positive_int)
        if check("duration", duration, number) * sample_rate < 1:
            raise ParameterError("duration", f"at least one sample long (>= {1 / sample_rate:g} s "
                                 f"at {sample_rate} Hz)", duration)
        check("target_gain", target_gain, number, finite)
        self.sample_rate, self.duration = sample_rate, duration
        self.target_gain, self.seed = target_gain, seed

    @property
    def output_types(self) -> dict[str, ng.NeuralType]:
        """``audio_signal``, ``target_signal``: (B, T) AudioSignal(sample_rate)."""
        wave = ng.NeuralType(("B", "T"), ng.AudioSignal(self.sample_rate))
        return {"audio_signal": wave, "target_signal": wave}

    def dataloader(self, split: str, batch_size: int = 8, n_samples: int = 64,
                   shuffle: bool = False, num_workers: int = 0) -> torch.utils.data.DataLoader:
        """Loader over ``n_samples`` waves of ``split`` in batches of ``batch_size``."""
        if split not in _SPLIT_OFFSET:
            raise ValueError(f"split must be one of {sorted(_SPLIT_OFFSET)} (got {split!r})")
        if batch_size <= 0 or n_samples <= 0:
            raise ValueError(f"batch_size and n_samples must be > 0 "
                             f"(got {batch_size}, {n_samples})")
        waves = _Waves(n_samples, int(self.duration * self.sample_rate), self.sample_rate,
                       self.target_gain, self.seed * 3 + _SPLIT_OFFSET[split])
        return torch.utils.data.DataLoader(waves, batch_size=batch_size, shuffle=shuffle,
                                           num_workers=num_workers)

    def example_batch(self) -> dict[str, torch.Tensor]:
        """Two waves of every port, for tracing an export: each (2, T)."""
        waves = _Waves(2, int(self.duration * self.sample_rate), self.sample_rate,
                       self.target_gain, self.seed * 3 + 3)
        return {"audio_signal": waves.audio, "target_signal": waves.target}
