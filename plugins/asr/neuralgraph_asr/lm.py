"""Word lexicon and n-gram language model files for CTC beam search, made from manifests.

``neuralgraph asr lm --manifest train_manifest.json --out lm/ --labels ...`` writes

- ``lm/lexicon.txt``: one line per word of the transcripts, ``word w o r d |`` (flashlight's
  lexicon format; ``|`` stands for the space label), words spelled with the model's labels;
  with ``--tokenizer tokenizer.model`` (a word-piece model), spelled in its pieces instead:
  ``word ▁wo rd``;
- ``lm/lm.arpa``: a word n-gram model in ARPA format (KenLM and flashlight read it), with
  interpolated absolute discounting (discount 0.5) and an ``<unk>`` word.

Both go to ``transcribe --decoder beam --lexicon ... --lm ...`` and to the WER metric's
``decoding: beam`` (``neuralgraph evaluate ... ++metrics.wer.params.lexicon=lm/lexicon.txt``).
"""

from __future__ import annotations

import argparse
import json
import math
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from neuralgraph import UserError

__all__ = ["arpa_text", "configure_lm_parser", "lexicon_text", "piece_lexicon_text", "run_lm"]

DISCOUNT = 0.5
UNK_COUNT = 0.5  # pseudo-count of <unk> among the unigrams
BOS, EOS, UNK = "<s>", "</s>", "<unk>"


def lexicon_text(words: Iterable[str], labels: Sequence[str]) -> str:
    """Flashlight lexicon lines ``word w o r d |`` for the words spelled with ``labels``.

    Raises UserError for a word with a character that is not a label.
    """
    return _lexicon(words, lambda word: [*word, "|"], {*labels, "|"},
                    "has characters {stray} that are not labels")


def piece_lexicon_text(words: Iterable[str], spell: Callable[[str], list[str]],
                       pieces: Sequence[str]) -> str:
    """Flashlight lexicon lines ``word ▁wo rd`` for a word-piece model: ``spell`` gives a
    word's pieces, each of which must be among ``pieces`` (the model's vocabulary).

    Raises UserError for a word the tokenizer can only spell with unknown pieces.
    """
    return _lexicon(words, spell, set(pieces),
                    "spells as {spelled} with pieces {stray} that are not in the tokenizer's "
                    "vocabulary")


def _lexicon(words: Iterable[str], spell: Callable[[str], list[str]], known: set[str],
             problem: str) -> str:
    """One ``word unit unit ...`` line per distinct word, sorted; ``problem`` (formatted with
    ``spelled`` and ``stray``) describes a word spelled with units outside ``known``."""
    lines = []
    for word in sorted(set(words)):
        spelled = spell(word)
        stray = sorted(set(spelled) - known)
        if stray or not spelled:
            raise UserError(f"word {word!r} " + problem.format(spelled=spelled, stray=stray))
        lines.append(" ".join([word, *spelled]))
    return "\n".join(lines) + "\n"


def _log10(p: float) -> float:
    return math.log10(p) if p > 0 else -99.0


def arpa_text(sentences: Iterable[Sequence[str]], order: int = 2) -> str:
    """An ARPA n-gram model of word sentences, interpolated absolute discounting.

    For a history h seen c(h) times with N(h) distinct continuations,
    ``p(w|h) = max(c(h,w) - D, 0) / c(h) + bo(h) * p(w|h')`` with ``bo(h) = D * N(h) / c(h)``
    and h' the history without its oldest word; unigrams are relative frequencies with
    ``<unk>`` given a pseudo-count. Every conditional distribution sums to one.
    """
    if order < 1:
        raise UserError(f"order must be >= 1 (got {order})")
    counts: list[Counter[tuple[str, ...]]] = [Counter() for _ in range(order + 1)]
    for words in sentences:
        padded = [BOS, *words, EOS]
        for n in range(1, order + 1):
            for i in range(len(padded) - n + 1):
                gram = tuple(padded[i : i + n])
                if n == 1 and gram == (BOS,):
                    continue
                counts[n][gram] += 1
    if not counts[1]:
        raise UserError("no words to build a language model from")
    total = sum(counts[1].values()) + UNK_COUNT
    probs: list[dict[tuple[str, ...], float]] = [{} for _ in range(order + 1)]
    probs[1] = {gram: c / total for gram, c in counts[1].items()}
    probs[1][(UNK,)] = UNK_COUNT / total
    backoff: list[dict[tuple[str, ...], float]] = [{} for _ in range(order + 1)]
    for n in range(2, order + 1):
        history_count: Counter[tuple[str, ...]] = Counter()
        continuations: defaultdict[tuple[str, ...], int] = defaultdict(int)
        for gram, c in counts[n].items():
            history_count[gram[:-1]] += c
            continuations[gram[:-1]] += 1
        for history, c in history_count.items():
            backoff[n - 1][history] = DISCOUNT * continuations[history] / c
        for gram, c in counts[n].items():
            history = gram[:-1]
            lower = _interpolated(gram[1:], probs, backoff)
            probs[n][gram] = (c - DISCOUNT) / history_count[history] + \
                backoff[n - 1][history] * lower
    lines = ["", "\\data\\"]
    lines += [f"ngram {n}={len(probs[n]) + (1 if n == 1 else 0)}" for n in range(1, order + 1)]
    for n in range(1, order + 1):
        lines += ["", f"\\{n}-grams:"]
        grams = sorted(probs[n].items())
        if n == 1:
            grams = [((BOS,), 0.0), *grams]
        for gram, p in grams:
            logp = -99.0 if gram == (BOS,) else _log10(p)
            fields = [f"{logp:.6f}", " ".join(gram)]
            if n < order and gram in backoff[n]:
                fields.append(f"{_log10(backoff[n][gram]):.6f}")
            lines.append("\t".join(fields))
    lines += ["", "\\end\\", ""]
    return "\n".join(lines)


def _interpolated(gram: tuple[str, ...], probs: list[dict[tuple[str, ...], float]],
                  backoff: list[dict[tuple[str, ...], float]]) -> float:
    """p(gram[-1] | gram[:-1]) under the model built so far (lower orders complete)."""
    n = len(gram)
    if n == 1:
        return probs[1].get(gram, probs[1][(UNK,)])
    if gram in probs[n]:
        return probs[n][gram]
    weight = backoff[n - 1].get(gram[:-1], 1.0)
    return weight * _interpolated(gram[1:], probs, backoff)


def _transcripts(manifests: Sequence[Path]) -> list[list[str]]:
    """The words of each manifest line's ``text``; a manifest that is missing, not a regular
    file, or not UTF-8 text is a UserError naming it (and the line)."""
    sentences = []
    for manifest in manifests:
        if manifest.is_dir():
            raise UserError(f"manifest {manifest} is a directory, not a manifest file")
        if not manifest.exists():
            raise UserError(f"manifest not found: {manifest}")
        if not manifest.is_file():
            raise UserError(f"manifest {manifest} is not a regular file (a FIFO or a device): "
                            "only regular files are read")
        for number, line in _manifest_lines(manifest):
            if not line.strip():
                continue
            try:
                text = json.loads(line)["text"]
            except (json.JSONDecodeError, KeyError, TypeError):
                raise UserError(f"{manifest}:{number}: expected a JSON object with a 'text' "
                                "key") from None
            sentences.append(str(text).split())
    return sentences


def _manifest_lines(manifest: Path) -> Iterable[tuple[int, str]]:
    with manifest.open("rb") as f:
        for number, raw in enumerate(f, start=1):
            try:
                if b"\0" in raw:
                    raise UnicodeError
                yield number, raw.decode("utf-8")
            except UnicodeError:
                raise UserError(f"{manifest}:{number}: not UTF-8 text (binary data or another "
                                "encoding); a manifest is JSON lines in UTF-8") from None


def configure_lm_parser(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``neuralgraph asr lm``."""
    parser.add_argument("--manifest", required=True, nargs="+", type=Path,
                        help="manifests whose transcripts give the words and n-grams")
    parser.add_argument("--out", required=True, type=Path, help="output folder")
    parser.add_argument("--order", type=int, default=2, help="n-gram order (2)")
    parser.add_argument("--labels", default=" abcdefghijklmnopqrstuvwxyz'",
                        help="the model's character labels, as one string (English 28)")
    parser.add_argument("--tokenizer", type=Path,
                        help="a SentencePiece .model: spell the lexicon in its word pieces "
                             "(for models trained on AudioToBPEDataset) instead of --labels")


def run_lm(args: argparse.Namespace) -> int:
    """Write ``lexicon.txt`` and ``lm.arpa`` into ``--out``; returns 0."""
    sentences = _transcripts(args.manifest)
    words = [w for s in sentences for w in s]
    labels = [c for c in args.labels if c != " "]
    args.out.mkdir(parents=True, exist_ok=True)
    lexicon = args.out / "lexicon.txt"
    if args.tokenizer is not None:
        from neuralgraph_text import SentencePieceTokenizer

        if not args.tokenizer.is_file():
            raise UserError(f"tokenizer model not found: {args.tokenizer}")
        tokenizer = SentencePieceTokenizer(str(args.tokenizer))
        text = piece_lexicon_text(words, tokenizer.text_to_tokens, tokenizer.tokens)
    else:
        text = lexicon_text(words, labels)
    lexicon.write_text(text, encoding="utf-8")
    arpa = args.out / "lm.arpa"
    arpa.write_text(arpa_text(sentences, args.order), encoding="utf-8")
    print(f"{len(set(words))} words from {len(sentences)} transcripts: {lexicon}, "
          f"{args.order}-gram model {arpa}")
    return 0
