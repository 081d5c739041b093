"""The one-command recipe scripts beside the example graphs work from a fresh checkout: they
build the data they need, train, and print the archive's path last.

Run here with tiny sizes (a few dozen utterances, one epoch); the real recipe takes minutes.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
PROGRAMS = {"espeak-ng": "espeak-ng", "flite": "flite", "festival": "festival", "sox": "sox"}
MISSING = [f"{p} (Debian package {pkg})" for p, pkg in PROGRAMS.items() if not shutil.which(p)]
pytestmark = pytest.mark.skipif(
    bool(MISSING), reason=f"speech synthesizers not installed: {', '.join(MISSING)}"
)


def _run_script(script: Path, cwd: Path, env: dict[str, str], *args: str) -> tuple[str, str]:
    """Run a recipe script with this interpreter's environment first on PATH; (stdout, stderr)
    after asserting exit 0 and that the last line of stdout is an existing archive."""
    venv_bin = str(Path(sys.executable).parent)
    env = {**os.environ, **env, "PATH": f"{venv_bin}{os.pathsep}{os.environ.get('PATH', '')}",
           "VIRTUAL_ENV": sys.prefix}  # fmt: skip
    result = subprocess.run(["bash", str(script), *args], cwd=cwd, env=env, capture_output=True,
                            text=True, timeout=300)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    last = result.stdout.splitlines()[-1]
    assert last.endswith(".ngm") and Path(last).is_file(), result.stdout[-2000:]
    return result.stdout, result.stderr


def test_digits_script(tmp_path: Path) -> None:
    """examples/asr/digits.sh, run from another folder: synthesizes the corpus and trains the
    tokenizer into DIGITS_DATA when missing, passes its arguments to `neuralgraph train` as
    Hydra overrides, and prints the archive last; a second run reuses the data."""
    data, runs = tmp_path / "digits", tmp_path / "runs"
    env = {"DIGITS_DATA": str(data), "DIGITS_EXP_DIR": str(runs), "DIGITS_TRAIN": "40",
           "DIGITS_DEV": "8", "DIGITS_HELDOUT": "8"}  # fmt: skip
    script = ROOT / "examples" / "asr" / "digits.sh"

    out, err = _run_script(script, tmp_path, {**env, "DIGITS_VERSION": "smoke"},
                           "trainer.max_epochs=1", "seed=3")  # fmt: skip
    archive = runs / "digits" / "smoke" / "digits.ngm"
    assert out.splitlines()[-1] == str(archive)
    for name in ("train", "dev", "heldout"):
        assert (data / f"{name}_manifest.json").is_file()
    assert (data / "tokenizer_words" / "tokenizer.model").is_file()
    assert "synth train: 40/40 utterances (100%)" in err
    assert "training a 56-piece bpe tokenizer on 40 lines..." in err
    graph = yaml.safe_load((archive.parent / "graph.yaml").read_text())
    assert graph["seed"] == 3 and graph["data_dir"] == str(data)
    assert graph["trainer"]["max_epochs"] == 1

    out, err = _run_script(script, tmp_path, env, "trainer.max_epochs=1")
    second = Path(out.splitlines()[-1])
    assert second.parent.parent == runs / "digits" and second != archive
    assert "synth train" not in err and "training a" not in err


def test_digits_bpe_script(tmp_path: Path) -> None:
    """examples/asr/digits_bpe.sh trains its tokenizer when missing, then the model on the
    shipped corpus, and prints the archive last."""
    tokenizer, runs = tmp_path / "tokenizer", tmp_path / "runs"
    env = {"DIGITS_BPE_TOKENIZER": str(tokenizer), "DIGITS_EXP_DIR": str(runs),
           "DIGITS_VERSION": "smoke"}  # fmt: skip
    out, err = _run_script(ROOT / "examples" / "asr" / "digits_bpe.sh", tmp_path, env,
                           "+trainer.max_steps=2", "+trainer.limit_val_batches=1")  # fmt: skip
    assert out.splitlines()[-1] == str(runs / "digits_bpe" / "smoke" / "digits_bpe.ngm")
    assert (tokenizer / "tokenizer.model").is_file()
    assert "training a 32-piece bpe tokenizer on 400 lines..." in err


def test_speech_commands_script(tmp_path: Path) -> None:
    """examples/asr/speech_commands.sh, run from another folder: synthesizes the commands
    corpus into COMMANDS_DATA when missing (COMMANDS_WORDS: the user's own words), trains the
    MatchboxNet recipe with the data's labels, passes its arguments as Hydra overrides and
    prints the archive last; the archive classifies."""
    data, runs = tmp_path / "home", tmp_path / "runs"
    env = {"COMMANDS_DATA": str(data), "COMMANDS_EXP_DIR": str(runs), "COMMANDS_TRAIN": "24",
           "COMMANDS_DEV": "8", "COMMANDS_HELDOUT": "8", "COMMANDS_WORDS": "lights curtains",
           "COMMANDS_VERSION": "smoke"}  # fmt: skip
    script = ROOT / "examples" / "asr" / "speech_commands.sh"
    out, err = _run_script(script, tmp_path, env, "trainer.max_epochs=1", "seed=2")
    archive = runs / "matchboxnet_3x1x64" / "smoke" / "matchboxnet_3x1x64.ngm"
    assert out.splitlines()[-1] == str(archive)
    for name in ("train", "dev", "heldout", "noise"):
        assert (data / f"{name}_manifest.json").is_file()
    assert "synth train: 24/24 utterances (100%)" in err
    assert "held-out accuracy: neuralgraph evaluate --model" in err
    graph = yaml.safe_load((archive.parent / "graph.yaml").read_text())
    assert graph["labels"] == ["lights", "curtains", "unknown", "silence"]
    assert graph["num_classes"] == 4 and graph["seed"] == 2
    venv_bin = Path(sys.executable).parent
    clip = data / "heldout" / "00000.flac"
    result = subprocess.run([str(venv_bin / "neuralgraph"), "classify", "--model", str(archive),
                             str(clip)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    path, label, confidence = result.stdout.strip().split("\t")
    assert path == str(clip) and label in graph["labels"] and 0 < float(confidence) <= 1
