"""The ``neuralgraph asr synth`` command: its arguments, the progress report on stderr, and the
summary of the corpus written.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from types import TracebackType
from typing import TextIO

from neuralgraph import Progress
from neuralgraph_asr.synth.corpus import KINDS, synthesize_corpus
from neuralgraph_asr.synth.render import _SUBTYPES
from neuralgraph_asr.synth.voices import DEFAULT_HELDOUT_VOICES, DEFAULT_VOICES


class _SplitProgress:
    """``synthesize_corpus``'s progress callback: one :class:`neuralgraph.Progress` per split on
    ``stream`` (stderr by default), so a tqdm bar per split on a terminal, otherwise a line such
    as ``synth train: 1200/8000 utterances (15%), 42 s`` per split at most every ``interval``
    seconds and one when the split is done. Use it as a context manager (closes the displays)."""

    def __init__(self, stream: TextIO | None = None, interval: float = 10.0) -> None:
        self.stream = stream
        self.interval = interval
        self.splits: dict[str, Progress] = {}

    def __call__(self, split: str, done: int, total: int) -> None:
        progress = self.splits.get(split)
        if progress is None:
            progress = Progress(total, f"synth {split}", unit="utterances",
                                interval=self.interval, stream=self.stream)  # fmt: skip
            self.splits[split] = progress
        progress.update(done - progress.n)

    def __enter__(self) -> _SplitProgress:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for progress in self.splits.values():
            progress.close()


def configure_synth_parser(parser: argparse.ArgumentParser) -> None:
    """Add the arguments of ``neuralgraph asr synth`` to ``parser``."""
    parser.add_argument("--out", required=True, type=Path, help="output folder")
    parser.add_argument("--train", type=int, default=400, help="train utterances (400)")
    parser.add_argument("--dev", type=int, default=60, help="dev utterances, train voices (60)")
    parser.add_argument("--heldout", type=int, default=60, help="heldout-voice utterances (60)")
    parser.add_argument("--kind", choices=KINDS, default="digits",
                        help="texts (digits); commands: a speech-commands classification "
                             "corpus of --words, `unknown` words and `silence`")
    parser.add_argument("--words", nargs="+", metavar="WORD", default=None,
                        help="the target words of --kind commands (default: Speech Commands' "
                             "yes no up down left right on off stop go)")
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
    with _SplitProgress() as progress:
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
            words=args.words,
        )
    elapsed = time.perf_counter() - start
    for split, path in manifests.items():
        rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
        hours = sum(r["duration"] for r in rows) / 3600
        speakers = len({r["speaker"] for r in rows})
        print(f"{split:8s} {len(rows):6d} utterances {hours:7.3f} h {speakers:4d} voices  {path}")
    labels = Path(args.out) / "labels.json"
    if args.kind == "commands" and labels.is_file():
        print(f"labels   {' '.join(json.loads(labels.read_text(encoding='utf-8')))}  {labels}")
    print(f"synthesized in {elapsed:.1f} s")
    return 0
