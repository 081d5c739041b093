"""``neuralgraph asr tokenizer``: a SentencePiece tokenizer trained on manifests' transcripts.

The tokenizer itself is the shared text home's (:mod:`neuralgraph_text`); this module reads the
``text`` of NeMo manifests for it.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from neuralgraph import Progress, UserError
from neuralgraph_audio import read_manifest
from neuralgraph_text import SentencePieceTokenizer, train_sentencepiece

__all__ = ["configure_tokenizer_parser", "manifest_texts", "run_tokenizer", "train_tokenizer"]


def manifest_texts(manifests: Sequence[str | Path], progress: Progress | None = None) -> list[str]:
    """The ``text`` of every entry of NeMo manifests, in order; ``progress`` (if given) counts
    the lines read.

    Raises:
        UserError: a manifest is missing or malformed.
    """
    texts = []
    for manifest in manifests:
        entries = read_manifest(manifest)[0]
        texts.extend(entry.text for entry in entries)
        if progress is not None:
            progress.update(len(entries))
    return texts


def train_tokenizer(
    manifests: Sequence[str | Path],
    out_dir: str | Path,
    vocab_size: int,
    model_type: str = "bpe",
    character_coverage: float = 1.0,
    *,
    normalize: bool = True,
    verbose: bool = False,
) -> Path:
    """Train a SentencePiece tokenizer on the transcripts of NeMo manifests.

    The files written and the other arguments are :func:`neuralgraph_text.train_sentencepiece`'s.
    ``verbose`` shows on stderr what is being done: the count of manifest lines read, the
    training (one SentencePiece call) and the time it took.

    Returns:
        The path of ``tokenizer.model``.

    Raises:
        UserError: no manifest, a manifest is missing or malformed, there is no transcript, or
            the arguments are bad (see :func:`neuralgraph_text.train_sentencepiece`).
    """
    if not manifests:
        raise UserError("at least one manifest is needed to train a tokenizer")
    with Progress(None, "reading manifests", unit="lines", disable=not verbose) as reading:
        texts = manifest_texts(manifests, reading)
    if not any(text.strip() for text in texts):
        names = ", ".join(map(str, manifests))
        raise UserError(f"no transcripts to train a tokenizer on in {names}")
    if verbose:
        print(f"training a {vocab_size}-piece {model_type} tokenizer on {len(texts)} lines...",
              file=sys.stderr, flush=True)  # fmt: skip
    start = time.perf_counter()
    model = train_sentencepiece(texts, out_dir, vocab_size, model_type, character_coverage,
                                normalize=normalize)  # fmt: skip
    if verbose:
        print(f"trained in {time.perf_counter() - start:.1f} s", file=sys.stderr, flush=True)
    return model


def configure_tokenizer_parser(parser: argparse.ArgumentParser) -> None:
    """Add the arguments of ``neuralgraph asr tokenizer`` to ``parser``."""
    parser.description = "Train a SentencePiece tokenizer on the transcripts of NeMo manifests."
    parser.add_argument("--manifest", action="append", required=True, metavar="M.json",
                        help="a JSON-lines manifest with a 'text' key (repeat for more)")
    parser.add_argument("--vocab-size", type=int, required=True, help="number of pieces")
    parser.add_argument("--type", choices=("bpe", "unigram"), default="bpe",
                        help="SentencePiece model type (default: bpe)")
    parser.add_argument("--character-coverage", type=float, default=1.0,
                        help="fraction of characters the model covers (default: 1.0)")
    parser.add_argument("--no-normalize", action="store_true",
                        help="train on the text as written (no lowercasing or punctuation removal)")
    parser.add_argument("--out", required=True, metavar="DIR",
                        help="folder for tokenizer.model, vocab.txt and train_text.txt")


def run_tokenizer(args: argparse.Namespace) -> int:
    """Run ``neuralgraph asr tokenizer`` (what it does on stderr, the model written on stdout);
    mistakes in the input raise ``UserError``."""
    model = train_tokenizer(
        args.manifest,
        args.out,
        args.vocab_size,
        model_type=args.type,
        character_coverage=args.character_coverage,
        normalize=not args.no_normalize,
        verbose=True,
    )
    vocab = SentencePieceTokenizer(model).vocab_size
    print(f"wrote {model} ({args.type}, {vocab} pieces)")
    return 0
