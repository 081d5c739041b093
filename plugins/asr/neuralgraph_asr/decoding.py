"""CTC decoding: greedy (vectorized) and beam search (flashlight-text, or a Python fallback).

Token ids index the model's output classes; the blank is usually the last class
(``len(labels)``), as NeMo's ``ConvASRDecoder`` produces.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from os import PathLike

import torch
from torch import Tensor

from neuralgraph.validators import (
    between,
    check,
    in_,
    instance_of,
    non_empty,
    positive_int,
    sequence,
)

__all__ = ["CTCBeamSearchDecoder", "ctc_greedy_decode", "flashlight_available"]

NEG_INF = float("-inf")


def ctc_greedy_decode(log_probs: Tensor, lengths: Tensor | None, blank: int) -> list[list[int]]:
    """Best path decoding: argmax per frame, merge repeats, drop blanks.

    ``log_probs`` (B, T, D) scores (log-probabilities or logits); ``lengths`` (B,) valid frames
    (None: all T). Returns one list of token ids per utterance.
    """
    if log_probs.dim() != 3:
        raise ValueError(f"log_probs must be (B, T, D) (got shape {tuple(log_probs.shape)})")
    ids = log_probs.argmax(dim=-1)  # (B, T)
    batch, time = ids.shape
    previous = torch.cat([ids.new_full((batch, 1), -1), ids[:, :-1]], dim=1)
    keep = (ids != previous) & (ids != blank)
    if lengths is not None:
        steps = torch.arange(time, device=ids.device)
        keep &= steps[None, :] < lengths.to(ids.device)[:, None]
    ids, keep = ids.cpu(), keep.cpu()
    return [row[mask].tolist() for row, mask in zip(ids, keep)]


def flashlight_available() -> bool:
    """Whether torchaudio's flashlight-text CTC decoder can be imported."""
    try:
        import flashlight.lib.text  # noqa: F401
        from torchaudio.models.decoder import ctc_decoder  # noqa: F401
    except (ImportError, OSError):
        return False
    return True


def _accumulate(
    beams: dict[tuple[int, ...], list[float]], prefix: tuple[int, ...], slot: int, value: float
) -> None:
    """Log-add ``value`` into slot 0 (ends in blank) or 1 (ends in a token) of ``prefix``."""
    entry = beams.setdefault(prefix, [NEG_INF, NEG_INF])
    entry[slot] = _log_add(entry[slot], value)


def _log_add(a: float, b: float) -> float:
    if a == NEG_INF:
        return b
    if b == NEG_INF:
        return a
    high, low = (a, b) if a > b else (b, a)
    return high + math.log1p(math.exp(low - high))


def prefix_beam_search(
    log_probs: Tensor, blank: int, beam_size: int = 16, token_beam: int | None = None
) -> list[int]:
    """CTC prefix beam search without a language model for one utterance.

    ``log_probs`` (T, D); only the ``token_beam`` best tokens of each frame (default
    ``beam_size``) extend prefixes. Returns the best prefix's token ids.
    """
    frames = log_probs.float().cpu()
    k = min(frames.shape[-1], token_beam or beam_size)
    top_scores, top_ids = frames.topk(k, dim=-1)
    blank_scores = frames[:, blank].tolist()
    beams: dict[tuple[int, ...], tuple[float, float]] = {(): (0.0, NEG_INF)}
    for t, (scores, ids) in enumerate(zip(top_scores.tolist(), top_ids.tolist())):
        grown: dict[tuple[int, ...], list[float]] = {}
        for prefix, (p_blank, p_token) in beams.items():
            total = _log_add(p_blank, p_token)
            _accumulate(grown, prefix, 0, total + blank_scores[t])
            for score, token in zip(scores, ids):
                if token == blank:
                    continue
                if prefix and token == prefix[-1]:
                    # a repeat collapses into the prefix unless a blank separated the two
                    _accumulate(grown, prefix, 1, p_token + score)
                    _accumulate(grown, (*prefix, token), 1, p_blank + score)
                else:
                    _accumulate(grown, (*prefix, token), 1, total + score)
        ranked = sorted(grown.items(), key=lambda kv: _log_add(*kv[1]), reverse=True)
        beams = {prefix: (pb, pt) for prefix, (pb, pt) in ranked[:beam_size]}
    best = max(beams.items(), key=lambda kv: _log_add(*kv[1]))
    return list(best[0])


class CTCBeamSearchDecoder:
    """CTC beam search over (B, T, D) log-probabilities; returns token ids per utterance.

    Parameters:

    - ``tokens``: the labels without the blank (a character vocabulary or word pieces).
    - ``blank``: the blank's index (default ``len(tokens)``, the last class).
    - ``beam_size``: hypotheses kept per frame.
    - ``lexicon``: a flashlight lexicon file (``word t o k e n s |`` per line, ``|`` standing
      for the space label) restricting output to its words; ``lm``: a KenLM model file;
      ``lm_weight``, ``word_score``, ``beam_threshold``: flashlight's scores.
    - ``backend``: ``auto`` (flashlight-text when installed, else Python), ``flashlight`` or
      ``python`` (prefix beam search without lexicon or LM).
    """

    def __init__(
        self,
        tokens: Sequence[str],
        blank: int | None = None,
        beam_size: int = 16,
        lexicon: str | PathLike[str] | None = None,
        lm: str | PathLike[str] | None = None,
        lm_weight: float = 2.0,
        word_score: float = 0.0,
        beam_threshold: float = 50.0,
        backend: str = "auto",
    ) -> None:
        self.tokens = list(check("tokens", tokens, sequence, non_empty))
        self.blank = len(self.tokens) if blank is None else blank
        check("blank", self.blank, instance_of(int), between(0, len(self.tokens)))
        check("beam_size", beam_size, positive_int)
        check("backend", backend, in_(("auto", "flashlight", "python")))
        if backend == "auto":
            backend = "flashlight" if flashlight_available() else "python"
        if backend == "python" and (lexicon is not None or lm is not None):
            raise ValueError(
                "lexicon and lm need the flashlight backend: pip install flashlight-text"
            )
        self.backend = backend
        self.beam_size = beam_size
        self._decoder = None
        if backend == "flashlight":
            self._decoder = self._flashlight(lexicon, lm, lm_weight, word_score, beam_threshold)

    def _flashlight_tokens(self) -> tuple[list[str], str, str]:
        """Token names for flashlight: blank inserted at its index, space renamed ``|``."""
        names = ["|" if token == " " else token for token in self.tokens]
        blank_name = "<blank>"
        while blank_name in names:
            blank_name = f"<{blank_name}>"
        names.insert(self.blank, blank_name)
        sil = "|" if "|" in names else blank_name
        return names, blank_name, sil

    def _flashlight(
        self,
        lexicon: str | PathLike[str] | None,
        lm: str | PathLike[str] | None,
        lm_weight: float,
        word_score: float,
        beam_threshold: float,
    ) -> object:
        try:
            from torchaudio.models.decoder import ctc_decoder
        except ImportError as error:
            raise ValueError(
                "backend 'flashlight' needs flashlight-text: pip install flashlight-text"
            ) from error
        names, blank_name, sil = self._flashlight_tokens()
        self._sil_index = names.index(sil)
        return ctc_decoder(
            lexicon=None if lexicon is None else str(lexicon),
            tokens=names,
            lm=None if lm is None else str(lm),
            nbest=1,
            beam_size=self.beam_size,
            beam_threshold=beam_threshold,
            lm_weight=lm_weight,
            word_score=word_score,
            blank_token=blank_name,
            sil_token=sil,
            log_add=True,  # a prefix scores the sum of its paths, as in the Python search
        )

    def _strip_edges(self, ids: list[int]) -> list[int]:
        """Drop the word boundaries flashlight puts around a hypothesis (not the model's)."""
        if self._sil_index == self.blank:
            return ids
        start, end = 0, len(ids)
        while start < end and ids[start] == self._sil_index:
            start += 1
        while end > start and ids[end - 1] == self._sil_index:
            end -= 1
        return ids[start:end]

    def decode(self, log_probs: Tensor, lengths: Tensor | None = None) -> list[list[int]]:
        """Log-probabilities (B, T, D) and valid frames (B,) -> token ids per utterance."""
        if log_probs.dim() != 3:
            raise ValueError(f"log_probs must be (B, T, D) (got shape {tuple(log_probs.shape)})")
        batch, time, _ = log_probs.shape
        if lengths is None:
            lengths = torch.full((batch,), time, dtype=torch.int32)
        emissions = log_probs.detach().float().cpu().contiguous()
        lengths = lengths.detach().cpu().to(torch.int32)
        if self._decoder is None:
            return [
                prefix_beam_search(emissions[b, : int(lengths[b])], self.blank, self.beam_size)
                for b in range(batch)
            ]
        results = self._decoder(emissions, lengths)
        return [self._strip_edges(hyps[0].tokens.tolist()) if hyps else [] for hyps in results]
