"""Tests of the CTC loss module."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from neuralgraph import LabelsType, LossType, ParameterError
from neuralgraph_asr.losses import CTCLoss


def batch(seed: int = 0) -> dict[str, torch.Tensor]:
    """Random log-probabilities over 5 labels + blank, with padded targets."""
    generator = torch.Generator().manual_seed(seed)
    log_probs = torch.randn(3, 12, 6, generator=generator).log_softmax(-1)
    targets = torch.randint(0, 5, (3, 4), generator=generator)
    return {
        "log_probs": log_probs,
        "targets": targets,
        "input_lengths": torch.tensor([12, 10, 7]),
        "target_lengths": torch.tensor([4, 3, 1]),
    }


def torch_losses(inputs: dict[str, torch.Tensor], reduction: str) -> torch.Tensor:
    return F.ctc_loss(
        inputs["log_probs"].transpose(0, 1),
        inputs["targets"],
        inputs["input_lengths"],
        inputs["target_lengths"],
        blank=5,
        reduction=reduction,
        zero_infinity=True,
    )


class TestCTCLoss:
    def test_none_matches_torch(self) -> None:
        """reduction 'none' gives torch's per-utterance losses with the blank last."""
        inputs = batch()
        loss = CTCLoss(num_classes=5, reduction="none")(**inputs)
        torch.testing.assert_close(loss, torch_losses(inputs, "none"))

    def test_reductions(self) -> None:
        """mean_batch is the batch mean; mean is torch's; sum and mean_volume are sums."""
        inputs = batch(1)
        per_utterance = torch_losses(inputs, "none")
        expected = {
            "mean_batch": per_utterance.sum() / 3,
            "mean": torch_losses(inputs, "mean"),
            "sum": per_utterance.sum(),
            "mean_volume": per_utterance.sum() / 8,
        }
        for reduction, value in expected.items():
            loss = CTCLoss(num_classes=5, reduction=reduction)(**inputs)
            assert loss.dim() == 0
            torch.testing.assert_close(loss, value)

    def test_default_is_mean_batch(self) -> None:
        """NeMo's default reduction is mean_batch and zero_infinity is on."""
        loss = CTCLoss(num_classes=5)
        assert loss.reduction == "mean_batch"
        assert loss.zero_infinity
        assert loss.blank == 5

    def test_zero_infinity(self) -> None:
        """An impossible alignment (more targets than frames) costs 0, not infinity."""
        inputs = batch()
        inputs["input_lengths"] = torch.tensor([12, 10, 2])
        inputs["target_lengths"] = torch.tensor([4, 3, 4])
        loss = CTCLoss(num_classes=5, reduction="none")(**inputs)
        assert loss[2] == 0.0
        assert torch.isfinite(loss).all()

    def test_fp32_under_autocast(self) -> None:
        """Under bf16 autocast with bf16 inputs the loss is computed in fp32."""
        inputs = batch()
        expected = CTCLoss(num_classes=5)(**inputs)
        inputs["log_probs"] = inputs["log_probs"].bfloat16()
        with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
            loss = CTCLoss(num_classes=5)(**inputs)
        assert loss.dtype == torch.float32
        torch.testing.assert_close(loss, expected, atol=0.05, rtol=0.01)

    def test_gradient(self) -> None:
        """The loss back-propagates into the log-probabilities."""
        inputs = batch()
        inputs["log_probs"].requires_grad_(True)
        CTCLoss(num_classes=5)(**inputs).backward()
        assert inputs["log_probs"].grad is not None

    def test_ports(self) -> None:
        """Ports size the class axis num_classes + 1 and the targets' vocabulary num_classes."""
        with torch.device("meta"):
            loss = CTCLoss(num_classes=28)
        assert loss.input_types["log_probs"].axes[2].size == 29
        assert loss.input_types["targets"].elements_type == LabelsType(28)
        assert loss.output_types["loss"].elements_type == LossType()
        assert loss.output_types["loss"].axes is None

    def test_blank_alias(self) -> None:
        """blank may stand for num_classes; the two must agree when both are given."""
        assert CTCLoss(blank=28).num_classes == 28
        with pytest.raises(ValueError, match="blank must equal num_classes"):
            CTCLoss(num_classes=28, blank=0)

    @pytest.mark.parametrize("kwargs", [{}, {"num_classes": 0}, {"reduction": "avg"}])
    def test_bad_arguments(self, kwargs: dict) -> None:
        """A missing class count or an unknown reduction raises ValueError."""
        with pytest.raises(ValueError):
            CTCLoss(**kwargs)

    @pytest.mark.parametrize(("kwargs", "parameter"), [
        ({}, "num_classes"), ({"num_classes": True}, "num_classes"), ({"blank": 0}, "blank"),
        ({"num_classes": 28, "reduction": "avg"}, "reduction"),
    ])
    def test_bad_argument_is_named(self, kwargs: dict, parameter: str) -> None:
        """A bad argument is a ParameterError naming it (check reports it at its key)."""
        with pytest.raises(ParameterError) as info:
            CTCLoss(**kwargs)
        assert info.value.parameter == parameter
