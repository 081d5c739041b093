"""Audio seconds per second delivered by the ASR training loader (soundfile reads, resampling,
augmentation, collation), for num_workers 0 and 1, against the training step's consumption.

    python benchmarks/asr_data/loader_throughput.py GRAPH [OVERRIDES...] [--batches N] [--json OUT]

``--json OUT`` writes the figures with the machine (CPU model, cores, load before and after),
the commit and the uncommitted files under ``plugins/`` and ``neuralgraph/``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import time
from pathlib import Path
from typing import Any

import torch

import neuralgraph as ng

ROOT = Path(__file__).resolve().parents[2]


def source() -> dict[str, Any]:
    """The commit and the uncommitted files of the code that runs."""

    def git(*argv: str) -> str:
        try:
            done = subprocess.run(["git", "-C", str(ROOT), *argv], capture_output=True,
                                  text=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            return ""
        return done.stdout if done.returncode == 0 else ""

    changed = git("status", "--porcelain", "--", "benchmarks/asr_data", "plugins", "neuralgraph")
    return {"commit": git("rev-parse", "HEAD").strip(),
            "uncommitted": [line[3:] for line in changed.splitlines()][:20]}


def machine() -> dict[str, Any]:
    """CPU model, cores, Python and torch, and the load average now."""
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": model or platform.processor(), "cpu_count": os.cpu_count(),
            "python": platform.python_version(), "torch": torch.__version__,
            "loadavg_start": os.getloadavg()}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("graph")
    parser.add_argument("overrides", nargs="*")
    parser.add_argument("--batches", type=int, default=60)
    parser.add_argument("--json", type=Path, help="write the figures and the machine here")
    args = parser.parse_args()
    result: dict[str, Any] = {"source": source(), "machine": machine(), "graph": args.graph,
                              "overrides": args.overrides, "batches": args.batches,
                              "torch_threads": 1, "loaders": {}}
    torch.set_num_threads(1)
    model = ng.GraphModel(ng.Graph.from_yaml(args.graph, args.overrides))
    for workers in (0, 1):
        loader = model.dataloader("train", num_workers=workers)
        audio, start = 0.0, time.perf_counter()
        for i, batch in enumerate(loader):
            audio += float(batch["audio_length"].sum()) / model.data_source.sample_rate
            if i + 1 == args.batches:
                break
        elapsed = time.perf_counter() - start
        print(f"num_workers={workers}: {audio / elapsed:.0f} audio s/s "
              f"({args.batches} batches, {audio:.0f} s of audio in {elapsed:.1f} s)")
        result["loaders"][f"num_workers={workers}"] = {
            "audio_seconds": audio, "wall_seconds": elapsed,
            "audio_seconds_per_second": audio / elapsed}
    result["machine"]["loadavg_end"] = os.getloadavg()
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
