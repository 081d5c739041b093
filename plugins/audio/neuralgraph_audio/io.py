"""Reading audio: mono float32 waveforms at a chosen rate, trimming silence, and cropping or
padding to a fixed length.

Audio is read with soundfile (any format libsndfile reads: WAV, FLAC, OGG...), mixed down to
mono and resampled with ``torchaudio.functional.resample`` when the file's rate differs.
Only regular files are opened: a FIFO would block the reader forever and a device such as
``/dev/zero`` never ends, so they are refused by their ``stat`` before anything reads them.
"""

from __future__ import annotations

import torch

from neuralgraph import UserError
from neuralgraph_audio.manifest import file_problem

__all__ = ["AudioFileError", "crop_or_pad", "read_audio", "trim_silence"]


class AudioFileError(UserError):
    """An audio path that names no regular file (missing, a directory, a FIFO, a device)."""


def _check_regular(path: str) -> None:
    problem = file_problem(path)
    if problem == "not found":
        raise AudioFileError(f"audio file not found: {path}")
    if problem == "a directory":
        raise AudioFileError(f"audio path {path} is a directory, not an audio file")
    if problem is not None:
        raise AudioFileError(f"audio path {path} is {problem}, not a regular file: only "
                             "regular files are read as audio")


def read_audio(
    path: str,
    *,
    sample_rate: int,
    offset: float = 0.0,
    duration: float | None = None,
    int_values: bool = False,
) -> torch.Tensor:
    """Read a mono float32 waveform of shape ``(T,)`` at ``sample_rate``.

    Reads ``duration`` seconds from ``offset`` (the whole file when ``duration`` is None or 0,
    as NeMo does); channels are averaged; another rate is resampled. ``int_values`` reads 32-bit
    integers and scales them to [-1, 1) (NeMo's option; the same values up to rounding).

    Raises:
        AudioFileError: ``path`` is missing or not a regular file (a directory, a FIFO, a
            device); it is not opened.
    """
    import soundfile

    _check_regular(path)
    with soundfile.SoundFile(path) as f:
        rate = f.samplerate
        if offset > 0:
            f.seek(round(offset * rate))
        frames = round(duration * rate) if duration else -1
        data = f.read(frames=frames, dtype="int32" if int_values else "float32", always_2d=True)
    samples = torch.from_numpy(data)
    if int_values:
        samples = samples.to(torch.float32) / 2.0**31
    samples = samples.mean(dim=1) if samples.shape[1] > 1 else samples[:, 0]
    if rate != sample_rate:
        import torchaudio.functional as AF

        samples = AF.resample(samples, rate, sample_rate)
    return samples.contiguous()


def trim_silence(
    samples: torch.Tensor, top_db: float = 60.0, frame_length: int = 2048, hop_length: int = 512
) -> torch.Tensor:
    """Cut leading and trailing silence from a ``(T,)`` waveform (as ``librosa.effects.trim``).

    Frames (centred, zero padded) quieter than ``top_db`` below the loudest frame are silence.
    """
    if samples.numel() == 0:
        return samples
    half = frame_length // 2
    frames = torch.nn.functional.pad(samples, (half, half)).unfold(0, frame_length, hop_length)
    power = frames.pow(2).mean(dim=-1).clamp_min(1e-10)
    db = 10.0 * torch.log10(power / power.max())
    loud = torch.nonzero(db > -top_db).flatten()
    if loud.numel() == 0:
        return samples
    start = int(loud[0]) * hop_length
    end = min(samples.numel(), (int(loud[-1]) + 1) * hop_length)
    return samples[start:end]


def crop_or_pad(samples: torch.Tensor, length: int, *, random: bool = False,
                generator: torch.Generator | None = None) -> torch.Tensor:
    """A ``(T,)`` waveform made exactly ``length`` samples long: ``(length,)``.

    A longer one is cropped, a shorter one zero padded on both sides. ``random`` (training)
    draws where the crop starts, or how the padding is split, uniformly (from ``generator``,
    torch's default when None); otherwise the crop is central and the padding split evenly
    (evaluation, inference): the same input always gives the same output.
    """
    if length <= 0:
        raise ValueError(f"length must be > 0 (got {length})")
    size = samples.shape[-1]
    if size == length:
        return samples
    spare = abs(size - length)
    if random:
        start = int(torch.randint(spare + 1, (), generator=generator))
    else:
        start = spare // 2
    if size > length:
        return samples[start: start + length]
    return torch.nn.functional.pad(samples, (start, spare - start))
