"""The BPE example: a tokenizer trained by the CLI, a checked graph, and an archive that
carries the tokenizer file."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

import neuralgraph as ng
from tests.conftest import ROOT, run_cli

DIGITS = ROOT / "examples" / "asr" / "data" / "digits"
GRAPH = ROOT / "examples" / "asr" / "digits_bpe.yaml"


@pytest.fixture(scope="module")
def tokenizer(digits_tokenizer: Callable[[int], Path]) -> Path:
    """`neuralgraph asr tokenizer` on the shipped training transcripts (vocabulary 32)."""
    return digits_tokenizer(32)


def overrides(tokenizer: Path, vocab: int = 32) -> list[str]:
    return [f"tokenizer_model={tokenizer}", f"vocab_size={vocab}", f"data_dir={DIGITS}"]


class TestBPEExample:
    def test_checks_and_trains_a_step(self, tokenizer: Path) -> None:
        """The graph checks, and one batch gives a finite CTC loss over word pieces."""
        graph = ng.Graph.from_yaml(GRAPH, overrides(tokenizer))
        graph.check()
        model = ng.GraphModel(graph)
        batch = next(iter(model.dataloader("validation", num_workers=0, batch_size=4)))
        loss = model.train()(**batch)["ctc.loss"]
        assert torch.isfinite(loss)
        loss.backward()

    def test_vocab_mismatch_is_caught(self, tokenizer: Path) -> None:
        """A decoder sized for another vocabulary is reported before training (exit 2)."""
        result = run_cli("check", str(GRAPH), *overrides(tokenizer, vocab=40))
        assert result.returncode == 2
        assert "vocab_size=32" in result.stderr and "vocab_size=40" in result.stderr

    def test_archive_carries_the_tokenizer(self, tokenizer: Path, tmp_path: Path) -> None:
        """The restored model decodes with the archived tokenizer after the original is gone."""
        from neuralgraph_asr.model import ASRModel

        copy = tmp_path / "tok" / "tokenizer.model"
        copy.parent.mkdir()
        shutil.copy(tokenizer, copy)
        model = ASRModel(ng.Graph.from_yaml(GRAPH, overrides(copy)))
        archive = model.save_to(tmp_path / "bpe.ngm")
        shutil.rmtree(copy.parent)
        restored = ASRModel.restore_from(archive)
        texts = restored.transcribe([sorted((DIGITS / "dev").glob("*.flac"))[0]])
        assert isinstance(texts[0], str)
        assert Path(restored.data_source.tokenizer_model).is_file()
