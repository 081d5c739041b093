"""Audio seconds per second delivered by the ASR training loader (soundfile reads, resampling,
augmentation, collation), for num_workers 0 and 1, against the training step's consumption.

    python benchmarks/asr_data/loader_throughput.py GRAPH [OVERRIDES...] [--batches N]
"""

from __future__ import annotations

import argparse
import time

import torch

import neuralgraph as ng


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("graph")
    parser.add_argument("overrides", nargs="*")
    parser.add_argument("--batches", type=int, default=60)
    args = parser.parse_args()
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


if __name__ == "__main__":
    main()
