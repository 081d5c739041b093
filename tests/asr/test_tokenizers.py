"""Tests of SentencePiece tokenizers trained on manifests and of ``neuralgraph asr tokenizer``."""

from __future__ import annotations

import argparse
import pickle
import re

import pytest

from neuralgraph import UserError
from neuralgraph_asr.tokenizer import configure_tokenizer_parser, run_tokenizer, train_tokenizer
from neuralgraph_text import SentencePieceTokenizer


class TestTrainSentencePiece:
    def test_files_written(self, bpe_model):
        """Training writes tokenizer.model, vocab.txt and the normalized training text."""
        folder = bpe_model.parent
        assert bpe_model.name == "tokenizer.model" and bpe_model.is_file()
        vocab = (folder / "vocab.txt").read_text().splitlines()
        assert len(vocab) == 40 and vocab[0] == "<unk>"
        text = (folder / "train_text.txt").read_text().splitlines()
        assert "it's a lovely day isn't it" in text and len(text) == 11

    def test_round_trip(self, bpe_model):
        """Text encodes to piece ids within the vocabulary and decodes back."""
        tok = SentencePieceTokenizer(bpe_model)
        text = "He was not an ill-disposed young man."
        ids = tok.text_to_ids(text)
        assert all(0 <= i < tok.vocab_size for i in ids) and tok.unk_id == 0
        assert tok.ids_to_text(ids) == "he was not an ill disposed young man"
        assert "".join(tok.text_to_tokens("stop")).replace("\u2581", "") == "stop"
        assert len(tok.tokens) == tok.vocab_size == 40

    def test_unigram(self, corpus, tmp_path):
        """A unigram model trains on the same kind of input."""
        model = train_tokenizer([corpus.manifest], tmp_path, 30, model_type="unigram")
        tok = SentencePieceTokenizer(model)
        assert tok.ids_to_text(tok.text_to_ids("seven of clubs")) == "seven of clubs"

    def test_pickles(self, bpe_model):
        """A tokenizer pickles (for DataLoader workers) and still encodes after."""
        tok = pickle.loads(pickle.dumps(SentencePieceTokenizer(bpe_model)))
        assert tok.ids_to_text(tok.text_to_ids("go forward")) == "go forward"

    def test_vocab_too_large(self, corpus, tmp_path):
        """A vocabulary larger than the text allows is a UserError with SentencePiece's hint."""
        hint = r"failed: Vocabulary size too high \(5000\)\. Please set it to a value <= \d+"
        with pytest.raises(UserError, match=hint):
            train_tokenizer([corpus.manifest], tmp_path, 5000)

    def test_bad_arguments(self, corpus, tmp_path, write_manifest):
        """Unknown type, no manifest or no text at all are UserErrors."""
        with pytest.raises(UserError, match="'bpe' or 'unigram'"):
            train_tokenizer([corpus.manifest], tmp_path, 30, model_type="wpe")
        with pytest.raises(UserError, match="at least one manifest"):
            train_tokenizer([], tmp_path, 30)
        empty = write_manifest(tmp_path / "e.json", [{"audio_filepath": "a.wav", "duration": 1}])
        with pytest.raises(UserError, match="no transcripts"):
            train_tokenizer([empty], tmp_path, 30)

    def test_missing_or_corrupt_model(self, tmp_path):
        """A missing or corrupt model file is a ValueError naming it."""
        with pytest.raises(ValueError, match="tokenizer_model file not found"):
            SentencePieceTokenizer(tmp_path / "none.model")
        bad = tmp_path / "bad.model"
        bad.write_bytes(b"not a model")
        with pytest.raises(ValueError, match="not a SentencePiece model"):
            SentencePieceTokenizer(bad)


class TestTokenizerCommand:
    def test_cli(self, corpus, tmp_path, capsys):
        """`asr tokenizer --manifest M --vocab-size N --type bpe --out DIR` trains a model,
        saying on stderr what it reads and trains and how long training took."""
        parser = argparse.ArgumentParser()
        configure_tokenizer_parser(parser)
        args = parser.parse_args(["--manifest", str(corpus.manifest), "--vocab-size", "32",
                                  "--type", "bpe", "--out", str(tmp_path / "tok")])
        assert run_tokenizer(args) == 0
        assert (tmp_path / "tok" / "tokenizer.model").is_file()
        out, err = capsys.readouterr()
        assert "32 pieces" in out and "training" not in out
        lines = len(corpus.manifest.read_text().splitlines())
        assert f"reading manifests: {lines} lines, " in err
        assert f"training a 32-piece bpe tokenizer on {lines} lines..." in err
        assert re.search(r"^trained in \d+\.\d s$", err, re.M)

    def test_cli_requires_manifest(self):
        """The parser refuses a call without --manifest."""
        parser = argparse.ArgumentParser()
        configure_tokenizer_parser(parser)
        with pytest.raises(SystemExit):
            parser.parse_args(["--vocab-size", "32", "--out", "x"])
