"""CTC loss with NeMo's parameters: the blank is the last class (``num_classes``)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

import neuralgraph as ng
from neuralgraph import AxisType, NeuralType
from neuralgraph.validators import check, in_, positive_int

__all__ = ["CTCLoss"]

REDUCTIONS = ("mean_batch", "mean_volume", "mean", "sum", "none")


class CTCLoss(ng.NeuralModule):
    """Connectionist temporal classification loss (``torch.nn.functional.ctc_loss``), in fp32.

    Parameters:

    - ``num_classes``: labels without the blank; the blank is index ``num_classes``.
    - ``zero_infinity``: zero losses of impossible alignments (and their gradients).
    - ``reduction``: ``mean_batch`` (sum of per-utterance losses / batch size, NeMo's default),
      ``mean_volume`` (sum / total target length), ``mean`` (torch's: each loss divided by its
      target length, then averaged), ``sum`` or ``none`` (per-utterance losses (B,)).
    - ``blank``: optional alias; when given it must equal ``num_classes`` (either may be given
      alone).

    Ports: ``log_probs`` (B, T, D=num_classes+1), ``targets`` (B, S) LabelsType(num_classes),
    ``input_lengths`` (B,), ``target_lengths`` (B,) in; ``loss`` out (a scalar, or (B,) for
    ``none``).
    """

    def __init__(
        self,
        num_classes: int | None = None,
        zero_infinity: bool = True,
        reduction: str = "mean_batch",
        blank: int | None = None,
    ) -> None:
        super().__init__()
        if num_classes is None and blank is not None:
            num_classes = check("blank", blank, positive_int)
        check("num_classes", num_classes, positive_int)
        if blank is not None and blank != num_classes:
            raise ValueError(
                f"blank must equal num_classes (the blank is the last class): got blank={blank} "
                f"and num_classes={num_classes}"
            )
        check("reduction", reduction, in_(REDUCTIONS))
        self.num_classes = num_classes
        self.blank = num_classes
        self.zero_infinity = bool(zero_infinity)
        self.reduction = reduction

    @property
    def input_types(self) -> dict[str, NeuralType]:
        return {
            "log_probs": NeuralType(
                (AxisType("B"), AxisType("T"), AxisType("D", self.num_classes + 1)),
                ng.LogprobsType(),
            ),
            "targets": NeuralType(("B", "T"), ng.LabelsType(vocab_size=self.num_classes)),
            "input_lengths": NeuralType(("B",), ng.LengthsType()),
            "target_lengths": NeuralType(("B",), ng.LengthsType()),
        }

    @property
    def output_types(self) -> dict[str, NeuralType]:
        return {"loss": NeuralType(elements_type=ng.LossType())}

    def forward(
        self, log_probs: Tensor, targets: Tensor, input_lengths: Tensor, target_lengths: Tensor
    ) -> Tensor:
        """Log-probabilities (B, T, D), targets (B, S), lengths (B,) -> the reduced loss."""
        target_lengths = target_lengths.long()
        with torch.autocast(device_type=log_probs.device.type, enabled=False):
            losses = F.ctc_loss(
                log_probs.float().transpose(0, 1),
                targets.long(),
                input_lengths.long(),
                target_lengths,
                blank=self.blank,
                reduction="mean" if self.reduction == "mean" else "none",
                zero_infinity=self.zero_infinity,
            )
        if self.reduction == "mean_batch":
            return losses.mean()
        if self.reduction == "mean_volume":
            return losses.sum() / target_lengths.sum().clamp(min=1)
        if self.reduction == "sum":
            return losses.sum()
        return losses
