"""Every ASR example graph checks as shipped, and the published architectures have their
published sizes when built from their YAML files (not from a Python re-statement of them)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
import yaml

import neuralgraph as ng
from tests.conftest import ROOT, run_cli

EXAMPLES = ROOT / "examples" / "asr"
GRAPHS = sorted(EXAMPLES.glob("*.yaml"))
DIGITS = EXAMPLES / "data" / "digits"


@pytest.fixture(scope="module")
def tokenizer(digits_tokenizer: Callable[[int], Path]) -> Path:
    """A 56-piece BPE tokenizer of the shipped training transcripts, made with the CLI."""
    return digits_tokenizer(56)


def overrides(graph: Path, tokenizer: Path) -> list[str]:
    """What a user sets on the command line: a tokenizer for word-piece graphs."""
    top = yaml.safe_load(graph.read_text())
    if "tokenizer_model" not in top:
        return []
    return [f"tokenizer_model={tokenizer}", "vocab_size=56"]


def parameters(graph: Path) -> int:
    """Weights of the graph's modules, built on the meta device (nothing allocated)."""
    with torch.device("meta"):
        model = ng.GraphModel(ng.Graph.from_yaml(graph))
    return sum(p.numel() for p in model.parameters())


def test_every_example_is_listed() -> None:
    """The examples named by the ASR issue are all here (a rename would drop them silently)."""
    names = {g.stem for g in GRAPHS}
    assert {"quartznet_15x5", "quartznet_5x5", "jasper_10x5dr", "digits", "digits_small",
            "digits_bpe", "matchboxnet_3x1x64"} <= names


@pytest.mark.parametrize("graph", GRAPHS, ids=[g.stem for g in GRAPHS])
def test_example_checks(graph: Path, tokenizer: Path) -> None:
    """The graph checks statically with no errors (data need not exist to check)."""
    ng.Graph.from_yaml(graph, overrides(graph, tokenizer)).check()


def test_check_cli_on_an_example() -> None:
    """`neuralgraph check` on the 15x5 example, as the README shows it: exit 0 and a summary."""
    result = run_cli("check", str(EXAMPLES / "quartznet_15x5.yaml"))
    assert result.returncode == 0, result.stderr
    assert "ok — 5 nodes" in result.stdout


@pytest.mark.parametrize(("name", "published"), [
    ("quartznet_15x5", 18_924_381),   # NeMo QuartzNet15x5Base-En: 18.9M
    ("quartznet_5x5", 6_713_181),     # one block of each group
    ("jasper_10x5dr", 332_632_349),   # NeMo Jasper10x5dr: 333M
    ("matchboxnet_3x1x64", 74_892),   # NeMo MatchboxNet 3x1x64, 12 classes (paper: ~77K)
])
def test_published_sizes(name: str, published: int) -> None:
    """NeMo's architectures, written as our YAML, have NeMo's weight counts (28 labels; the
    speech-commands classifier 12 classes).

    Each figure is what NeMo 3.0's ``ConvASREncoder`` + ``ConvASRDecoder`` give for the same
    encoder and decoder parameters (counted in NeMo's own venv, 2026-11-24); MatchboxNet's is
    its ``ConvASREncoder`` with the blocks of NeMo's ``matchboxnet_3x1x64()`` config (feat_in
    64) + ``ConvASRDecoderClassification(feat_in=128, num_classes=12)``: 73,344 + 1,548."""
    assert parameters(EXAMPLES / f"{name}.yaml") == published


def test_quality_recipe_runs_as_documented(tokenizer: Path, tmp_path: Path) -> None:
    """The digits recipe's commands on the shipped corpus: train (a few steps here, not 15
    minutes), then transcribe one speaker's files with per-speaker VTLN."""
    result = run_cli("train", str(EXAMPLES / "digits.yaml"), f"data_dir={DIGITS}",
                     f"tokenizer_model={tokenizer}", "+trainer.max_steps=3",
                     "--exp-dir", str(tmp_path / "runs"))
    assert result.returncode == 0, result.stderr
    archive = next((tmp_path / "runs").rglob("digits.ngm"))
    audio = [str(p) for p in sorted((DIGITS / "heldout").glob("*.flac"))[:3]]
    result = run_cli("transcribe", "--model", str(archive), "--vtln", "speaker", "--json",
                     *audio)
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["audio_filepath"] for line in lines] == audio
    assert all(isinstance(line["text"], str) for line in lines)
