"""Tests of NeMo manifest reading and validation (neuralgraph_audio.manifest)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest
import soundfile as sf

from neuralgraph import UserError
from neuralgraph_audio import (
    ManifestEntry,
    format_problems,
    read_manifest,
    resolve_audio_path,
    validate_manifest,
)
from neuralgraph_text import CharTokenizer


def _entry(corpus, i: int, **changes):
    item = {"audio_filepath": str(corpus.files[i]), "duration": corpus.durations[i],
            "text": corpus.texts[i]}
    item.update(changes)
    return {k: v for k, v in item.items() if v is not None}


class TestReadManifest:
    def test_relative_paths_resolve_against_manifest_folder(self, corpus):
        """A relative audio_filepath is taken from the manifest's folder, not the cwd."""
        entries, skipped = read_manifest(corpus.manifest)
        assert [Path(e.audio_filepath) for e in entries] == corpus.files
        assert all(os.path.isabs(e.audio_filepath) for e in entries)
        assert skipped == {}

    def test_relative_paths_from_a_subfolder(self, corpus, tmp_path, write_manifest):
        """'../audio/x.flac' in a manifest in a sibling folder points at the corpus file."""
        sub = corpus.root / "lists"
        sub.mkdir(exist_ok=True)
        m = write_manifest(sub / "m.json", [{"audio_filepath": "../audio/utt0.flac",
                                             "duration": 1.0, "text": "x"}])
        (entry,), _ = read_manifest(m)
        assert Path(entry.audio_filepath) == corpus.files[0]

    def test_entry_fields(self, corpus, write_manifest, tmp_path):
        """Optional keys offset, speaker and label are read; line numbers count blank lines."""
        m = write_manifest(tmp_path / "m.json", [
            _entry(corpus, 0, offset=0.25, speaker=7, label="yes"), "", _entry(corpus, 1)])
        first, second = read_manifest(m)[0]
        assert first == ManifestEntry(str(corpus.files[0]), corpus.durations[0], corpus.texts[0],
                                      0.25, 7, "yes", 1, str(m))
        assert second.line == 3 and second.offset == 0.0 and second.label is None

    def test_audio_filename_alias(self, corpus, write_manifest, tmp_path):
        """NeMo's alternative key audio_filename is accepted."""
        m = write_manifest(tmp_path / "m.json",
                           [{"audio_filename": str(corpus.files[2]), "duration": 1.0}])
        (entry,), _ = read_manifest(m)
        assert entry.audio_filepath == str(corpus.files[2]) and entry.text == ""

    def test_duration_filters(self, corpus):
        """min_duration and max_duration drop entries and count them by filter."""
        entries, skipped = read_manifest(corpus.manifest, min_duration=1.0, max_duration=2.0)
        kept = [d for d in corpus.durations if 1.0 <= round(d, 3) <= 2.0]
        assert len(entries) == len(kept)
        assert skipped == {"shorter than min_duration": 1, "longer than max_duration": 2}

    def test_malformed_lines_raise_with_line_numbers(self, corpus, write_manifest, tmp_path):
        """Every malformed line is listed as manifest:LINE in one UserError."""
        m = write_manifest(tmp_path / "m.json", [_entry(corpus, 0), "{not json", "[1, 2]"])
        with pytest.raises(UserError) as err:
            read_manifest(m)
        assert f"{m}:2: malformed JSON" in str(err.value)
        assert f"{m}:3: malformed JSON" in str(err.value)

    def test_missing_manifest(self, tmp_path):
        """A manifest that does not exist is a UserError naming it."""
        with pytest.raises(UserError, match="manifest file not found"):
            read_manifest(tmp_path / "nope.json")

    def test_resolve_audio_path(self, tmp_path):
        """Absolute paths stay; relative ones join the folder; '~' expands."""
        assert resolve_audio_path("/a/b.wav", tmp_path) == "/a/b.wav"
        assert resolve_audio_path("x/../b.wav", tmp_path) == str(tmp_path / "b.wav")
        assert resolve_audio_path("~/b.wav", tmp_path) == os.path.expanduser("~/b.wav")


@pytest.fixture
def bad_manifest(corpus, tmp_path, write_manifest, char_labels):
    """A manifest with one problem of each kind on a known line."""
    garbage = tmp_path / "garbage.wav"
    garbage.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunkjunk" * 4)
    items = [
        _entry(corpus, 0),                                           # 1 fine
        '{"audio_filepath": "a.wav", "duration": 1.0, "text": "x"',  # 2 malformed
        {"audio_filepath": str(corpus.files[1]), "text": "hello"},   # 3 missing duration
        _entry(corpus, 1, audio_filepath=str(tmp_path / "gone.wav")),  # 4 missing file
        _entry(corpus, 2, audio_filepath=str(garbage)),              # 5 unreadable
        _entry(corpus, 3, text="  "),                                # 6 empty transcript
        _entry(corpus, 4, text="3 apples"),                          # 7 out of vocabulary
        _entry(corpus, 5, duration=-1),                              # 8 bad value
        _entry(corpus, 5, offset=60.0),                              # 9 offset past the end
        _entry(corpus, 5),                                           # 10 fine
    ]
    return write_manifest(tmp_path / "manifest.json", items)


class TestValidateManifest:
    EXPECTED: ClassVar[dict[int, str]] = {
        2: "malformed JSON",
        3: "missing key 'duration'",
        4: "audio file not found",
        5: "unreadable audio",
        6: "empty transcript",
        7: "characters not in labels: '3'",
        8: "'duration' must be >= 0",
        9: "offset 60 s is past the end of the audio",
    }

    def test_each_problem_with_its_line(self, bad_manifest, char_labels):
        """Each kind of problem is reported as 'manifest:LINE: message (path)'."""
        report = validate_manifest(bad_manifest, labels=char_labels, policy="skip")
        assert len(report.problems) == len(self.EXPECTED)
        for problem, (line, message) in zip(report.problems, self.EXPECTED.items()):
            assert problem.startswith(f"{bad_manifest}:{line}: {message}"), problem
        assert report.problems[2].endswith("gone.wav)")

    def test_skip_counts_per_reason(self, bad_manifest, char_labels):
        """policy='skip' keeps the good entries and counts the dropped ones by reason."""
        report = validate_manifest(bad_manifest, labels=char_labels, policy="skip")
        assert [e.line for e in report.entries] == [1, 10]
        assert report.skipped == {
            "malformed json": 1, "missing key": 1, "missing file": 1, "unreadable audio": 1,
            "empty transcript": 1, "out-of-vocabulary characters": 1, "bad value": 2}

    def test_fail_lists_every_problem(self, bad_manifest, char_labels):
        """policy='fail' raises one UserError that lists every problem."""
        with pytest.raises(UserError) as err:
            validate_manifest(bad_manifest, labels=char_labels)
        text = str(err.value)
        assert text.startswith(f"8 problems in manifest {bad_manifest}:")
        for line in self.EXPECTED:
            assert f"{bad_manifest}:{line}: " in text

    def test_listing_is_capped(self, corpus, tmp_path, write_manifest):
        """More than 20 problems are listed as the first 20 and '... and N more'."""
        items = [_entry(corpus, 0, audio_filepath=f"missing{i}.wav") for i in range(25)]
        m = write_manifest(tmp_path / "m.json", items)
        with pytest.raises(UserError) as err:
            validate_manifest(m)
        text = str(err.value)
        assert "missing19.wav" in text and "missing20.wav" not in text
        assert text.endswith("... and 5 more")

    def test_normalization_before_vocabulary_check(self, corpus, tmp_path, write_manifest,
                                                   char_labels):
        """With a CharTokenizer, case and punctuation are normalized away before the check."""
        m = write_manifest(tmp_path / "m.json", [_entry(corpus, 0, text="Seven, of CLUBS!"),
                                                 _entry(corpus, 1, text="?!")])
        report = validate_manifest(m, labels=CharTokenizer(char_labels), policy="skip")
        assert len(report.entries) == 1
        assert report.problems == [f"{m}:2: empty transcript after normalization "
                                   f"({corpus.files[1]})"]
        raw = validate_manifest(m, labels=char_labels, policy="skip")
        assert "characters not in labels: '!', ',', 'B', 'C', 'L'" in raw.problems[0]

    def test_other_sample_rate_is_a_note(self, corpus, tmp_path, write_manifest, char_labels):
        """An 8 kHz file is not a problem; a note says it will be resampled (the data source
        shows it as a warning: test_bad_data_and_args.py)."""
        path = tmp_path / "low.wav"
        data, _ = sf.read(corpus.files[0], dtype="float32")
        sf.write(path, data[::2], 8000)
        m = write_manifest(tmp_path / "m.json", [_entry(corpus, 0, audio_filepath=str(path))])
        report = validate_manifest(m, labels=char_labels, sample_rate=16000)
        assert report.problems == [] and len(report.entries) == 1
        assert report.notes == ["1 file is at 8000 Hz; resampled to 16000 Hz"]

    def test_stereo_is_a_note(self, tmp_path, write_manifest):
        """A two-channel file is accepted with a note about the mixdown."""
        path = tmp_path / "stereo.wav"
        sf.write(path, np.zeros((1600, 2), dtype=np.float32) + 0.1, 16000)
        m = write_manifest(tmp_path / "m.json",
                           [{"audio_filepath": "stereo.wav", "duration": 0.1, "text": "a"}])
        assert "mixed down to mono" in validate_manifest(m).notes[0]

    def test_check_audio_off(self, corpus, tmp_path, write_manifest):
        """check_audio=False reads no audio, so a missing file goes unnoticed."""
        m = write_manifest(tmp_path / "m.json", [_entry(corpus, 0, audio_filepath="gone.wav")])
        assert validate_manifest(m, check_audio=False).problems == []

    def test_duration_filters_are_not_problems(self, corpus):
        """Entries outside the duration range are counted, not reported."""
        report = validate_manifest(corpus.manifest, max_duration=1.0)
        assert report.problems == [] and report.skipped == {"longer than max_duration": 5}

    def test_classification_labels(self, corpus, tmp_path, write_manifest):
        """target='label' needs a 'label' key among the given labels; text may be absent."""
        m = write_manifest(tmp_path / "m.json", [
            _entry(corpus, 0, text=None, label="yes"),
            _entry(corpus, 1, text=None, label="maybe"),
            _entry(corpus, 2, text=None),
        ])
        report = validate_manifest(m, labels=["yes", "no"], target="label", policy="skip")
        assert [e.label for e in report.entries] == ["yes"]
        assert report.problems[0].startswith(f"{m}:2: label 'maybe' is not one of the 2 labels")
        assert report.problems[1].startswith(f"{m}:3: missing key 'label'")

    def test_real_recordings(self, librivox_manifest, char_labels):
        """The LibriVox recordings of pocketsphinx-testdata pass validation."""
        report = validate_manifest(librivox_manifest, labels=CharTokenizer(char_labels))
        assert len(report.entries) == 5 and report.problems == [] and report.notes == []

    def test_bad_policy(self, corpus):
        """An unknown policy is a ValueError."""
        with pytest.raises(ValueError, match="policy must be"):
            validate_manifest(corpus.manifest, policy="ignore")


class TestFormatProblems:
    def test_short_list(self):
        """A short list is printed whole under its header."""
        assert format_problems("2 problems:", ["a", "b"]) == "2 problems:\n  a\n  b"
