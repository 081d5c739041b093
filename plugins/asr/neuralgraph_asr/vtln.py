"""Test-time vocal tract length normalization (VTLN) for CTC recognizers.

A speaker whose vocal tract is longer or shorter than the training speakers' has formants
lower or higher than the model expects. VTLN tries a grid of frequency warps of the mel
spectrogram (the same piecewise-linear warp as training-time VTLP,
:class:`~neuralgraph_audio.VocalTractLengthPerturbation`) and keeps the one the model
is most confident about: the largest best-path score, the sum over valid frames of each
frame's highest log-probability. As in classic VTLN (Lee & Rose, 1996; Kaldi's per-speaker
warps) the warp is best chosen per speaker, over all of that speaker's utterances, because
one utterance's score is noisy; it can also be chosen per utterance. No transcript is used.
The warp changes frequency only, so every warp of an utterance has the same frames and the
scores compare directly.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence

import torch
from torch import Tensor

__all__ = ["DEFAULT_WARPS", "VTLN_MODES", "best_path_scores", "choose_warps"]

#: The warp grid: 0.85-1.15 in steps of 0.05 (the range of training-time VTLP and speed
#: perturbation).
DEFAULT_WARPS: tuple[float, ...] = (0.85, 0.9, 0.95, 1.0, 1.05, 1.1, 1.15)

#: ``utterance``: a warp per utterance; ``speaker``: one warp per speaker.
VTLN_MODES = ("utterance", "speaker")


def best_path_scores(log_probs: Tensor, lengths: Tensor) -> Tensor:
    """Log-probs (B, T, D) and valid frames (B,) -> (B,) sum of each frame's best log-prob."""
    frames = torch.arange(log_probs.shape[1], device=log_probs.device)
    valid = frames[None, :] < lengths.to(log_probs.device)[:, None]
    best = log_probs.float().max(dim=-1).values  # (B, T)
    return torch.where(valid, best, torch.zeros_like(best)).sum(dim=1)


def choose_warps(
    scores: Tensor, warps: Sequence[float], speakers: Sequence[Hashable] | None = None
) -> list[float]:
    """The chosen warp of each utterance.

    ``scores`` (N, K): best-path score of N utterances under each of the K ``warps``.
    ``speakers``: N speaker names (utterances of a speaker share the warp that maximizes
    their summed score), or None to choose per utterance. Ties go to the warp nearest 1.
    """
    if scores.dim() != 2 or scores.shape[1] != len(warps):
        raise ValueError(f"scores must be (N, {len(warps)}) (got {tuple(scores.shape)})")
    if speakers is not None and len(speakers) != scores.shape[0]:
        raise ValueError(f"need one speaker per utterance ({scores.shape[0]}); "
                         f"got {len(speakers)}")
    # visit warps nearest 1 first: a tie keeps the mildest warp
    order = sorted(range(len(warps)), key=lambda k: abs(warps[k] - 1.0))
    groups: dict[Hashable, list[int]] = {}
    for index in range(scores.shape[0]):
        key = index if speakers is None else speakers[index]
        groups.setdefault(key, []).append(index)
    chosen = [1.0] * scores.shape[0]
    for members in groups.values():
        total = scores[members].double().sum(dim=0)  # (K,)
        best = max(order, key=lambda k: float(total[k]))
        for index in members:
            chosen[index] = float(warps[best])
    return chosen
