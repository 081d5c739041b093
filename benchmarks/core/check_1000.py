"""Time ``Graph.from_yaml(path).check()`` on 1000-node graphs: warm, cold, profiled, proposed.

Graphs (toy plugin, :func:`_bench.graph_config`), 1000 nodes each (999 Linear + MSE loss):
``chain`` (literal sizes), ``chain_interp`` (sizes written ``${width}``, as real graph files do)
and ``tree`` (a random DAG: each Linear reads a random earlier node, random widths).

* warm: in this process, registry loaded; per graph the current code and the proposed code
  (``_proposed.py``, monkeypatched in) alternate in every round; phases timed separately:
  parse (``load_yaml``), resolve (``Graph.__init__``), check (``Graph.check``).
* cold: a fresh Python process per measurement (rotated over graphs x current/proposed):
  ``import neuralgraph`` + ``Graph``, plugin registry, first ``from_yaml().check()``.
* profile: cProfile of one warm current check per graph; self time grouped by package, and the
  top-15 functions by cumulative time for one graph (``--profile-graph``).
* scaling (not with --quick): warm current vs proposed at 250..2000 nodes.

Clock: the thread's CPU time (``time.thread_time``; the machine is shared), wall time also shown.

    python benchmarks/core/check_1000.py [--quick] [--rounds R] [--cold-rounds C] [--json OUT]
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import json
import pstats
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import _bench  # noqa: E402

ENV = _bench.setup_toy_env()
GRAPHS: dict[str, dict[str, Any]] = {
    "chain": {"shape": "chain"},
    "chain_interp": {"shape": "chain", "interpolate": True},
    "tree": {"shape": "tree", "seed": 0},
}
VARIANTS = ("current", "proposed")
PHASES = ("parse", "resolve", "check", "total")


def write_graphs(folder: Path, nodes: int) -> dict[str, Path]:
    """Write every graph of ``nodes`` nodes as YAML under ``folder``."""
    paths = {}
    for name, kwargs in GRAPHS.items():
        path = folder / f"{name}_{nodes}.yaml"
        path.write_text(_bench.graph_yaml(nodes - 1, **kwargs))
        paths[name] = path
    return paths


def variant(name: str) -> contextlib.AbstractContextManager[Any]:
    """The context a measurement runs in: nothing (current) or the proposed patches."""
    if name == "current":
        return contextlib.nullcontext()
    from _proposed import proposed

    return proposed()


# --- warm ------------------------------------------------------------------------------------


def timed_check(path: Path, which: str) -> dict[str, float]:
    """One ``Graph.from_yaml(path).check()`` split in phases: thread CPU seconds, and wall."""
    from neuralgraph import config, graph

    with variant(which):
        w0, t0 = time.perf_counter(), time.thread_time()
        data, index = config.load_yaml(path)
        t1 = time.thread_time()
        g = graph.Graph(data, index)  # resolves interpolations
        t2 = time.thread_time()
        g.check()
        t3, w3 = time.thread_time(), time.perf_counter()
    return {"parse": t1 - t0, "resolve": t2 - t1, "check": t3 - t2, "total": t3 - t0,
            "wall": w3 - w0}


def warm(paths: dict[str, Path], rounds: int) -> dict[str, list[dict[str, float]]]:
    """Interleaved warm measurements keyed ``graph:variant``."""
    store: dict[str, list[dict[str, float]]] = {}

    def measure(path: Path, which: str, key: str) -> Callable[[], float]:
        def run() -> float:
            result = timed_check(path, which)
            store.setdefault(key, []).append(result)
            return result["total"]

        return run

    cases = {f"{g}:{v}": measure(p, v, f"{g}:{v}") for g, p in paths.items() for v in VARIANTS}
    for run in cases.values():  # warm-up (first-use costs: trainer args, meta device, ...)
        run()
    store.clear()
    _bench.interleave(cases, rounds, progress=True)
    return store


# --- cold ------------------------------------------------------------------------------------


def child(path: Path, which: str) -> dict[str, float]:
    """In a fresh process: import, registry, first check, second check (thread CPU and wall)."""
    w0, t0 = time.perf_counter(), time.thread_time()
    import neuralgraph

    neuralgraph.Graph  # noqa: B018 (the lazy import of neuralgraph.graph)
    w1, t1 = time.perf_counter(), time.thread_time()
    neuralgraph.get_registry()
    w2, t2 = time.perf_counter(), time.thread_time()
    with variant(which):
        neuralgraph.Graph.from_yaml(path).check()
        w3, t3 = time.perf_counter(), time.thread_time()
        neuralgraph.Graph.from_yaml(path).check()
        w4, t4 = time.perf_counter(), time.thread_time()
    return {"import": t1 - t0, "registry": t2 - t1, "first": t3 - t2, "second": t4 - t3,
            "import_wall": w1 - w0, "registry_wall": w2 - w1, "first_wall": w3 - w2,
            "second_wall": w4 - w3}


def cold(paths: dict[str, Path], rounds: int) -> dict[str, list[dict[str, float]]]:
    """Fresh-process measurements keyed ``graph:variant`` (process wall time added as ``proc``)."""
    store: dict[str, list[dict[str, float]]] = {}

    def measure(path: Path, which: str, key: str) -> Callable[[], float]:
        def run() -> float:
            w0 = time.perf_counter()
            out = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--child",
                                  str(path), "--variant", which], env=ENV, text=True,
                                 capture_output=True, check=True).stdout
            result = json.loads(out.strip().splitlines()[-1])
            result["proc"] = time.perf_counter() - w0
            store.setdefault(key, []).append(result)
            return result["proc"]

        return run

    cases = {f"{g}:{v}": measure(p, v, f"{g}:{v}") for g, p in paths.items() for v in VARIANTS}
    _bench.interleave(cases, rounds, progress=True)
    return store


# --- profile ---------------------------------------------------------------------------------


def profile(path: Path) -> pstats.Stats:
    """cProfile of one warm, current ``Graph.from_yaml(path).check()``."""
    from neuralgraph import Graph

    Graph.from_yaml(path).check()
    prof = cProfile.Profile()
    prof.enable()
    Graph.from_yaml(path).check()
    prof.disable()
    return pstats.Stats(prof)


def package_of(filename: str) -> str:
    """``yaml``, ``omegaconf``, ``torch``, ``neuralgraph``... for a profiled function's file."""
    if filename.startswith("~") or filename.startswith("<"):
        return "builtins"
    parts = Path(filename).parts
    if "site-packages" in parts:
        return parts[parts.index("site-packages") + 1].removesuffix(".py")
    if "neuralgraph" in parts:
        return "neuralgraph"
    if "toy" in parts:
        return "ng_toy"
    return "stdlib"


def by_package(stats: pstats.Stats) -> list[tuple[str, float]]:
    """Self time summed per package, largest first."""
    totals: dict[str, float] = {}
    for (filename, _, _), (_, _, tottime, _, _) in stats.stats.items():  # type: ignore[attr-defined]
        pkg = package_of(filename)
        totals[pkg] = totals.get(pkg, 0.0) + tottime
    return sorted(totals.items(), key=lambda kv: -kv[1])


def top(stats: pstats.Stats, n: int, key: str) -> list[list[str]]:
    """The ``n`` functions with the largest ``key`` ("cumulative" or "tottime") as table rows."""
    rows = []
    entries = stats.stats.items()  # type: ignore[attr-defined]
    index = 3 if key == "cumulative" else 2
    for (filename, line, func), values in sorted(entries, key=lambda kv: -kv[1][index])[:n]:
        _, nc, tt, ct, _ = values
        short = "/".join(Path(filename).parts[-2:]) if "/" in filename else filename
        rows.append([f"`{short}:{line}({func})`", str(nc), f"{tt:.3f}", f"{ct:.3f}"])
    return rows


# --- scaling ---------------------------------------------------------------------------------


def scaling(folder: Path, sizes: list[int], rounds: int) -> dict[str, list[float]]:
    """Warm total CPU seconds keyed ``graph:nodes:variant`` (chain and tree)."""
    cases: dict[str, Callable[[], float]] = {}
    for n in sizes:
        paths = write_graphs(folder, n)
        for g in ("chain", "tree"):
            for v in VARIANTS:
                cases[f"{g}:{n}:{v}"] = (lambda p=paths[g], v=v: timed_check(p, v)["total"])
    return _bench.interleave(cases, rounds, progress=True)


# --- report ----------------------------------------------------------------------------------


def phase_rows(store: dict[str, list[dict[str, float]]]) -> list[list[str]]:
    rows = []
    for g in GRAPHS:
        cur = store[f"{g}:current"]
        for v in VARIANTS:
            runs = store[f"{g}:{v}"]
            row = [g, v, *(_bench.fmt_q([r[k] for r in runs], 1, 3) for k in (*PHASES, "wall"))]
            ratios = [a["total"] / b["total"] for a, b in zip(cur, runs)]
            row.append(_bench.fmt_q(ratios, 1, 1) + "x" if v != "current" else "")
            rows.append(row)
    return rows


def cold_rows(store: dict[str, list[dict[str, float]]]) -> list[list[str]]:
    rows = []
    for g in GRAPHS:
        if f"{g}:current" not in store:
            continue
        for v in VARIANTS:
            runs = store[f"{g}:{v}"]
            rows.append([g, v, *(_bench.fmt_q([r[k] for r in runs], 1, 2) for k in (
                "import", "registry", "first", "second", "first_wall", "proc"))])
    return rows


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true",
                   help="few rounds; cold and profile on one graph; no scaling (a smoke run)")
    p.add_argument("--nodes", type=int, default=1000, help="nodes per graph (default 1000)")
    p.add_argument("--rounds", type=int, default=None, help="warm rounds (default 10)")
    p.add_argument("--cold-rounds", type=int, default=None, help="cold rounds (default 3)")
    p.add_argument("--profile-graph", default="chain_interp", choices=list(GRAPHS))
    p.add_argument("--keep", type=Path, help="write the graph files here (default: a temp dir)")
    p.add_argument("--json", type=Path, help="write every measurement here")
    p.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--variant", default="current", choices=VARIANTS, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    args.rounds = args.rounds or (2 if args.quick else 10)
    args.cold_rounds = args.cold_rounds or (1 if args.quick else 3)
    return args


@contextlib.contextmanager
def folder(keep: Path | None) -> Iterator[Path]:
    if keep is not None:
        keep.mkdir(parents=True, exist_ok=True)
        yield keep
        return
    with tempfile.TemporaryDirectory(prefix="ng_check_") as tmp:
        yield Path(tmp)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child is not None:
        print(json.dumps(child(args.child, args.variant)))
        return 0
    import torch

    torch.set_num_threads(_bench.THREADS)
    machine = _bench.machine()
    print(_bench.machine_line(machine))
    result: dict[str, Any] = {"machine": machine, "args": {k: str(v) for k, v in vars(
        args).items()}}
    with folder(args.keep) as tmp:
        paths = write_graphs(tmp, args.nodes)
        from neuralgraph import get_registry

        get_registry()
        print(f"warm: {args.rounds} rounds", file=sys.stderr)
        result["warm"] = warm(paths, args.rounds)
        cold_paths = {"chain": paths["chain"]} if args.quick else paths
        print(f"cold: {args.cold_rounds} rounds of {2 * len(cold_paths)} processes",
              file=sys.stderr)
        result["cold"] = cold(cold_paths, args.cold_rounds)
        profiled = [args.profile_graph] if args.quick else list(paths)
        stats = {g: profile(paths[g]) for g in profiled}
        sizes = [250, 500, 1000, 2000]
        if not args.quick:
            print(f"scaling: {sizes}", file=sys.stderr)
            result["scaling"] = scaling(tmp, sizes, 3)

    n = args.nodes
    print(f"\n## Warm `Graph.from_yaml(p).check()`, {n} nodes, {args.rounds} interleaved rounds; "
          "thread CPU s, median [q1, q3]\n")
    print(_bench.table(["graph", "code", "parse", "resolve", "check", "total", "total wall",
                        "speed-up"], phase_rows(result["warm"])))
    print(f"\n## Cold (fresh process), {args.cold_rounds} rounds; CPU s unless wall\n")
    print(_bench.table(["graph", "code", "import neuralgraph + Graph",
                        "registry (loads plugins, torch)", "1st check", "2nd check",
                        "1st check wall", "process wall"], cold_rows(result["cold"])))
    print(f"\n## Where a warm current check's time goes (cProfile self time, s), {n} nodes\n")
    packages = {g: dict(by_package(s)) for g, s in stats.items()}
    names = sorted({k for p in packages.values() for k in p},
                   key=lambda k: -sum(p.get(k, 0) for p in packages.values()))
    print(_bench.table(["package", *stats],
                       [[k, *(f"{packages[g].get(k, 0):.3f}" for g in stats)] for k in names
                        if any(packages[g].get(k, 0) >= 0.005 for g in stats)]))
    for key in ("cumulative", "tottime"):
        print(f"\n### Top 15 by {key} time, `{args.profile_graph}` (cProfile, s)\n")
        print(_bench.table(["function", "calls", "self", "cumulative"],
                           top(stats[args.profile_graph], 15, key)))
    if "scaling" in result:
        print("\n## Scaling (warm total CPU s, median of 3 interleaved rounds)\n")
        rows = []
        for g in ("chain", "tree"):
            for size in sizes:
                cur = result["scaling"][f"{g}:{size}:current"]
                new = result["scaling"][f"{g}:{size}:proposed"]
                rows.append([g, str(size), _bench.fmt_q(cur, 1, 3), _bench.fmt_q(new, 1, 3),
                             f"{1e3 * _bench.quartiles(cur)[1] / size:.2f}",
                             f"{1e3 * _bench.quartiles(new)[1] / size:.2f}"])
        print(_bench.table(["graph", "nodes", "current s", "proposed s", "current ms/node",
                            "proposed ms/node"], rows))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
