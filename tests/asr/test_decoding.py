"""Tests of CTC greedy and beam search decoding."""

from __future__ import annotations

import itertools

import pytest
import torch

from neuralgraph_asr.decoding import (
    CTCBeamSearchDecoder,
    ctc_greedy_decode,
    flashlight_available,
    prefix_beam_search,
)

LABELS = [" ", *"abcdefghijklmnopqrstuvwxyz", "'"]
BLANK = len(LABELS)


def peaked(paths: list[list[int]], classes: int = BLANK + 1) -> tuple[torch.Tensor, torch.Tensor]:
    """Log-probabilities (B, T, D) putting almost all mass on each frame's id, and lengths."""
    time = max(len(path) for path in paths)
    scores = torch.full((len(paths), time, classes), -12.0)
    for b, path in enumerate(paths):
        for t, token in enumerate(path):
            scores[b, t, token] = 0.0
    return scores.log_softmax(-1), torch.tensor([len(path) for path in paths])


def naive_greedy(path: list[int], blank: int) -> list[int]:
    return [token for token, _ in itertools.groupby(path) if token != blank]


class TestGreedy:
    def test_merges_repeats_and_drops_blanks(self) -> None:
        """Repeats merge, blanks vanish, and a blank between repeats keeps both."""
        log_probs, lengths = peaked([[8, 8, BLANK, 9, 9, BLANK, BLANK, 9, 0, 0, 1]])
        assert ctc_greedy_decode(log_probs, lengths, BLANK) == [[8, 9, 9, 0, 1]]

    def test_lengths_cut_frames(self) -> None:
        """Frames past each length are ignored."""
        log_probs, _ = peaked([[1, 2, 3, 4], [5, BLANK, 6, 7]])
        assert ctc_greedy_decode(log_probs, torch.tensor([2, 3]), BLANK) == [[1, 2], [5, 6]]
        assert ctc_greedy_decode(log_probs, None, BLANK) == [[1, 2, 3, 4], [5, 6, 7]]

    def test_empty_and_all_blank(self) -> None:
        """All-blank or zero-length utterances decode to nothing."""
        log_probs, _ = peaked([[BLANK, BLANK, BLANK], [3, 3, 3]])
        assert ctc_greedy_decode(log_probs, torch.tensor([3, 0]), BLANK) == [[], []]

    def test_blank_first(self) -> None:
        """The blank may be any class, e.g. 0."""
        log_probs, lengths = peaked([[0, 1, 1, 0, 1, 2]], classes=3)
        assert ctc_greedy_decode(log_probs, lengths, blank=0) == [[1, 1, 2]]

    def test_matches_naive_on_random_paths(self) -> None:
        """On random paths of random lengths it equals a frame-by-frame reference."""
        generator = torch.Generator().manual_seed(0)
        scores = torch.randn(16, 30, 5, generator=generator)
        lengths = torch.randint(0, 31, (16,), generator=generator)
        argmax = scores.argmax(-1).tolist()
        expected = [naive_greedy(path[:n], 4) for path, n in zip(argmax, lengths.tolist())]
        assert ctc_greedy_decode(scores, lengths, blank=4) == expected

    def test_shape_check(self) -> None:
        """Input that is not (B, T, D) raises ValueError."""
        with pytest.raises(ValueError, match="B, T, D"):
            ctc_greedy_decode(torch.zeros(3, 4), None, 0)


class TestPrefixBeamSearch:
    def test_agrees_with_greedy_on_peaked(self) -> None:
        """On peaked distributions the Python beam search finds the greedy path."""
        paths = [[8, BLANK, 9, 9, 0, 0, 8, BLANK, 5, 12, BLANK, 12, 15], [1, BLANK, 1, 2, 2]]
        log_probs, lengths = peaked(paths)
        decoder = CTCBeamSearchDecoder(LABELS, beam_size=8, backend="python")
        assert decoder.decode(log_probs, lengths) == ctc_greedy_decode(log_probs, lengths, BLANK)

    def test_sums_over_alignments(self) -> None:
        """Beam search prefers the label whose alignments add up, where greedy picks blank."""
        probs = torch.tensor([[0.35, 0.25, 0.4], [0.35, 0.25, 0.4]])  # classes a, b, blank
        log_probs = probs.log()
        assert ctc_greedy_decode(log_probs[None], None, blank=2) == [[]]
        # P(a) = .35*.35 + .35*.4 + .4*.35 = 0.4025 > P(empty) = 0.16
        assert prefix_beam_search(log_probs, blank=2, beam_size=4) == [0]

    def test_lexicon_needs_flashlight(self) -> None:
        """Asking for a lexicon with the Python backend raises ValueError with the fix."""
        with pytest.raises(ValueError, match="pip install flashlight-text"):
            CTCBeamSearchDecoder(LABELS, lexicon="words.lex", backend="python")

    def test_bad_arguments(self) -> None:
        """Empty tokens, a bad blank or beam size, or an unknown backend raise ValueError."""
        for kwargs in ({"beam_size": 0}, {"blank": 40}, {"backend": "kenlm"}):
            with pytest.raises(ValueError):
                CTCBeamSearchDecoder(LABELS, **kwargs)
        with pytest.raises(ValueError):
            CTCBeamSearchDecoder([])


@pytest.mark.skipif(not flashlight_available(), reason="flashlight-text is not installed")
class TestFlashlight:
    def test_agrees_with_greedy_on_peaked(self) -> None:
        """flashlight's lexicon-free beam search finds the greedy path on peaked input."""
        paths = [[8, BLANK, 9, 9, 0, 0, 8, BLANK, 5, 12, BLANK, 12, 15], [1, BLANK, 1, 2, 2]]
        log_probs, lengths = peaked(paths)
        decoder = CTCBeamSearchDecoder(LABELS, beam_size=8, backend="flashlight")
        assert decoder.decode(log_probs, lengths) == ctc_greedy_decode(log_probs, lengths, BLANK)

    def test_lexicon_restricts_words(self, tmp_path) -> None:
        """With a lexicon, a near-miss spelling decodes to the closest lexicon word."""
        lexicon = tmp_path / "words.lex"
        lexicon.write_text("cat c a t |\ndog d o g |\n")  # "|" stands for the space label
        c, x, t = (LABELS.index(ch) for ch in "cxt")
        path = [c, BLANK, x, BLANK, t, BLANK, 0]  # "c x t " with blanks between
        log_probs, lengths = peaked([path])
        scores = log_probs.clone()
        scores[0, 2, LABELS.index("a")] = -1.0  # "a" is the runner-up for the "x" frame
        decoder = CTCBeamSearchDecoder(LABELS, beam_size=8, lexicon=lexicon, lm_weight=0.0)
        assert ctc_greedy_decode(scores, lengths, BLANK) == [[c, x, t, 0]]
        hypothesis = decoder.decode(scores.log_softmax(-1), lengths)[0]
        assert "".join(LABELS[i] for i in hypothesis) == "cat"
