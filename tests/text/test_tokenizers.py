"""Tests of the shared text home (neuralgraph_text): normalization and tokenizers."""

from __future__ import annotations

import pytest

from neuralgraph import UserError
from neuralgraph_text import (
    CharTokenizer,
    SentencePieceTokenizer,
    normalize_transcript,
    train_sentencepiece,
)


@pytest.fixture
def char_labels() -> list[str]:
    """NeMo's English character labels: space, a-z, apostrophe."""
    return [" ", *"abcdefghijklmnopqrstuvwxyz", "'"]


class TestNormalizeTranscript:
    def test_punctuation_case_and_spaces(self):
        """Lowercase, punctuation dropped, dashes to spaces, whitespace collapsed."""
        assert normalize_transcript("  Well-known,\tMr. SMITH!  ") == "well known mr smith"

    def test_keep_and_curly_apostrophe(self):
        """Kept characters survive; a curly apostrophe becomes a straight one."""
        assert normalize_transcript("Don\u2019t stop.", keep="'") == "don't stop"
        assert normalize_transcript("Don't stop.") == "dont stop"

    def test_digits_and_symbols_stay(self):
        """Digits and symbols are left for the vocabulary check to judge."""
        assert normalize_transcript("3 + 4 = 7", lowercase=False) == "3 + 4 = 7"


class TestCharTokenizer:
    def test_round_trip(self, char_labels):
        """Normalized text maps to label indices and back."""
        tok = CharTokenizer(char_labels)
        ids = tok.text_to_ids("It's OK.")
        assert ids == [9, 20, 27, 19, 0, 15, 11]
        assert tok.ids_to_text(ids) == "it's ok"
        assert tok.vocab_size == 28

    def test_unknown_characters_are_skipped(self, char_labels):
        """Characters outside the labels are dropped by text_to_ids and listed by oov."""
        tok = CharTokenizer(char_labels)
        assert tok.ids_to_text(tok.text_to_ids("route 66")) == "route "
        assert tok.oov_characters("route 66 é") == ["6", "é"]

    def test_upper_case_labels_are_not_lowercased(self):
        """When a label is upper case, normalization keeps case."""
        tok = CharTokenizer(["A", "b", " "])
        assert tok.normalize("Ab, AB") == "Ab AB"

    def test_without_normalization(self, char_labels):
        """normalize=False tokenizes the text as written."""
        tok = CharTokenizer(char_labels, normalize=False)
        assert tok.normalize("A, b") == "A, b"
        assert tok.oov_characters("A, b") == [",", "A"]

    @pytest.mark.parametrize(("labels", "message"), [
        ([], "non-empty"), (["ab"], "single characters"), (["a", "a"], "unique")])
    def test_bad_labels(self, labels, message):
        """Labels must be a non-empty list of unique single characters."""
        with pytest.raises(ValueError, match=message):
            CharTokenizer(labels)

    def test_ids_out_of_range(self, char_labels):
        """An id that is not a label index (e.g. the blank) is a ValueError."""
        with pytest.raises(ValueError, match=r"in \[0, 28\)"):
            CharTokenizer(char_labels).ids_to_text([28])


class TestTrainSentencePiece:
    LINES = tuple(f"The {n} quick brown foxes jump over {m} lazy dogs." for n in
                  ("one", "two", "three", "four") for m in ("five", "six", "seven", "eight"))

    def test_trains_on_lines_of_text(self, tmp_path):
        """Plain lines (no manifest) train a model; normalized text is written beside it."""
        model = train_sentencepiece(self.LINES, tmp_path, 40)
        assert model == tmp_path / "tokenizer.model"
        tok = SentencePieceTokenizer(model)
        assert tok.vocab_size == 40 and tok.unk_id == 0
        assert tok.ids_to_text(tok.text_to_ids("Two lazy dogs!")) == "two lazy dogs"
        first = (tmp_path / "train_text.txt").read_text(encoding="utf-8").splitlines()[0]
        assert first == "the one quick brown foxes jump over five lazy dogs"
        assert (tmp_path / "vocab.txt").read_text(encoding="utf-8").split() == tok.tokens

    def test_no_text(self, tmp_path):
        """Lines that normalize to nothing are a UserError."""
        with pytest.raises(UserError, match="no text to train a tokenizer on"):
            train_sentencepiece(["", " ... ", "!"], tmp_path, 10)
