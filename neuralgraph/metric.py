"""Base class for metrics: a torchmetrics ``Metric`` with typed input ports.

torchmetrics keeps metric state as sums that Lightning reduces across ranks, so a ratio such as
WER is a ratio of sums over the whole data set, not a mean of per-batch ratios.
"""

from __future__ import annotations

from typing import Any

import torchmetrics

from neuralgraph.types import NeuralType

__all__ = ["NeuralMetric"]


class NeuralMetric(torchmetrics.Metric):
    """A metric whose ``update(**inputs)`` takes typed ports; ``compute()`` returns a scalar."""

    @property
    def input_types(self) -> dict[str, NeuralType]:
        """Input ports by name (keyword arguments of ``update``)."""
        return {}

    def details(self) -> dict[str, Any]:
        """Figures beyond the scalar ``compute()`` that ``neuralgraph evaluate`` (and
        :meth:`~neuralgraph.GraphModel.evaluate`) reports beside it, as JSON values keyed by
        name (per-class precision and recall, a confusion table...), over the same updates;
        empty by default. Training logs only ``compute()``."""
        return {}
