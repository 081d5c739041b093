"""A small test plugin (loaded with NEURALGRAPH_PLUGINS=ng_toy): regression data and modules,
and a training callback that records its calls when NG_TOY_CALLBACK_FILE names a file."""

from __future__ import annotations

import functools
import json
import os
import signal
import time
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from torch import nn

import neuralgraph as ng

if TYPE_CHECKING:
    import pytorch_lightning as pl

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


class _SameFeatures(ng.NeuralModule):
    """Base of the modules that map (B, D) features ``x`` to (B, D) features ``y``."""

    @property
    def input_types(self) -> dict[str, ng.NeuralType]:
        return {"x": ng.NeuralType(("B", "D"), FEATURES)}

    @property
    def output_types(self) -> dict[str, ng.NeuralType]:
        return {"y": ng.NeuralType(("B", "D"), FEATURES)}


class Dropout(_SameFeatures):
    """Dropout that keeps its input type (may be train_only)."""

    def __init__(self, p: float = 0.1) -> None:
        super().__init__()
        self.drop = nn.Dropout(p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(x)


class Faults(_SameFeatures):
    """Identity on (B, D) that injects faults in training, counting training forward calls from 0.

    ``nan_at``: the output of those calls is NaN (so the loss is). ``kill_at``: the process
    SIGKILLs itself at that call (a machine dying mid-epoch, no clean-up). ``sleep``: seconds
    each training call takes (so that a test can kill the process from outside mid-epoch).
    ``record``: a file to which each training call appends the sum of its input (which depends
    on the batch, the weights and the dropout mask), one line per call.
    """

    def __init__(self, nan_at: list[int] | None = None, kill_at: int | None = None,
                 sleep: float = 0.0, record: str | None = None) -> None:
        super().__init__()
        if sleep < 0:
            raise ValueError(f"sleep must be >= 0 (got {sleep})")
        self.nan_at = set(nan_at or ())
        self.kill_at = kill_at
        self.sleep = sleep
        self.record = record
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return x
        call, self.calls = self.calls, self.calls + 1
        if self.sleep:
            time.sleep(self.sleep)
        if call == self.kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
        if self.record:
            with open(self.record, "a", encoding="utf-8") as f:
                f.write(f"{x.detach().double().sum().item()!r}\n")
        return x * float("nan") if call in self.nan_at else x


class LSTMEncoder(ng.NeuralModule):
    """An LSTM reading the D features of ``x`` as a sequence of D scalars; its last hidden state
    is the output: (B, D=in_features) -> (B, D=hidden).

    torch's nn.LSTM fails under CPU bf16 autocast when its input is fp32 (oneDNN has no such
    primitive); the declaration lets ``check`` say so before training.
    """

    unsupported_precisions: ClassVar[dict[str, Any]] = {"bf16-mixed": {"cpu": (
        "nn.LSTM fails under CPU bf16 autocast (oneDNN: could not create a primitive descriptor "
        "for the LSTM forward propagation primitive); train in 32-true on CPU, or bf16-mixed on "
        "a GPU")}}

    def __init__(self, in_features: int, hidden: int = 8) -> None:
        super().__init__()
        if in_features <= 0 or hidden <= 0:
            raise ValueError(f"in_features and hidden must be > 0 (got {in_features}, {hidden})")
        self.in_features, self.hidden = in_features, hidden
        self.lstm = nn.LSTM(1, hidden, batch_first=True)

    @property
    def input_types(self) -> dict[str, ng.NeuralType]:
        return {"x": ng.NeuralType(("B", ng.AxisType("D", self.in_features)), FEATURES)}

    @property
    def output_types(self) -> dict[str, ng.NeuralType]:
        return {"y": ng.NeuralType(("B", ng.AxisType("D", self.hidden)), FEATURES)}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _, (h, _) = self.lstm(x.unsqueeze(-1))  # (B, T=in_features, 1) -> h (1, B, hidden)
        return h[-1]


class Scale(_SameFeatures):
    """Multiplies (B, D) by the number written in a text file (an artifact: archives carry it).

    The file is read at the first forward call, not in the constructor (which runs on the meta
    device when the graph is checked).
    """

    artifacts: ClassVar[tuple[str, ...]] = ("path",)

    def __init__(self, path: str) -> None:
        super().__init__()
        if not isinstance(path, str) or not path:
            raise ValueError(f"path must be a file name (got {path!r})")
        self.path = path
        self.factor: float | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.factor is None:
            with open(self.path, encoding="utf-8") as f:
                self.factor = float(f.read())
        return x * self.factor


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


class ExampleCount(ng.NeuralMetric):
    """How many examples were seen (summed across ranks): shows how a set was sharded."""

    def __init__(self) -> None:
        super().__init__()
        self.add_state("count", default=torch.tensor(0.0), dist_reduce_fx="sum")

    @property
    def input_types(self) -> dict[str, ng.NeuralType]:
        return {"target": ng.NeuralType(("B", "D"), ng.RegressionValuesType())}

    def update(self, target: torch.Tensor) -> None:
        self.count += target.shape[0]

    def compute(self) -> torch.Tensor:
        return self.count


@functools.cache
def _call_recorder_class() -> type[pl.Callback]:
    """CallRecorder, defined on first use: importing this plugin must not import Lightning
    (``neuralgraph check`` does not)."""
    import pytorch_lightning as pl

    class CallRecorder(pl.Callback):
        """Appends a JSON line to ``path`` at the end of each training epoch and of training."""

        def __init__(self, path: str, graph: str) -> None:
            self.path, self.graph = path, graph

        def _record(self, trainer: pl.Trainer, event: str) -> None:
            line = {"event": event, "graph": self.graph, "epoch": trainer.current_epoch,
                    "step": trainer.global_step, "rank": trainer.global_rank}
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(json.dumps(line) + "\n")

        def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
            self._record(trainer, "on_train_epoch_end")

        def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
            self._record(trainer, "on_train_end")

    return CallRecorder


def call_recorder(graph: ng.Graph) -> pl.Callback | None:
    """A CallRecorder when NG_TOY_CALLBACK_FILE is set and the graph uses a module of this
    plugin; None otherwise (the per-graph decision a domain plugin makes)."""
    path = os.environ.get("NG_TOY_CALLBACK_FILE")
    uses_toy = any(node.cls.__module__ == __name__ for node in graph.plan().nodes.values())
    return _call_recorder_class()(path, graph.name) if path and uses_toy else None


@ng.hookimpl
def register_modules(registry: Any) -> None:
    registry.add_module(Linear)
    registry.add_module(Dropout)
    registry.add_module(LSTMEncoder)
    registry.add_module(Faults)
    registry.add_module(Scale)


@ng.hookimpl
def register_losses(registry: Any) -> None:
    registry.add_loss(MSE)


@ng.hookimpl
def register_metrics(registry: Any) -> None:
    registry.add_metric(MeanAbsError)
    registry.add_metric(ExampleCount)


@ng.hookimpl
def register_data_sources(registry: Any) -> None:
    registry.add_data_source(ToyRegression)


@ng.hookimpl
def register_callbacks(registry: Any) -> None:
    registry.add_callback("call_recorder", call_recorder)
