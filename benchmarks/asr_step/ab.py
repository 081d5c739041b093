"""Two checkouts side by side (before/after a change): their graph and plain workers and NeMo's.

``run.py`` measures one checkout; comparing two of its runs mixes the change with the machine's
drift between the runs (on a shared machine, much larger). Here the workers of both checkouts
run in the same rounds, in an order rotated every round: ``graph@A``, ``graph@B``, ``plain@A``,
``plain@B`` (``--which``) and ``nemo``. Each checkout's workers are its own scripts
(``DIR/benchmarks/asr_step/*_worker.py``) under its own venv (``DIR/.venv/bin/python`` or
``--a-python``/``--b-python``), on the same batch (``common.py``'s seed), threads and
optimizer as ``run.py``.

Reported per phase (training step, preprocessor): per worker the median and IQR of its step
times (wall; CPU time beside), and per-round ratios (median of each worker's times in the
round): ``X@B / X@A`` (the change) and ``X@A / nemo``, ``X@B / nemo`` (the ratios ``run.py``
reports), each as median [q1, q3] over rounds, with the CPU-time ratio beside.

    python benchmarks/asr_step/ab.py --a ../base --b . --rounds 10 --steps 1 \\
        --nemo-python .nemo-venv/bin/python --json ab.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import common  # noqa: E402
import run  # noqa: E402


def commit_of(checkout: Path) -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=checkout,
            text=True,
            capture_output=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--a", type=Path, required=True, help="checkout A (before)")
    p.add_argument("--b", type=Path, required=True, help="checkout B (after)")
    p.add_argument("--a-python", help="A's python (default A/.venv/bin/python)")
    p.add_argument("--b-python", help="B's python (default B/.venv/bin/python)")
    p.add_argument(
        "--which",
        default="graph,plain",
        help="neuralgraph workers per checkout: graph,plain (default) or one of them",
    )
    p.add_argument("--no-nemo", action="store_true", help="leave NeMo's worker out")
    p.add_argument(
        "--nemo-python",
        default=run.DEFAULT_NEMO_PYTHON,
        help="python of NeMo's venv (default: as run.py)",
    )
    p.add_argument("--rounds", type=int, default=10, help="interleaved rounds (default 10)")
    p.add_argument("--steps", type=int, default=1, help="training steps per worker per round")
    p.add_argument(
        "--preproc-steps",
        type=int,
        default=10,
        help="preprocessor passes per worker per round (0 skips that phase)",
    )
    p.add_argument("--warmup", type=int, default=2, help="untimed steps per worker first")
    p.add_argument("--threads", type=int, default=common.THREADS)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--json", type=Path, help="write the full results here")
    args = p.parse_args(argv)
    args.a, args.b = args.a.resolve(), args.b.resolve()
    args.a_python = args.a_python or str(args.a / ".venv" / "bin" / "python")
    args.b_python = args.b_python or str(args.b / ".venv" / "bin" / "python")
    args.which = [w.strip() for w in args.which.split(",") if w.strip()]
    if not args.which or set(args.which) - {"graph", "plain"}:
        p.error("--which takes graph and/or plain")
    if not args.no_nemo and not Path(args.nemo_python).exists():
        p.error(
            f"NeMo's python {args.nemo_python} does not exist (--nemo-python, NEMO_PYTHON, "
            "or --no-nemo)"
        )
    # run.worker_env reads these
    args.spec_augment = False
    return args


def worker_argv(kind: str, checkout: Path, python: str) -> list[str]:
    scripts = checkout / "benchmarks" / "asr_step"
    if kind == "plain":
        return [python, str(scripts / "plain_worker.py")]
    return [
        python,
        str(scripts / "graph_worker.py"),
        str(checkout / "examples" / "asr" / "quartznet_5x5.yaml"),
    ]


def ratios(
    per_round: dict[str, list[list[float]]], pairs: list[tuple[str, str]]
) -> dict[str, dict[str, Any]]:
    out = {}
    for a, b in pairs:
        rs = [
            statistics.median(x) / statistics.median(y)
            for x, y in zip(per_round[a], per_round[b], strict=True)
        ]
        out[f"{a} / {b}"] = {**run.quartiles(rs), "max": max(rs), "per_round": rs}
    return out


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    spec = common.BatchSpec(
        batch=args.batch, seconds=args.seconds, lengths="full", min_seconds=min(8.0, args.seconds)
    )
    env = run.worker_env(args, spec)
    commits = {"A": commit_of(args.a), "B": commit_of(args.b)}
    plan: list[tuple[str, list[str]]] = []
    for kind in args.which:
        plan.append((f"{kind}@A", worker_argv(kind, args.a, args.a_python)))
        plan.append((f"{kind}@B", worker_argv(kind, args.b, args.b_python)))
    if not args.no_nemo:
        plan.append(("nemo", [args.nemo_python, str(HERE / "nemo_worker.py")]))
    pairs = [(f"{k}@B", f"{k}@A") for k in args.which]
    if not args.no_nemo:
        pairs += [(f"{k}@{s}", "nemo") for k in args.which for s in "AB"]
    result: dict[str, Any] = {
        "machine": run.machine(),
        "commits": commits,
        "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "batch": dataclasses.asdict(spec),
    }
    workers: list[run.Worker] = []
    try:
        t0 = time.perf_counter()
        for name, argv_ in plan:  # all import in parallel
            workers.append(run.Worker(name, argv_, env))
        for w in workers:
            w.hello = w.read()
            print(f"{w.name} ready at {time.perf_counter() - t0:.1f}s: {json.dumps(w.hello)}")
        for w in workers:
            w.ask(f"step {args.warmup}")
            if args.preproc_steps:
                w.ask(f"preproc {args.warmup}")
        phases = {"step": run.run_phase(workers, "step", args.rounds, args.steps)}
        if args.preproc_steps:
            phases["preproc"] = run.run_phase(workers, "preproc", args.rounds, args.preproc_steps)
    finally:
        for w in workers:
            w.close()
    result["machine"]["loadavg_end"] = os.getloadavg()
    result["workers"] = {w.name: w.hello for w in workers}
    result["phases"] = phases
    m = result["machine"]
    print(
        f"\nmachine: {m['cpu']}, {m['usable_cores']} usable cores, threads/worker "
        f"{args.threads}, load {m['loadavg_start'][0]:.2f} -> {m['loadavg_end'][0]:.2f}; "
        f"A {commits['A']}, B {commits['B']}; {args.rounds} rounds x {args.steps} steps"
    )
    result["summary"] = {}
    for phase, data in phases.items():
        summary = {
            "workers": {
                n: {
                    "wall": run.quartiles([t for r in rs for t in r]),
                    "cpu": run.quartiles([t for r in data["cpu"][n] for t in r]),
                }
                for n, rs in data["wall"].items()
            },
            "ratios": {"wall": ratios(data["wall"], pairs), "cpu": ratios(data["cpu"], pairs)},
        }
        result["summary"][phase] = summary
        print(f"{phase} (s)\n  {'worker':<9}{'median s':>10}{'IQR s':>9}{'min s':>9}{'CPU s':>9}")
        for n, s in summary["workers"].items():
            print(
                f"  {n:<9}{s['wall']['median']:>10.4f}{s['wall']['iqr']:>9.4f}"
                f"{s['wall']['min']:>9.4f}{s['cpu']['median']:>9.4f}"
            )
        for pair, r in summary["ratios"]["wall"].items():
            c = summary["ratios"]["cpu"][pair]
            print(
                f"  {pair:<16} median of per-round ratios {r['median']:.3f} "
                f"(IQR {r['q1']:.3f}-{r['q3']:.3f}, range {r['min']:.3f}-{r['max']:.3f}; "
                f"CPU-time ratio {c['median']:.3f} IQR {c['q1']:.3f}-{c['q3']:.3f})"
            )
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
