"""The ``neuralgraph asr synth`` command: its arguments, the progress report on stderr, and the
summary of the corpus written.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from types import TracebackType
from typing import Any, TextIO

from neuralgraph_asr.synth.corpus import KINDS, synthesize_corpus
from neuralgraph_asr.synth.render import _SUBTYPES
from neuralgraph_asr.synth.voices import DEFAULT_HELDOUT_VOICES, DEFAULT_VOICES


class _ProgressReport:
    """Progress of a synthesis on ``stream`` (stderr by default), a ``synthesize_corpus``
    progress callback: a tqdm bar per split on a terminal, otherwise a line such as
    ``synth: train 1200/8000 utterances (15%), 42 s`` at most every ``interval`` seconds and
    one when a split is done. Use it as a context manager (the bars close on exit)."""

    def __init__(self, stream: TextIO | None = None, interval: float = 10.0) -> None:
        self.stream = sys.stderr if stream is None else stream
        self.interval = interval
        self.start = self.last = time.monotonic()
        isatty = getattr(self.stream, "isatty", None)
        self.bars: dict[str, Any] | None = {} if isatty is not None and isatty() else None

    def __call__(self, split: str, done: int, total: int) -> None:
        if self.bars is not None:
            bar = self.bars.get(split)
            if bar is None:
                from tqdm import tqdm

                bar = tqdm(total=total, desc=f"synth {split}", unit="utt", file=self.stream,
                           position=len(self.bars), dynamic_ncols=True)  # fmt: skip
                self.bars[split] = bar
            bar.update(done - bar.n)
            return
        now = time.monotonic()
        if done == total or (done and now - self.last >= self.interval):
            self.last = now
            print(
                f"synth: {split} {done}/{total} utterances ({100 * done // total}%), "
                f"{now - self.start:.0f} s",
                file=self.stream,
                flush=True,
            )

    def __enter__(self) -> _ProgressReport:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for bar in (self.bars or {}).values():
            bar.close()


def configure_synth_parser(parser: argparse.ArgumentParser) -> None:
    """Add the arguments of ``neuralgraph asr synth`` to ``parser``."""
    parser.add_argument("--out", required=True, type=Path, help="output folder")
    parser.add_argument("--train", type=int, default=400, help="train utterances (400)")
    parser.add_argument("--dev", type=int, default=60, help="dev utterances, train voices (60)")
    parser.add_argument("--heldout", type=int, default=60, help="heldout-voice utterances (60)")
    parser.add_argument("--kind", choices=KINDS, default="digits", help="texts (digits)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (0)")
    parser.add_argument("--workers", type=int, default=2, help="synthesizer processes (2)")
    parser.add_argument(
        "--noise-snr",
        type=float,
        nargs=2,
        metavar=("MIN", "MAX"),
        default=None,
        help="add coloured noise at a random SNR in [MIN, MAX] dB (default: clean)",
    )
    parser.add_argument(
        "--bits",
        type=int,
        choices=sorted(_SUBTYPES),
        default=16,
        help="FLAC sample size; 8 makes files 3x smaller (16)",
    )
    parser.add_argument(
        "--voices",
        nargs="+",
        default=list(DEFAULT_VOICES),
        metavar="ENGINE:NAME",
        help=f"base voices (default: the {len(DEFAULT_VOICES)} built-in ones)",
    )
    parser.add_argument(
        "--heldout-voices",
        nargs="+",
        default=list(DEFAULT_HELDOUT_VOICES),
        metavar="ENGINE:NAME",
        help="voices used only in the heldout split (default: %(default)s)",
    )


def run_synth(args: argparse.Namespace) -> int:
    """Run ``neuralgraph asr synth``: synthesize the corpus (progress on stderr) and print a
    summary; returns 0."""
    start = time.perf_counter()
    with _ProgressReport() as progress:
        manifests = synthesize_corpus(
            args.out,
            n_train=args.train,
            n_dev=args.dev,
            n_heldout=args.heldout,
            kind=args.kind,
            seed=args.seed,
            workers=args.workers,
            voices=args.voices,
            heldout_voices=args.heldout_voices,
            noise_snr_db=tuple(args.noise_snr) if args.noise_snr else None,
            bits=args.bits,
            progress=progress,
        )
    elapsed = time.perf_counter() - start
    for split, path in manifests.items():
        rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
        hours = sum(r["duration"] for r in rows) / 3600
        speakers = len({r["speaker"] for r in rows})
        print(f"{split:8s} {len(rows):6d} utterances {hours:7.3f} h {speakers:4d} voices  {path}")
    print(f"synthesized in {elapsed:.1f} s")
    return 0
