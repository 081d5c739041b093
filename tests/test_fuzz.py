"""Property tests: random YAML documents, graph files' bytes, graph edits, overrides and
manifests never crash the loader, the checker or `neuralgraph check`; the outcome is success or
a UserError (exit 2) with a message, within SECONDS. Strategies are in tests/strategies.py;
crashes found are pinned below."""

from __future__ import annotations

import contextlib
import io
import os
import re
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from neuralgraph import Graph, GraphError, UserError
from neuralgraph.cli import main
from tests import strategies as S

# Bounded and reproducible by default (a fixed sequence of 60 examples per test); set
# NEURALGRAPH_FUZZ_EXAMPLES=2000 to search longer with fresh random examples.
_EXAMPLES = int(os.environ.get("NEURALGRAPH_FUZZ_EXAMPLES", "0"))
FUZZ = settings(max_examples=_EXAMPLES or 60, deadline=None, derandomize=not _EXAMPLES,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow, HealthCheck.filter_too_much])
TOY = Path(__file__).parent / "toy" / "regression.yaml"
# No input may take longer than this to check: the largest accepted alias expansion (100,000
# nodes) with an override takes ~10 s on 2 shared cores; an unbounded one took minutes.
SECONDS = 30.0


def _load_and_check(text: str, overrides: list[str] = ()) -> None:
    """Read and check a graph; a UserError must carry a message."""
    try:
        Graph.from_string(text, overrides, source="fuzz.yaml").check()
    except UserError as err:
        assert str(err).strip()


def _cli_check(path: Path, overrides: list[str]) -> tuple[int, str]:
    """`neuralgraph check PATH -- OVERRIDES` in-process: the exit code and stderr, asserting
    that it ended within SECONDS and printed no traceback."""
    err = io.StringIO()
    start = time.monotonic()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main(["check", str(path), "--", *overrides])
    elapsed = time.monotonic() - start
    assert elapsed < SECONDS, f"{elapsed:.1f} s: {err.getvalue()[:500]}"
    assert "Traceback" not in err.getvalue()
    return code, err.getvalue()


class TestGraphFuzz:
    @FUZZ
    @given(text=S.yaml_texts())
    def test_random_yaml(self, text):
        """Random YAML text is read and checked, or refused with a UserError."""
        _load_and_check(text)

    @FUZZ
    @given(config=S.graph_configs())
    def test_edited_graphs(self, config):
        """The toy graph with random edits is accepted or refused with a UserError."""
        _load_and_check(yaml.safe_dump(config, allow_unicode=True))

    @FUZZ
    @given(config=S.graph_configs())
    def test_from_config(self, config):
        """Graph.from_config (how archives are rebuilt) on edited graphs: a UserError at worst."""
        try:
            Graph.from_config(config).check()
        except UserError as err:
            assert str(err).strip()

    @FUZZ
    @given(overrides=st.lists(S.overrides(), max_size=4))
    def test_random_overrides(self, overrides):
        """Random Hydra overrides on a valid graph: applied and checked, or a UserError."""
        try:
            Graph.from_yaml(TOY, overrides).check()
        except UserError as err:
            assert str(err).strip()


class TestCliFuzz:
    @FUZZ
    @given(text=S.yaml_texts(), overrides=st.lists(S.overrides(), max_size=3))
    def test_check_command(self, tmp_path, text, overrides):
        """`neuralgraph check FILE OVERRIDES...` in-process exits 0 or 2, never raises."""
        path = tmp_path / "graph.yaml"
        path.write_text(text, encoding="utf-8")
        code, err = _cli_check(path, overrides)
        assert code in (0, 2), err
        assert code == 0 or err.strip()

    @FUZZ
    @given(data=S.graph_bytes(), overrides=st.lists(S.overrides(), max_size=2))
    def test_check_bytes(self, tmp_path, data, overrides):
        """A graph file whose bytes may not be UTF-8 (bytes written in, UTF-16, Latin-1,
        binary data): exit 0 or 2, never a traceback."""
        path = tmp_path / "graph.yaml"
        path.write_bytes(data)
        code, err = _cli_check(path, overrides)
        assert code in (0, 2), err
        assert code == 0 or err.strip()

    @FUZZ
    @given(text=S.duplicated_keys())
    def test_duplicate_keys_are_refused(self, tmp_path, text):
        """A key written twice in a mapping is refused, naming both lines; never silently
        replaced."""
        path = tmp_path / "graph.yaml"
        path.write_text(text, encoding="utf-8")
        code, err = _cli_check(path, [])
        assert code == 2, err
        assert "duplicate key" in err and "(first at line " in err, err

    @FUZZ
    @given(text=S.aliased(), overrides=st.lists(S.overrides(), max_size=2))
    def test_aliases(self, tmp_path, text, overrides):
        """Anchors and aliases, alias bombs among them: exit 0 or 2 within SECONDS."""
        path = tmp_path / "graph.yaml"
        path.write_text(text, encoding="utf-8")
        code, err = _cli_check(path, overrides)
        assert code in (0, 2), err

    @FUZZ
    @given(overrides=st.lists(st.sampled_from(S.NUMERIC_KEYS).flatmap(
        lambda key: st.sampled_from(S.OUT_OF_RANGE).map(lambda v: f"{key}={v}")),
        min_size=1, max_size=3))
    def test_numbers_out_of_range(self, overrides):
        """Numbers out of range (or of the wrong type) set on the command line: exit 0 or 2;
        each problem is reported at the override that caused it."""
        code, err = _cli_check(TOY, overrides)
        assert code in (0, 2), err
        for line in err.splitlines()[1:]:
            if ": error: " in line:
                assert line.startswith(("override #", f"{TOY}:")), err


@pytest.fixture(scope="module")
def audio_files(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """A good 16 kHz wav, an 8 kHz wav, a FLAC cut short, garbage bytes and a missing path."""
    import soundfile as sf

    root = tmp_path_factory.mktemp("fuzz_audio")
    signal = (0.1 * np.sin(np.arange(8000) / 5.0)).astype(np.float32)
    sf.write(root / "good.wav", signal, 16000)
    sf.write(root / "low.wav", signal, 8000)
    sf.write(root / "full.flac", np.tile(signal, 4), 16000)
    data = (root / "full.flac").read_bytes()
    (root / "cut.flac").write_bytes(data[: len(data) // 3])
    (root / "garbage.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk" * 8)
    return [str(root / n) for n in ("good.wav", "low.wav", "cut.flac", "garbage.wav",
                                    "missing.wav")] + ["good.wav", "../x.wav", "~/none.wav"]


LABELS = [" ", *"abcdefghijklmnopqrstuvwxyz", "'"]


class TestManifestFuzz:
    @FUZZ
    @given(data=st.data())
    def test_random_manifests(self, tmp_path, audio_files, data):
        """Random manifests: validation lists problems or raises a UserError; a data source
        either refuses them (UserError) or yields batches (a corrupt file: UserError)."""
        from neuralgraph_asr.data import AudioToCharDataset
        from neuralgraph_audio import validate_manifest

        lines = data.draw(st.lists(S.manifest_lines(audio_files), max_size=6))
        manifest = tmp_path / "m.json"
        manifest.write_text("\n".join(lines) + "\n", encoding="utf-8")
        for policy in ("skip", "fail"):
            try:
                report = validate_manifest(manifest, labels=LABELS, policy=policy)
                assert all(p.startswith(f"{manifest}:") for p in report.problems)
            except UserError as err:
                assert str(manifest) in str(err)
        source = AudioToCharDataset(LABELS, bad_data=data.draw(st.sampled_from(["fail", "skip"])))
        problems = source.validate("train", manifest_filepath=str(manifest))
        assert all(isinstance(p, str) and p for p in problems)
        try:
            for _ in source.dataloader("train", manifest_filepath=str(manifest), batch_size=2):
                pass
        except UserError as err:
            assert str(err).strip()

    @pytest.fixture(scope="class")
    def special_paths(self, tmp_path_factory: pytest.TempPathFactory) -> list[str]:
        """Audio paths that are not regular files: a FIFO, a link to /dev/zero, a folder."""
        root = tmp_path_factory.mktemp("fuzz_special")
        os.mkfifo(root / "pipe.wav")
        (root / "zero.wav").symlink_to("/dev/zero")
        (root / "folder.wav").mkdir()
        return [str(root / n) for n in ("pipe.wav", "zero.wav", "folder.wav")]

    @FUZZ
    @given(data=st.data())
    def test_special_audio_paths(self, tmp_path, audio_files, special_paths, data):
        """Random manifests whose audio may be a FIFO, /dev/zero or a folder: the same
        outcomes, no FIFO is ever opened (it would block), and nothing reads /dev/zero."""
        from neuralgraph_asr.data import AudioToCharDataset
        from tests.test_bad_data_and_args import FifoGuard

        lines = data.draw(st.lists(S.manifest_lines(audio_files + special_paths), max_size=6))
        manifest = tmp_path / "m.json"
        manifest.write_text("\n".join(lines) + "\n", encoding="utf-8")
        source = AudioToCharDataset(LABELS, bad_data=data.draw(st.sampled_from(["fail", "skip"])))
        with FifoGuard(special_paths[:1]) as guard:
            assert all(isinstance(p, str) and p for p in
                       source.validate("train", manifest_filepath=str(manifest)))
            try:
                for _ in source.dataloader("train", manifest_filepath=str(manifest),
                                           batch_size=2):
                    pass
            except UserError as err:
                assert str(err).strip()
        assert guard.opened == []

    @FUZZ
    @given(raw=st.lists(st.one_of(st.binary(max_size=80),
                                  st.text(max_size=40).map(lambda t: t.encode("utf-16")),
                                  st.text(max_size=40).map(
                                      lambda t: t.encode("latin-1", "replace"))),
                        min_size=1, max_size=5))
    def test_random_bytes(self, tmp_path, raw):
        """Manifests of random bytes (binary data, UTF-16, Latin-1): problems of their lines
        or a UserError naming the manifest (a UnicodeDecodeError traceback before)."""
        from neuralgraph_audio import read_manifest, validate_manifest

        manifest = tmp_path / "m.json"
        manifest.write_bytes(b"\n".join(raw) + b"\n")
        for read in (lambda: validate_manifest(manifest, labels=LABELS, policy="skip"),
                     lambda: read_manifest(manifest)):
            try:
                read()
            except UserError as err:  # "m.json:3: not UTF-8 text ..." or "2 bad lines in m.json:"
                where = re.escape(str(manifest))
                assert re.match(rf"{where}:\d+: |\d+ bad lines in {where}:", str(err)), str(err)


class TestRegressions:
    """Crashes the fuzzing found (each was a traceback before its fix), pinned."""

    def test_non_string_key_from_config(self):
        """Graph.from_config with an int key was a TypeError in difflib; now a GraphError."""
        config = {**S.TOY_GRAPH, 0: None}
        with pytest.raises(GraphError, match="keys must be strings"):
            Graph.from_config(config)

    @pytest.mark.parametrize("override", ["~", "~=1", "+=1", "=1", "++=1"])
    def test_empty_key_override(self, override):
        """'~' (an empty key) was an OmegaConf ConfigKeyError; now a problem at the override."""
        with pytest.raises(GraphError, match="is not a key path") as err:
            Graph.from_yaml(TOY, [override])
        assert f"override #1 on the command line ({override})" in str(err.value)

    @pytest.mark.parametrize("value", ["${", "${ data.x", "${a", "x ${cpu"])
    def test_malformed_interpolation(self, value):
        """A string with a broken '${' was a GrammarParseError; now a GraphError at its line."""
        text = yaml.safe_dump({**S.TOY_GRAPH, "name": value}, sort_keys=False)
        with pytest.raises(GraphError, match="malformed interpolation") as err:
            Graph.from_string(text, source="g.yaml")
        assert "g.yaml:1: error: 'name'" in str(err.value)

    def test_malformed_interpolation_with_overrides(self, tmp_path, capsys):
        """The same string in a file checked with an override went through another path
        (apply_overrides); `neuralgraph check` exits 2 with the message."""
        path = tmp_path / "g.yaml"
        path.write_text(yaml.safe_dump({**S.TOY_GRAPH, "name": "${cpu"}, sort_keys=False))
        assert main(["check", str(path), "seed=1"]) == 2
        assert "malformed interpolation '${cpu'" in capsys.readouterr().err
