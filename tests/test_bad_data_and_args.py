"""No input takes neuralgraph down (issue 17): bad data (manifests, audio files) and bad
command-line arguments each end as a user error, exit code 2 and one message that says what
must hold, what was found and where (manifest:line, the path, the option), with no traceback;
or, for a manifest line, as a problem of that line that ``bad_data: skip`` drops.

Commands run in-process through ``neuralgraph.cli.main`` as a user types them; loader-level cases
go through the data source API. docs/faults.md ("Bad data and command-line arguments") lists
each case with the test that shows it. A FIFO that a regression opened would block the test
forever, so every case with one runs under ``FifoGuard``, which unblocks such a reader and
fails the test instead.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf

from neuralgraph import UserError
from neuralgraph.cli import main
from tests.conftest import ROOT, run_cli

DIGITS = ROOT / "examples" / "asr" / "data" / "digits"
GRAPH = ROOT / "examples" / "asr" / "digits_small.yaml"
GOOD_AUDIO = DIGITS / "dev" / "00000.flac"
LABELS = [" ", *"abcdefghijklmnopqrstuvwxyz", "'"]


# --- helpers ---------------------------------------------------------------------------------


class FifoGuard:
    """Watches FIFOs while a command runs: a reader blocked opening one (which only a
    regression would do) is unblocked with an empty stream and recorded in ``opened``."""

    def __init__(self, fifos: Sequence[Path]) -> None:
        self.fifos = list(fifos)
        self.opened: list[Path] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def _watch(self) -> None:
        while not self._stop.wait(0.2):
            for fifo in self.fifos:
                try:  # succeeds only while someone holds the FIFO open for reading
                    fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
                except OSError:
                    continue
                self.opened.append(fifo)
                os.close(fd)

    def __enter__(self) -> FifoGuard:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def _cli(capsys: pytest.CaptureFixture[str], fifos: Sequence[Path], *args: str) -> tuple[int, str]:
    """``neuralgraph ARGS`` in-process: its exit code and stderr; no FIFO may be opened."""
    capsys.readouterr()
    with FifoGuard(fifos) as guard:
        code = main([str(a) for a in args])
    err = capsys.readouterr().err
    assert guard.opened == [], f"a FIFO was opened for reading: {guard.opened}"
    assert "Traceback" not in err
    return code, err


def _manifest(path: Path, lines: Sequence[dict[str, Any] | str | bytes]) -> Path:
    """A manifest of JSON objects (dicts), verbatim text (str) or raw bytes, one a line."""
    raw = [line if isinstance(line, bytes) else
           (line if isinstance(line, str) else json.dumps(line)).encode() for line in lines]
    path.write_bytes(b"\n".join(raw) + b"\n")
    return path


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Audio and paths that are not what they claim, in one folder (``root``): good.flac
    (0.47 s), low.wav (8 kHz), long.flac (10 minutes of silence), pipe.flac and pipe.json
    (FIFOs), zero.flac and zero.json (symbolic links to /dev/zero), folder/ (two FLAC files),
    binary.json (a FLAC file's bytes), latin1.json (a Latin-1 transcript), huge.json (a sparse
    manifest of 1 GiB + 1 byte)."""
    root = tmp_path_factory.mktemp("bad_data")
    shutil.copy(GOOD_AUDIO, root / "good.flac")
    samples, rate = sf.read(GOOD_AUDIO, dtype="float32")
    sf.write(root / "low.wav", samples[::2], rate // 2)
    sf.write(root / "long.flac", np.zeros(600 * rate, dtype=np.float32), rate)
    for name in ("pipe.flac", "pipe.json", "pipe.lex", "pipe.arpa"):
        os.mkfifo(root / name)
    for name in ("zero.flac", "zero.json"):
        (root / name).symlink_to("/dev/zero")
    (root / "folder").mkdir()
    for name in ("a.flac", "b.flac"):
        shutil.copy(GOOD_AUDIO, root / "folder" / name)
    (root / "binary.json").write_bytes(GOOD_AUDIO.read_bytes())
    (root / "latin1.json").write_bytes(
        b'{"audio_filepath": "good.flac", "duration": 0.467, "text": "caf\xe9"}\n')
    with (root / "huge.json").open("wb") as f:
        f.truncate((1 << 30) + 1)
    info = sf.info(GOOD_AUDIO)
    return {"root": root, "good_duration": info.frames / info.samplerate,
            "fifos": [root / n for n in ("pipe.flac", "pipe.json", "pipe.lex", "pipe.arpa")]}


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """digits_small built and saved untrained: the error paths need a model, not a good one."""
    import neuralgraph as ng

    model = ng.GraphModel(ng.Graph.from_yaml(GRAPH))
    return model.save_to(tmp_path_factory.mktemp("archive") / "digits_small.ngm")


@pytest.fixture(scope="module")
def dev_manifest(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The first 4 lines of the digits dev manifest, with absolute paths."""
    items = [json.loads(line) for line in
             (DIGITS / "dev_manifest.json").read_text().splitlines()[:4]]
    for item in items:
        item["audio_filepath"] = str(DIGITS / item["audio_filepath"])
    return _manifest(tmp_path_factory.mktemp("dev") / "dev.json", items)


# --- 1. declared durations against the audio's header ---------------------------------------

# (case, manifest line, the problem of line 1 or None); a duration given as a function is of
# good.flac's length (0.467 s)
DURATIONS = [
    ("10 minutes declared as 1 s", {"audio_filepath": "long.flac", "duration": 1.0},
     "duration 1 s does not match the audio's 600.00 s (from its header; tolerance 30 s): "
     "correct 'duration', or give an 'offset' if the line is a segment of the file"),
    ("duration 1e9", {"audio_filepath": "good.flac", "duration": 1e9},
     "duration 1e+09 s does not match the audio's 0.47 s (from its header; tolerance 0.1 s)"),
    ("duration 0", {"audio_filepath": "good.flac", "duration": 0},
     "duration 0 s does not match the audio's 0.47 s"),
    ("a segment past the end", {"audio_filepath": "good.flac", "duration": 1.0, "offset": 0.2},
     "offset 0.2 s + duration 1 s ends at 1.20 s, past the end of the audio (0.47 s, from its "
     "header)"),
    ("rounded to 2 decimals", {"audio_filepath": "good.flac", "duration": lambda d: round(d, 2)},
     None),
    ("0.09 s long (within 0.1 s)", {"audio_filepath": "good.flac",
                                    "duration": lambda d: d + 0.09}, None),
    ("1 s short of 600 s (within 5%)", {"audio_filepath": "long.flac", "duration": 599.0},
     None),
    ("a segment inside the file", {"audio_filepath": "good.flac", "duration": 0.3,
                                   "offset": 0.1}, None),
    ("a segment at offset 0", {"audio_filepath": "long.flac", "duration": 2.0, "offset": 0},
     None),
]


@pytest.mark.parametrize(("line", "problem"), [c[1:] for c in DURATIONS],
                         ids=[c[0] for c in DURATIONS])
def test_duration_against_header(data, line, problem):
    """A declared duration is compared with the header's length (tolerance max(0.1 s, 5%));
    a line with an `offset` is a segment, which must end within the file. A mismatch is a
    problem of its line: `skip` drops it, `fail` stops with manifest:line."""
    from neuralgraph_audio import validate_manifest

    item = {**line, "text": "two"}
    if callable(item["duration"]):
        item["duration"] = item["duration"](data["good_duration"])
    m = _manifest(data["root"] / "duration.json", [item])
    report = validate_manifest(m, labels=LABELS, policy="skip")
    if problem is None:
        assert report.problems == [] and len(report.entries) == 1
        return
    audio = data["root"] / line["audio_filepath"]
    assert report.problems == [f"{m}:1: {problem}"] or (
        report.problems[0].startswith(f"{m}:1: {problem}")
        and report.problems[0].endswith(f"({audio})")), report.problems
    assert report.entries == [] and report.skipped == {"duration mismatch": 1}
    with pytest.raises(UserError, match=f"{m}:1: duration|{m}:1: offset"):
        validate_manifest(m, labels=LABELS, policy="fail")


def test_duration_mismatch_stops_train(data, dev_manifest, capsys, tmp_path):
    """`neuralgraph train` with a 10-minute file declared as 1 s stops before training
    (bad_data: fail, the default) with the manifest's line."""
    m = _manifest(data["root"] / "train_long.json",
                  [{"audio_filepath": "long.flac", "duration": 1.0, "text": "two"}])
    code, err = _cli(capsys, data["fifos"], "train", GRAPH,
                     f"data.train.manifest_filepath={m}",
                     f"data.validation.manifest_filepath={dev_manifest}",
                     f"data.test.manifest_filepath={dev_manifest}",
                     "--exp-dir", tmp_path / "exp")
    assert code == 2
    assert f"{m}:1: duration 1 s does not match the audio's 600.00 s" in err
    assert not (tmp_path / "exp").exists()


# --- 2. the resampling warning and the "skipped" summary ------------------------------------


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.name == "neuralgraph.audio" and r.levelno == logging.WARNING]


def test_resampling_is_a_warning_once_per_manifest(data, caplog):
    """An 8 kHz file is resampled with a warning (not an INFO line nobody sees), once per
    manifest: a training run validates its data with one data source and loads it with the
    model's own, and the warning is not repeated."""
    from neuralgraph_asr.data import AudioToCharDataset

    m = _manifest(data["root"] / "low.json", [
        {"audio_filepath": "low.wav", "duration": data["good_duration"], "text": "two"},
        {"audio_filepath": "good.flac", "duration": data["good_duration"], "text": "two"}])
    with caplog.at_level(logging.WARNING, logger="neuralgraph.audio"):
        assert AudioToCharDataset(LABELS).validate("train", manifest_filepath=str(m)) == []
        batch = next(iter(AudioToCharDataset(LABELS).dataloader("train", str(m), batch_size=2)))
    assert _warnings(caplog) == [f"warning: {m}: 1 file is at 8000 Hz; resampled to 16000 Hz"]
    assert batch["audio_signal"].shape[0] == 2


def test_resampling_warning_is_shown(data, archive):
    """The same warning reaches a user's terminal: `neuralgraph evaluate` (a process of its
    own, no logging set up) prints it on stderr, once."""
    m = _manifest(data["root"] / "low_eval.json", [
        {"audio_filepath": "low.wav", "duration": data["good_duration"], "text": "two"}] * 3)
    result = run_cli("evaluate", "--model", str(archive), "--manifest", str(m))
    assert result.returncode == 0, result.stderr[-2000:]
    line = f"warning: {m}: 3 files are at 8000 Hz; resampled to 16000 Hz"
    assert result.stderr.count(line) == 1, result.stderr[-2000:]


# (case, bad_data, the manifest's lines (after a good one), the warnings, the error)
SKIP_SUMMARY = [
    ("fail refuses: no 'skipped' line", "fail", [{"audio_filepath": "gone.flac"}], [],
     "1 problem in the train data"),
    ("skip: 1 entry", "skip", [{"audio_filepath": "gone.flac"}],
     ["skipped 1 entry (1 missing file)"], None),
    ("skip: 2 entries", "skip", [{"audio_filepath": "gone.flac"}, "{oops"],
     ["skipped 2 entries (1 malformed json, 1 missing file)"], None),
    ("skip: a FIFO and a mismatch", "skip", [{"audio_filepath": "pipe.flac"},
                                              {"audio_filepath": "long.flac"}],
     ["skipped 2 entries (1 duration mismatch, 1 not a regular file)"], None),
]


@pytest.mark.parametrize(("policy", "bad", "expected", "error"), [c[1:] for c in SKIP_SUMMARY],
                         ids=[c[0] for c in SKIP_SUMMARY])
def test_skipped_summary(data, caplog, tmp_path, policy, bad, expected, error):
    """"skipped N entries" is said only when entries are skipped (`bad_data: skip`), with the
    grammar of its count; under `fail` the error lists the problems and nothing was skipped."""
    from neuralgraph_asr.data import AudioToCharDataset

    good = {"audio_filepath": "good.flac", "duration": data["good_duration"], "text": "two"}
    lines = [good, *({**good, "duration": 1.0, **b} if isinstance(b, dict) else b for b in bad)]
    m = _manifest(data["root"] / f"skip_{tmp_path.name}.json", lines)
    source = AudioToCharDataset(LABELS, bad_data=policy)
    with FifoGuard(data["fifos"]) as guard, caplog.at_level(logging.WARNING,
                                                             logger="neuralgraph.audio"):
        if error is None:
            assert len(source.dataloader("train", str(m)).dataset) == 1
        else:
            with pytest.raises(UserError, match=error):
                source.dataloader("train", str(m))
    assert guard.opened == []
    assert _warnings(caplog) == [f"warning: {m}: {w}" for w in expected]


# --- 3. manifests and audio that are not text or not regular files --------------------------

# (case, command with {root} and {m} (a manifest naming the audio), audio of {m}, the message)
FILES = [
    ("binary manifest (evaluate)", ["evaluate", "--manifest", "{root}/binary.json"], None,
     "{root}/binary.json:1: binary data (a NUL byte at byte"),
    ("Latin-1 manifest (evaluate)", ["evaluate", "--manifest", "{root}/latin1.json"], None,
     "{root}/latin1.json:1: not UTF-8 text (byte 0xe9 at byte 64 of the line); a manifest is "
     "JSON lines in UTF-8: re-encode it"),
    ("Latin-1 manifest (transcribe)", ["transcribe", "--manifest", "{root}/latin1.json"], None,
     "{root}/latin1.json:1: not UTF-8 text (byte 0xe9"),
    ("Latin-1 manifest (asr lm)", ["asr", "lm", "--manifest", "{root}/latin1.json", "--out",
                                   "{root}/lm_out"], None,
     "{root}/latin1.json:1: not UTF-8 text"),
    ("binary manifest (asr tokenizer)", ["asr", "tokenizer", "--manifest", "{root}/binary.json",
                                         "--vocab-size", "8", "--out", "{root}/tok_out"], None,
     "{root}/binary.json:1: binary data"),
    ("FIFO manifest (evaluate)", ["evaluate", "--manifest", "{root}/pipe.json"], None,
     "manifest {root}/pipe.json is a FIFO (named pipe), not a regular file: only regular "
     "files are read as manifests"),
    ("FIFO manifest (transcribe)", ["transcribe", "--manifest", "{root}/pipe.json"], None,
     "manifest {root}/pipe.json is a FIFO (named pipe), not a regular file"),
    ("/dev/zero manifest (evaluate)", ["evaluate", "--manifest", "{root}/zero.json"], None,
     "manifest {root}/zero.json is a character device (a symbolic link to /dev/zero), not a "
     "regular file"),
    ("manifest over 1 GiB (transcribe)", ["transcribe", "--manifest", "{root}/huge.json"], None,
     "manifest {root}/huge.json is 1.0 GiB; a manifest must be at most 1 GiB"),
    ("directory as --manifest (evaluate)", ["evaluate", "--manifest", "{root}/folder"], None,
     "manifest {root}/folder is a directory, not a manifest file (JSON lines)"),
    ("directory as --manifest (transcribe)", ["transcribe", "--manifest", "{root}"], None,
     "manifest {root} is a directory, not a manifest file (JSON lines); it holds "),
    ("FIFO audio (evaluate)", ["evaluate", "--manifest", "{m}"], "pipe.flac",
     "{m}:1: audio path is a FIFO (named pipe), not a regular file: only regular files are "
     "read as audio ({root}/pipe.flac)"),
    ("FIFO audio (train)", ["train", str(GRAPH), "data.train.manifest_filepath={m}",
                            "data.validation.manifest_filepath={m}",
                            "data.test.manifest_filepath={m}", "--exp-dir", "{root}/exp"],
     "pipe.flac", "{m}:1: audio path is a FIFO (named pipe), not a regular file"),
    ("/dev/zero audio (evaluate)", ["evaluate", "--manifest", "{m}"], "zero.flac",
     "{m}:1: audio path is a character device (a symbolic link to /dev/zero), not a regular "
     "file"),
    ("directory audio (evaluate)", ["evaluate", "--manifest", "{m}"], "folder",
     "{m}:1: audio path is a directory, not an audio file ({root}/folder)"),
    ("FIFO audio (transcribe)", ["transcribe", "{root}/pipe.flac"], None,
     "audio path {root}/pipe.flac is a FIFO (named pipe), not a regular file: only regular "
     "files are read as audio"),
    ("FIFO audio in a manifest (transcribe)", ["transcribe", "--manifest", "{m}"], "pipe.flac",
     "audio path {root}/pipe.flac is a FIFO (named pipe), not a regular file"),
    ("/dev/zero audio (transcribe)", ["transcribe", "{root}/zero.flac"], None,
     "audio path {root}/zero.flac is a character device (a symbolic link to /dev/zero)"),
    ("directory audio (transcribe)", ["transcribe", "{root}/folder"], None,
     "audio path {root}/folder is a directory, not an audio file; to transcribe the files in "
     "it, give them with a glob: {root}/folder/*.flac"),
]


@pytest.mark.parametrize(("command", "audio", "message"), [c[1:] for c in FILES],
                         ids=[c[0] for c in FILES])
def test_bad_files_exit_2(data, archive, capsys, command, audio, message):
    """Manifests that are not UTF-8 text, and manifests or audio that are not regular files
    (a FIFO would hang the reader, /dev/zero never ends), exit 2 naming the path (and the
    manifest's line), before anything opens them."""
    root = data["root"]
    m = root / f"names_{audio}.json"
    if audio is not None:
        _manifest(m, [{"audio_filepath": audio, "duration": 1.0, "text": "two"}])
    args = [a.format(root=root, m=m) for a in command]
    if args[0] in ("evaluate", "transcribe"):
        args[1:1] = ["--model", str(archive)]
    code, err = _cli(capsys, data["fifos"], *args)
    assert code == 2, err
    assert message.format(root=root, m=m) in err, err


@pytest.mark.parametrize("workers", [0, 1])
@pytest.mark.parametrize("change", ["FIFO", "removed"])
def test_audio_changed_after_the_check(data, tmp_path, change, workers):
    """An audio file that passed the check and then became a FIFO or went away stops the
    loader with its manifest line (from a worker process too), without opening the FIFO."""
    from neuralgraph_asr.data import AudioToCharDataset
    from neuralgraph_audio import CorruptAudioError

    audio = tmp_path / "a.flac"
    shutil.copy(GOOD_AUDIO, audio)
    m = _manifest(tmp_path / "m.json", [{"audio_filepath": "a.flac",
                                         "duration": data["good_duration"], "text": "two"}])
    loader = AudioToCharDataset(LABELS).dataloader("train", str(m), batch_size=1,
                                                   num_workers=workers)
    audio.unlink()
    if change == "FIFO":
        os.mkfifo(audio)
    with FifoGuard([audio] if change == "FIFO" else []) as guard, \
            pytest.raises(CorruptAudioError) as err:
        list(loader)
    assert guard.opened == []
    what = (f"audio path {audio} is a FIFO (named pipe), not a regular file: only regular files "
            "are read as audio" if change == "FIFO" else f"audio file not found: {audio}")
    assert str(err.value) == (f"{m}:1: {what}; it was a readable audio file when the manifest "
                              "was checked before training: restore it or remove the line, "
                              "then continue with --resume")


# --- 4. command-line arguments ---------------------------------------------------------------

SPLIT_KEYS = ("manifest_filepath, batch_size, shuffle, num_workers, min_duration, max_duration, "
              "drop_last, pin_memory, bucketing")

# (case, arguments after the command, the message)
EVALUATE_SET = [
    ("unknown key", ["--set", "nosuch=1"],
     "error: --set nosuch=1: 'nosuch' is not a split parameter of the data source "
     f"AudioToCharDataset; it takes {SPLIT_KEYS}"),
    ("misspelt key", ["--set", "batchsize=2"], "(did you mean 'batch_size'?)"),
    ("no '='", ["--set", "shuffle"], "error: --set expects KEY=VALUE (got 'shuffle')"),
    ("not YAML", ["--set", "batch_size=["], "error: --set batch_size=[: the value must be a YAML "
                                             "value"),
    ("not a flag", ["--set", "shuffle=maybe"], "error: shuffle must be true or false (got "
                                                "'maybe')"),
    ("not seconds", ["--set", "min_duration=abc"],
     "min_duration must be a number of seconds >= 0 or null (got 'abc')"),
    ("batch size 0", ["--batch-size", "0"], "batch_size must be a positive int (got 0)"),
]


@pytest.mark.parametrize(("extra", "message"), [c[1:] for c in EVALUATE_SET],
                         ids=[c[0] for c in EVALUATE_SET])
def test_evaluate_arguments(archive, dev_manifest, capsys, extra, message):
    """`evaluate --set KEY=VALUE`: a key the data source's loader does not take exits 2 naming
    it and the keys it takes (a TypeError traceback before); bad values exit 2 naming the key."""
    code, err = _cli(capsys, [], "evaluate", "--model", archive, "--manifest", dev_manifest,
                     *extra)
    assert code == 2 and message in err, err


TRANSCRIBE_ARGS = [
    ("batch size 0", ["--batch-size", "0"], "argument --batch-size: must be a positive int "
                                             "(got 0)"),
    ("negative batch size", ["--batch-size", "-3"], "argument --batch-size: must be a positive "
                                                     "int (got -3)"),
    ("batch size not a number", ["--batch-size", "two"], "argument --batch-size: must be a "
                                                          "positive int (got 'two')"),
    ("beam size 0", ["--beam-size", "0"], "argument --beam-size: must be a positive int "
                                           "(got 0)"),
    ("missing audio", ["{root}/gone.flac"], "error: audio file not found: {root}/gone.flac"),
]


@pytest.mark.parametrize(("extra", "message"), [c[1:] for c in TRANSCRIBE_ARGS],
                         ids=[c[0] for c in TRANSCRIBE_ARGS])
def test_transcribe_arguments(data, archive, capsys, extra, message):
    """`transcribe`'s numbers must be positive (argparse exits 2 naming the option)."""
    root = data["root"]
    args = [a.format(root=root) for a in extra]
    audio = [] if any(a.endswith(".flac") for a in args) else [str(root / "good.flac")]
    code, err = _cli(capsys, [], "transcribe", "--model", archive, *args, *audio)
    assert code == 2 and message.format(root=root) in err, err


INFO_ARGS = [
    ("value of another type", ["ConvASREncoder", "feat_in=abc"],
     "error: feat_in=abc: 'feat_in' must be an int (got 'abc' that is a str)"),
    ("unknown parameter", ["ConvASREncoder", "feat=64"],
     "error: feat=64: asr.ConvASREncoder has no parameter 'feat' (did you mean 'feat_in'?); "
     "its parameters: jasper, activation, feat_in,"),
    ("not YAML", ["ConvASREncoder", "feat_in=["], "error: feat_in=[: the value must be a YAML "
                                                  "value"),
    ("the constructor's check", ["ConvASREncoder", "jasper=[{filters: 8, repeat: 1, kernel: "
                                 "[3], stride: [1], dilation: [1], dropout: 0.0, residual: "
                                 "false, separable: false}]", "activation=relu", "feat_in=0"],
     "error: feat_in=0: bad parameter for asr.ConvASREncoder: 'feat_in' must be a positive int "
     "(got 0)"),
    ("a list expected", ["AudioToCharDataset", "labels=abc"],
     "error: labels=abc: 'labels' must be a list (got 'abc' that is a str)"),
    ("an optimizer's number", ["novograd", "lr=fast"],
     "error: lr=fast: 'lr' must be a number (got 'fast' that is a str)"),
]


@pytest.mark.parametrize(("args", "message"), [c[1:] for c in INFO_ARGS],
                         ids=[c[0] for c in INFO_ARGS])
def test_info_parameters(capsys, args, message):
    """`neuralgraph info NAME key=value`: a parameter the name does not take or a value its
    annotation rules out exits 2 (it printed the help and exited 0 before)."""
    code, err = _cli(capsys, [], "info", *args)
    assert code == 2 and message in err, err


def test_info_without_required_parameters_still_helps(capsys):
    """Parameters that are fine but leave required ones out still show the help (exit 0)."""
    capsys.readouterr()
    assert main(["info", "ConvASREncoder", "feat_in=64"]) == 0
    out = capsys.readouterr().out
    assert "(ports depend on parameters: give jasper, activation as key=value)" in out


# --- lexicon and LM files of beam search ----------------------------------------------------


@pytest.fixture(scope="module")
def beam_files(data) -> dict[str, Path]:
    """A good lexicon and ARPA model of the digits, and files that are not such files."""
    from neuralgraph_asr.lm import arpa_text, lexicon_text

    root = data["root"]
    words = ["two", "four", "one", "seven", "nine"]
    files = {
        "good.lex": lexicon_text(words, LABELS[1:]).encode(),
        "good.arpa": arpa_text([words]).encode(),
        "binary.lex": GOOD_AUDIO.read_bytes(),
        "latin1.lex": "caf\xe9 c a f e |\n".encode("latin-1"),
        "words.lex": b"hello world\n",
        "alone.lex": b"two t w o |\nthree\n",
        "empty.lex": b"",
        "garbage.arpa": b"garbage garbage\n",
        "cut.arpa": arpa_text([words]).encode()[:40],
        "empty.arpa": b"\n\n",
    }
    for name, content in files.items():
        (root / name).write_bytes(content)
    return {name: root / name for name in files}


# (case, lexicon, lm, the message); "good" stands for the good file of its kind
BEAM = [
    ("binary lexicon, garbage LM", "binary.lex", "garbage.arpa",
     "error: lexicon {root}/binary.lex:1: binary data (a NUL byte), not a lexicon file: it must "
     "be UTF-8 text"),
    ("Latin-1 lexicon", "latin1.lex", "good.arpa",
     "error: lexicon {root}/latin1.lex:1: not UTF-8 text (byte 0xe9 at byte 4 of the line)"),
    ("a token the model lacks", "words.lex", "good.arpa",
     "error: lexicon {root}/words.lex:1: 'hello' is spelled with 'world', which is not one of "
     "the model's 29 tokens (| a b c"),
    ("a word without spelling", "alone.lex", "good.arpa",
     "error: lexicon {root}/alone.lex:2: a line must be a word and its spelling in the model's "
     "tokens, e.g. 'two t w o |' (got 'three' alone)"),
    ("empty lexicon", "empty.lex", "good.arpa", "error: lexicon {root}/empty.lex has no words"),
    ("directory as lexicon", "folder", "good.arpa",
     "error: lexicon {root}/folder is a directory, not a lexicon file"),
    ("missing lexicon", "gone.lex", "good.arpa", "error: lexicon file not found: {root}/gone.lex"),
    ("FIFO lexicon", "pipe.lex", "good.arpa",
     "error: lexicon {root}/pipe.lex is not a regular file (a FIFO or a device)"),
    ("garbage LM", "good.lex", "garbage.arpa",
     "error: lm {root}/garbage.arpa:1: not an ARPA n-gram model or a KenLM binary: the first "
     "line of an ARPA file is '\\data\\' (got 'garbage garbage')"),
    ("ARPA cut short", "good.lex", "cut.arpa",
     "error: lm {root}/cut.arpa cannot be loaded for beam search: "),
    ("blank LM", "good.lex", "empty.arpa", "error: lm {root}/empty.arpa is empty"),
    ("FIFO LM", "good.lex", "pipe.arpa",
     "error: lm {root}/pipe.arpa is not a regular file (a FIFO or a device)"),
]


@pytest.mark.parametrize(("lexicon", "lm", "message"), [c[1:] for c in BEAM],
                         ids=[c[0] for c in BEAM])
def test_beam_search_files(data, archive, beam_files, capsys, lexicon, lm, message):
    """`transcribe --decoder beam --lexicon L --lm M` with a file that is not a lexicon or
    an LM exits 2 naming the file (and line) and what is wrong (flashlight's and KenLM's
    tracebacks before)."""
    from neuralgraph_asr.decoding import flashlight_available

    if not flashlight_available():
        pytest.skip("flashlight-text is not installed")
    root = data["root"]
    code, err = _cli(capsys, data["fifos"], "transcribe", "--model", archive, "--decoder",
                     "beam", "--lexicon", root / lexicon, "--lm", root / lm, root / "good.flac")
    assert code == 2 and message.format(root=root) in err, err


def test_beam_search_good_files(data, archive, beam_files, capsys):
    """Control: the good lexicon and LM decode (exit 0), so the cases above fail for their
    bad file alone."""
    from neuralgraph_asr.decoding import flashlight_available

    if not flashlight_available():
        pytest.skip("flashlight-text is not installed")
    root = data["root"]
    code, err = _cli(capsys, [], "transcribe", "--model", archive, "--decoder", "beam",
                     "--lexicon", beam_files["good.lex"], "--lm", beam_files["good.arpa"],
                     root / "good.flac")
    assert code == 0, err
