"""Tests of the WER metric and its text helpers."""

from __future__ import annotations

import pytest
import torch

from neuralgraph import LabelsType, ParameterError
from neuralgraph_asr.metrics import WER, edit_distance, text_from_ids, word_errors

LABELS = [" ", *"abcdefghijklmnopqrstuvwxyz", "'"]
BLANK = len(LABELS)


def ids(text: str) -> list[int]:
    return [LABELS.index(c) for c in text]


def emissions(texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """Peaked log-probabilities whose greedy decoding is each text (blank between letters)."""
    paths = []
    for text in texts:
        path = []
        for token in ids(text):
            path += [token, BLANK]
        paths.append(path)
    time = max(len(p) for p in paths) or 1
    scores = torch.full((len(texts), time, BLANK + 1), -10.0)
    scores[:, :, BLANK] = 0.0
    for b, path in enumerate(paths):
        for t, token in enumerate(path):
            scores[b, t] = -10.0
            scores[b, t, token] = 0.0
    return scores.log_softmax(-1), torch.tensor([len(p) for p in paths])


def targets(texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """Padded target ids (padding with the blank id) and lengths."""
    width = max(len(t) for t in texts) or 1
    out = torch.full((len(texts), width), BLANK)
    for b, text in enumerate(texts):
        out[b, : len(text)] = torch.tensor(ids(text), dtype=torch.long)
    return out, torch.tensor([len(t) for t in texts])


def update(metric: WER, hypotheses: list[str], references: list[str]) -> None:
    log_probs, lengths = emissions(hypotheses)
    target, target_lengths = targets(references)
    metric.update(
        predictions=log_probs,
        predictions_lengths=lengths,
        targets=target,
        target_lengths=target_lengths,
    )


class TestTextHelpers:
    def test_text_from_ids(self) -> None:
        """Character ids join into text; ids outside the labels (blank) are skipped."""
        assert text_from_ids([8, 9, 0, 20, 8, 5, 18, 5, BLANK], LABELS) == "hi there"

    def test_edit_distance(self) -> None:
        """Levenshtein distance over words and over characters."""
        assert edit_distance("kitten", "sitting") == 3
        assert edit_distance(["a", "b", "c"], ["a", "c", "d"]) == 2
        assert edit_distance([], ["a", "b"]) == 2

    def test_word_errors(self) -> None:
        """Known strings: substitutions, deletions and insertions count as one error each."""
        assert word_errors("the cat sat", "the cat sat") == (0, 3)
        assert word_errors("the bat sat", "the cat sat") == (1, 3)
        assert word_errors("the cat", "the cat sat down") == (2, 4)
        assert word_errors("a the cat sat", "the cat sat") == (1, 3)
        assert word_errors("", "hello world") == (2, 2)
        assert word_errors("abd", "abc", use_cer=True) == (1, 3)


class TestWER:
    def test_known_strings(self) -> None:
        """One batch: errors / reference words from greedy decoding of the predictions."""
        metric = WER(labels=LABELS)
        update(metric, ["the cat sat", "hello word"], ["the cat sat down", "hello world"])
        assert metric.errors == 2 and metric.words == 6
        torch.testing.assert_close(metric.compute(), torch.tensor(2 / 6))

    def test_ratio_of_sums_across_batches(self) -> None:
        """Over several batches the result is total errors / total words, not a mean of rates."""
        metric = WER(labels=LABELS)
        update(metric, ["a c"], ["a b"])  # 1 error / 2 words
        eight = "one two three four five six seven eight"
        update(metric, [eight], [eight])  # 0 / 8
        torch.testing.assert_close(metric.compute(), torch.tensor(1 / 10))
        metric.reset()
        assert metric.errors == 0 and metric.words == 0

    def test_cer(self) -> None:
        """use_cer counts characters (spaces included)."""
        metric = WER(labels=LABELS, use_cer=True)
        update(metric, ["abd"], ["abc"])
        torch.testing.assert_close(metric.compute(), torch.tensor(1 / 3))

    def test_decode_fn_and_tokenizer(self) -> None:
        """A tokenizer's ids_to_text (or an assigned decode_fn) turns ids into text."""

        class Pieces:
            words = ("<unk>", "hello", "world", "there")

            def ids_to_text(self, ids: list[int]) -> str:
                return " ".join(self.words[i] for i in ids)

        metric = WER(tokenizer=Pieces())
        log_probs = torch.full((1, 4, 5), -10.0)
        for t, token in enumerate([1, 4, 3, 4]):  # blank is the last class (4)
            log_probs[0, t, token] = 0.0
        metric.update(
            predictions=log_probs,
            predictions_lengths=torch.tensor([4]),
            targets=torch.tensor([[1, 2]]),
            target_lengths=torch.tensor([2]),
        )
        torch.testing.assert_close(metric.compute(), torch.tensor(0.5))
        plain = WER()
        plain.decode_fn = Pieces().ids_to_text
        assert plain.ids_to_text([1, 3]) == "hello there"

    def test_ports(self) -> None:
        """With labels the ports size the class axis and the targets' vocabulary."""
        types = WER(labels=LABELS).input_types
        assert types["predictions"].axes[2].size == 29
        assert types["targets"].elements_type == LabelsType(28)
        assert set(types) == {"predictions", "predictions_lengths", "targets", "target_lengths"}

    def test_needs_a_vocabulary(self) -> None:
        """Without labels, tokenizer or decode_fn an update raises ValueError."""
        with pytest.raises(ValueError, match="labels, a tokenizer or a decode_fn"):
            update(WER(), ["a"], ["a"])
        with pytest.raises(ValueError, match="either labels or tokenizer"):
            WER(labels=LABELS, tokenizer=object())


class TestWERDecoding:
    def test_beam_on_peaked_emissions_matches_greedy(self) -> None:
        """decoding: beam gives the greedy result where one path dominates."""
        greedy, beam = WER(labels=LABELS), WER(labels=LABELS, decoding="beam", beam_size=4)
        for metric in (greedy, beam):
            update(metric, ["the cat sat", "hello word"], ["the cat sat down", "hello world"])
        assert beam.errors == greedy.errors == 2 and beam.words == 6

    def test_beam_sums_paths_that_greedy_cannot(self) -> None:
        """Beam search finds the label whose paths add up, where greedy's best frame loses."""
        # frames: a 0.4 / blank 0.6 twice -> greedy says "" (blank, blank), but "a" has
        # probability 1 - 0.6^2 = 0.64 summed over its paths.
        scores = torch.full((1, 2, BLANK + 1), 1e-6)
        scores[0, :, LABELS.index("a")] = 0.4
        scores[0, :, BLANK] = 0.6
        predictions = scores.log()
        target, target_lengths = targets(["a"])
        for decoding, expected in (("greedy", 1), ("beam", 0)):
            metric = WER(labels=LABELS, decoding=decoding)
            metric.update(predictions=predictions, predictions_lengths=torch.tensor([2]),
                          targets=target, target_lengths=target_lengths)
            assert int(metric.errors) == expected, decoding

    def test_bad_choices_are_value_errors(self) -> None:
        with pytest.raises(ValueError, match="decoding must be one of"):
            WER(labels=LABELS, decoding="viterbi")
        with pytest.raises(ValueError, match="lexicon and lm are for decoding: beam"):
            WER(labels=LABELS, lexicon="words.lex")

    @pytest.mark.parametrize(("kwargs", "parameter"), [
        ({"blank": "last"}, "blank"), ({"blank": 99, "decoding": "beam"}, "blank"),
        ({"decoding": "beam", "beam_size": 0}, "beam_size"),
    ])
    def test_bad_argument_is_named(self, kwargs: dict, parameter: str) -> None:
        """A bad argument is a ParameterError naming it (check reports it at its key)."""
        with pytest.raises(ParameterError) as info:
            WER(labels=LABELS, **kwargs)
        assert info.value.parameter == parameter

    def test_lexicon_and_lm_are_artifacts(self) -> None:
        """Both files are packed into archives like a tokenizer model."""
        assert {"lexicon", "lm"} <= set(WER.artifacts)
