"""Cost of the runtime typecheck: ``@neuralgraph.typecheck`` off/on, and GraphModel's own check.

Part 1 (module): a tiny ``NeuralModule`` forward three ways, interleaved in every round:
``plain`` (undecorated forward), ``off`` (decorated, ``set_typecheck(False)``), ``on`` (decorated,
``set_typecheck(True)``). Bodies: an identity forward called as ``m.forward(x=...)`` (the
decorator alone), the same through ``nn.Module.__call__``, and a Linear 16->16 on an (8, 16)
batch through ``__call__``. Reported: per-call overhead (variant minus plain, per round) in µs.
With ``--nemo-python`` (default: ``$NEMO_PYTHON``, else the repository's ``.nemo-venv/bin/python``
when it exists; see ../asr_step/README.md for building it) NeMo's
``@typecheck()`` runs on the same bodies in a worker process that takes its turn in every round.

Part 2 (graph): ``GraphModel(...)(**data)`` in train mode under ``torch.no_grad`` on
tests/toy/regression.yaml and on a 32-Linear chain (width 16, batch 8): ``bare`` (a subclass
whose ``run`` is a copy of ``GraphModel.run`` without the typecheck branches, sharing the same
modules), ``off`` and ``on``.

Clock: the calling thread's CPU time, so that waiting for a core on a shared machine is not
counted; torch runs 1 intra-op thread (``--threads``), the tensors being tiny.

    python benchmarks/core/typecheck.py [--quick] [--rounds R] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _bench

ENV = _bench.setup_toy_env()

import torch  # noqa: E402
from torch import nn  # noqa: E402

import neuralgraph as ng  # noqa: E402
from neuralgraph.module import iter_outputs  # noqa: E402

# NeMo's venv: $NEMO_PYTHON, else the repository's git-ignored .nemo-venv (../asr_step/README.md).
DEFAULT_NEMO = os.environ.get("NEMO_PYTHON") or str(_bench.REPO / ".nemo-venv" / "bin" / "python")
VARIANTS = ("plain", "off", "on")


# --- modules ---------------------------------------------------------------------------------


def _ports(width: int) -> dict[str, ng.NeuralType]:
    return {"x": ng.NeuralType(("B", ng.AxisType("D", width)), ng.ChannelType())}


class Ident(ng.NeuralModule):
    """Identity (B, D=16) -> (B, D=16), undecorated."""

    @property
    def input_types(self) -> dict[str, ng.NeuralType]:
        return _ports(16)

    @property
    def output_types(self) -> dict[str, ng.NeuralType]:
        return _ports(16)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


class IdentChecked(Ident):
    """Identity with ``@ng.typecheck``."""

    @ng.typecheck
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


class Lin(Ident):
    """Linear (B, D=16) -> (B, D=16), undecorated."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(16, 16)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x)


class LinChecked(Lin):
    """Linear with ``@ng.typecheck``."""

    @ng.typecheck
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x)


def per_call(fn: Callable[[], Any], calls: int, enabled: bool) -> Callable[[], float]:
    """A measurement: CPU seconds per call of ``fn`` over ``calls`` calls, typecheck ``enabled``.

    The clock is this thread's CPU time (``time.thread_time``): on a shared, oversubscribed
    machine wall time also counts the time the thread waits for a core.
    """

    def measure() -> float:
        ng.set_typecheck(enabled)
        try:
            with torch.no_grad():
                t0 = time.thread_time()
                for _ in range(calls):
                    fn()
                return (time.thread_time() - t0) / calls
        finally:
            ng.set_typecheck(False)

    return measure


def module_cases(calls: int) -> dict[str, Callable[[], float]]:
    """Every (case, variant) measurement of part 1, keyed ``case:variant``."""
    x = torch.randn(8, 16)
    lin, lin_checked = Lin(), LinChecked()
    lin_checked.linear = lin.linear  # the same weights in both
    pairs = {"identity.forward": (Ident(), IdentChecked(), True, calls),
             "identity.__call__": (Ident(), IdentChecked(), False, calls),
             "linear.__call__": (lin, lin_checked, False, max(1, calls // 4))}
    cases: dict[str, Callable[[], float]] = {}
    for case, (plain, checked, direct, n) in pairs.items():
        for variant in VARIANTS:
            module = plain if variant == "plain" else checked
            fn = module.forward if direct else module
            on = variant == "on"  # ~30x slower: a tenth of the calls
            cases[f"{case}:{variant}"] = per_call(lambda fn=fn: fn(x=x),
                                                  max(1, n // 10) if on else n, on)
    for measure in cases.values():  # warm-up
        measure()
    ng.set_typecheck(True)  # "on" really checks: a wrong size is caught
    try:
        IdentChecked()(x=torch.randn(8, 15))
    except ng.TypecheckError:
        pass
    else:
        raise AssertionError("the typecheck did not catch a (8, 15) tensor on a D=16 port")
    finally:
        ng.set_typecheck(False)
    return cases


# --- NeMo worker -----------------------------------------------------------------------------


class NemoWorker:
    """NeMo's ``@typecheck()`` on the same bodies, in NeMo's venv (``_nemo_typecheck.py``)."""

    def __init__(self, python: str, calls: int, threads: int) -> None:
        script = Path(__file__).resolve().parent / "_nemo_typecheck.py"
        self.proc = subprocess.Popen([python, str(script), str(calls)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                     text=True, bufsize=1,
                                     env=ENV | {"NG_BENCH_THREADS": str(threads)})
        self.hello = self._read()
        self.round()  # warm-up

    def _read(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"NeMo worker exited with {self.proc.wait()}")
        return json.loads(line)

    def round(self) -> dict[str, float]:
        """One round of every NeMo variant: ``{case:variant: seconds per call}``."""
        assert self.proc.stdin is not None
        self.proc.stdin.write("round\n")
        self.proc.stdin.flush()
        return self._read()

    def close(self) -> None:
        if self.proc.poll() is None and self.proc.stdin is not None:
            self.proc.stdin.write("quit\n")
            self.proc.stdin.close()
            self.proc.wait(timeout=60)


# --- graph -----------------------------------------------------------------------------------


class BareGraphModel(ng.GraphModel):
    """A GraphModel whose ``run`` is a copy of ``GraphModel.run`` minus the typecheck branches."""

    def run(self, known: Mapping[str, Any]) -> dict[str, Any]:
        return run_bare(self, known)


def run_bare(model: Any, known: Mapping[str, Any]) -> dict[str, Any]:
    """``GraphModel.run`` without its typecheck branches (the baseline of "off")."""
    env: dict[str, Any] = dict(known)
    for kind, step in model._steps(frozenset(env), model.training):
        if kind == "pass":
            for out, src in step:
                env[out] = env[src]
            continue
        name, module, edges, outputs = step
        result = module(**{port: env[src] for port, src in edges})
        if len(outputs) == 1 and not isinstance(result, (tuple, Mapping)):
            env[outputs[0]] = result
        else:
            for port, value in iter_outputs(module, result):
                env[f"{name}.{port}"] = value
    return env


def graph_cases(calls: int) -> tuple[dict[str, Callable[[], float]], dict[str, int]]:
    """Measurements of part 2 keyed ``graph:variant``, and each graph's node count."""
    graphs = {
        "regression.yaml": (ng.Graph.from_yaml(_bench.TOY_DIR / "regression.yaml"), 8),
        "chain32": (ng.Graph.from_string(_bench.graph_yaml(32, width=16)), 16),
    }
    cases: dict[str, Callable[[], float]] = {}
    sizes: dict[str, int] = {}
    for label, (graph, dim) in graphs.items():
        model = ng.GraphModel(graph).train()
        bare = BareGraphModel(graph).train()
        bare.nodes = model.nodes  # the very same modules (steps are compiled on first call)
        sizes[label] = len(model.plan.nodes)
        data = {"x": torch.randn(8, dim), "y": torch.randn(8, 1)}
        n = calls if label == "regression.yaml" else max(1, calls // 8)
        cases[f"{label}:bare"] = per_call(lambda m=bare, d=data: m(**d), n, False)
        cases[f"{label}:off"] = per_call(lambda m=model, d=data: m(**d), n, False)
        cases[f"{label}:on"] = per_call(lambda m=model, d=data: m(**d), n, True)
    for measure in cases.values():
        measure()
    return cases, sizes


# --- report ----------------------------------------------------------------------------------


def overhead_rows(times: Mapping[str, list[float]], cases: list[str], base: str,
                  variants: tuple[str, ...]) -> list[list[str]]:
    """Rows: case, base µs/call, then per variant the per-round overhead vs base in µs."""
    rows = []
    for case in cases:
        ref = times[f"{case}:{base}"]
        row = [case, _bench.fmt_q(ref, 1e6)]
        for v in variants:
            diff = _bench.per_round(times[f"{case}:{v}"], ref, lambda a, b: a - b)
            row.append(_bench.fmt_q(diff, 1e6, 3))
        rows.append(row)
    return rows


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="few rounds, fewer calls (a smoke run)")
    p.add_argument("--rounds", type=int, default=None, help="interleaved rounds (default 30)")
    p.add_argument("--calls", type=int, default=None, help="calls per measurement (20000)")
    p.add_argument("--nemo-python", default=DEFAULT_NEMO,
                   help="NeMo's python for the reference rows (default: $NEMO_PYTHON, else "
                        ".nemo-venv/bin/python in the repository; '' to skip)")
    p.add_argument("--threads", type=int, default=1,
                   help="torch intra-op threads (default 1: the tensors are tiny)")
    p.add_argument("--json", type=Path, help="write every measurement here")
    args = p.parse_args(argv)
    args.rounds = args.rounds or (5 if args.quick else 30)
    args.calls = args.calls or (2000 if args.quick else 20000)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    machine = _bench.machine()
    print(_bench.machine_line(machine))
    nemo = None
    if args.nemo_python and Path(args.nemo_python).exists():
        print("starting NeMo worker (imports NeMo, ~15 s)...", file=sys.stderr)
        nemo = NemoWorker(args.nemo_python, args.calls, args.threads)
    elif args.nemo_python:
        print(f"no NeMo rows: {args.nemo_python} does not exist (--nemo-python, NEMO_PYTHON)",
              file=sys.stderr)
    mod = module_cases(args.calls)
    nemo_times: dict[str, list[float]] = {}

    def nemo_round() -> float:
        assert nemo is not None
        for key, value in nemo.round().items():
            nemo_times.setdefault(key, []).append(value)
        return 0.0

    variants = dict(mod)
    if nemo is not None:
        variants["nemo"] = nemo_round
    print(f"part 1: {args.rounds} rounds x {len(variants)} measurements", file=sys.stderr)
    times = _bench.interleave(variants, args.rounds, progress=True)
    if nemo is not None:
        nemo.close()
    graph, sizes = graph_cases(args.calls // 10)
    print(f"part 2: {args.rounds} rounds x {len(graph)} measurements", file=sys.stderr)
    gtimes = _bench.interleave(graph, args.rounds, progress=True)

    cases = ["identity.forward", "identity.__call__", "linear.__call__"]
    print(f"\n## @neuralgraph.typecheck, {args.rounds} interleaved rounds; thread CPU µs per "
          "call, median [q1, q3]\n")
    print(_bench.table(["case", "plain µs/call", "off - plain µs", "on - plain µs"],
                       overhead_rows(times, cases, "plain", ("off", "on"))))
    if nemo_times:
        print(f"\n## NeMo {nemo.hello['nemo']} @typecheck() on the same bodies, same rounds\n")
        print(_bench.table(["case", "plain µs/call", "off - plain µs", "on - plain µs"],
                           overhead_rows(nemo_times, cases, "plain", ("off", "on"))))
    print(f"\n## GraphModel.forward (train mode, no_grad), {args.rounds} interleaved rounds; "
          "thread CPU µs\n")
    labels = list(sizes)
    rows = overhead_rows(gtimes, labels, "bare", ("off", "on"))
    for row, label in zip(rows, labels):
        on = _bench.per_round(gtimes[f"{label}:on"], gtimes[f"{label}:bare"], lambda a, b: a - b)
        row.insert(1, str(sizes[label]))
        row.append(_bench.fmt_q([d / sizes[label] for d in on], 1e6, 2))
        row.append(_bench.fmt_q(_bench.per_round(gtimes[f"{label}:on"], gtimes[f"{label}:off"],
                                                 lambda a, b: a / b), 1, 3))
    print(_bench.table(["graph", "nodes", "bare µs/forward", "off - bare µs", "on - bare µs",
                        "on - bare µs/node", "on/off ratio"], rows))
    if args.json:
        args.json.write_text(json.dumps({"machine": machine, "args": vars(args) | {
            "json": str(args.json)}, "module": times, "nemo": nemo_times, "graph": gtimes,
            "graph_nodes": sizes}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
