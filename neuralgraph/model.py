"""``GraphModel``: a LightningModule that executes a checked graph.

``forward(**data_ports)`` runs, in topological order, the nodes whose required inputs are
available, and returns ``{"node.port": tensor}``. Inference therefore runs without transcript
ports: the loss and metric nodes are simply not reached. Execution plans are cached per set of
given ports and training mode, so a step costs one dict lookup per edge.

Domain models (``ASRModel``...) subclass :class:`GraphModel` and use only its public API:
:meth:`GraphModel.execution_plan` says which nodes run from a set of known keys (an
:class:`ExecutionPlan` of :class:`PlannedNode`), :meth:`GraphModel.run` runs them, from data
ports or from any inner key, and ``model.plan.port_type(key)`` gives a key's type.
"""

from __future__ import annotations

import itertools
import math
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs
import pytorch_lightning as pl
import torch
from torch import nn

from neuralgraph.checker import NodePlan, Plan
from neuralgraph.errors import UserError
from neuralgraph.graph import Graph
from neuralgraph.metric import NeuralMetric
from neuralgraph.module import check_value, is_typecheck_enabled, iter_outputs
from neuralgraph.registry import get_registry

__all__ = ["ExecutionPlan", "GraphModel", "NonFiniteLossError", "NonFiniteWeightsError",
           "PlannedNode", "nonfinite_summary"]

DATA = "data"
WEIGHTS_CHECK_EVERY = 100  # training batches between two checks that the weights are finite


class NonFiniteLossError(FloatingPointError):
    """The loss became NaN or infinite and the graph's policy is ``nonfinite_loss: stop``.

    The CLI prints the message (with the step) and exits 1: it is not a mistake in the input,
    but the run cannot go on.
    """


class NonFiniteWeightsError(FloatingPointError):
    """Weights (parameters or buffers) are NaN or infinite: training stops, and no archive or
    checkpoint is written with them. The CLI prints the message and exits 1."""


def nonfinite_summary(named: Iterable[tuple[str, torch.Tensor]]) -> str | None:
    """None when every floating-point tensor is finite; else how many values are NaN or
    infinite, of how many, and in which tensors (the first five, each with its count)."""
    tensors = [(name, t.detach()) for name, t in named if t.is_floating_point()]
    # a NaN or inf makes its tensor's sum NaN or inf: one read of each tensor and one sync (20x
    # cheaper than isfinite); a finite sum too large for float32 only costs the exact count below
    if not tensors or bool(torch.isfinite(torch.stack([t.sum().float() for _, t in tensors])
                                          ).all()):
        return None
    bad = [(name, int((~torch.isfinite(t)).sum()), t.numel()) for name, t in tensors]
    bad = [b for b in bad if b[1]]
    if not bad:  # only sums too large for float32
        return None
    total = sum(t.numel() for _, t in tensors)
    shown = ", ".join(f"{name} ({n:,} of {size:,})" for name, n, size in bad[:5])
    more = f" and {len(bad) - 5} more" if len(bad) > 5 else ""
    return (f"{sum(b[1] for b in bad):,} of {total:,} values are NaN or infinite, in "
            f"{len(bad)} of {len(tensors)} tensors: {shown}{more}")


@attrs.frozen
class PlannedNode:
    """A node that runs in an :class:`ExecutionPlan`.

    Attributes:
        name: the node's name in the graph (its module is ``model.nodes[name]``).
        inputs: input port -> the key that feeds it (``"data.audio_signal"``,
            ``"encoder.outputs"``), for every input that has a value (an optional input whose
            source is not known is left out, and the module gets its default).
        outputs: the keys it computes, ``"name.port"`` in ``output_types`` order.
    """

    name: str
    inputs: dict[str, str]
    outputs: tuple[str, ...]


@attrs.frozen
class ExecutionPlan:
    """What :meth:`GraphModel.run` computes from a set of known keys, in one mode.

    A snapshot: building one is cheap, and changing it changes nothing that runs.

    Attributes:
        given: the keys known before the run (``"data.x"`` or ``"node.port"``).
        training: the mode planned for (train_only nodes run only in training).
        nodes: the nodes that run, in topological order. A node all of whose outputs are given
            does not run (its value is the caller's); nor does one whose required inputs cannot
            be computed (a loss without its targets).
        passes: ``"node.port" -> source key`` for each train_only node skipped outside
            training: its output is its input passed through, no module runs.
    """

    given: frozenset[str]
    training: bool
    nodes: tuple[PlannedNode, ...]
    passes: dict[str, str]

    @property
    def outputs(self) -> tuple[str, ...]:
        """Every key the planned nodes compute, in the order they are computed (the given keys
        and the passed-through ones are not among them)."""
        return tuple(key for node in self.nodes for key in node.outputs)

    @property
    def sinks(self) -> tuple[str, ...]:
        """The computed keys that no planned node reads, directly or through a pass: what the
        run is for (log-probs and their lengths for a CTC model in eval mode)."""
        consumed: set[str] = set()
        for node in self.nodes:
            for src in node.inputs.values():
                while src not in consumed:
                    consumed.add(src)
                    src = self.passes.get(src, src)
        return tuple(key for key in self.outputs if key not in consumed)


class GraphModel(pl.LightningModule):
    """A LightningModule built from a :class:`~neuralgraph.Graph`.

    The graph is checked first (a :class:`~neuralgraph.GraphError` lists every problem). Modules
    live in ``self.nodes`` (an ``nn.ModuleDict`` keyed by node name), metrics in
    ``self.metrics``. ``training_step`` optimizes the graph's ``loss`` port; validation and test
    log the loss and every metric. A NaN or infinite training loss follows the graph's top-level
    ``nonfinite_loss``: ``skip`` (default; the batch gives no gradient, the step is counted and
    logged) or ``stop`` (:class:`NonFiniteLossError` naming the step). Weights that become NaN
    or infinite stop training under either policy (:class:`NonFiniteWeightsError`): they are
    checked after a non-finite loss, every ``WEIGHTS_CHECK_EVERY`` batches, at the end of each
    epoch and of training, and before each checkpoint is written (:meth:`check_weights`).
    """

    def __init__(self, graph: Graph) -> None:
        super().__init__()
        self.graph = graph
        self.plan: Plan = graph.plan(get_registry())
        self.nodes = nn.ModuleDict({name: _build(p) for name, p in self.plan.nodes.items()})
        self.metrics = nn.ModuleDict({name: _build(p) for name, p in self.plan.metrics.items()})
        # (given, training) or (given, training, wanted outputs) -> compiled steps
        self._compiled: dict[tuple[Any, ...], tuple[Any, ...]] = {}
        self._data_source: Any = None
        self.nonfinite_steps = 0
        self._batches_unchecked = 0  # training batches since the weights were last checked
        self.nonfinite_policy = str(graph.config.get("nonfinite_loss", "skip"))
        if self.nonfinite_policy not in ("skip", "stop"):
            raise UserError(f"nonfinite_loss must be 'skip' or 'stop' "
                            f"(got {self.nonfinite_policy!r})")

    # --- execution ---------------------------------------------------------------------------

    def _steps(self, given: frozenset[str], training: bool) -> tuple[Any, ...]:
        key = (given, training)
        steps = self._compiled.get(key)
        if steps is None:
            steps = self._compile(given, training)
            self._compiled[key] = steps
        return steps

    def _compile(self, given: frozenset[str], training: bool) -> tuple[Any, ...]:
        """The steps that run when the keys ``given`` ("data.x", "node.port") are known."""
        available = set(given)
        steps: list[Any] = []
        for name, node in self.plan.nodes.items():
            outputs = tuple(f"{name}.{out}" for out in node.output_types)
            if outputs and all(o in available for o in outputs):
                continue  # computed by the caller (export from an inner port)
            if node.train_only and not training:
                passes = tuple((f"{name}.{out}", src) for out, src in node.skip_map.items()
                               if src in available)
                available.update(out for out, _ in passes)
                steps.append(("pass", passes))
                continue
            required = [p for p, t in node.input_types.items() if not t.optional]
            if not all(node.inputs.get(p) in available for p in required):
                continue
            edges = tuple((p, src) for p, src in node.inputs.items() if src in available)
            available.update(outputs)
            steps.append(("run", (name, self.nodes[name], edges, outputs)))
        return tuple(steps)

    def _needed_steps(self, given: frozenset[str], training: bool,
                      wanted: frozenset[str]) -> tuple[Any, ...]:
        """The steps of ``_steps(given, training)`` that the keys ``wanted`` need."""
        key = (given, training, wanted)
        steps = self._compiled.get(key)
        if steps is None:
            steps = _prune(self._steps(given, training), given, wanted, training)
            self._compiled[key] = steps
        return steps

    def execution_plan(self, given: Iterable[str], training: bool = False,
                       outputs: Iterable[str] | None = None) -> ExecutionPlan:
        """The nodes that :meth:`run` runs when the keys ``given`` are known.

        Args:
            given: known keys: data ports as ``"data.PORT"`` and inner outputs as
                ``"node.port"`` (a run from ``"preprocessor.processed_signal"`` plans only what
                follows the preprocessor).
            training: plan for training mode (train_only nodes run) or eval mode (they pass
                their input through).
            outputs: plan only what these keys need (None: everything reachable).

        Raises:
            UserError: a key of ``outputs`` cannot be computed from ``given``.
        """
        known = frozenset(given)
        if outputs is None:
            steps = self._steps(known, training)
        else:
            steps = self._needed_steps(known, training, frozenset(outputs))
        nodes: list[PlannedNode] = []
        passes: dict[str, str] = {}
        for kind, step in steps:
            if kind == "pass":
                passes.update(step)
            else:
                name, _, edges, keys = step
                nodes.append(PlannedNode(name, dict(edges), keys))
        return ExecutionPlan(known, training, tuple(nodes), passes)

    def forward(self, **data: torch.Tensor) -> dict[str, torch.Tensor]:
        """Run the graph on data ports (``audio_signal=...``); returns ``{"node.port": tensor}``.

        Only nodes whose required inputs can be computed from the given ports run.
        """
        env = self.run({f"{DATA}.{k}": v for k, v in data.items()})
        return {k: v for k, v in env.items() if not k.startswith(f"{DATA}.")}

    def run(self, known: Mapping[str, Any],
            outputs: Iterable[str] | None = None) -> dict[str, Any]:
        """Run what can be computed from ``known`` ({"data.x" or "node.port": value}).

        ``known`` may start anywhere in the graph: given ``"preprocessor.processed_signal"``
        and ``"preprocessor.processed_length"``, only the nodes after the preprocessor run.
        ``outputs``: run only what these keys need (None: every node that can run; a key that
        cannot be computed from ``known`` is a UserError). The nodes that run are those of
        ``execution_plan(known, self.training, outputs)``, in the mode the model is in.

        Returns every value known afterwards, the given ones included.
        """
        env: dict[str, Any] = dict(known)
        checking = is_typecheck_enabled()
        if outputs is None:
            steps = self._steps(frozenset(env), self.training)
        else:
            steps = self._needed_steps(frozenset(env), self.training, frozenset(outputs))
        for kind, step in steps:
            if kind == "pass":
                for out, src in step:
                    env[out] = env[src]
                continue
            name, module, edges, outputs = step
            kwargs = {port: env[src] for port, src in edges}
            if checking:
                self._typecheck(name, kwargs, self.plan.nodes[name].input_types)
            result = module(**kwargs)
            if len(outputs) == 1 and not isinstance(result, (tuple, Mapping)):
                env[outputs[0]] = result
            else:
                for port, value in iter_outputs(module, result):
                    env[f"{name}.{port}"] = value
            if checking:
                self._typecheck(name, {o.partition(".")[2]: env[o] for o in outputs},
                                self.plan.nodes[name].output_types)
        return env

    def sinks(self, given: Iterable[str]) -> list[str]:
        """Outputs computed from ``given`` keys in eval mode that no computed node consumes:
        ``list(execution_plan(given).sinks)``."""
        return list(self.execution_plan(given).sinks)

    @staticmethod
    def _typecheck(name: str, values: Mapping[str, Any], types: Mapping[str, Any]) -> None:
        for port, value in values.items():
            if port in types:
                check_value(f"node '{name}'", port, types[port], value)

    def _metric_inputs(self, plan: NodePlan, env: Mapping[str, Any],
                       batch: Mapping[str, Any]) -> dict[str, Any] | None:
        kwargs = {}
        for port, src in plan.inputs.items():
            node, _, key = src.partition(".")
            value = batch.get(key) if node == DATA else env.get(src)
            if value is None:
                return None
            kwargs[port] = value
        return kwargs

    # --- Lightning steps ---------------------------------------------------------------------

    def _loss(self, out: Mapping[str, torch.Tensor]) -> torch.Tensor:
        if self.plan.loss is None:
            raise UserError("the graph has no 'loss': add 'loss: node.port' to train it")
        if self.plan.loss not in out:
            raise UserError(f"the loss port '{self.plan.loss}' was not computed: the batch "
                            f"lacks an input it needs (batch has {sorted(out)})")
        return out[self.plan.loss]

    @staticmethod
    def _batch_size(batch: Mapping[str, Any]) -> int:
        for value in batch.values():
            if isinstance(value, torch.Tensor) and value.dim() > 0:
                return int(value.shape[0])
        return 1

    def training_step(self, batch: Mapping[str, torch.Tensor], batch_idx: int) -> Any:
        out = self(**batch)
        loss = self._loss(out)
        if self._nonfinite(loss):
            return self._skip_or_stop(loss, batch_idx)
        self.log("train_loss", loss, prog_bar=True, batch_size=self._batch_size(batch))
        return loss

    def _nonfinite(self, loss: torch.Tensor) -> bool:
        """Whether the loss is NaN or infinite on this process or on any other rank (all ranks
        must skip or stop together, or the others would wait forever for gradients)."""
        bad = not bool(torch.isfinite(loss.detach()).all())
        trainer = self._trainer
        if trainer is not None and trainer.world_size > 1:
            bad = bool(trainer.strategy.reduce_boolean_decision(bad, all=False))
        return bad

    def _skip_or_stop(self, loss: torch.Tensor, batch_idx: int) -> None:
        """Apply the ``nonfinite_loss`` policy: ``skip`` (count the step; the batch gives no
        gradient) or ``stop`` (raise :class:`NonFiniteLossError` with the step)."""
        value = loss.detach().float().reshape(-1)
        shown = next((str(v) for v in value.tolist() if not math.isfinite(v)),
                     "non-finite on another rank")
        where = f"global step {self.global_step} (epoch {self.current_epoch}, batch {batch_idx})"
        self.check_weights(f"at {where}")  # weights gone bad make every later loss bad too
        if self.nonfinite_policy == "stop":
            raise NonFiniteLossError(
                f"the loss is {shown} at {where}; training stopped (nonfinite_loss: stop). "
                f"The checkpoints written before this step are intact: lower the learning rate "
                f"or fix the data, then continue with --resume, or set nonfinite_loss: skip")
        self.nonfinite_steps += 1
        self.log("nonfinite_steps", float(self.nonfinite_steps), batch_size=1)
        if self._trainer is None or self.trainer.is_global_zero:
            print(f"warning: the loss is {shown} at {where}: step skipped, no gradient from "
                  f"this batch (nonfinite_loss: skip; {self.nonfinite_steps} skipped so far)",
                  file=sys.stderr, flush=True)
        return None  # Lightning then makes no backward pass and the optimizer updates nothing

    def check_weights(self, when: str) -> None:
        """Raise :class:`NonFiniteWeightsError` if a parameter or buffer is NaN or infinite
        (on any rank: all ranks stop together). ``when`` says where training is."""
        summary = nonfinite_summary(itertools.chain(self.named_parameters(),
                                                    self.named_buffers()))
        self._batches_unchecked = 0
        bad = summary is not None
        trainer = self._trainer
        if trainer is not None and trainer.world_size > 1:
            bad = bool(trainer.strategy.reduce_boolean_decision(bad, all=False))
        if not bad:
            return
        raise NonFiniteWeightsError(
            f"the weights are not finite {when}: {summary or 'so on another rank'}; training "
            f"stopped (nonfinite_loss: {self.nonfinite_policy} cannot undo a step already "
            f"taken). An optimizer step, or a module updating its buffers, made them so: lower "
            f"the learning rate (optim.lr) or clip gradients (+trainer.gradient_clip_val=1.0), "
            f"then train again. No checkpoint or archive is written with non-finite weights")

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        self._batches_unchecked += 1
        if self._batches_unchecked >= WEIGHTS_CHECK_EVERY:  # cheap, but not at every step
            self.check_weights(f"after global step {self.global_step} (epoch "
                               f"{self.current_epoch}, checked every {WEIGHTS_CHECK_EVERY} "
                               "batches)")

    def on_train_epoch_end(self) -> None:
        self.check_weights(f"at the end of epoch {self.current_epoch} (global step "
                           f"{self.global_step})")

    def on_train_end(self) -> None:
        self.check_weights(f"at the end of training (global step {self.global_step})")
        if self.nonfinite_steps and self.trainer.is_global_zero:
            print(f"warning: {self.nonfinite_steps} training steps had a non-finite loss and "
                  "were skipped (nonfinite_loss: skip)", file=sys.stderr, flush=True)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.check_weights(f"when a checkpoint was to be written at global step "
                           f"{self.global_step} (it was not written)")
        checkpoint["nonfinite_steps"] = self.nonfinite_steps

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.nonfinite_steps = int(checkpoint.get("nonfinite_steps", 0))

    def _eval_step(self, batch: Mapping[str, torch.Tensor], stage: str) -> None:
        out = self(**batch)
        size = self._batch_size(batch)
        if self.plan.loss is not None and self.plan.loss in out:
            self.log(f"{stage}_loss", out[self.plan.loss], prog_bar=True, batch_size=size,
                     sync_dist=True)
        for name, plan in self.plan.metrics.items():
            kwargs = self._metric_inputs(plan, out, batch)
            if kwargs is None:
                continue
            metric = self.metrics[name]
            metric.update(**kwargs)
            self.log(f"{stage}_{name}", metric, prog_bar=True, batch_size=size)

    def validation_step(self, batch: Mapping[str, torch.Tensor], batch_idx: int) -> None:
        self._eval_step(batch, "val")

    def test_step(self, batch: Mapping[str, torch.Tensor], batch_idx: int) -> None:
        self._eval_step(batch, "test")

    def configure_optimizers(self) -> Any:
        cfg = dict(self.plan.optim or {"name": "adam", "lr": 1e-3})
        registry = get_registry()
        name = cfg.pop("name")
        sched_cfg = cfg.pop("sched", None)
        optimizer = registry.get("optimizer", name).obj(self.parameters(), **cfg)
        if not sched_cfg:
            return optimizer
        sched_cfg = dict(sched_cfg)
        sched_name = sched_cfg.pop("name")
        max_steps = sched_cfg.pop("max_steps", None) or self._max_steps()
        scheduler = registry.get("scheduler", sched_name).obj(optimizer, max_steps=max_steps,
                                                              **sched_cfg)
        return {"optimizer": optimizer,
                "lr_scheduler": {"scheduler": scheduler, "interval": "step", "frequency": 1}}

    def _max_steps(self) -> int:
        trainer = self._trainer
        if trainer is None:
            return 1
        steps = trainer.estimated_stepping_batches
        if steps is None or math.isinf(steps):
            raise UserError("the scheduler needs a finite number of steps: set "
                            "trainer.max_steps or trainer.max_epochs, or optim.sched.max_steps")
        return max(1, int(steps))

    # --- data --------------------------------------------------------------------------------

    @property
    def data_source(self) -> Any:
        """The graph's data source instance (built on first use), or None."""
        if self._data_source is None and self.plan.data is not None:
            self._data_source = self.plan.data.cls(**self.plan.data.params)
        return self._data_source

    def dataloader(self, split: str, **overrides: Any) -> torch.utils.data.DataLoader:
        """The data loader of a configured split ("train", "validation", "test")."""
        if self.plan.data is None:
            raise UserError("the graph has no 'data' section")
        params = {**self.plan.data.splits.get(split, {}), **overrides}
        if not params:
            raise UserError(f"the graph has no data.{split} section")
        return self.data_source.dataloader(split, **params)

    def dataloader_for(self, path: str | Path, split: str = "test",
                       **params: Any) -> torch.utils.data.DataLoader:
        """A loader over the data in ``path`` (a file or folder: an audio manifest...).

        The graph's settings of ``split`` (else of ``validation``; ``shuffle`` turned off)
        updated with ``params`` are handed to the data source's
        :meth:`~neuralgraph.DataSource.evaluation_split`, which puts ``path`` where its
        ``dataloader`` reads it; the data is validated before the loader is built.

        Raises:
            UserError: the model has no data source, the data source declares no
                ``evaluation_split`` (it cannot read a file named by the user), or the data
                has problems.
        """
        if self.plan.data is None:
            raise UserError("the model has no data source to read evaluation data with")
        base = dict(self.plan.data.splits.get(split) or self.plan.data.splits.get(
            "validation") or {})
        if "shuffle" in base:
            base["shuffle"] = False
        split_params = self.data_source.evaluation_split(str(path), **{**base, **params})
        problems = self.data_source.validate(split, **split_params)
        if problems:
            raise UserError("the data has problems:\n" + "\n".join(problems[:20]))
        return self.data_source.dataloader(split, **split_params)

    @torch.no_grad()
    def evaluate(self, loader: Any, progress: bool = False) -> dict[str, Any]:
        """Loss (batch-weighted mean) and every metric over a loader, in eval mode.

        Each metric's value is a float under its name; what a metric's
        :meth:`~neuralgraph.NeuralMetric.details` returns follows the figures, under its own
        keys (prefixed ``METRIC_`` where a key is taken). ``progress``: show batches done on
        stderr (:class:`~neuralgraph.progress.Progress`).
        """
        from neuralgraph.progress import Progress

        self.eval()
        for metric in self.metrics.values():
            metric.reset()
        total, count = 0.0, 0
        try:
            batches = len(loader)
        except TypeError:  # an iterable loader of unknown length
            batches = None
        with Progress(batches, "evaluate", unit="batches", disable=not progress) as shown:
            for batch in loader:
                loss_sum, size = self._evaluate_batch(batch)
                total += loss_sum
                count += size
                shown.update()
        results: dict[str, Any] = {}
        if count:
            results["loss"] = total / count
        details: list[tuple[str, dict[str, Any]]] = []
        for name, metric in self.metrics.items():
            results[name] = float(metric.compute())
            found = metric.details() if isinstance(metric, NeuralMetric) else {}
            details.append((name, found))
        results["utterances"] = float(count) if count else float("nan")
        for name, found in details:
            for key, value in found.items():
                results[f"{name}_{key}" if key in results else key] = value
        return results

    def _evaluate_batch(self, batch: Mapping[str, Any]) -> tuple[float, int]:
        """Update the metrics with one batch; its (loss x batch size, batch size), or (0, 0)
        when the loss is not computed."""
        batch = {k: v.to(self.device) if isinstance(v, torch.Tensor) else v
                 for k, v in batch.items()}
        out = self(**batch)
        for name, plan in self.plan.metrics.items():
            kwargs = self._metric_inputs(plan, out, batch)
            if kwargs is not None:
                self.metrics[name].update(**kwargs)
        if self.plan.loss is None or self.plan.loss not in out:
            return 0.0, 0
        size = self._batch_size(batch)
        return float(out[self.plan.loss]) * size, size

    # --- archives ----------------------------------------------------------------------------

    def save_to(self, path: str | Path) -> Path:
        """Write a ``.ngm`` archive (graph, weights without pickle, artifacts), atomically."""
        from neuralgraph.archive import save_archive

        return save_archive(self, Path(path))

    @classmethod
    def restore_from(cls, path: str | Path, map_location: str | torch.device = "cpu",
                     overrides: Sequence[str] = ()) -> GraphModel:
        """Load a ``.ngm`` archive written by :meth:`save_to`."""
        from neuralgraph.archive import restore_archive

        return restore_archive(Path(path), cls, map_location=map_location, overrides=overrides)

    @classmethod
    def from_pretrained(cls, name: str, progress: bool = True,
                        **restore_kwargs: Any) -> GraphModel:
        """Restore the catalog's pretrained model ``name`` (``neuralgraph pretrained list``) as
        an instance of this class (``ASRModel.from_pretrained`` gives an ASRModel): its file is
        fetched (downloaded into the cache if need be) and its sha256 checked first.
        ``restore_kwargs`` go to :meth:`restore_from` (``map_location``, ``overrides``)."""
        from neuralgraph.pretrained import fetch, lookup

        return cls.restore_from(fetch(lookup(name), progress=progress), **restore_kwargs)


def _build(plan: NodePlan) -> nn.Module:
    return plan.cls(**plan.params)


def _prune(steps: tuple[Any, ...], given: frozenset[str], wanted: frozenset[str],
           training: bool) -> tuple[Any, ...]:
    """The compiled ``steps`` that computing ``wanted`` needs, walked back from the end."""
    needed = set(wanted)
    reachable = set(given)
    kept: list[Any] = []
    for kind, step in reversed(steps):
        if kind == "pass":
            reachable.update(out for out, _ in step)
            passes = tuple((out, src) for out, src in step if out in needed)
            if passes:
                needed.update(src for _, src in passes)
                kept.append((kind, passes))
            continue
        _, _, edges, outputs = step
        reachable.update(outputs)
        if any(key in needed for key in outputs):
            needed.update(src for _, src in edges)
            kept.append((kind, step))
    missing = sorted(wanted - reachable)
    if missing:
        mode = "training" if training else "eval"
        raise UserError(f"cannot compute {missing} from {sorted(given)} in {mode} mode")
    return tuple(reversed(kept))
