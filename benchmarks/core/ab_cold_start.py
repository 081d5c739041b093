"""Cold start of the ``neuralgraph`` CLI, two checkouts side by side (before/after a change).

``cold_start.py`` measures one checkout; comparing two of its runs mixes the change with the
machine's drift between the runs. Here every round runs each CLI command once per checkout, in
an order rotated every round, plus one ``python -c "import torch"`` as the yardstick, so both
checkouts see the same load. Reported per command: wall and CPU time (user + sys of the child,
``os.wait4``) of each checkout as median [q1, q3], and the per-round ratio B / A and difference
B - A, summarized the same way.

Each checkout needs its own venv with neuralgraph installed from it (``DIR/.venv``, or
``--a-python``/``--b-python``). The toy plugin is loaded from each checkout's ``tests/toy``
(``NEURALGRAPH_PLUGINS=ng_toy``), and each command runs in its checkout's directory.

    python benchmarks/core/ab_cold_start.py --a ../base --b . [--rounds R] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import _bench  # noqa: E402

CLI_ARGS: dict[str, list[str]] = {
    "--help": ["--help"],
    "plugins": ["plugins"],
    "info Linear in_features=4 out_features=2": ["info", "Linear", "in_features=4",
                                                "out_features=2"],
    "check tests/toy/regression.yaml": ["check", "tests/toy/regression.yaml"],
}
TORCH = 'python -c "import torch"'


def side_env(checkout: Path) -> dict[str, str]:
    """The environment of a command of ``checkout``: its toy plugin, 2 OpenMP threads."""
    env = dict(os.environ)
    env["NEURALGRAPH_PLUGINS"] = "ng_toy"
    env["PYTHONPATH"] = str(checkout / "tests" / "toy")
    env.setdefault("OMP_NUM_THREADS", str(_bench.THREADS))
    return env


def cli_argv(python: Path, args: list[str]) -> list[str]:
    """The console script ``neuralgraph`` next to ``python``, else ``python -m``."""
    script = python.parent / "neuralgraph"
    return [str(script), *args] if script.exists() else [str(python), "-m", "neuralgraph.cli",
                                                        *args]


def run_once(argv: list[str], cwd: Path, env: dict[str, str]) -> dict[str, float]:
    """Run ``argv`` to completion; wall seconds and the child's CPU seconds (user + sys)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    code = os.waitstatus_to_exitcode(status)
    err = proc.stderr.read().decode() if proc.stderr else ""
    if code != 0:
        raise RuntimeError(f"{' '.join(argv)} (in {cwd}) exited {code}: {err[-500:]}")
    return {"wall": wall, "cpu": usage.ru_utime + usage.ru_stime}


def commit_of(checkout: Path) -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=checkout, text=True,
                              capture_output=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--a", type=Path, required=True, help="checkout A (before)")
    p.add_argument("--b", type=Path, required=True, help="checkout B (after)")
    p.add_argument("--a-python", type=Path, help="A's python (default A/.venv/bin/python)")
    p.add_argument("--b-python", type=Path, help="B's python (default B/.venv/bin/python)")
    p.add_argument("--rounds", type=int, default=15, help="interleaved rounds (default 15)")
    p.add_argument("--only", default="", help="comma-separated subset of: "
                   + ", ".join(CLI_ARGS))
    p.add_argument("--json", type=Path, help="write every measurement here")
    args = p.parse_args(argv)
    args.a, args.b = args.a.resolve(), args.b.resolve()
    # Not resolved: the venv's bin/python is a symlink to the base interpreter.
    args.a_python = args.a_python or args.a / ".venv" / "bin" / "python"
    args.b_python = args.b_python or args.b / ".venv" / "bin" / "python"
    names = [n.strip() for n in args.only.split(",") if n.strip()] or list(CLI_ARGS)
    unknown = set(names) - set(CLI_ARGS)
    if unknown:
        p.error(f"--only: unknown {sorted(unknown)}")
    args.names = names
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    machine = _bench.machine()
    machine["commit"] = {"a": commit_of(args.a), "b": commit_of(args.b)}
    print(_bench.machine_line(machine))
    sides = {"a": (args.a, args.a_python), "b": (args.b, args.b_python)}
    cmds: dict[str, tuple[list[str], Path, dict[str, str]]] = {
        TORCH: ([str(args.a_python), "-c", "import torch"], args.a, side_env(args.a))}
    for name in args.names:
        for side, (checkout, python) in sides.items():
            cmds[f"{side}: {name}"] = (cli_argv(python, CLI_ARGS[name]), checkout,
                                      side_env(checkout))
    store: dict[str, list[dict[str, float]]] = {}

    def measure(key: str) -> Any:
        def run() -> float:
            result = run_once(*cmds[key])
            store.setdefault(key, []).append(result)
            return result["wall"]

        return run

    cases = {key: measure(key) for key in cmds}
    for run in cases.values():  # warm the page cache (.pyc files, shared libraries)
        run()
    store.clear()
    load_start = os.getloadavg()
    print(f"{args.rounds} rounds x {len(cmds)} processes", file=sys.stderr)
    _bench.interleave(cases, args.rounds, progress=True)
    load_end = os.getloadavg()

    print(f"\n## A {machine['commit']['a']} vs B {machine['commit']['b']}, {args.rounds} "
          f"interleaved rounds; load {tuple(round(x, 2) for x in load_start)} -> "
          f"{tuple(round(x, 2) for x in load_end)}; s, median [q1, q3]\n")
    torch_runs = store[TORCH]
    print(f"`{TORCH}`: wall {_bench.fmt_q([r['wall'] for r in torch_runs], 1, 3)}, CPU "
          f"{_bench.fmt_q([r['cpu'] for r in torch_runs], 1, 3)}\n")
    rows = []
    summary: dict[str, Any] = {}
    for name in args.names:
        a, b = store[f"a: {name}"], store[f"b: {name}"]
        row = [f"`neuralgraph {name}`"]
        summary[name] = {}
        for clock in ("wall", "cpu"):
            xa, xb = [r[clock] for r in a], [r[clock] for r in b]
            ratio = _bench.per_round(xb, xa, lambda x, y: x / y)
            diff = _bench.per_round(xb, xa, lambda x, y: (x - y) * 1e3)
            row += [_bench.fmt_q(xa, 1e3, 1), _bench.fmt_q(xb, 1e3, 1), _bench.fmt_q(ratio, 1, 3),
                    _bench.fmt_q(diff, 1, 1)]
            summary[name][clock] = {"a": _bench.quartiles(xa), "b": _bench.quartiles(xb),
                                    "b_over_a": _bench.quartiles(ratio),
                                    "b_minus_a_ms": _bench.quartiles(diff)}
        rows.append(row)
    print(_bench.table(["command", "A wall ms", "B wall ms", "B/A wall", "B-A wall ms",
                        "A CPU ms", "B CPU ms", "B/A CPU", "B-A CPU ms"], rows))
    if args.json:
        args.json.write_text(json.dumps({
            "machine": machine, "load_start": load_start, "load_end": load_end,
            "args": {k: str(v) for k, v in vars(args).items()},
            "commands": {k: v[0] for k, v in cmds.items()}, "runs": store,
            "summary": summary}, indent=1))
        print(f"\nwrote {args.json}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
