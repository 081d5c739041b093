"""The layering of docs/architecture.md holds: the files it names exist, and import-linter's
contracts (pyproject.toml) are kept, so a plugin importing core's private modules fails here
as well as in .ci/run."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "architecture.md"


def _named_paths(text: str) -> list[str]:
    """Backticked repository paths of the doc's tables, with ``{a,b}`` expanded."""
    paths = []
    for raw in re.findall(r"`((?:neuralgraph|plugins)/[^`]+)`", text):
        for part in raw.split(", "):
            match = re.fullmatch(r"(.*)\{([^}]+)\}(.*)", part)
            options = match.group(2).split(",") if match else [""]
            paths.extend(f"{match.group(1)}{o}{match.group(3)}" if match else part
                         for o in options)
    return paths


class TestArchitectureDoc:
    def test_every_named_file_exists(self):
        """Each file or folder the doc's table names is in the repository."""
        paths = _named_paths(DOC.read_text(encoding="utf-8"))
        assert len(paths) > 30
        missing = [p for p in paths if not (ROOT / p).exists()]
        assert missing == []

    def test_every_package_module_is_named(self):
        """Every module of core and of the shared homes appears in the doc's table."""
        named = set(_named_paths(DOC.read_text(encoding="utf-8")))
        modules = [p.relative_to(ROOT).as_posix() for folder in (
            "neuralgraph", "plugins/audio/neuralgraph_audio", "plugins/text/neuralgraph_text")
            for p in sorted((ROOT / folder).glob("*.py")) if p.name != "__init__.py"]
        assert [m for m in modules if m not in named] == []


class TestLayering:
    def test_import_contracts_are_kept(self):
        """`lint-imports` finds every contract kept (core imports no plugin, shared homes no
        domain plugin, and nobody another package's private modules)."""
        exe = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
        if exe is None:
            pytest.fail("import-linter is not installed: pip install -e '.[test]'")
        result = subprocess.run([exe, "--no-cache"], cwd=ROOT, capture_output=True, text=True,
                                timeout=120)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "0 broken" in result.stdout
