"""Shared fixtures: the toy plugin (tests/toy/ng_toy.py) is loaded through NEURALGRAPH_PLUGINS,
exactly as a user would load a plugin module that is not pip-installed."""

from __future__ import annotations

import os
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
