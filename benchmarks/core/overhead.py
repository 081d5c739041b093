"""Overhead of executing a model as a graph: GraphModel vs a hand-written nn.Module, same modules.

The model (toy plugin, :func:`_bench.graph_config`): ``--layers`` Linear(width, width) nodes,
each followed by a train_only Dropout(0.1) node, a Linear(width, 1) head and an MSE loss
(default: 8 layers, width 1024, batch 64: 18 nodes, 8.4 M parameters). The hand-written module
holds the *same module objects* (same weights) and calls them in the same order with the same
keyword ports; it is what one would write without neuralgraph.

A step is ``zero_grad(set_to_none=True)``, forward, loss ``backward()`` (no optimizer: it would
be the same code for both). Each round runs ``--steps`` steps of one variant then of the other,
order alternating every round; the per-round ratio graph / plain is summarized (median, IQR).
Both clocks are recorded: this thread's CPU time (the default measure on CPU, with 1 torch
thread: on a shared machine it leaves out the time spent waiting for a core) and wall time
(the measure on CUDA, synchronized).

On a 2-core shared machine the ratio's noise floor is a few percent, more than the overhead
itself; so the same comparison also runs on a tiny version of the model (width 8, batch 4, one
thread), where the step is almost all Python: the difference there is the graph layer's
absolute cost per step, which is then related to the big model's step time. In eval mode both
skip the train_only Dropouts (the graph does; the hand-written model is written to).

    python benchmarks/core/overhead.py [--quick] [--rounds R] [--steps K] [--device cpu|cuda]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _bench

ENV = _bench.setup_toy_env()

import torch  # noqa: E402
from torch import nn  # noqa: E402

import neuralgraph as ng  # noqa: E402


class HandWritten(nn.Module):
    """The graph's modules called directly: Linear, Dropout, ..., head, MSE (same objects)."""

    def __init__(self, model: ng.GraphModel) -> None:
        super().__init__()
        names = [n for n in model.plan.nodes if n != "mse"]
        self.body = nn.ModuleList([model.nodes[n] for n in names])
        self.train_only = [model.plan.nodes[n].train_only for n in names]
        self.mse = model.nodes["mse"]

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """x (B, D=width), y (B, D=1) -> scalar loss; eval skips Dropouts, as the graph does."""
        h = x
        for module, train_only in zip(self.body, self.train_only):
            if self.training or not train_only:
                h = module(x=h)
        return self.mse(pred=h, target=y)


def build(layers: int, width: int, batch: int, device: str, dropout: bool = True
          ) -> tuple[ng.GraphModel, HandWritten, dict[str, torch.Tensor]]:
    """The graph model, the hand-written model sharing its modules, and one batch."""
    graph = ng.Graph.from_config(_bench.graph_config(layers + 1, width=width, dropout=dropout))
    torch.manual_seed(0)
    model = ng.GraphModel(graph).to(device).train()
    plain = HandWritten(model).train()
    gen = torch.Generator().manual_seed(1)
    data = {"x": torch.randn(batch, width, generator=gen).to(device),
            "y": torch.randn(batch, 1, generator=gen).to(device)}
    return model, plain, data


def steps(model: ng.GraphModel, plain: HandWritten, data: dict[str, torch.Tensor]
          ) -> dict[str, Callable[[], torch.Tensor]]:
    """One training step (without the optimizer) of each variant; returns the loss."""

    def graph_step() -> torch.Tensor:
        model.zero_grad(set_to_none=True)
        loss = model(**data)["mse.loss"]
        loss.backward()
        return loss

    def plain_step() -> torch.Tensor:
        plain.zero_grad(set_to_none=True)
        loss = plain(**data)
        loss.backward()
        return loss

    return {"graph": graph_step, "plain": plain_step}


def check_same(fns: dict[str, Callable[[], torch.Tensor]], model: ng.GraphModel) -> None:
    """Both variants compute the same loss and gradients (dropout seeded alike)."""
    grads = {}
    for name, fn in fns.items():
        torch.manual_seed(123)
        loss = fn()
        grads[name] = (loss.detach().clone(),
                       [p.grad.detach().clone() for p in model.parameters() if p.grad is not None])
    (la, ga), (lb, gb) = grads.values()
    if not torch.allclose(la, lb) or len(ga) != len(gb) or not all(
            torch.allclose(a, b) for a, b in zip(ga, gb)):
        raise AssertionError("the graph and the hand-written model disagree")


def measure(fn: Callable[[], torch.Tensor], k: int, device: str,
            store: dict[str, list[float]]) -> Callable[[], float]:
    """A measurement: seconds per step over ``k`` steps; appends wall and thread CPU to store."""

    def run() -> float:
        if device == "cuda":
            torch.cuda.synchronize()
        w0, c0 = time.perf_counter(), time.thread_time()
        for _ in range(k):
            fn()
        if device == "cuda":
            torch.cuda.synchronize()
        wall, cpu = (time.perf_counter() - w0) / k, (time.thread_time() - c0) / k
        store.setdefault("wall", []).append(wall)
        store.setdefault("cpu", []).append(cpu)
        return wall

    return run


def compare(fns: dict[str, Callable[[], torch.Tensor]], rounds: int, k: int,
            device: str) -> dict[str, dict[str, list[float]]]:
    """Interleaved rounds (graph, plain / plain, graph ...) after a warm-up of each.

    Returns ``{clock: {variant: seconds per step per round}}`` for clocks "wall" and "cpu"
    (this thread's CPU time).
    """
    stores: dict[str, dict[str, list[float]]] = {name: {} for name in fns}
    cases = {name: measure(fn, k, device, stores[name]) for name, fn in fns.items()}
    for run in cases.values():
        run()
    for store in stores.values():
        store.clear()
    _bench.interleave(cases, rounds, progress=True)
    return {clock: {name: stores[name][clock] for name in fns} for clock in ("wall", "cpu")}


def summary_row(label: str, times: dict[str, list[float]], scale: float, unit: str
                ) -> list[str]:
    ratio = _bench.per_round(times["graph"], times["plain"], lambda a, b: a / b)
    diff = _bench.per_round(times["graph"], times["plain"], lambda a, b: a - b)
    return [label, _bench.fmt_q(times["plain"], scale, 3, unit),
            _bench.fmt_q(times["graph"], scale, 3, unit),
            _bench.fmt_q(diff, 1e6, 1, " µs"),
            _bench.fmt_q([100 * (r - 1) for r in ratio], 1, 2, " %")]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="few rounds (a smoke run)")
    p.add_argument("--rounds", type=int, default=None, help="interleaved rounds (default 40)")
    p.add_argument("--steps", type=int, default=1, help="steps per measurement (default 1)")
    p.add_argument("--layers", type=int, default=8)
    p.add_argument("--width", type=int, default=1024)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--no-dropout", action="store_true", help="no Dropout nodes")
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    p.add_argument("--threads", type=int, default=1,
                   help="torch threads of the big model (default 1: thread CPU time is then "
                        "the whole step's work; at most 2 on the shared machine)")
    p.add_argument("--json", type=Path, help="write every measurement here")
    args = p.parse_args(argv)
    args.rounds = args.rounds or (6 if args.quick else 40)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    machine = _bench.machine()
    if args.device == "cuda":
        machine["gpu"] = torch.cuda.get_device_name()
    print(_bench.machine_line(machine) + (f"; {machine['gpu']}" if "gpu" in machine else ""))
    results: dict[str, Any] = {"machine": machine}

    model, plain, data = build(args.layers, args.width, args.batch, args.device,
                               not args.no_dropout)
    fns = steps(model, plain, data)
    check_same(fns, model)
    params = sum(p.numel() for p in model.parameters())
    print(f"big: {len(model.plan.nodes)} nodes, {params / 1e6:.1f} M parameters; "
          f"{args.rounds} rounds x {args.steps} steps", file=sys.stderr)
    results["big"] = compare(fns, args.rounds, args.steps, args.device)

    torch.set_num_threads(1)
    tiny_model, tiny_plain, tiny_data = build(args.layers, 8, 4, args.device,
                                              not args.no_dropout)
    tiny = steps(tiny_model, tiny_plain, tiny_data)
    k = 200 if args.quick else 1000
    print(f"tiny: {args.rounds} rounds x {k} steps", file=sys.stderr)
    results["tiny"] = compare(tiny, args.rounds, k, args.device)
    with torch.no_grad():
        tiny_model.eval()
        tiny_plain.eval()
        infer = {"graph": lambda: tiny_model(**tiny_data)["mse.loss"],
                 "plain": lambda: tiny_plain(**tiny_data)}
        results["tiny_eval"] = compare(infer, args.rounds, k, args.device)
    torch.set_num_threads(args.threads)

    cpu = "cpu" if args.device == "cpu" else "wall"  # a GPU step is timed by the wall clock
    big = f"{args.layers}x{args.width}, batch {args.batch}, {args.device}, {args.threads} thr."
    print(f"\n## Training step (zero_grad + forward + backward), {args.rounds} interleaved "
          "rounds; median [q1, q3]\n")
    rows = [summary_row(f"{big} (thread CPU)", results["big"][cpu], 1e3, " ms"),
            summary_row(f"{big} (wall)", results["big"]["wall"], 1e3, " ms"),
            summary_row(f"tiny {args.layers}x8, batch 4, train step ({cpu})",
                        results["tiny"][cpu], 1e6, " µs"),
            summary_row(f"tiny {args.layers}x8, batch 4, eval forward, no_grad ({cpu})",
                        results["tiny_eval"][cpu], 1e6, " µs")]
    if args.device == "cuda":
        rows = [rows[1], *rows[2:]]
    print(_bench.table(["model", "plain / step", "graph / step", "graph - plain",
                        "overhead (graph/plain - 1)"], rows))
    tiny_diff = _bench.quartiles(_bench.per_round(results["tiny"][cpu]["graph"],
                                                  results["tiny"][cpu]["plain"],
                                                  lambda a, b: a - b))[1]
    big_step = _bench.quartiles(results["big"][cpu]["plain"])[1]
    print(f"\ngraph layer's own cost per training step (tiny model, median): "
          f"{tiny_diff * 1e6:.1f} µs = {100 * tiny_diff / big_step:.3f} % of the "
          f"{args.layers}x{args.width} step ({big_step * 1e3:.1f} ms, {cpu})")
    if args.json:
        args.json.write_text(json.dumps(results | {"args": {k: str(v) for k, v in vars(
            args).items()}}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
