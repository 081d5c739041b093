"""The corpus: the plan of each split drawn from the seed, the argument checks, the worker
pool, and the manifests (``synthesize_corpus``). A ``commands`` corpus is a classification
corpus: isolated words, `unknown` words and `silence` (background noise), with NeMo's
``label`` key, plus noise files for augmentation.
"""

from __future__ import annotations

import json
import multiprocessing
import random
import re
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

from neuralgraph import UserError
from neuralgraph_asr.synth.render import _SUBTYPES, NOISE_KINDS, _batches, _Job, _render
from neuralgraph_asr.synth.texts import (
    COMMAND_WORDS,
    SPECIAL_LABELS,
    _split_sentences,
    check_words,
    digit_text,
    sentence_pool,
    unknown_words,
)
from neuralgraph_asr.synth.voices import (
    DEFAULT_HELDOUT_VOICES,
    DEFAULT_VOICES,
    ESPEAK_VARIANTS,
    SAMPLE_RATE,
    SHIFT_CENTS,
    _check_installed,
    _check_voice_names,
)

SPLITS = ("train", "dev", "heldout")
KINDS = ("digits", "sentences", "mixed", "commands")
NOISE_FILES = 32  # background-noise files of a commands corpus (noise/), for augmentation
NOISE_FILE_SECONDS = 4.0

# progress(split, utterances done, utterances of the split), called in the parent process
Progress = Callable[[str, int, int], None]


def _pick_voice(rng: random.Random, voices: Sequence[str]) -> tuple[str, str]:
    """An engine uniformly, then one of its voices: (engine, name). espeak has many accents and
    flite/festival few, so drawing voices uniformly would make 3 in 4 utterances espeak's."""
    by_engine: dict[str, list[str]] = {}
    for voice in voices:
        engine, name = voice.split(":", 1)
        by_engine.setdefault(engine, []).append(name)
    engine = rng.choice(sorted(by_engine))
    return engine, rng.choice(by_engine[engine])


def _speech_job(rng: random.Random, out_path: str, text: str, voices: Sequence[str],
                split: str, noise_snr_db: tuple[float, float] | None, subtype: str,
                label: str = "") -> _Job:
    """One utterance of ``text`` by a voice drawn from ``voices``, its prosody drawn."""
    engine, name = _pick_voice(rng, voices)
    variant = rng.choice(ESPEAK_VARIANTS) if engine == "espeak" else ""
    shift = rng.uniform(*SHIFT_CENTS) if engine != "espeak" and split != "heldout" else 0.0
    snr = None if noise_snr_db is None else round(rng.uniform(*noise_snr_db), 2)
    return _Job(out_path=out_path, text=text, engine=engine, voice=name, variant=variant,
                rate=rng.randint(130, 200), pitch=rng.randint(30, 70),
                stretch=round(rng.uniform(0.85, 1.2), 3), shift_cents=round(shift, 1),
                seed=rng.getrandbits(63), snr_db=snr, subtype=subtype, label=label)


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
        jobs.append(_speech_job(rng, f"{split}/{i:05d}.flac", text, voices, split,
                                noise_snr_db, subtype))
    return jobs


def _noise_job(rng: random.Random, out_path: str, seconds: float, subtype: str) -> _Job:
    """A clip of background noise alone (``silence``), its kind drawn."""
    return _Job(out_path=out_path, text="", engine="noise", voice=rng.choice(NOISE_KINDS),
                variant="", rate=0, pitch=0, stretch=1.0, shift_cents=0.0,
                seed=rng.getrandbits(63), snr_db=None, subtype=subtype, label="silence",
                noise_seconds=seconds)


def _plan_commands(
    split: str,
    n: int,
    words: Sequence[str],
    unknown: tuple[list[str], list[str]],
    voices: Sequence[str],
    seed: int,
    noise_snr_db: tuple[float, float] | None,
    subtype: str,
) -> list[_Job]:
    """``n`` clips of one split: each class (a word, `unknown`, `silence`) equally likely.
    `unknown` speaks a word of the train pool in train, of the dev/heldout pool otherwise."""
    rng = random.Random(f"neuralgraph-synth:{seed}:{split}:commands")
    pool = unknown[0] if split == "train" else unknown[1]
    classes = [*words, *SPECIAL_LABELS]
    jobs = []
    for i in range(n):
        label = rng.choice(classes)
        path = f"{split}/{i:05d}.flac"
        if label == "silence":
            jobs.append(_noise_job(rng, path, 1.0, subtype))
            continue
        text = rng.choice(pool) if label == "unknown" else label
        jobs.append(_speech_job(rng, path, text, voices, split, noise_snr_db, subtype, label))
    return jobs


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
    }
    if job.label:
        entry["label"] = job.label  # a commands corpus: NeMo's classification manifest
        if job.text:
            entry["text"] = job.text  # what was said (the word behind `unknown`)
    else:
        entry["text"] = job.text
    entry["speaker"] = job.speaker
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


def _render_all(
    tasks: Sequence[Sequence[_Job]],
    root: Path,
    workers: int,
    plans: dict[str, list[_Job]],
    progress: Progress | None,
) -> dict[str, int]:
    """Render the worker tasks in a process pool: output path -> samples. Reports each split's
    count of utterances written to ``progress`` as tasks finish (in any order)."""
    split_of = {job.out_path: split for split, jobs in plans.items() for job in jobs}
    done = dict.fromkeys(plans, 0)
    if progress is not None:
        for split, jobs in plans.items():
            progress(split, 0, len(jobs))
    lengths: dict[str, int] = {}
    with ProcessPoolExecutor(max_workers=workers, mp_context=_pool_context()) as pool:
        futures = {pool.submit(_render, (task, str(root))): task for task in tasks}
        try:
            for future in as_completed(futures):
                task = futures[future]
                lengths.update((job.out_path, n) for job, n in zip(task, future.result()))
                finished = [split_of[job.out_path] for job in task]
                for split in plans:
                    if split in finished:
                        done[split] += finished.count(split)
                        if progress is not None:
                            progress(split, done[split], len(plans[split]))
        except BaseException:
            for future in futures:  # a task failed (or Ctrl-C): start none of the rest
                future.cancel()
            raise
    return lengths


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
    progress: Progress | None = None,
    words: Sequence[str] | None = None,
) -> dict[str, Path]:
    """Synthesize a train/dev/heldout corpus of 16 kHz mono FLAC files with manifests.

    Args:
        out_dir: folder for ``{split}_manifest.json`` and the ``{split}/NNNNN.flac`` files.
        n_train, n_dev, n_heldout: utterances per split (a split with 0 is not written).
        kind: "digits" (1-7 spoken digits), "sentences" (short sentences; dev/heldout use
            sentences that train never sees), "mixed" (half and half) or "commands" (a
            classification corpus: each clip one of ``words``, an `unknown` word or
            `silence`, equally likely; manifests with NeMo's ``label`` key, ``labels.json``,
            and ``noise/`` files of background noise with ``noise_manifest.json``).
        seed: the same seed gives the same corpus, whatever ``workers``.
        workers: processes running the synthesizers.
        voices: base voices "engine:name" (espeak accents get random variants).
        heldout_voices: the voices of the heldout split, removed from train and dev.
        noise_snr_db: (min, max) SNR of added coloured noise, or None for clean speech.
        bits: FLAC sample size, 16 or 8 (8-bit files are a third of the size, with
            quantization noise about 30 dB below the speech).
        progress: called as ``progress(split, done, total)`` with each split's count of
            utterances written: first with 0 for every split, then as worker batches finish
            (the splits advance together), last with ``done == total``. None: no reports.
        words: the target words of a commands corpus (default Speech Commands' ten: yes no
            up down left right on off stop go); only with ``kind="commands"``.

    Returns:
        split name -> manifest path, for the splits written.

    Raises:
        UserError: bad arguments, or a synthesizer or voice missing (naming its Debian package).
    """
    counts = {"train": n_train, "dev": n_dev, "heldout": n_heldout}
    _check_args(counts, kind, workers, noise_snr_db)
    if words is not None and kind != "commands":
        raise UserError(f"words are the targets of --kind commands (got --kind {kind})")
    if kind == "commands":
        try:
            words = check_words(COMMAND_WORDS if words is None else words)
        except ValueError as err:
            raise UserError(str(err)) from None
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
    if kind == "commands":
        assert words is not None
        pools = unknown_words(words)
        plans = {
            split: _plan_commands(split, n, words, pools,
                                  heldout_voices if split == "heldout" else train_voices,
                                  seed, noise_snr_db, _SUBTYPES[bits])
            for split, n in counts.items()
            if n > 0
        }
        rng = random.Random(f"neuralgraph-synth:{seed}:noise")
        plans["noise"] = [_noise_job(rng, f"noise/{i:05d}.flac", NOISE_FILE_SECONDS,
                                     _SUBTYPES[bits]) for i in range(NOISE_FILES)]
    else:
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
    lengths = _render_all(tasks, root, workers, plans, progress)
    manifests = {}
    for split, jobs in plans.items():
        manifests[split] = root / f"{split}_manifest.json"
        _write_manifest(manifests[split], jobs, [lengths[job.out_path] for job in jobs])
    if kind == "commands":
        assert words is not None
        labels = root / "labels.json"
        labels.write_text(json.dumps([*words, *SPECIAL_LABELS]) + "\n", encoding="utf-8")
    return manifests
