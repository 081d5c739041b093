"""Test-time VTLN: best-path scores, the choice of warps, and the ASRModel that uses them."""

from __future__ import annotations

import pytest
import torch

from neuralgraph_asr.vtln import DEFAULT_WARPS, best_path_scores, choose_warps


class TestBestPathScores:
    def test_sums_each_valid_frames_best_log_prob(self) -> None:
        log_probs = torch.log_softmax(torch.randn(2, 5, 4), dim=-1)
        scores = best_path_scores(log_probs, torch.tensor([5, 3]))
        assert scores.shape == (2,)
        torch.testing.assert_close(scores[0], log_probs[0].max(-1).values.sum())
        torch.testing.assert_close(scores[1], log_probs[1, :3].max(-1).values.sum())

    def test_padding_does_not_count(self) -> None:
        log_probs = torch.log_softmax(torch.randn(1, 6, 3), dim=-1)
        padded = log_probs.clone()
        padded[:, 4:] = -50.0
        lengths = torch.tensor([4])
        torch.testing.assert_close(best_path_scores(log_probs, lengths),
                                   best_path_scores(padded, lengths))


class TestChooseWarps:
    def test_per_utterance_argmax(self) -> None:
        scores = torch.tensor([[-3.0, -1.0, -2.0], [-1.0, -2.0, -3.0]])
        assert choose_warps(scores, [0.9, 1.0, 1.1]) == [1.0, 0.9]

    def test_per_speaker_sums_the_speakers_scores(self) -> None:
        """Speaker a's utterances disagree; their sum picks 1.1 for both; b keeps its own."""
        scores = torch.tensor([[-5.0, -2.0, -1.0],
                               [-1.0, -1.5, -1.8],
                               [-1.0, -3.0, -3.0]])
        assert choose_warps(scores, [0.9, 1.0, 1.1], ["a", "a", "b"]) == [1.1, 1.1, 0.9]

    def test_a_tie_keeps_the_mildest_warp(self) -> None:
        scores = torch.tensor([[-1.0, -1.0, -1.0, -2.0]])
        assert choose_warps(scores, [0.8, 0.95, 1.1, 1.2]) == [0.95]

    def test_shape_mismatch_is_an_error(self) -> None:
        with pytest.raises(ValueError, match=r"scores must be \(N, 3\)"):
            choose_warps(torch.zeros(2, 2), [0.9, 1.0, 1.1])
        with pytest.raises(ValueError, match="one speaker per utterance"):
            choose_warps(torch.zeros(2, 3), [0.9, 1.0, 1.1], ["a"])

    def test_default_grid_holds_no_warp(self) -> None:
        assert 1.0 in DEFAULT_WARPS and DEFAULT_WARPS == tuple(sorted(DEFAULT_WARPS))


def test_a_graph_without_mel_features_cannot_be_warped() -> None:
    """VTLN on an MFCC graph is a user error that says what it needs."""
    import neuralgraph as ng
    from neuralgraph_asr.model import ASRModel
    from tests.conftest import ROOT

    graph = ng.Graph.from_yaml(ROOT / "examples" / "asr" / "digits_small.yaml", [
        "nodes.preprocessor.module=AudioToMFCCPreprocessor", "~nodes.preprocessor.params",
        "+nodes.preprocessor.params={sample_rate:16000,n_mfcc:64}"])
    model = ASRModel(graph)
    audio = sorted((ROOT / "examples" / "asr" / "data" / "digits" / "dev").glob("*.flac"))[:2]
    assert len(model.transcribe(audio)) == 2
    with pytest.raises(ng.UserError, match="no AudioToMelSpectrogramPreprocessor"):
        model.transcribe(audio, vtln="speaker")
    with pytest.raises(ng.UserError, match="vtln must be one of"):
        model.transcribe(audio, vtln="speakers")
