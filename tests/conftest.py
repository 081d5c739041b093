"""Shared fixtures: the toy plugin (tests/toy/ng_toy.py) is loaded through NEURALGRAPH_PLUGINS,
exactly as a user would load a plugin module that is not pip-installed."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TOY = ROOT / "tests" / "toy"

os.environ["NEURALGRAPH_PLUGINS"] = "ng_toy"
os.environ["PYTHONPATH"] = os.pathsep.join(
    [str(TOY), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))])
if str(TOY) not in sys.path:
    sys.path.insert(0, str(TOY))


@pytest.fixture(autouse=True)
def _fresh_registry() -> Iterator[None]:
    """Each test sees the registry as the environment defines it."""
    from neuralgraph.registry import reset_registry

    reset_registry()
    yield
    reset_registry()


def run_cli(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None,
            timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run ``neuralgraph ARGS`` in a fresh process, as a user would."""
    exe = Path(sys.executable).parent / "neuralgraph"
    return subprocess.run([str(exe), *args], capture_output=True, text=True, cwd=cwd,
                          env={**os.environ, **(env or {})}, timeout=timeout, check=False)


@pytest.fixture()
def toy_graph() -> Path:
    """The toy regression graph file."""
    return TOY / "regression.yaml"


# --- a skip for a missing dependency fails where every dependency must be there ---------------

MISSING_DEPENDENCY = re.compile(r"not installed|could not import|No module named|unavailable",
                                re.IGNORECASE)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """With ``NG_REQUIRE_DEPS=1`` (set by .ci/run, which installs every dependency), a test
    skipped because something is not installed fails instead, so that a green run means every
    test ran. Other skips stay skips and are listed by ``-rs``."""
    outcome = yield
    report = outcome.get_result()
    if not report.skipped or os.environ.get("NG_REQUIRE_DEPS") != "1":
        return
    reason = str(report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr)
    if MISSING_DEPENDENCY.search(reason):
        report.outcome = "failed"
        report.longrepr = (f"skipped for a missing dependency, which NG_REQUIRE_DEPS=1 "
                           f"forbids: {reason}")
