"""The suite's own policy: under NG_REQUIRE_DEPS=1 (.ci/run) a test skipped because a dependency
is missing fails, so that a green CI run means every test ran; other skips stay skips."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

DEMO = '''
import pytest

def test_missing_dependency():
    pytest.importorskip("no_such_module_for_neuralgraph_tests")

@pytest.mark.skipif(True, reason="sox is not installed")
def test_missing_program():
    pass

def test_other_reason():
    pytest.skip("needs a GPU")
'''


def _run(tmp_path: Path, require: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "test_demo.py").write_text(DEMO)
    (tmp_path / "conftest.py").write_text(
        (Path(__file__).parent / "conftest.py").read_text(encoding="utf-8"))
    env = {**os.environ, "NG_REQUIRE_DEPS": require}
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider",
                           str(tmp_path / "test_demo.py")], capture_output=True, text=True,
                          cwd=tmp_path, env=env, timeout=120, check=False)


class TestMissingDependencySkips:
    def test_fail_when_dependencies_are_required(self, tmp_path: Path) -> None:
        """Both missing-dependency skips fail (a skip in the call as a failure, a skipif mark
        as a setup error); the GPU skip stays a skip, listed with -rs."""
        result = _run(tmp_path, "1")
        assert result.returncode == 1, result.stdout
        assert "1 failed, 1 skipped, 1 error" in result.stdout
        assert "needs a GPU" in result.stdout

    def test_skip_otherwise(self, tmp_path: Path) -> None:
        """Without NG_REQUIRE_DEPS the same tests are skipped and the run passes."""
        result = _run(tmp_path, "0")
        assert result.returncode == 0, result.stdout
        assert "3 skipped" in result.stdout
