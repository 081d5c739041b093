"""Losses with NeMo's names and parameters: CTC (the blank is the last class, ``num_classes``)
and cross-entropy over class logits (speech commands, VAD)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

import neuralgraph as ng
from neuralgraph import AxisType, NeuralType
from neuralgraph.validators import (
    and_,
    between,
    check,
    each,
    in_,
    instance_of,
    number,
    optional,
    positive_int,
    sequence,
)

__all__ = ["CTCLoss", "CrossEntropyLoss"]

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


class CrossEntropyLoss(ng.NeuralModule):
    """Cross-entropy of class logits against class indices (NeMo's ``CrossEntropyLoss``,
    ``torch.nn.functional.cross_entropy``), in fp32.

    Parameters:

    - ``logits_ndim``: 2 for one prediction per utterance, logits (B, D) and labels (B,)
      (speech commands); 3 for one per frame, logits (B, T, D) and labels (B, T).
    - ``num_classes``: the number of classes, when given checked against the logits' D and
      the labels' vocabulary before training (null: any).
    - ``weight``: a rescaling weight per class (a list of ``num_classes`` numbers), or null.
    - ``reduction``: ``mean`` (NeMo's default: weighted mean over the predictions), ``sum``
      or ``none`` (a loss per prediction).
    - ``ignore_index``: a label value that contributes nothing (NeMo's -100).
    - ``label_smoothing``: in [0, 1): that share of each target's probability is spread
      uniformly over all classes.

    Ports: ``logits`` (B, D) or (B, T, D) LogitsType, ``labels`` (B,) or (B, T) LabelsType
    in; ``loss`` out (a scalar; for ``none`` one per prediction).
    """

    def __init__(
        self,
        logits_ndim: int = 2,
        num_classes: int | None = None,
        weight: list[float] | None = None,
        reduction: str = "mean",
        ignore_index: int = -100,
        label_smoothing: float = 0.0,
    ) -> None:
        super().__init__()
        check("logits_ndim", logits_ndim, in_((2, 3)))
        check("num_classes", num_classes, optional(positive_int))
        check("weight", weight, optional(and_(sequence, each(number))))
        if weight is not None and num_classes is not None and len(weight) != num_classes:
            raise ValueError(f"weight must have num_classes ({num_classes}) items "
                             f"(got {len(weight)})")
        check("reduction", reduction, in_(("mean", "sum", "none")))
        check("ignore_index", ignore_index, instance_of(int))
        check("label_smoothing", label_smoothing, between(0, 1, high_open=True))
        self.logits_ndim = logits_ndim
        self.num_classes = num_classes
        self.reduction = reduction
        self.ignore_index = ignore_index
        self.label_smoothing = float(label_smoothing)
        self.register_buffer(
            "weight", None if weight is None else torch.tensor(weight, dtype=torch.float32),
            persistent=False)

    @property
    def input_types(self) -> dict[str, NeuralType]:
        middle = (AxisType("T"),) if self.logits_ndim == 3 else ()
        return {
            "logits": NeuralType((AxisType("B"), *middle, AxisType("D", self.num_classes)),
                                 ng.LogitsType()),
            "labels": NeuralType((AxisType("B"), *middle),
                                 ng.LabelsType(vocab_size=self.num_classes)),
        }

    @property
    def output_types(self) -> dict[str, NeuralType]:
        return {"loss": NeuralType(elements_type=ng.LossType())}

    def forward(self, logits: Tensor, labels: Tensor) -> Tensor:
        """Logits (B, D) or (B, T, D), labels (B,) or (B, T) -> the reduced loss."""
        with torch.autocast(device_type=logits.device.type, enabled=False):
            scores = logits.float()
            if self.logits_ndim == 3:  # torch wants the classes second: (B, D, T)
                scores = scores.transpose(1, 2)
            return F.cross_entropy(scores, labels.long(), weight=self.weight,
                                   ignore_index=self.ignore_index, reduction=self.reduction,
                                   label_smoothing=self.label_smoothing)
