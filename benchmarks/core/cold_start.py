"""Cold start of the ``neuralgraph`` CLI, next to ``import torch`` / ``import pytorch_lightning``.

Every command runs in a fresh process, all commands once per round in a rotated order, so that
the baselines and the CLI commands see the same machine load. Reported: wall time and CPU time
(user + sys of the child, from ``os.wait4``) as median [q1, q3], and the per-round ratio of each
command's wall time to ``python -c "import torch"``'s in the same round.

Then each CLI command runs once more under ``python -X importtime``: which heavy packages it
imports (Lightning must not be among them for --help/plugins/info/check), how many modules, and
import self time summed per top-level package. Also the top contributors of
``python -X importtime -c "import neuralgraph"``.

The toy plugin is loaded (``NEURALGRAPH_PLUGINS=ng_toy``, ``PYTHONPATH=tests/toy``), as are the
plugins installed as entry points (core, asr).

    python benchmarks/core/cold_start.py [--quick] [--rounds R] [--json OUT]
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

ENV = _bench.setup_toy_env()
PY = sys.executable
REGRESSION = str(_bench.TOY_DIR / "regression.yaml")

CLI_ARGS: dict[str, list[str]] = {
    "neuralgraph --help": ["--help"],
    "neuralgraph plugins": ["plugins"],
    "neuralgraph info Linear in_features=4 out_features=2": ["info", "Linear", "in_features=4",
                                                            "out_features=2"],
    "neuralgraph check tests/toy/regression.yaml": ["check", REGRESSION],
}
BASELINES: dict[str, list[str]] = {
    "python -c pass": [PY, "-c", "pass"],
    'python -c "import neuralgraph"': [PY, "-c", "import neuralgraph"],
    'python -c "import torch"': [PY, "-c", "import torch"],
    'python -c "import pytorch_lightning"': [PY, "-c", "import pytorch_lightning"],
}
TORCH = 'python -c "import torch"'
HEAVY = ("torch", "pytorch_lightning", "lightning_fabric", "lightning", "torchmetrics",
         "lightning_utilities", "tensorboard", "omegaconf", "hydra", "antlr4", "networkx", "yaml",
         "torchaudio", "sympy", "numpy", "neuralgraph_asr", "neuralgraph.graph",
         "neuralgraph.model", "neuralgraph.train")
LIGHTNING = ("pytorch_lightning", "lightning_fabric", "lightning")

PROBE = """
import contextlib, io, json, sys
from neuralgraph.cli import main
with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
    rc = main(sys.argv[1:])
print(json.dumps({"rc": rc, "modules": len(sys.modules),
                  "loaded": [m for m in HEAVY if m in sys.modules]}))
"""


def cli_argv(args: list[str]) -> list[str]:
    """The console script ``neuralgraph`` next to this Python, else ``python -m``."""
    script = Path(PY).parent / "neuralgraph"
    return [str(script), *args] if script.exists() else [PY, "-m", "neuralgraph.cli", *args]


def commands() -> dict[str, list[str]]:
    """Every measured command line, baselines first."""
    return {**BASELINES, **{name: cli_argv(a) for name, a in CLI_ARGS.items()}}


def run_once(argv: list[str]) -> dict[str, float]:
    """Run ``argv`` to completion; wall seconds and the child's CPU seconds (user + sys)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    err = proc.stderr.read().decode() if proc.stderr else ""
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited {proc.returncode}: {err[-500:]}")
    return {"wall": wall, "cpu": usage.ru_utime + usage.ru_stime}


def timings(rounds: int) -> dict[str, list[dict[str, float]]]:
    """Interleaved fresh-process runs of every command."""
    store: dict[str, list[dict[str, float]]] = {}
    cmds = commands()

    def measure(name: str) -> Any:
        def run() -> float:
            result = run_once(cmds[name])
            store.setdefault(name, []).append(result)
            return result["wall"]

        return run

    cases = {name: measure(name) for name in cmds}
    for run in cases.values():  # warm the page cache (.pyc files, shared libraries)
        run()
    store.clear()
    _bench.interleave(cases, rounds, progress=True)
    return store


# --- importtime ------------------------------------------------------------------------------


def importtime(argv_tail: list[str]) -> tuple[str, str]:
    """Stdout and stderr of ``python -X importtime ARGV_TAIL``."""
    proc = subprocess.run([PY, "-X", "importtime", *argv_tail], env=ENV, text=True,
                          capture_output=True, check=True)
    return proc.stdout, proc.stderr


def parse_importtime(text: str) -> list[tuple[str, int, int]]:
    """(module, self µs, cumulative µs) for every ``import time:`` line."""
    rows = []
    for line in text.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        self_us, cumulative, name = line.split(":", 1)[1].split("|")
        rows.append((name.strip(), int(self_us), int(cumulative)))
    return rows


def by_package(rows: list[tuple[str, int, int]]) -> dict[str, float]:
    """Import self time (s) summed per top-level package."""
    totals: dict[str, float] = {}
    for name, self_us, _ in rows:
        pkg = name.split(".")[0]
        totals[pkg] = totals.get(pkg, 0.0) + self_us / 1e6
    return dict(sorted(totals.items(), key=lambda kv: -kv[1]))


def probes() -> dict[str, dict[str, Any]]:
    """Per CLI command: exit code, module count, heavy packages loaded, import time by package."""
    results = {}
    code = f"HEAVY = {HEAVY!r}\n{PROBE}"
    for name, args in CLI_ARGS.items():
        out, err = importtime(["-c", code, *args])
        result = json.loads(out.strip().splitlines()[-1])
        rows = parse_importtime(err)
        result["import_s"] = sum(r[1] for r in rows) / 1e6
        result["packages"] = by_package(rows)
        results[name] = result
    return results


# --- report ----------------------------------------------------------------------------------


def timing_rows(store: dict[str, list[dict[str, float]]]) -> list[list[str]]:
    torch_wall = [r["wall"] for r in store[TORCH]]
    rows = []
    for name, runs in store.items():
        ratio = [r["wall"] / t for r, t in zip(runs, torch_wall)]
        rows.append([f"`{name}`", _bench.fmt_q([r["wall"] for r in runs], 1, 2),
                     _bench.fmt_q([r["cpu"] for r in runs], 1, 2), _bench.fmt_q(ratio, 1, 2)])
    return rows


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="2 rounds (a smoke run)")
    p.add_argument("--rounds", type=int, default=None, help="interleaved rounds (default 7)")
    p.add_argument("--json", type=Path, help="write every measurement here")
    args = p.parse_args(argv)
    args.rounds = args.rounds or (2 if args.quick else 7)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    machine = _bench.machine()
    print(_bench.machine_line(machine))
    print(f"timings: {args.rounds} rounds x {len(commands())} processes", file=sys.stderr)
    store = timings(args.rounds)
    probe = probes()
    _, err = importtime(["-c", "import neuralgraph"])
    ng_rows = parse_importtime(err)

    print(f"\n## Fresh-process wall and CPU time, {args.rounds} interleaved rounds; s, "
          "median [q1, q3]\n")
    print(_bench.table(["command", "wall s", "CPU s (user+sys)", "wall / import torch"],
                       timing_rows(store)))
    print("\n## What each CLI command imports (`python -X importtime`, one run)\n")
    rows = []
    for name, res in probe.items():
        top = ", ".join(f"{k} {v:.2f}" for k, v in list(res["packages"].items())[:5])
        lightning = [m for m in res["loaded"] if m in LIGHTNING]
        rows.append([f"`{name}`", str(res["rc"]), str(res["modules"]),
                     ", ".join(lightning) or "no", ", ".join(m for m in res["loaded"]
                                                            if m not in LIGHTNING),
                     f"{res['import_s']:.2f}", top])
    print(_bench.table(["command", "exit", "modules", "Lightning?", "other heavy imports",
                        "import s", "import self s by package (top 5)"], rows))
    print('\n## `python -X importtime -c "import neuralgraph"` (one run)\n')
    print(_bench.table(["package", "self s"], [[k, f"{v:.3f}"] for k, v in list(
        by_package(ng_rows).items())[:10]]))
    print()
    top_cum = sorted(ng_rows, key=lambda r: -r[2])[:15]
    print(_bench.table(["module", "self ms", "cumulative ms"],
                       [[f"`{n}`", f"{s / 1e3:.1f}", f"{c / 1e3:.1f}"] for n, s, c in top_cum]))
    if args.json:
        args.json.write_text(json.dumps({"machine": machine, "timings": store, "probes": probe,
                                         "import_neuralgraph": ng_rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
