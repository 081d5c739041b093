"""What runs in the workers: an utterance's job (all randomness already drawn), the
synthesizers, resampling to 16 kHz, pitch shift, trimming, noise and level, clips of background
noise alone (a commands corpus's `silence` and its noise files), the FLAC files, and the
batching of jobs into worker tasks.
"""

from __future__ import annotations

import io
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from neuralgraph_asr.synth.voices import SAMPLE_RATE, _run

# FLAC sample size in bits -> soundfile subtype
_SUBTYPES = {16: "PCM_16", 8: "PCM_S8"}


@dataclass(frozen=True)
class _Job:
    """Everything one worker needs to render one utterance (all randomness already drawn)."""

    out_path: str
    text: str
    engine: str  # espeak | flite | festival
    voice: str  # accent / flite voice / festival voice
    variant: str  # espeak variant ("" for none)
    rate: int  # espeak words per minute
    pitch: int  # espeak pitch 0..99
    stretch: float  # flite / festival duration stretch
    shift_cents: float  # flite / festival pitch shift (0: none)
    seed: int  # post-processing: trim margins, level, noise
    snr_db: float | None
    subtype: str  # FLAC sample format: PCM_16 or PCM_S8
    label: str = ""  # a commands corpus's class: the word, "unknown" or "silence"
    noise_seconds: float = 0.0  # > 0: a clip of background noise alone (engine "noise")

    @property
    def speaker(self) -> str:
        """The voice identity recorded in the manifest, e.g. ``espeak:en-gb-x-rp+f3``."""
        if self.engine == "noise":
            return f"noise:{self.voice}"
        suffix = f"+{self.variant}" if self.variant else ""
        return f"{self.engine}:{self.voice}{suffix}"


def _synthesize(job: _Job) -> np.ndarray:
    """One espeak-ng or flite utterance as 16 kHz mono float32: (T,)."""
    if job.engine == "espeak":
        voice = f"{job.voice}+{job.variant}" if job.variant else job.voice
        cmd = ["espeak-ng", "-v", voice, "-s", str(job.rate), "-p", str(job.pitch), "--stdout"]
        return _wav_to_16k(_run([*cmd, job.text]))
    if job.engine == "flite":
        stretch = f"duration_stretch={job.stretch}"
        cmd = ["flite", "-voice", job.voice, "--setf", stretch, "-t", job.text]
        return _wav_to_16k(_run([*cmd, "-o", "/dev/stdout"]))
    raise ValueError(f"engine must be espeak or flite (got {job.engine!r})")


def _festival_batch(jobs: Sequence[_Job], tmp: Path) -> list[np.ndarray]:
    """Festival utterances, all from one festival process (its start-up takes ~0.5 s): (T,)s."""
    lines = []
    for i, job in enumerate(jobs):
        text = job.text.replace("\\", " ").replace('"', " ")
        wav = tmp / f"{i}.wav"
        lines += [
            f"(voice_{job.voice})",
            f"(Parameter.set 'Duration_Stretch {job.stretch})",
            f'(utt.save.wave (utt.synth (Utterance Text "{text}")) "{wav}" \'riff)',
        ]
    script = tmp / "batch.scm"
    script.write_text("\n".join(lines) + "\n", encoding="utf-8")
    proc = subprocess.run(["festival", "--batch", str(script)], capture_output=True, check=False)
    outputs = [tmp / f"{i}.wav" for i in range(len(jobs))]
    if proc.returncode != 0 or not all(p.is_file() for p in outputs):
        err = proc.stderr.decode(errors="replace").strip()
        raise RuntimeError(f"festival failed (exit {proc.returncode}): {err or 'no output'}")
    return [_wav_to_16k(p.read_bytes()) for p in outputs]


def _wav_to_16k(wav: bytes) -> np.ndarray:
    """WAV bytes as 16 kHz mono float32, resampled with sox where needed: (T,)."""
    try:
        audio, rate = sf.read(io.BytesIO(wav), dtype="float32", always_2d=True)
        if rate == SAMPLE_RATE and audio.shape[1] == 1:
            return audio[:, 0]
    except sf.LibsndfileError:
        pass  # espeak-ng's streamed header has no length; sox reads it
    cmd = ["sox", "-t", "wav", "-", "-t", "raw", "-e", "floating-point", "-b", "32"]
    raw = _run([*cmd, "-r", str(SAMPLE_RATE), "-c", "1", "-"], wav)
    return np.frombuffer(raw, dtype=np.float32).copy()


def _shift_pitch(audio: np.ndarray, cents: float) -> np.ndarray:
    """Shift pitch and formants by ``cents`` at the same tempo, with sox: (T,) -> (T,)."""
    if cents == 0.0:
        return audio
    raw = ["-t", "raw", "-e", "floating-point", "-b", "32", "-r", str(SAMPLE_RATE), "-c", "1"]
    out = _run(["sox", *raw, "-", *raw, "-", "pitch", f"{cents:.1f}"], audio.tobytes())
    return np.frombuffer(out, dtype=np.float32).copy()


def _trim(audio: np.ndarray, threshold_db: float = -40.0, margin_s: float = 0.02) -> np.ndarray:
    """Cut leading/trailing frames quieter than ``threshold_db`` below the loudest 10 ms frame."""
    hop = SAMPLE_RATE // 100
    n_frames = len(audio) // hop
    if n_frames == 0:
        return audio
    rms = np.sqrt(np.mean(audio[: n_frames * hop].reshape(n_frames, hop) ** 2, axis=1))
    active = np.flatnonzero(rms > rms.max() * 10 ** (threshold_db / 20))
    if active.size == 0:  # digital silence: nothing to trim against
        return audio
    margin = int(margin_s * SAMPLE_RATE)
    start = max(0, active[0] * hop - margin)
    end = min(len(audio), (active[-1] + 1) * hop + margin)
    return audio[start:end]


def _coloured_noise(rng: np.random.Generator, n: int) -> np.ndarray:
    """Unit-RMS noise of ``n`` samples with a 1/f^a power spectrum, a in [0, 1.5]: (n,)."""
    spectrum = np.fft.rfft(rng.standard_normal(n))
    freqs = np.fft.rfftfreq(n)
    freqs[0] = freqs[1] if n > 1 else 1.0
    spectrum[0] = 0.0  # no DC offset
    noise = np.fft.irfft(spectrum / freqs ** (rng.uniform(0.0, 1.5) / 2), n)
    return noise / (np.sqrt(np.mean(noise**2)) + 1e-12)


NOISE_KINDS = ("coloured", "hum", "rumble")


def _background(job: _Job) -> np.ndarray:
    """A clip of background noise alone, ``job.noise_seconds`` long at 16 kHz: (T,).

    ``job.voice`` is its kind: ``coloured`` (1/f^a, a in [0, 1.5]), ``hum`` (mains hum at 50
    or 60 Hz with harmonics, over faint coloured noise) or ``rumble`` (low-passed noise that
    swells and fades: traffic, wind). The RMS level is drawn in [-70, -30] dBFS.
    """
    rng = np.random.default_rng(job.seed)
    n = max(1, round(job.noise_seconds * SAMPLE_RATE))
    if job.voice == "hum":
        t = np.arange(n) / SAMPLE_RATE
        base = rng.choice((50.0, 60.0))
        audio = sum(rng.uniform(0.2, 1.0) / k * np.sin(2 * np.pi * base * k * t
                                                       + rng.uniform(0, 2 * np.pi))
                    for k in range(1, 6))
        audio = audio / np.sqrt(np.mean(audio**2)) + 0.1 * _coloured_noise(rng, n)
    elif job.voice == "rumble":
        audio = np.cumsum(rng.standard_normal(n))  # brown noise: energy below ~100 Hz
        audio -= np.convolve(audio, np.ones(801) / 801, mode="same")  # remove the drift
        swell = 1 + 0.8 * np.sin(2 * np.pi * rng.uniform(0.1, 0.5) * np.arange(n)
                                 / SAMPLE_RATE + rng.uniform(0, 2 * np.pi))
        audio = audio * swell
    else:
        audio = _coloured_noise(rng, n)
    audio = audio / (np.sqrt(np.mean(audio**2)) + 1e-12)
    audio *= 10 ** (rng.uniform(-70.0, -30.0) / 20)
    return np.clip(audio, -1.0, 1.0).astype(np.float32)


def _postprocess(audio: np.ndarray, job: _Job) -> np.ndarray:
    """Trim, pad 30-150 ms of silence each side, set the level, add noise: (T,) -> (T',)."""
    rng = np.random.default_rng(job.seed)
    speech = _trim(audio - audio.mean())
    lead, tail = (int(rng.uniform(0.03, 0.15) * SAMPLE_RATE) for _ in range(2))
    out = np.concatenate([np.zeros(lead), speech, np.zeros(tail)])
    out *= 10 ** (rng.uniform(-6.0, -1.0) / 20) / (np.abs(out).max() + 1e-9)
    if job.snr_db is not None:
        speech_rms = np.sqrt(np.mean(out[lead : lead + len(speech)] ** 2))
        out += _coloured_noise(rng, len(out)) * speech_rms * 10 ** (-job.snr_db / 20)
        out /= max(1.0, np.abs(out).max() / 0.99)
    return out.astype(np.float32)


def _render(task: tuple[Sequence[_Job], str]) -> list[int]:
    """Synthesize a batch of utterances and write their FLAC files; returns their lengths."""
    jobs, root = task
    if all(job.engine == "noise" for job in jobs):
        lengths = []
        for job in jobs:
            out = _background(job)
            sf.write(Path(root) / job.out_path, out, SAMPLE_RATE, format="FLAC",
                     subtype=job.subtype)
            lengths.append(len(out))
        return lengths
    if all(job.engine == "festival" for job in jobs):
        with tempfile.TemporaryDirectory(prefix="ng-festival-") as tmp:
            audios = _festival_batch(jobs, Path(tmp))
    else:
        audios = [_synthesize(job) for job in jobs]
    lengths = []
    for job, audio in zip(jobs, audios, strict=True):
        out = _postprocess(_shift_pitch(audio, job.shift_cents), job)
        sf.write(Path(root) / job.out_path, out, SAMPLE_RATE, format="FLAC", subtype=job.subtype)
        lengths.append(len(out))
    return lengths


def _batches(jobs: Sequence[_Job], size: int = 8, festival_size: int = 32) -> list[list[_Job]]:
    """Worker tasks: festival utterances in large batches (first, they take longest), others
    in small ones."""
    festival = [j for j in jobs if j.engine == "festival"]
    noise = [j for j in jobs if j.engine == "noise"]
    others = [j for j in jobs if j.engine not in ("festival", "noise")]
    return (
        [festival[i : i + festival_size] for i in range(0, len(festival), festival_size)]
        + [others[i : i + size] for i in range(0, len(others), size)]
        + [noise[i : i + festival_size] for i in range(0, len(noise), festival_size)]
    )
