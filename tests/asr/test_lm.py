"""Tests of the lexicon and ARPA n-gram files made for beam search (neuralgraph_asr.lm)."""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path

import pytest

from neuralgraph import UserError
from neuralgraph_asr.decoding import CTCBeamSearchDecoder, flashlight_available
from neuralgraph_asr.lm import arpa_text, lexicon_text, piece_lexicon_text
from tests.conftest import ROOT, run_cli

SENTENCES = [["one", "two", "three"], ["two", "two"], ["three", "one"], ["one"]]


def _parse_arpa(text: str) -> dict[tuple[str, ...], tuple[float, float]]:
    """{n-gram: (log10 p, log10 backoff)} from ARPA text."""
    grams: dict[tuple[str, ...], tuple[float, float]] = {}
    section = 0
    for line in text.splitlines():
        if line.startswith("\\") and line.endswith("-grams:"):
            section = int(line[1:].split("-")[0])
            continue
        if section and line and not line.startswith("\\"):
            fields = line.split("\t")
            grams[tuple(fields[1].split())] = (float(fields[0]),
                                               float(fields[2]) if len(fields) > 2 else 0.0)
    return grams


def _prob(grams: dict[tuple[str, ...], tuple[float, float]], gram: tuple[str, ...]) -> float:
    """ARPA back-off semantics: p(w | h)."""
    if gram in grams:
        return 10 ** grams[gram][0]
    if len(gram) == 1:
        return 10 ** grams[("<unk>",)][0]
    weight = 10 ** grams.get(gram[:-1], (0.0, 0.0))[1]
    return weight * _prob(grams, gram[1:])


class TestArpa:
    @pytest.mark.parametrize("order", [1, 2, 3])
    def test_every_history_sums_to_one(self, order: int) -> None:
        """p(. | h) over the vocabulary, </s> and <unk> sums to 1 for seen and unseen h."""
        grams = _parse_arpa(arpa_text(SENTENCES, order))
        vocab = ["one", "two", "three", "</s>", "<unk>"]
        histories = [()] + [h for n in range(1, order)
                            for h in itertools.product(["<s>", "one", "two", "three"], repeat=n)]
        for history in histories:
            total = sum(_prob(grams, (*history, w)) for w in vocab)
            assert math.isclose(total, 1.0, rel_tol=1e-4), (history, total)

    def test_header_counts_match_sections(self) -> None:
        """The \\data\\ counts equal the number of lines in each section."""
        text = arpa_text(SENTENCES, 2)
        grams = _parse_arpa(text)
        assert f"ngram 1={sum(len(g) == 1 for g in grams)}" in text
        assert f"ngram 2={sum(len(g) == 2 for g in grams)}" in text

    def test_no_words_is_user_error(self) -> None:
        with pytest.raises(UserError, match="no words"):
            arpa_text([], 2)


class TestLexicon:
    def test_lines_spell_words_with_a_boundary(self) -> None:
        assert lexicon_text(["two", "one", "two"], list("onetw")) == "one o n e |\ntwo t w o |\n"

    def test_character_outside_labels_is_named(self) -> None:
        with pytest.raises(UserError, match=r"'caf\\xe9'|café"):
            lexicon_text(["café"], list("acf"))


class TestPieceLexicon:
    def test_lines_spell_words_in_pieces(self) -> None:
        """A word-piece lexicon line is the word and its pieces, with no boundary token (the
        pieces' ``▁`` marks word starts)."""
        def spell(word: str) -> list[str]:
            return ["▁" + word[:2], word[2:]]

        text = piece_lexicon_text(["two", "one"], spell, ["▁on", "e", "▁tw", "o"])
        assert text == "one ▁on e\ntwo ▁tw o\n"

    def test_piece_outside_vocabulary_is_named(self) -> None:
        with pytest.raises(UserError, match=r"'caf'.*not in the tokenizer's vocabulary"):
            piece_lexicon_text(["caf"], lambda w: ["▁ca", "f"], ["▁ca"])


def test_lm_command_writes_both_files(tmp_path: Path) -> None:
    """`neuralgraph asr lm` writes lexicon.txt and lm.arpa from a manifest's transcripts."""
    manifest = tmp_path / "m.json"
    manifest.write_text("".join(json.dumps({"audio_filepath": "x.flac", "duration": 1.0,
                                            "text": " ".join(s)}) + "\n" for s in SENTENCES))
    result = run_cli("asr", "lm", "--manifest", str(manifest), "--out", str(tmp_path / "lm"))
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "lm" / "lexicon.txt").read_text().splitlines() == [
        "one o n e |", "three t h r e e |", "two t w o |"]
    assert _parse_arpa((tmp_path / "lm" / "lm.arpa").read_text())[("one", "two")]


def test_lm_command_bad_manifest_exits_2(tmp_path: Path) -> None:
    manifest = tmp_path / "m.json"
    manifest.write_text('{"audio_filepath": "x.flac"}\n')
    result = run_cli("asr", "lm", "--manifest", str(manifest), "--out", str(tmp_path / "lm"))
    assert result.returncode == 2 and "m.json:1" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.skipif(not flashlight_available(), reason="flashlight-text is not installed")
def test_lm_prefers_seen_word_sequences(tmp_path: Path) -> None:
    """With lexicon and LM from the files, an ambiguous emission decodes to the likely words."""
    import torch

    labels = [" ", *"abcdefghijklmnopqrstuvwxyz", "'"]
    (tmp_path / "lexicon.txt").write_text(lexicon_text(["one", "two", "owe"], labels[1:]))
    (tmp_path / "lm.arpa").write_text(arpa_text([["one", "two"]] * 20 + [["owe"]], 2))
    blank = len(labels)
    frames = []
    for ch in "o?e|two":  # '?' is n or w, equally likely: "one" or "owe"
        row = torch.full((blank + 1,), -20.0)
        if ch == "?":
            row[labels.index("n")] = row[labels.index("w")] = math.log(0.5)
        else:
            row[labels.index(" " if ch == "|" else ch)] = 0.0
        frames += [row, torch.full((blank + 1,), -20.0).index_fill(0, torch.tensor([blank]), 0)]
    emissions = torch.stack(frames)[None].log_softmax(-1)
    decoder = CTCBeamSearchDecoder(labels, beam_size=8, lexicon=tmp_path / "lexicon.txt",
                                   lm=tmp_path / "lm.arpa", lm_weight=1.0)
    ids = decoder.decode(emissions)[0]
    assert "".join(labels[i] for i in ids) == "one two"


def test_lm_command_spells_with_a_tokenizer(tmp_path: Path) -> None:
    """`neuralgraph asr lm --tokenizer T.model` writes a lexicon in T's word pieces: every piece
    is in T's vocabulary and the pieces of a line make up its word."""
    from neuralgraph_text import SentencePieceTokenizer

    manifest = ROOT / "examples" / "asr" / "data" / "digits" / "train_manifest.json"
    made = run_cli("asr", "tokenizer", "--manifest", str(manifest), "--vocab-size", "40",
                   "--type", "bpe", "--out", str(tmp_path / "tok"))
    assert made.returncode == 0, made.stderr
    model = tmp_path / "tok" / "tokenizer.model"
    result = run_cli("asr", "lm", "--manifest", str(manifest), "--out", str(tmp_path / "lm"),
                     "--tokenizer", str(model))
    assert result.returncode == 0, result.stderr
    pieces = set(SentencePieceTokenizer(str(model)).tokens)
    lines = (tmp_path / "lm" / "lexicon.txt").read_text(encoding="utf-8").splitlines()
    assert len(lines) == 11  # zero..nine and oh
    for line in lines:
        word, *spelled = line.split()
        assert set(spelled) <= pieces and "".join(spelled) == "▁" + word
    missing = run_cli("asr", "lm", "--manifest", str(manifest), "--out", str(tmp_path / "x"),
                      "--tokenizer", str(tmp_path / "nope.model"))
    assert missing.returncode == 2 and "nope.model" in missing.stderr


@pytest.mark.skipif(not flashlight_available(), reason="flashlight-text is not installed")
def test_piece_lexicon_decodes_word_pieces(tmp_path: Path) -> None:
    """Beam search over word pieces with a piece lexicon keeps to its words: an emission that
    greedy reads as the non-word "▁tw" "e" decodes to "two" ."""
    import torch

    pieces = ["▁one", "▁tw", "o", "e", "▁six"]
    spelled = {"one": ["▁one"], "two": ["▁tw", "o"], "six": ["▁six"]}
    (tmp_path / "lexicon.txt").write_text(piece_lexicon_text(spelled, spelled.__getitem__,
                                                             pieces), encoding="utf-8")
    blank = len(pieces)
    frames = []
    for best, second in (("▁one", ""), ("▁tw", ""), ("e", "o"), ("▁six", "")):
        row = torch.full((blank + 1,), -20.0)
        row[pieces.index(best)] = math.log(0.6) if second else 0.0
        if second:
            row[pieces.index(second)] = math.log(0.4)
        frames += [row, torch.full((blank + 1,), -20.0).index_fill(0, torch.tensor([blank]), 0)]
    emissions = torch.stack(frames)[None].log_softmax(-1)
    decoder = CTCBeamSearchDecoder(pieces, beam_size=8, lexicon=tmp_path / "lexicon.txt")
    ids = decoder.decode(emissions)[0]
    assert "".join(pieces[i] for i in ids) == "▁one▁two▁six"
