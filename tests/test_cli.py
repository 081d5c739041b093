"""The command line: exit codes, messages without tracebacks, rendering, fast start."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from neuralgraph.cli import main
from tests.conftest import run_cli


class TestCheck:
    def test_ok(self, toy_graph: Path) -> None:
        """A valid graph checks with exit 0 and a summary."""
        result = run_cli("check", str(toy_graph))
        assert result.returncode == 0, result.stderr
        assert "ok" in result.stdout

    def test_problems_exit_2_without_traceback(self, toy_graph: Path, tmp_path: Path) -> None:
        """A wrong graph exits 2 listing every problem with file:line, no traceback."""
        bad = tmp_path / "bad.yaml"
        bad.write_text(toy_graph.read_text().replace("module: MSE", "module: MSQ")
                       .replace("in_features: 16", "in_features: 17"))
        result = run_cli("check", str(bad))
        assert result.returncode == 2
        assert "Traceback" not in result.stderr
        assert f"{bad}:" in result.stderr
        assert "did you mean 'MSE'" in result.stderr
        assert "axis sizes differ" in result.stderr

    def test_missing_file(self, tmp_path: Path) -> None:
        """A missing graph file is a user error (exit 2)."""
        result = run_cli("check", str(tmp_path / "nope.yaml"))
        assert result.returncode == 2 and "not found" in result.stderr

    def test_bad_override(self, toy_graph: Path) -> None:
        """A wrong override is a user error naming the override."""
        result = run_cli("check", str(toy_graph), "trainer.max_epoch=3")
        assert result.returncode == 2
        assert "+trainer.max_epoch" in result.stderr

    def test_render(self, toy_graph: Path, tmp_path: Path) -> None:
        """--render writes DOT with typed edges, and SVG through graphviz."""
        result = run_cli("check", str(toy_graph), "--render", str(tmp_path / "g.dot"))
        assert result.returncode == 0, result.stderr
        dot = (tmp_path / "g.dot").read_text()
        assert "hidden" in dot and "ChannelType" in dot and "->" in dot
        result = run_cli("check", str(toy_graph), "--render", str(tmp_path / "g.svg"))
        assert result.returncode == 0, result.stderr
        assert (tmp_path / "g.svg").read_text().lstrip().startswith("<?xml")


class TestInfoAndPlugins:
    def test_plugins(self) -> None:
        """`plugins` lists the core plugin and what it contributes."""
        result = run_cli("plugins")
        assert result.returncode == 0, result.stderr
        assert "core" in result.stdout and "optimizers" in result.stdout

    def test_info(self) -> None:
        """`info` shows docstring, parameters and typed ports."""
        result = run_cli("info", "Linear", "in_features=4", "out_features=2")
        assert result.returncode == 0, result.stderr
        assert "A linear map" in result.stdout
        assert "in_features: int (required)" in result.stdout
        assert "x: (B,D=4) ChannelType" in result.stdout

    def test_info_unknown(self) -> None:
        """`info` of an unknown name suggests close names and exits 2."""
        result = run_cli("info", "Linaer")
        assert result.returncode == 2 and "did you mean 'Linear'" in result.stderr


class TestStartup:
    def test_help_does_not_import_lightning(self) -> None:
        """--help and check stay fast: they do not import Lightning."""
        script = ("import sys\nfrom neuralgraph.cli import main\n"
                  "try:\n    main(sys.argv[1:])\nexcept SystemExit:\n    pass\n"
                  "print('LIGHTNING' if 'pytorch_lightning' in sys.modules else 'NO')")
        for args in (["--help"], ["check", str(Path(__file__).parent / "toy" /
                                               "regression.yaml")]):
            out = subprocess.run([sys.executable, "-c", script, *args], capture_output=True,
                                 text=True, check=False).stdout
            assert out.strip().endswith("NO"), (args, out)

    def test_help_lists_plugin_commands_without_torch(self) -> None:
        """`neuralgraph --help` lists the installed plugins' commands with their help and
        plugin, importing neither torch nor Lightning (only the register_commands hooks run)."""
        script = ("import sys\nfrom neuralgraph.cli import main\n"
                  "code = main(['--help'])\n"
                  "heavy = [m for m in ('torch', 'pytorch_lightning') if m in sys.modules]\n"
                  "print('CODE', code, 'HEAVY', heavy)")
        result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                                check=False, timeout=60)
        assert result.stdout.strip().endswith("CODE 0 HEAVY []"), result.stdout + result.stderr
        assert "text for audio files, from a .ngm ASR archive [asr]" in result.stdout
        assert re.search(r"^ +asr +ASR tools: .* \[asr\]$", result.stdout, re.MULTILINE)
        # NEURALGRAPH_PLUGINS (ng_toy, set by conftest) may import anything: --help says so
        assert "NEURALGRAPH_PLUGINS modules (ng_toy) are not imported" in result.stdout

    def test_plugin_command_help_is_light(self) -> None:
        """`neuralgraph transcribe --help` describes the command without importing Lightning."""
        script = ("import sys\nfrom neuralgraph.cli import main\n"
                  "code = main(['transcribe', '--help'])\n"
                  "print('CODE', code, 'LIGHTNING', 'pytorch_lightning' in sys.modules)")
        result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                                check=False, timeout=60)
        assert result.stdout.strip().endswith("CODE 0 LIGHTNING False"), result.stderr
        assert "--vtln {utterance,speaker}" in result.stdout

    def test_unknown_command(self) -> None:
        """An unknown command is a usage error (exit 2)."""
        assert run_cli("frobnicate").returncode == 2


class TestEvaluate:
    @pytest.fixture()
    def archive(self, toy_graph: Path, tmp_path: Path) -> Path:
        """A toy regression archive (its data source declares no evaluation_split)."""
        import neuralgraph as ng

        return ng.GraphModel(ng.Graph.from_yaml(toy_graph)).save_to(tmp_path / "toy.ngm")

    @pytest.mark.parametrize("option", ["--data", "--manifest"])
    def test_source_that_cannot_read_a_file(self, archive: Path, tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str],
                                            option: str) -> None:
        """`evaluate` with a data source that declares no evaluation_split is a usage error
        (exit 2) naming the data source, without a traceback."""
        data = tmp_path / "data.json"
        data.write_text("{}\n")
        code = main(["evaluate", "--model", str(archive), option, str(data)])
        err = capsys.readouterr().err
        assert code == 2, err
        assert "data source ToyRegression cannot evaluate a file" in err
        assert "Traceback" not in err and len(err.strip().splitlines()) == 1

    def test_source_that_declares_evaluation_split(self, archive: Path, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str],
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
        """Any data source that declares evaluation_split can be evaluated on a file."""
        from ng_toy import ToyRegression

        def evaluation_split(self: ToyRegression, path: str, **params: object) -> dict:
            return {**params, "n_samples": int(Path(path).read_text())}

        monkeypatch.setattr(ToyRegression, "evaluation_split", evaluation_split)
        count = tmp_path / "count.txt"
        count.write_text("12")
        code = main(["evaluate", "--model", str(archive), "--data", str(count), "--json"])
        out, err = capsys.readouterr()
        assert code == 0, err
        results = json.loads(out)
        assert results["utterances"] == 12 and results["mae"] > 0
