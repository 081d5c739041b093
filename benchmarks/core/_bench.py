"""What the core benchmarks share: the toy plugin's environment, machine facts, statistics, tables.

Every benchmark here compares variants *side by side*: each round runs every variant once, in an
order rotated every round (A B C, B C A, C A B, ...), so that the slow phases of a shared machine
hit all variants alike. Results are medians with the interquartile range (IQR, q1..q3) over
rounds; ratios are computed per round, then summarized.
"""

from __future__ import annotations

import datetime
import os
import platform
import statistics
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
TOY_DIR = REPO / "tests" / "toy"
THREADS = 2
"""Intra-op threads of every benchmark process (``torch.set_num_threads``, ``OMP_NUM_THREADS``)."""


def setup_toy_env() -> dict[str, str]:
    """Load the toy plugin (``ng_toy``) here and in subprocesses; return the subprocess env.

    Must run before the registry is first used (it reads ``NEURALGRAPH_PLUGINS`` once).
    """
    plugins = [p for p in os.environ.get("NEURALGRAPH_PLUGINS", "").split(",") if p]
    if "ng_toy" not in plugins:
        plugins.append("ng_toy")
    os.environ["NEURALGRAPH_PLUGINS"] = ",".join(plugins)
    paths = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    if str(TOY_DIR) not in paths:
        paths.insert(0, str(TOY_DIR))
    os.environ["PYTHONPATH"] = os.pathsep.join(paths)
    os.environ.setdefault("OMP_NUM_THREADS", str(THREADS))
    if str(TOY_DIR) not in sys.path:
        sys.path.insert(0, str(TOY_DIR))
    return dict(os.environ)


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (``platform.processor()`` elsewhere)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine() -> dict[str, Any]:
    """CPU model, core counts, load, Python/torch/Lightning versions and the date of the run."""
    versions: dict[str, str] = {"python": platform.python_version()}
    for module in ("torch", "pytorch_lightning"):
        try:
            from importlib import metadata

            dist = "pytorch-lightning" if module == "pytorch_lightning" else module
            versions[module] = metadata.version(dist)
        except Exception:  # not installed: say so rather than fail
            versions[module] = "absent"
    return {
        "cpu": cpu_model(),
        "logical_cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "loadavg": tuple(round(x, 2) for x in os.getloadavg()),
        "platform": platform.platform(),
        "versions": versions,
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "commit": git_commit(),
    }


def git_commit() -> str:
    """The repository's HEAD, with ``+dirty`` when neuralgraph/ has uncommitted changes."""
    import subprocess

    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, text=True,
                              capture_output=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "neuralgraph"], cwd=REPO,
                               text=True, capture_output=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("+dirty" if dirty else "")


def machine_line(m: Mapping[str, Any]) -> str:
    """One line describing the machine (for a benchmark's printout)."""
    v = m["versions"]
    return (f"machine: {m['cpu']}, {m['logical_cores']} logical cores ({m['usable_cores']} "
            f"usable), load {m['loadavg']}; python {v['python']}, torch {v['torch']}, "
            f"pytorch-lightning {v['pytorch_lightning']}; {m['date']}; commit {m['commit']}")


def quartiles(xs: Sequence[float]) -> tuple[float, float, float]:
    """(q1, median, q3) of ``xs`` (inclusive method; a single value gives it three times)."""
    if len(xs) == 1:
        return xs[0], xs[0], xs[0]
    q1, med, q3 = statistics.quantiles(xs, n=4, method="inclusive")
    return q1, med, q3


def fmt_q(xs: Sequence[float], scale: float = 1.0, digits: int = 2, unit: str = "") -> str:
    """``median [q1, q3]`` of ``xs`` times ``scale``."""
    q1, med, q3 = (x * scale for x in quartiles(xs))
    return f"{med:.{digits}f}{unit} [{q1:.{digits}f}, {q3:.{digits}f}]"


def rotated(names: Sequence[str], round_index: int) -> list[str]:
    """``names`` rotated by ``round_index`` (A B C, B C A, C A B, ...)."""
    k = round_index % len(names)
    return [*names[k:], *names[:k]]


def interleave(variants: Mapping[str, Callable[[], float]], rounds: int,
               progress: bool = False) -> dict[str, list[float]]:
    """Run every variant once per round in a rotated order; each call returns one measurement."""
    names = list(variants)
    results: dict[str, list[float]] = {name: [] for name in names}
    for r in range(rounds):
        for name in rotated(names, r):
            results[name].append(variants[name]())
        if progress:
            print(f"  round {r + 1}/{rounds}", file=sys.stderr, end="\r")
    if progress:
        print(file=sys.stderr)
    return results


def per_round(a: Sequence[float], b: Sequence[float], op: Callable[[float, float], float]
              ) -> list[float]:
    """``op(a[i], b[i])`` for every round (e.g. a ratio or a difference)."""
    return [op(x, y) for x, y in zip(a, b)]


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A Markdown table."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join(" --- " for _ in headers) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def graph_config(linears: int, width: int = 16, shape: str = "chain", dropout: bool = False,
                 interpolate: bool = False, seed: int = 0) -> dict[str, Any]:
    """A toy-plugin graph: ``linears`` Linear nodes fed by ``ToyRegression``, then an MSE loss.

    ``shape="chain"``: Linear (width -> width) nodes in a row, the last one (``head``) maps
    width -> 1 and feeds the loss. ``shape="tree"``: a random DAG where each Linear reads a
    uniformly random earlier node (or the data) and has a random width in 8..64, so every edge has
    its own sizes to check; ``head`` reads the last one. ``dropout`` puts a train_only Dropout
    after every chain Linear but the head. ``interpolate`` writes the chain's sizes as
    ``${width}`` (resolved by OmegaConf, as real graph files do). Nodes in all:
    ``linears + 1`` (+ ``linears - 1`` Dropouts).
    """
    import random

    if shape not in ("chain", "tree"):
        raise ValueError(f"shape must be 'chain' or 'tree' (got {shape!r})")
    if linears < 1:
        raise ValueError(f"linears must be >= 1 (got {linears})")
    rng = random.Random(seed)
    w: Any = "${width}" if interpolate else width
    cfg: dict[str, Any] = {
        "name": f"bench_{shape}_{linears}",
        "width": width,
        "trainer": {"max_epochs": 1, "accelerator": "cpu", "devices": 1},
        "data": {"module": "ToyRegression", "params": {"dim": w, "out": 1},
                 "train": {"batch_size": 16, "n_samples": 64}},
        "nodes": {},
        "loss": "mse.loss",
        "optim": {"name": "adam", "lr": 1e-3},
    }
    graph: dict[str, Any] = cfg["nodes"]
    src = "data.x"
    widths: dict[str, Any] = {"data.x": w}
    for i in range(linears - 1):
        name = f"l{i}"
        if shape == "tree":
            src = rng.choice(["data.x", *(f"l{j}.y" for j in range(i))])
            out = rng.randrange(8, 65)
        else:
            out = w
        graph[name] = {"module": "Linear",
                       "params": {"in_features": widths[src], "out_features": out},
                       "inputs": {"x": src}}
        widths[f"{name}.y"] = out
        src = f"{name}.y"
        if dropout and shape == "chain":
            graph[f"d{i}"] = {"module": "Dropout", "train_only": True, "params": {"p": 0.1},
                              "inputs": {"x": src}}
            widths[f"d{i}.y"] = out
            src = f"d{i}.y"
    graph["head"] = {"module": "Linear", "params": {"in_features": widths[src],
                                                    "out_features": 1},
                     "inputs": {"x": src}}
    graph["mse"] = {"module": "MSE", "inputs": {"pred": "head.y", "target": "data.y"}}
    return cfg


def graph_yaml(*args: Any, **kwargs: Any) -> str:
    """:func:`graph_config` as YAML text."""
    import yaml

    return yaml.safe_dump(graph_config(*args, **kwargs), sort_keys=False,
                          default_flow_style=None)
