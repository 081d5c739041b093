"""Text normalization shared by transcripts (ASR), training text (tokenizers) and NLP data."""

from __future__ import annotations

import functools
import unicodedata
from collections.abc import Iterable

__all__ = ["normalize_transcript"]

_QUOTES = {"\u2019": "'", "\u2018": "'", "\u02bc": "'", "\u00b4": "'"}


class _PunctuationTable(dict[int, "str | None"]):
    """A ``str.translate`` table filled on demand, one character at a time.

    Punctuation not kept is dropped, dashes become spaces, curly apostrophes straight ones.
    """

    def __init__(self, keep: frozenset[str]) -> None:
        super().__init__()
        self.keep = keep

    def __missing__(self, code: int) -> str | None:
        ch = _QUOTES.get(chr(code), chr(code))
        category = unicodedata.category(ch)
        if ch not in self.keep and category.startswith("P"):
            ch = " " if category == "Pd" else None
        self[code] = ch
        return ch


@functools.lru_cache(maxsize=32)
def _punctuation_table(keep: frozenset[str]) -> _PunctuationTable:
    return _PunctuationTable(keep)


def normalize_transcript(text: str, keep: Iterable[str] = (), *, lowercase: bool = True) -> str:
    """Normalize a transcript: NFC, curly apostrophes to ``'``, lowercase, punctuation removed.

    Punctuation (Unicode category ``P*``) that is not in ``keep`` is dropped, dashes become spaces
    ("well-known" → "well known"), and runs of whitespace become one space. Other characters
    (digits, symbols, accented letters) are kept: whether they are allowed is the vocabulary's
    business (see ``validate_manifest``).
    """
    text = unicodedata.normalize("NFC", text)
    if lowercase:
        text = text.lower()
    return " ".join(text.translate(_punctuation_table(frozenset(keep))).split())
