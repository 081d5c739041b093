"""Tests of the synthetic speech corpus (neuralgraph_asr.synth): files, manifests, voices, seeds."""

from __future__ import annotations

import argparse
import json
import random
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf

from neuralgraph import UserError
from neuralgraph_asr import synth
from neuralgraph_asr.synth import (
    CHARSET,
    DEFAULT_HELDOUT_VOICES,
    configure_synth_parser,
    digit_text,
    run_synth,
    sentence_pool,
    synthesize_corpus,
)

PROGRAMS = {"espeak-ng": "espeak-ng", "flite": "flite", "festival": "festival", "sox": "sox"}
MISSING = [f"{p} (Debian package {pkg})" for p, pkg in PROGRAMS.items() if not shutil.which(p)]
needs_synthesizers = pytest.mark.skipif(
    bool(MISSING), reason=f"speech synthesizers not installed: {', '.join(MISSING)}"
)
ESPEAK_ONLY = {"voices": ("espeak:en-us", "espeak:en-gb"), "heldout_voices": ("espeak:en-gb",)}
needs_espeak = pytest.mark.skipif(
    not (shutil.which("espeak-ng") and shutil.which("sox")),
    reason="espeak-ng and sox are not installed (Debian packages espeak-ng, sox)",
)
COUNTS = {"n_train": 6, "n_dev": 2, "n_heldout": 4}


def _rows(manifest: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in manifest.read_text(encoding="utf-8").splitlines()]


def _base(speaker: str) -> str:
    return speaker.split("+", 1)[0]


@pytest.fixture(scope="module")
def synth_corpus(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A tiny mixed digits/sentences corpus from every engine (6 train, 2 dev, 4 heldout)."""
    if MISSING:
        pytest.skip(f"speech synthesizers not installed: {', '.join(MISSING)}")
    out = tmp_path_factory.mktemp("synth")
    return synthesize_corpus(out, **COUNTS, kind="mixed", seed=3, noise_snr_db=(20, 30))


@needs_synthesizers
class TestCorpusFiles:
    def test_manifest_names(self, synth_corpus):
        """The three splits are written as train/dev/heldout_manifest.json in the output folder."""
        assert {k: p.name for k, p in synth_corpus.items()} == {
            "train": "train_manifest.json",
            "dev": "dev_manifest.json",
            "heldout": "heldout_manifest.json",
        }
        assert len({p.parent for p in synth_corpus.values()}) == 1

    def test_counts(self, synth_corpus):
        """Each manifest has as many lines as utterances were asked for."""
        assert [len(_rows(synth_corpus[s])) for s in ("train", "dev", "heldout")] == [6, 2, 4]

    def test_audio_is_16k_mono_flac_with_relative_paths(self, synth_corpus):
        """Every entry is a relative path to an existing 16 kHz mono FLAC file."""
        for manifest in synth_corpus.values():
            for row in _rows(manifest):
                assert not Path(row["audio_filepath"]).is_absolute()
                info = sf.info(manifest.parent / row["audio_filepath"])
                assert (info.format, info.samplerate, info.channels) == ("FLAC", 16000, 1)

    def test_durations_match_audio(self, synth_corpus):
        """The manifest duration is the file's duration (to 1 ms) and is plausible speech."""
        for manifest in synth_corpus.values():
            for row in _rows(manifest):
                info = sf.info(manifest.parent / row["audio_filepath"])
                assert row["duration"] == pytest.approx(info.duration, abs=1e-3)
                assert 0.2 < row["duration"] < 10

    def test_audio_is_not_silent_or_clipped(self, synth_corpus):
        """Samples have speech-like energy and stay inside [-1, 1]."""
        for row in _rows(synth_corpus["train"]):
            audio, _ = sf.read(
                synth_corpus["train"].parent / row["audio_filepath"], dtype="float32"
            )
            assert 0.01 < np.sqrt(np.mean(audio**2)) and np.abs(audio).max() <= 1.0

    def test_texts_use_the_28_labels(self, synth_corpus):
        """Texts are non-empty, lowercase letters, space and apostrophe, single-spaced."""
        for manifest in synth_corpus.values():
            for row in _rows(manifest):
                assert row["text"] and set(row["text"]) <= set(CHARSET)
                assert row["text"] == " ".join(row["text"].split())


@needs_synthesizers
class TestVoices:
    def test_heldout_voices_never_in_train_or_dev(self, synth_corpus):
        """No heldout speaker, nor any base voice of one, appears in train or dev."""
        seen = {r["speaker"] for s in ("train", "dev") for r in _rows(synth_corpus[s])}
        held = {r["speaker"] for r in _rows(synth_corpus["heldout"])}
        assert seen and held and not seen & held
        assert not {_base(s) for s in seen} & {_base(s) for s in held}

    def test_heldout_uses_only_heldout_voices(self, synth_corpus):
        """Heldout speakers come from DEFAULT_HELDOUT_VOICES; train speakers never do."""
        assert {_base(r["speaker"]) for r in _rows(synth_corpus["heldout"])} <= set(
            DEFAULT_HELDOUT_VOICES
        )
        train = {_base(r["speaker"]) for r in _rows(synth_corpus["train"])}
        assert not train & set(DEFAULT_HELDOUT_VOICES)

    def test_engines_drawn_evenly_and_only_train_dev_shifted(self):
        """An engine is drawn uniformly, then a voice; flite/festival utterances of train and
        dev get a pitch shift within SHIFT_CENTS, heldout ones and espeak's none."""
        voices = synth.DEFAULT_VOICES
        texts = synth.texts._split_sentences(sentence_pool())
        jobs = {
            split: synth.corpus._plan_split(split, 3000, "digits", voices, 0, None, texts, "PCM_16")
            for split in ("train", "heldout")
        }
        engines = [job.engine for job in jobs["train"]]
        for engine in ("espeak", "flite", "festival"):
            assert 900 < engines.count(engine) < 1100, engine
        low, high = synth.SHIFT_CENTS
        shifted = [job for job in jobs["train"] if job.engine != "espeak"]
        assert all(low <= job.shift_cents <= high for job in shifted)
        assert len({round(job.shift_cents) for job in shifted}) > 100
        assert all(job.shift_cents == 0 for job in jobs["train"] if job.engine == "espeak")
        assert all(job.shift_cents == 0 for job in jobs["heldout"])

    @pytest.mark.skipif(not shutil.which("sox"), reason="sox is not installed")
    def test_pitch_shift_keeps_length_and_moves_pitch(self):
        """sox's pitch shift keeps the duration and moves a tone by the cents asked."""
        t = np.arange(16000) / synth.SAMPLE_RATE
        tone = (0.5 * np.sin(2 * np.pi * 200 * t)).astype(np.float32)
        out = synth.render._shift_pitch(tone, 1200.0)  # one octave up
        assert abs(len(out) - len(tone)) <= 160
        spectrum = np.abs(np.fft.rfft(out[2000:14000]))
        peak = np.fft.rfftfreq(12000, 1 / synth.SAMPLE_RATE)[spectrum.argmax()]
        assert 380 < peak < 420
        assert synth.render._shift_pitch(tone, 0.0) is tone

    def test_speaker_names_engine_and_voice(self, synth_corpus):
        """Speakers are 'engine:voice' with an optional '+variant' for espeak."""
        for manifest in synth_corpus.values():
            for row in _rows(manifest):
                engine, _, voice = row["speaker"].partition(":")
                assert engine in {"espeak", "flite", "festival"} and voice
                assert "+" not in voice or engine == "espeak"

    def test_pitch_shift_is_recorded(self, synth_corpus):
        """flite/festival utterances of train and dev record their pitch shift; no other does."""
        shifted = 0
        for split, manifest in synth_corpus.items():
            for row in _rows(manifest):
                cents = row.get("pitch_shift_cents")
                if row["speaker"].startswith("espeak:") or split == "heldout":
                    assert cents is None
                elif cents is not None:
                    low, high = synth.SHIFT_CENTS
                    assert low <= cents <= high and cents != 0
                    shifted += 1
        assert shifted


@needs_synthesizers
class TestDeterminism:
    def test_same_seed_same_corpus_whatever_the_workers(self, synth_corpus, tmp_path):
        """The same seed gives identical manifests and samples with 1 worker as with 2."""
        again = synthesize_corpus(
            tmp_path, **COUNTS, kind="mixed", seed=3, noise_snr_db=(20, 30), workers=1
        )
        for split, manifest in synth_corpus.items():
            rows, rows_again = _rows(manifest), _rows(again[split])
            assert rows == rows_again
            for row in rows:
                a, _ = sf.read(manifest.parent / row["audio_filepath"], dtype="int16")
                b, _ = sf.read(again[split].parent / row["audio_filepath"], dtype="int16")
                assert np.array_equal(a, b)

    @needs_espeak
    def test_other_seed_other_corpus(self, tmp_path):
        """Another seed draws other texts or voices."""
        kw: dict[str, Any] = {"n_train": 4, "n_dev": 0, "n_heldout": 0, **ESPEAK_ONLY}
        a = _rows(synthesize_corpus(tmp_path / "a", seed=0, **kw)["train"])
        b = _rows(synthesize_corpus(tmp_path / "b", seed=1, **kw)["train"])
        assert a != b


class TestTexts:
    def test_digit_strings(self):
        """Digit texts have 1-7 digit words and use both 'zero' and 'oh'."""
        rng = random.Random(0)
        texts = [digit_text(rng) for _ in range(500)]
        words = {w for t in texts for w in t.split()}
        assert {len(t.split()) for t in texts} == set(range(1, 8))
        assert words == {*"one two three four five six seven eight nine".split(), "zero", "oh"}

    def test_sentence_pool_is_fixed_and_clean(self):
        """The sentence pool is the same on every call, distinct, within the 28 labels."""
        pool = sentence_pool()
        assert pool == sentence_pool() and len(set(pool)) == len(pool) >= 500
        assert all(set(s) <= set(CHARSET) and s == " ".join(s.split()) for s in pool)

    @needs_espeak
    def test_eval_sentences_unseen_in_train(self, tmp_path):
        """With kind='sentences', dev and heldout sentences never occur in train."""
        manifests = synthesize_corpus(
            tmp_path, n_train=10, n_dev=4, n_heldout=4, kind="sentences", **ESPEAK_ONLY
        )
        train = {r["text"] for r in _rows(manifests["train"])}
        for split in ("dev", "heldout"):
            assert not train & {r["text"] for r in _rows(manifests[split])}


class TestErrors:
    def test_missing_program_names_debian_package(self, tmp_path, monkeypatch):
        """A missing synthesizer is a UserError naming the Debian package to install."""
        real_which = shutil.which
        monkeypatch.setattr(
            synth.voices.shutil, "which", lambda name: None if name == "flite" else real_which(name)
        )
        with pytest.raises(UserError, match=r"apt-get install .*flite"):
            synthesize_corpus(tmp_path, n_train=2, n_dev=0, n_heldout=2)

    @pytest.mark.parametrize(
        ("kwargs", "match"),
        [
            ({"kind": "words"}, "kind must be one of"),
            ({"n_train": -1}, "counts must be >= 0"),
            ({"workers": 0}, "workers must be >= 1"),
            ({"noise_snr_db": (30, 10)}, "min <= max"),
            ({"bits": 12}, "bits must be 16 or 8"),
            ({"voices": ("espeak:en-us",)}, "must be among the voices"),
            ({"voices": ("en-us",), "heldout_voices": ()}, "must be 'espeak:NAME'"),
            ({"voices": ("espeak:en-us",), "heldout_voices": ("espeak:en-us",)}, "every voice"),
        ],
    )
    def test_bad_arguments(self, tmp_path, kwargs, match):
        """Arguments that cannot work are UserErrors saying what must hold."""
        args: dict[str, Any] = {"n_train": 2, "n_dev": 0, "n_heldout": 0, **kwargs}
        with pytest.raises(UserError, match=match):
            synthesize_corpus(tmp_path, **args)

    @needs_espeak
    def test_unknown_voice(self, tmp_path):
        """A voice the engine does not have is a UserError listing what is installed."""
        with pytest.raises(UserError, match="not installed"):
            synthesize_corpus(
                tmp_path, n_train=1, n_dev=0, n_heldout=0,
                voices=("espeak:en-xx-nowhere",), heldout_voices=(),
            )  # fmt: skip


@needs_espeak
class TestCommandLine:
    def test_synth_command(self, tmp_path, capsys):
        """`asr synth --out DIR --train N ...` writes the manifests and prints a summary."""
        parser = argparse.ArgumentParser()
        configure_synth_parser(parser)
        args = parser.parse_args(
            ["--out", str(tmp_path), "--train", "3", "--dev", "1", "--heldout", "1", "--bits", "8",
             "--voices", "espeak:en-us", "espeak:en-gb", "--heldout-voices", "espeak:en-gb"]
        )  # fmt: skip
        assert run_synth(args) == 0
        assert len(_rows(tmp_path / "train_manifest.json")) == 3
        assert sf.info(tmp_path / "train" / "00000.flac").subtype == "PCM_S8"
        assert "heldout" in capsys.readouterr().out

    def test_synth_command_reports_progress(self, tmp_path, capsys):
        """Off a terminal, `asr synth` writes a progress line per split to stderr (at the end of
        each split, at most every 10 s before), and nothing of it to stdout."""
        parser = argparse.ArgumentParser()
        configure_synth_parser(parser)
        args = parser.parse_args(
            ["--out", str(tmp_path), "--train", "3", "--dev", "2", "--heldout", "1",
             "--voices", "espeak:en-us", "espeak:en-gb", "--heldout-voices", "espeak:en-gb"]
        )  # fmt: skip
        assert run_synth(args) == 0
        out, err = capsys.readouterr()
        for split, n in (("train", 3), ("dev", 2), ("heldout", 1)):
            assert re.search(rf"^synth {split}: {n}/{n} utterances \(100%\), \d+ s$", err, re.M)
        assert not re.search(r"^synth \w+:", out, re.M) and "utterances" in out


# --- speech commands ---------------------------------------------------------------------------

COMMAND_LABELS = ["yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go",
                  "unknown", "silence"]


@pytest.fixture(scope="module")
def commands_corpus(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A tiny speech-commands corpus from every engine (36 train, 12 dev, 12 heldout)."""
    if MISSING:
        pytest.skip(f"speech synthesizers not installed: {', '.join(MISSING)}")
    out = tmp_path_factory.mktemp("commands")
    return synthesize_corpus(out, n_train=36, n_dev=12, n_heldout=12, kind="commands", seed=2)


@needs_synthesizers
class TestCommandsCorpus:
    def test_manifests_are_nemo_classification_manifests(self, commands_corpus):
        """Every line has audio_filepath, duration and one of the 12 labels; spoken clips say
        what they are (`text`); the data source finds nothing wrong with them."""
        from neuralgraph_asr.data import AudioToClassificationLabelDataset

        source = AudioToClassificationLabelDataset(COMMAND_LABELS)
        for split in ("train", "dev", "heldout"):
            rows = _rows(commands_corpus[split])
            assert all(row["label"] in COMMAND_LABELS for row in rows)
            for row in rows:
                if row["label"] == "silence":
                    assert "text" not in row and row["speaker"].startswith("noise:")
                    assert row["duration"] == 1.0
                elif row["label"] != "unknown":
                    assert row["text"] == row["label"]
            assert source.validate(split, manifest_filepath=str(commands_corpus[split])) == []
        labels = {row["label"] for s in ("train", "dev", "heldout")
                  for row in _rows(commands_corpus[s])}
        assert len(labels) >= 8  # classes are drawn uniformly: most appear in 60 clips

    def test_unknown_words_are_held_out_too(self, commands_corpus):
        """`unknown` speaks built-in words that are not targets; dev and heldout use words that
        train never does."""
        train_words, held_words = synth.texts.unknown_words(synth.texts.COMMAND_WORDS)
        assert not set(train_words) & set(held_words)
        assert not set(train_words + held_words) & set(synth.texts.COMMAND_WORDS)
        for split, pool in (("train", train_words), ("dev", held_words),
                            ("heldout", held_words)):
            spoken = [r["text"] for r in _rows(commands_corpus[split]) if r["label"] == "unknown"]
            assert set(spoken) <= set(pool)

    def test_heldout_voices_labels_and_noise_files(self, commands_corpus):
        """Heldout speech comes from the held-out voices only; labels.json lists the classes;
        noise/ holds 32 background-noise files of 4 s with their manifest."""
        root = commands_corpus["train"].parent
        heldout = {_base(r["speaker"]) for r in _rows(commands_corpus["heldout"])
                   if not r["speaker"].startswith("noise:")}
        assert heldout <= set(DEFAULT_HELDOUT_VOICES)
        assert json.loads((root / "labels.json").read_text()) == COMMAND_LABELS
        noise = _rows(root / "noise_manifest.json")
        assert len(noise) == 32 and {r["duration"] for r in noise} == {4.0}
        assert all(sf.info(root / r["audio_filepath"]).samplerate == 16000 for r in noise)
        levels = [20 * np.log10(np.sqrt(np.mean(sf.read(root / r["audio_filepath"])[0] ** 2)))
                  for r in noise]
        assert all(-70.5 < level < -29.5 for level in levels)


class TestCommandWords:
    def test_unknown_pool_leaves_out_targets_and_homophones(self):
        """A target word and the words that sound like it never speak `unknown`."""
        train, held = synth.texts.unknown_words(["red", "one", "lights"])
        pool = set(train + held)
        assert not pool & {"red", "read", "one", "won", "lights"}
        assert "blue" in pool

    @pytest.mark.parametrize(("words", "match"), [
        ([], "at least one word"),
        (["go", "Go"], "distinct"),
        (["silence"], "class the corpus makes itself"),
        (["caf\u00e9"], "outside a-z"),
    ])
    def test_bad_words(self, tmp_path, words, match):
        with pytest.raises(UserError, match=match):
            synthesize_corpus(tmp_path, n_train=2, n_dev=0, n_heldout=0, kind="commands",
                              words=words)

    def test_words_need_kind_commands(self, tmp_path):
        with pytest.raises(UserError, match="words are the targets of --kind commands"):
            synthesize_corpus(tmp_path, n_train=2, n_dev=0, n_heldout=0, words=["yes"])

    @needs_espeak
    def test_own_words_from_the_command_line(self, tmp_path, capsys):
        """`asr synth --kind commands --words ...` speaks the user's words and prints and
        writes the labels to train with."""
        parser = argparse.ArgumentParser()
        configure_synth_parser(parser)
        args = parser.parse_args(
            ["--out", str(tmp_path), "--kind", "commands", "--words", "lights", "Curtains",
             "--train", "12", "--dev", "0", "--heldout", "0",
             "--voices", "espeak:en-us", "espeak:en-gb", "--heldout-voices", "espeak:en-gb"]
        )  # fmt: skip
        assert run_synth(args) == 0
        labels = ["lights", "curtains", "unknown", "silence"]
        assert json.loads((tmp_path / "labels.json").read_text()) == labels
        assert {r["label"] for r in _rows(tmp_path / "train_manifest.json")} <= set(labels)
        assert "labels   lights curtains unknown silence" in capsys.readouterr().out
