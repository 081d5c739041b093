"""CTC decoding: greedy (vectorized) and beam search (flashlight-text, or a Python fallback).

Token ids index the model's output classes; the blank is usually the last class
(``len(labels)``), as NeMo's ``ConvASRDecoder`` produces.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Sequence
from os import PathLike
from pathlib import Path

import torch
from torch import Tensor

from neuralgraph import UserError
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
KENLM_MAGIC = b"mmap lm http://kheafield.com/code"  # the start of a KenLM binary model
MAX_LINE = 1 << 20  # bytes of a lexicon or ARPA line; a longer one is not such a file


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
      ``lm_weight``, ``word_score``, ``beam_threshold``: flashlight's scores. Both files are
      checked before flashlight reads them (a UserError names the file, the line and what is
      wrong: not UTF-8, a line without a spelling, a token the model does not have, not ARPA).
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
        if lexicon is not None:
            _check_lexicon(lexicon, names)
        if lm is not None:
            _check_lm(lm)
        try:
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
        except (RuntimeError, ValueError) as err:  # flashlight's or KenLM's reader refused it
            reason = " ".join(str(err).split()) or type(err).__name__
            reason = re.sub(r"^.* threw \w+\.\s*", "", reason)  # KenLM's C++ source location
            lexicon_error = "loadWords" in reason or "Unknown entry" in reason
            what = (f"lexicon {lexicon}" if lexicon is not None and (lexicon_error or lm is None)
                    else f"lm {lm}")
            raise UserError(f"{what} cannot be loaded for beam search: {reason}") from None

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


def _check_file(kind: str, path: str | PathLike[str]) -> Path:
    """``path`` as a Path when it is a regular file; else a UserError saying what it is (a
    FIFO or a device is never opened: flashlight would block on it or read it forever)."""
    found = Path(path)
    if not found.exists():
        raise UserError(f"{kind} file not found: {path}")
    if found.is_dir():
        raise UserError(f"{kind} {path} is a directory, not a {kind} file")
    if not found.is_file():
        raise UserError(f"{kind} {path} is not a regular file (a FIFO or a device): only "
                        f"regular files are read")
    return found


def _lines(kind: str, path: str | PathLike[str], found: Path) -> Iterator[tuple[int, str]]:
    """The numbered lines of a text file; binary data, another encoding or a line over
    ``MAX_LINE`` bytes is a UserError naming the file and the line (read in bounded pieces, so
    that a large binary file costs no memory)."""
    with found.open("rb") as f:
        for number, raw in enumerate(iter(lambda: f.readline(MAX_LINE), b""), start=1):
            if b"\0" in raw:
                raise UserError(f"{kind} {path}:{number}: binary data (a NUL byte), not a {kind} "
                                "file: it must be UTF-8 text")
            if len(raw) >= MAX_LINE and not raw.endswith(b"\n"):
                raise UserError(f"{kind} {path}:{number}: a line longer than {MAX_LINE} bytes, "
                                f"not a {kind} file")
            try:
                yield number, raw.decode("utf-8")
            except UnicodeDecodeError as err:
                raise UserError(f"{kind} {path}:{number}: not UTF-8 text (byte "
                                f"0x{raw[err.start]:02x} at byte {err.start + 1} of the line): "
                                f"a {kind} file is UTF-8 text") from None


def _check_lexicon(path: str | PathLike[str], tokens: Sequence[str]) -> None:
    """A flashlight lexicon: UTF-8 lines ``word t o k e n s`` (at least one word), each
    spelled with ``tokens`` (the decoder's, ``|`` for the space)."""
    found = _check_file("lexicon", path)
    known = set(tokens)
    words = 0
    for number, line in _lines("lexicon", path, found):
        fields = line.split()
        if len(fields) < 2:
            got = "a blank line" if not fields else f"{fields[0][:40]!r} alone"
            raise UserError(f"lexicon {path}:{number}: a line must be a word and its spelling in "
                            f"the model's tokens, e.g. 'two t w o |' (got {got})")
        stray = [t for t in fields[1:] if t not in known]
        if stray:
            shown = " ".join(tokens[:40]) + (" ..." if len(tokens) > 40 else "")
            raise UserError(f"lexicon {path}:{number}: {fields[0][:40]!r} is spelled with "
                            f"{stray[0][:40]!r}, which is not one of the model's {len(tokens)} "
                            f"tokens ({shown})")
        words += 1
    if not words:
        raise UserError(f"lexicon {path} has no words: a line must be a word and its spelling, "
                        "e.g. 'two t w o |' ('neuralgraph asr lm' writes one)")


def _check_lm(path: str | PathLike[str]) -> None:
    """An n-gram model KenLM reads: a KenLM binary, or ARPA text whose first non-blank line
    is ``\\data\\`` (the rest is KenLM's to judge; its complaint is reported with the file)."""
    found = _check_file("lm", path)
    with found.open("rb") as f:
        if f.read(len(KENLM_MAGIC)) == KENLM_MAGIC:
            return
    for number, line in _lines("lm", path, found):
        if not line.strip():
            continue
        if line.strip() != "\\data\\":
            raise UserError(f"lm {path}:{number}: not an ARPA n-gram model or a KenLM binary: "
                            f"the first line of an ARPA file is '\\data\\' (got "
                            f"{line.strip()[:40]!r}); 'neuralgraph asr lm' writes one")
        return
    raise UserError(f"lm {path} is empty: an ARPA n-gram model starts with '\\data\\'")
