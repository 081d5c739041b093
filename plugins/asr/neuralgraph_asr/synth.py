"""A synthetic multi-speaker English speech corpus, made offline with Debian's synthesizers.

``synthesize_corpus`` speaks digit strings ("three seven nine oh two") and short sentences with
espeak-ng (several accents, each with dozens of voice variants, random rate and pitch), flite
(awb, rms, slt, kal, kal16) and festival (kal_diphone, ked_diphone, cmu_us_slt_arctic_hts) —
one engine drawn uniformly per utterance, then one of its voices —, resamples everything to
16 kHz mono with sox, pitch-shifts flite and festival utterances of train and dev by up to
±3 semitones (sox `pitch`) to make more speakers of those few voices, trims the synthesizers'
silences, pads a little random silence, sets a random level, optionally
adds coloured noise at a random SNR, and writes FLAC files with NeMo JSON-lines manifests:

    OUT/train_manifest.json     OUT/train/00000.flac ...
    OUT/dev_manifest.json       OUT/dev/00000.flac ...      (train's voices, other utterances)
    OUT/heldout_manifest.json   OUT/heldout/00000.flac ...  (voices never used in train or dev)

Each manifest line is ``{"audio_filepath": "train/00000.flac", "duration": 1.234,
"text": "three seven", "speaker": "espeak:en-gb-x-rp+f3"}``, plus ``"pitch_shift_cents"``
for a pitch-shifted flite or festival utterance; paths are relative to the manifest's folder.
Texts use only the 28-label character set (space, a-z, apostrophe).

Every random choice is drawn in the parent process from the seed (one stream per split), so the
corpus is the same whatever the number of workers; the workers only run the synthesizers.
"""

from __future__ import annotations

import argparse
import io
import json
import multiprocessing
import random
import re
import shutil
import subprocess
import tempfile
import time
import zlib
from collections.abc import Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from neuralgraph.errors import UserError

__all__ = [
    "CHARSET",
    "DEFAULT_HELDOUT_VOICES",
    "DEFAULT_VOICES",
    "ESPEAK_VARIANTS",
    "SAMPLE_RATE",
    "configure_synth_parser",
    "digit_text",
    "run_synth",
    "sentence_pool",
    "synthesize_corpus",
]

SAMPLE_RATE = 16000
CHARSET = " abcdefghijklmnopqrstuvwxyz'"
SPLITS = ("train", "dev", "heldout")
KINDS = ("digits", "sentences", "mixed")

# Base voices: "engine:name". espeak voices also get a variant ("+m3") per utterance.
DEFAULT_VOICES: tuple[str, ...] = (
    "espeak:en-gb",
    "espeak:en-us",
    "espeak:en-gb-x-rp",
    "espeak:en-gb-x-gbclan",
    "espeak:en-gb-x-gbcwmd",
    "espeak:en-029",
    "espeak:en-us-nyc",
    "espeak:en-gb-scotland",
    "flite:awb",
    "flite:rms",
    "flite:slt",
    "flite:kal",
    "flite:kal16",
    "festival:kal_diphone",
    "festival:ked_diphone",
    "festival:cmu_us_slt_arctic_hts",
)
# One speaker is held out in every engine that has him: flite's kal and kal16 and festival's
# kal_diphone are all Kal's diphones. With him, one espeak accent. (flite's slt and festival's
# cmu_us_slt_arctic_hts are one speaker too; both train.)
DEFAULT_HELDOUT_VOICES: tuple[str, ...] = (
    "espeak:en-gb-scotland",
    "flite:kal",
    "flite:kal16",
    "festival:kal_diphone",
)
# flite and festival voices are few; in train and dev each utterance of theirs is pitch-shifted
# (formants with it, as sox's `pitch` does) by a random amount in this range, in cents, to make
# more speakers of them. Heldout voices are left as they are.
SHIFT_CENTS = (-300.0, 300.0)
# espeak-ng variants that stay intelligible (no robot echo, no novelty voices); "" is the plain
# accent voice.
ESPEAK_VARIANTS: tuple[str, ...] = (
    "", "m1", "m2", "m3", "m4", "m5", "m6", "m7", "m8", "f1", "f2", "f3", "f4", "f5",
    "croak", "whisper", "whisperf", "klatt", "klatt2", "klatt3", "Alex", "Andy", "Annie",
    "Denis", "Gene", "Lee", "Mike", "adam", "anika", "antonio", "aunty", "belinda", "benjamin",
    "boris", "david", "ed", "edward", "grandma", "grandpa", "linda", "max", "michel", "paul",
    "quincy", "rob", "robert", "steph", "travis", "victor", "zac",
)  # fmt: skip

# engine -> (program, Debian packages that provide it and its voices)
_PROGRAMS = {
    "espeak": ("espeak-ng", "espeak-ng"),
    "flite": ("flite", "flite"),
    "festival": ("festival", "festival festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts"),
    "sox": ("sox", "sox"),
}
_FESTIVAL_VOICE_DIRS = (Path("/usr/share/festival/voices"), Path("/usr/lib/festival/voices"))

_SUBTYPES = {16: "PCM_16", 8: "PCM_S8"}
_DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
_EVAL_SENTENCE_SHARE = 5  # one pool sentence in 5 is kept for dev/heldout, never for train


# --- texts -------------------------------------------------------------------------------------


def digit_text(rng: random.Random, min_len: int = 1, max_len: int = 7) -> str:
    """A digit string of ``min_len``..``max_len`` digits spelled as words; 0 is "zero" or "oh"."""
    words = []
    for _ in range(rng.randint(min_len, max_len)):
        digit = rng.randrange(10)
        words.append(rng.choice(("zero", "oh")) if digit == 0 else _DIGIT_WORDS[digit])
    return " ".join(words)


_SUBJECTS = (
    "i", "you", "we", "they", "she", "he", "my sister", "my brother", "the teacher",
    "the children", "a little girl", "the old man", "the doctor", "our neighbour", "the farmer",
)  # fmt: skip
_PAST = (
    "found", "saw", "lost", "bought", "painted", "moved", "opened", "cleaned", "carried",
    "dropped", "fixed", "washed", "sold", "wanted", "liked", "took", "kept", "needed", "brought",
)  # fmt: skip
_BASE = (
    "find", "see", "buy", "paint", "move", "open", "clean", "carry", "fix", "wash", "sell",
    "take", "keep", "bring", "check", "hold",
)  # fmt: skip
_NOUNS = (
    "cat", "dog", "book", "cup", "chair", "table", "window", "door", "car", "bus", "bird",
    "apple", "box", "hat", "coat", "key", "phone", "lamp", "bag", "ball", "clock", "pen", "map",
    "boat", "bike", "plant", "shirt", "shoe", "cake", "letter", "basket", "radio",
)  # fmt: skip
_PLURALS = (
    "cats", "dogs", "books", "cups", "chairs", "apples", "boxes", "hats", "keys", "birds",
    "pens", "shoes", "letters", "plants", "bottles", "candles",
)  # fmt: skip
_ADJS = (
    "red", "blue", "green", "small", "big", "old", "new", "warm", "cold", "quiet", "heavy",
    "clean", "dark", "bright", "yellow", "soft", "round", "broken", "empty", "little",
)  # fmt: skip
_PLACES = (
    "on the table", "in the box", "under the chair", "near the door", "in the kitchen",
    "by the window", "at the station", "in the garden", "behind the house", "on the shelf",
    "in the car", "next to the bed",
)  # fmt: skip
_WHEN_PAST = ("today", "yesterday", "this morning", "last night", "on monday", "after lunch")
_WHEN_FUTURE = ("tomorrow", "tonight", "next week", "on friday", "later", "soon", "after dinner")
_WEATHER = ("cold", "warm", "sunny", "windy", "raining", "snowing", "cloudy", "dark")
_NUMBERS = ("two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "twelve")
_FIXED = (
    "good morning", "good night", "thank you very much", "how are you today",
    "see you tomorrow", "turn left at the next corner", "the meeting starts at nine",
    "what time is it", "i don't know", "that's a good idea", "let's go home",
    "could you say that again", "i'm sorry i'm late", "we're almost there",
    "she's reading a book", "he's not at home", "the shop opens at ten", "call me later",
    "where are my keys", "it's time for lunch", "the water is too hot", "open the window please",
    "close the door behind you", "the train was late again", "i'll be back in five minutes",
    "they've already left", "you're right about that", "the sky is very blue",
    "my phone is on the desk", "wait for me at the gate", "the children are playing outside",
    "can you help me with this", "we need more milk", "the music is too loud",
    "please speak more slowly", "the garden looks lovely", "it's a long way from here",
    "the baby is sleeping", "don't forget your umbrella", "the coffee is ready",
)  # fmt: skip


def _sentence_templates(rng: random.Random) -> str:
    """One sentence from a random template (letters, spaces and apostrophes only)."""
    c = rng.choice
    templates = (
        lambda: f"{c(_SUBJECTS)} {c(_PAST)} the {c(_ADJS)} {c(_NOUNS)}",
        lambda: f"{c(_SUBJECTS)} {c(_PAST)} the {c(_NOUNS)} {c(_PLACES)}",
        lambda: f"{c(_SUBJECTS)} {c(_PAST)} my {c(_NOUNS)} {c(_WHEN_PAST)}",
        lambda: f"the {c(_ADJS)} {c(_NOUNS)} is {c(_PLACES)}",
        lambda: f"please {c(_BASE)} the {c(_NOUNS)}",
        lambda: f"please {c(_BASE)} the {c(_ADJS)} {c(_NOUNS)} {c(_WHEN_FUTURE)}",
        lambda: f"where is the {c(_ADJS)} {c(_NOUNS)}",
        lambda: f"i can't find the {c(_NOUNS)}",
        lambda: f"don't {c(_BASE)} my {c(_NOUNS)}",
        lambda: f"it's {c(_WEATHER)} {c((*_WHEN_PAST[:3], 'outside'))}",
        lambda: f"there are {c(_NUMBERS)} {c(_PLURALS)} {c(_PLACES)}",
        lambda: f"{c(_SUBJECTS)} didn't {c(_BASE)} the {c(_NOUNS)}",
        lambda: f"we'll {c(_BASE)} the {c(_NOUNS)} {c(_WHEN_FUTURE)}",
        lambda: f"i'd like the {c(_ADJS)} {c(_NOUNS)}",
        lambda: f"is the {c(_NOUNS)} {c(_ADJS)}",
        lambda: f"my {c(_NOUNS)} is {c(_ADJS)}",
        lambda: f"{c(_SUBJECTS)} can't {c(_BASE)} the {c(_PLURALS)}",
        lambda: c(_FIXED),
    )
    return c(templates)()


def sentence_pool(size: int = 1000) -> tuple[str, ...]:
    """A fixed list of ``size`` distinct short sentences (the same on every call)."""
    rng = random.Random(20240601)  # fixed: the pool must not depend on the corpus seed
    pool: dict[str, None] = {s: None for s in _FIXED}
    while len(pool) < size:
        pool[_sentence_templates(rng)] = None
    return tuple(pool)[:size]


def _split_sentences(pool: Sequence[str]) -> tuple[list[str], list[str]]:
    """Partition the pool by a stable hash: (train sentences, dev/heldout sentences)."""
    train, held = [], []
    for s in pool:
        (held if zlib.crc32(s.encode()) % _EVAL_SENTENCE_SHARE == 0 else train).append(s)
    return train, held


# --- planning ----------------------------------------------------------------------------------


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

    @property
    def speaker(self) -> str:
        """The voice identity recorded in the manifest, e.g. ``espeak:en-gb-x-rp+f3``."""
        suffix = f"+{self.variant}" if self.variant else ""
        return f"{self.engine}:{self.voice}{suffix}"


def _pick_voice(rng: random.Random, voices: Sequence[str]) -> tuple[str, str]:
    """An engine uniformly, then one of its voices: (engine, name). espeak has many accents and
    flite/festival few, so drawing voices uniformly would make 3 in 4 utterances espeak's."""
    by_engine: dict[str, list[str]] = {}
    for voice in voices:
        engine, name = voice.split(":", 1)
        by_engine.setdefault(engine, []).append(name)
    engine = rng.choice(sorted(by_engine))
    return engine, rng.choice(by_engine[engine])


def _plan_split(
    split: str,
    n: int,
    kind: str,
    voices: Sequence[str],
    seed: int,
    noise_snr_db: tuple[float, float] | None,
    texts: tuple[list[str], list[str]],
    subtype: str,
) -> list[_Job]:
    """Draw text, voice and prosody of ``n`` utterances of one split from its own stream."""
    rng = random.Random(f"neuralgraph-synth:{seed}:{split}")
    sentences = texts[0] if split == "train" else texts[1]
    jobs = []
    for i in range(n):
        use_digits = kind == "digits" or (kind == "mixed" and rng.random() < 0.5)
        text = digit_text(rng) if use_digits else rng.choice(sentences)
        engine, name = _pick_voice(rng, voices)
        variant = rng.choice(ESPEAK_VARIANTS) if engine == "espeak" else ""
        shift = rng.uniform(*SHIFT_CENTS) if engine != "espeak" and split != "heldout" else 0.0
        snr = None if noise_snr_db is None else round(rng.uniform(*noise_snr_db), 2)
        jobs.append(
            _Job(
                out_path=f"{split}/{i:05d}.flac",
                text=text,
                engine=engine,
                voice=name,
                variant=variant,
                rate=rng.randint(130, 200),
                pitch=rng.randint(30, 70),
                stretch=round(rng.uniform(0.85, 1.2), 3),
                shift_cents=round(shift, 1),
                seed=rng.getrandbits(63),
                snr_db=snr,
                subtype=subtype,
            )
        )
    return jobs


# --- rendering (runs in the workers) -----------------------------------------------------------


def _run(cmd: list[str], data: bytes | None = None) -> bytes:
    """Run a program and return its stdout; a failure raises RuntimeError with its stderr."""
    proc = subprocess.run(cmd, input=data, capture_output=True, check=False)
    if proc.returncode != 0 or not proc.stdout:
        err = proc.stderr.decode(errors="replace").strip()
        raise RuntimeError(f"{cmd[0]} failed (exit {proc.returncode}): {err or 'no output'}")
    return proc.stdout


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
    others = [j for j in jobs if j.engine != "festival"]
    return [festival[i : i + festival_size] for i in range(0, len(festival), festival_size)] + [
        others[i : i + size] for i in range(0, len(others), size)
    ]


# --- checks ------------------------------------------------------------------------------------


def _check_programs(engines: Iterable[str]) -> None:
    """Raise UserError naming the Debian package for each missing program."""
    missing = [_PROGRAMS[e] for e in sorted({*engines, "sox"}) if not shutil.which(_PROGRAMS[e][0])]
    if missing:
        names = ", ".join(p for p, _ in missing)
        packages = " ".join(pkg for _, pkg in missing)
        raise UserError(
            f"speech synthesis needs {names}, not found on PATH: "
            f"install the Debian packages with `apt-get install {packages}`"
        )


def _installed_voices(engine: str) -> set[str] | None:
    """The voice names an engine has on this machine (None where it cannot tell)."""
    if engine == "espeak":
        out = _run(["espeak-ng", "--voices=en"]).decode()
        return {line.split()[1] for line in out.splitlines()[1:] if len(line.split()) > 1}
    if engine == "flite":
        out = subprocess.run(["flite", "-lv"], capture_output=True, text=True, check=False)
        return set(out.stdout.replace("Voices available:", "").split())
    if engine == "festival":
        return {p.name for d in _FESTIVAL_VOICE_DIRS if d.is_dir() for p in d.glob("*/*")}
    return None


def _check_voice_names(voices: Sequence[str], heldout: Sequence[str]) -> None:
    """Raise UserError for a malformed voice name or a heldout voice not among ``voices``."""
    for voice in [*voices, *heldout]:
        engine, _, name = voice.partition(":")
        if engine not in ("espeak", "flite", "festival") or not name:
            raise UserError(
                f"voice {voice!r} must be 'espeak:NAME', 'flite:NAME' or 'festival:NAME'"
            )
    stray = [v for v in heldout if v not in voices]
    if stray:
        raise UserError(f"heldout voices {stray} must be among the voices {list(voices)}")


def _check_installed(voices: Sequence[str]) -> None:
    """Raise UserError for a missing program or a voice its engine does not have here."""
    engines = sorted({v.split(":", 1)[0] for v in voices})
    _check_programs(engines)
    for engine in engines:
        installed = _installed_voices(engine)
        names = [v.split(":", 1)[1] for v in voices if v.startswith(engine + ":")]
        absent = [n for n in names if installed is not None and n not in installed]
        if absent:
            hint = " (Debian package festvox-kallpc16k)" if engine == "festival" else ""
            raise UserError(
                f"{engine} voices {absent} are not installed{hint}; "
                f"installed: {' '.join(sorted(installed or ()))}"
            )


def _check_args(
    counts: dict[str, int], kind: str, workers: int, noise_snr_db: tuple[float, float] | None
) -> None:
    """Raise UserError for counts, kind, workers or SNR range that cannot work."""
    if any(n < 0 for n in counts.values()) or sum(counts.values()) == 0:
        raise UserError(f"utterance counts must be >= 0 and not all 0 (got {counts})")
    if kind not in KINDS:
        raise UserError(f"kind must be one of {', '.join(KINDS)} (got {kind!r})")
    if workers < 1:
        raise UserError(f"workers must be >= 1 (got {workers})")
    if noise_snr_db is not None and (len(noise_snr_db) != 2 or noise_snr_db[0] > noise_snr_db[1]):
        raise UserError(f"noise_snr_db must be (min, max) with min <= max (got {noise_snr_db})")


# --- corpus ------------------------------------------------------------------------------------


def _prepare_folder(folder: Path) -> None:
    """Create ``folder`` and remove FLAC files a previous run left there (names 00000.flac...)."""
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.flac"):
        if re.fullmatch(r"\d{5,}\.flac", old.name):
            old.unlink()


def _manifest_entry(job: _Job, samples: int) -> dict[str, Any]:
    """One manifest line; a pitch-shifted utterance records its shift as ``pitch_shift_cents``
    (the speaker name stays the synthesizer's voice)."""
    entry: dict[str, Any] = {
        "audio_filepath": job.out_path,
        "duration": round(samples / SAMPLE_RATE, 4),
        "text": job.text,
        "speaker": job.speaker,
    }
    if job.shift_cents:
        entry["pitch_shift_cents"] = job.shift_cents
    return entry


def _write_manifest(path: Path, jobs: Sequence[_Job], lengths: Sequence[int]) -> None:
    """Write the NeMo JSON-lines manifest of one split (atomically)."""
    lines = [json.dumps(_manifest_entry(job, n)) for job, n in zip(jobs, lengths, strict=True)]
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    tmp.replace(path)


def _pool_context() -> multiprocessing.context.BaseContext:
    """fork where available: workers run only subprocesses and numpy, and start instantly."""
    methods = multiprocessing.get_all_start_methods()
    return multiprocessing.get_context("fork" if "fork" in methods else "spawn")


def synthesize_corpus(
    out_dir: str | Path,
    *,
    n_train: int,
    n_dev: int,
    n_heldout: int,
    kind: str = "digits",
    seed: int = 0,
    workers: int = 2,
    voices: Sequence[str] = DEFAULT_VOICES,
    heldout_voices: Sequence[str] = DEFAULT_HELDOUT_VOICES,
    noise_snr_db: tuple[float, float] | None = None,
    bits: int = 16,
) -> dict[str, Path]:
    """Synthesize a train/dev/heldout corpus of 16 kHz mono FLAC files with manifests.

    Args:
        out_dir: folder for ``{split}_manifest.json`` and the ``{split}/NNNNN.flac`` files.
        n_train, n_dev, n_heldout: utterances per split (a split with 0 is not written).
        kind: "digits" (1-7 spoken digits), "sentences" (short sentences; dev/heldout use
            sentences that train never sees) or "mixed" (half and half).
        seed: the same seed gives the same corpus, whatever ``workers``.
        workers: processes running the synthesizers.
        voices: base voices "engine:name" (espeak accents get random variants).
        heldout_voices: the voices of the heldout split, removed from train and dev.
        noise_snr_db: (min, max) SNR of added coloured noise, or None for clean speech.
        bits: FLAC sample size, 16 or 8 (8-bit files are a third of the size, with
            quantization noise about 30 dB below the speech).

    Returns:
        split name -> manifest path, for the splits written.

    Raises:
        UserError: bad arguments, or a synthesizer or voice missing (naming its Debian package).
    """
    counts = {"train": n_train, "dev": n_dev, "heldout": n_heldout}
    _check_args(counts, kind, workers, noise_snr_db)
    if bits not in _SUBTYPES:
        raise UserError(f"bits must be 16 or 8 (got {bits})")
    _check_voice_names(voices, heldout_voices)
    train_voices = [v for v in voices if v not in heldout_voices]
    if (n_train or n_dev) and not train_voices:
        raise UserError("every voice is held out: train and dev need at least one other voice")
    if n_heldout and not heldout_voices:
        raise UserError("heldout utterances need at least one heldout voice")
    used = [*(train_voices if n_train or n_dev else ()), *(heldout_voices if n_heldout else ())]
    _check_installed(used)

    root = Path(out_dir)
    texts = _split_sentences(sentence_pool())
    plans = {
        split: _plan_split(
            split,
            n,
            kind,
            heldout_voices if split == "heldout" else train_voices,
            seed,
            noise_snr_db,
            texts,
            _SUBTYPES[bits],
        )
        for split, n in counts.items()
        if n > 0
    }
    for split in plans:
        _prepare_folder(root / split)
    tasks = _batches([job for jobs in plans.values() for job in jobs])
    with ProcessPoolExecutor(max_workers=workers, mp_context=_pool_context()) as pool:
        done = pool.map(_render, [(task, str(root)) for task in tasks])
        lengths = {j.out_path: n for task, ns in zip(tasks, done) for j, n in zip(task, ns)}
    manifests = {}
    for split, jobs in plans.items():
        manifests[split] = root / f"{split}_manifest.json"
        _write_manifest(manifests[split], jobs, [lengths[job.out_path] for job in jobs])
    return manifests


# --- command line ------------------------------------------------------------------------------


def configure_synth_parser(parser: argparse.ArgumentParser) -> None:
    """Add the arguments of ``neuralgraph asr synth`` to ``parser``."""
    parser.add_argument("--out", required=True, type=Path, help="output folder")
    parser.add_argument("--train", type=int, default=400, help="train utterances (400)")
    parser.add_argument("--dev", type=int, default=60, help="dev utterances, train voices (60)")
    parser.add_argument("--heldout", type=int, default=60, help="heldout-voice utterances (60)")
    parser.add_argument("--kind", choices=KINDS, default="digits", help="texts (digits)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (0)")
    parser.add_argument("--workers", type=int, default=2, help="synthesizer processes (2)")
    parser.add_argument(
        "--noise-snr",
        type=float,
        nargs=2,
        metavar=("MIN", "MAX"),
        default=None,
        help="add coloured noise at a random SNR in [MIN, MAX] dB (default: clean)",
    )
    parser.add_argument(
        "--bits",
        type=int,
        choices=sorted(_SUBTYPES),
        default=16,
        help="FLAC sample size; 8 makes files 3x smaller (16)",
    )
    parser.add_argument(
        "--voices",
        nargs="+",
        default=list(DEFAULT_VOICES),
        metavar="ENGINE:NAME",
        help=f"base voices (default: the {len(DEFAULT_VOICES)} built-in ones)",
    )
    parser.add_argument(
        "--heldout-voices",
        nargs="+",
        default=list(DEFAULT_HELDOUT_VOICES),
        metavar="ENGINE:NAME",
        help="voices used only in the heldout split (default: %(default)s)",
    )


def run_synth(args: argparse.Namespace) -> int:
    """Run ``neuralgraph asr synth``: synthesize the corpus and print a summary; returns 0."""
    start = time.perf_counter()
    manifests = synthesize_corpus(
        args.out,
        n_train=args.train,
        n_dev=args.dev,
        n_heldout=args.heldout,
        kind=args.kind,
        seed=args.seed,
        workers=args.workers,
        voices=args.voices,
        heldout_voices=args.heldout_voices,
        noise_snr_db=tuple(args.noise_snr) if args.noise_snr else None,
        bits=args.bits,
    )
    elapsed = time.perf_counter() - start
    for split, path in manifests.items():
        rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
        hours = sum(r["duration"] for r in rows) / 3600
        speakers = len({r["speaker"] for r in rows})
        print(f"{split:8s} {len(rows):6d} utterances {hours:7.3f} h {speakers:4d} voices  {path}")
    print(f"synthesized in {elapsed:.1f} s")
    return 0
