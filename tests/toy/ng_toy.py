"""A small test plugin (loaded with NEURALGRAPH_PLUGINS=ng_toy): regression data and modules."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

import neuralgraph as ng

FEATURES = ng.ChannelType()


class ToyRegression(ng.DataSource):
    """Random linear-regression data: ``x`` (B, D=dim) and ``y`` (B, D=out)."""

    def __init__(self, dim: int = 4, out: int = 1, noise: float = 0.01, seed: int = 0) -> None:
        if dim <= 0 or out <= 0:
            raise ValueError(f"dim and out must be > 0 (got {dim}, {out})")
        self.dim, self.out, self.noise, self.seed = dim, out, noise, seed

    @property
    def output_types(self) -> dict[str, ng.NeuralType]:
        return {
            "x": ng.NeuralType(("B", ng.AxisType("D", self.dim)), FEATURES),
            "y": ng.NeuralType(("B", ng.AxisType("D", self.out)), ng.RegressionValuesType()),
        }

    def _tensors(self, n: int, offset: int) -> dict[str, torch.Tensor]:
        gen = torch.Generator().manual_seed(self.seed)
        weight = torch.randn(self.dim, self.out, generator=gen)
        gen = torch.Generator().manual_seed(self.seed + 1 + offset)
        x = torch.randn(n, self.dim, generator=gen)
        y = x @ weight + self.noise * torch.randn(n, self.out, generator=gen)
        return {"x": x, "y": y}

    def dataloader(self, split: str, batch_size: int = 16, shuffle: bool = False,
                   n_samples: int = 256, num_workers: int = 0) -> torch.utils.data.DataLoader:
        """Loader over ``n_samples`` examples (a different draw per split)."""
        data = self._tensors(n_samples, {"train": 0, "validation": 1, "test": 2}[split])
        dataset = torch.utils.data.StackDataset(**data)
        return torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=shuffle,
                                           num_workers=num_workers)

    def example_batch(self) -> dict[str, torch.Tensor]:
        return self._tensors(2, 3)


class Linear(ng.NeuralModule):
    """A linear map (B, D=in_features) -> (B, D=out_features)."""

    def __init__(self, in_features: int, out_features: int) -> None:
        super().__init__()
        if in_features <= 0 or out_features <= 0:
            raise ValueError("in_features and out_features must be > 0")
        self.in_features, self.out_features = in_features, out_features
        self.linear = nn.Linear(in_features, out_features)

    @property
    def input_types(self) -> dict[str, ng.NeuralType]:
        return {"x": ng.NeuralType(("B", ng.AxisType("D", self.in_features)), FEATURES)}

    @property
    def output_types(self) -> dict[str, ng.NeuralType]:
        return {"y": ng.NeuralType(("B", ng.AxisType("D", self.out_features)), FEATURES)}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x)


class Dropout(ng.NeuralModule):
    """Dropout that keeps its input type (may be train_only)."""

    def __init__(self, p: float = 0.1) -> None:
        super().__init__()
        self.drop = nn.Dropout(p)

    @property
    def input_types(self) -> dict[str, ng.NeuralType]:
        return {"x": ng.NeuralType(("B", "D"), FEATURES)}

    @property
    def output_types(self) -> dict[str, ng.NeuralType]:
        return {"y": ng.NeuralType(("B", "D"), FEATURES)}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(x)


class MSE(ng.NeuralModule):
    """Mean squared error between predictions and targets."""

    @property
    def input_types(self) -> dict[str, ng.NeuralType]:
        return {"pred": ng.NeuralType(("B", "D"), ng.ChannelType()),
                "target": ng.NeuralType(("B", "D"), ng.RegressionValuesType())}

    @property
    def output_types(self) -> dict[str, ng.NeuralType]:
        return {"loss": ng.NeuralType(elements_type=ng.LossType())}

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.mse_loss(pred, target)


class MeanAbsError(ng.NeuralMetric):
    """Mean absolute error over the whole data set (a ratio of sums)."""

    def __init__(self) -> None:
        super().__init__()
        self.add_state("total", default=torch.tensor(0.0), dist_reduce_fx="sum")
        self.add_state("count", default=torch.tensor(0.0), dist_reduce_fx="sum")

    @property
    def input_types(self) -> dict[str, ng.NeuralType]:
        return {"pred": ng.NeuralType(("B", "D"), ng.ChannelType()),
                "target": ng.NeuralType(("B", "D"), ng.RegressionValuesType())}

    def update(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        self.total += (pred - target).abs().sum()
        self.count += target.numel()

    def compute(self) -> torch.Tensor:
        return self.total / self.count


@ng.hookimpl
def register_modules(registry: Any) -> None:
    registry.add_module(Linear)
    registry.add_module(Dropout)


@ng.hookimpl
def register_losses(registry: Any) -> None:
    registry.add_loss(MSE)


@ng.hookimpl
def register_metrics(registry: Any) -> None:
    registry.add_metric(MeanAbsError)


@ng.hookimpl
def register_data_sources(registry: Any) -> None:
    registry.add_data_source(ToyRegression)
