"""Metrics accumulated as sums over a whole data set: word (and character) error rate of CTC
outputs, and the accuracy of class logits (speech commands, VAD), with per-class precision and
recall."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor
from torchmetrics.classification import MulticlassStatScores

import neuralgraph as ng
from neuralgraph import AxisType, NeuralType
from neuralgraph.validators import (
    ParameterError,
    check,
    instance_of,
    non_empty,
    optional,
    positive_int,
    satisfies,
    sequence,
)
from neuralgraph_asr.decoding import ctc_greedy_decode

__all__ = ["WER", "ClassificationAccuracy", "TopKClassificationAccuracy", "edit_distance",
           "text_from_ids", "word_errors"]

log = logging.getLogger(__name__)


def text_from_ids(ids: Sequence[int], labels: Sequence[str]) -> str:
    """Text of token ids under a character vocabulary: the labels joined.

    Ids outside ``labels`` (a blank, padding) are skipped.
    """
    count = len(labels)
    return "".join(labels[i] for i in ids if 0 <= i < count)


def edit_distance(hypothesis: Sequence[Any], reference: Sequence[Any]) -> int:
    """Levenshtein distance between two sequences (of words or characters)."""
    try:
        from rapidfuzz.distance import Levenshtein
    except ImportError:  # rapidfuzz comes with jiwer; keep a pure-Python path regardless
        return _edit_distance_python(hypothesis, reference)
    return int(Levenshtein.distance(list(hypothesis), list(reference)))


def _edit_distance_python(hypothesis: Sequence[Any], reference: Sequence[Any]) -> int:
    previous = list(range(len(reference) + 1))
    for i, h in enumerate(hypothesis, start=1):
        current = [i]
        for j, r in enumerate(reference, start=1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (h != r)))
        previous = current
    return previous[-1]


def word_errors(hypothesis: str, reference: str, use_cer: bool = False) -> tuple[int, int]:
    """(edit errors, reference length) in words, or in characters when ``use_cer``."""
    if use_cer:
        return edit_distance(hypothesis, reference), len(reference)
    ref_words = reference.split()
    return edit_distance(hypothesis.split(), ref_words), len(ref_words)


DECODINGS = ("greedy", "beam")


class WER(ng.NeuralMetric):
    """Word error rate of CTC decoding: total edit errors / total reference words.

    Parameters:

    - ``labels``: the character vocabulary (ids map to ``labels[id]``, joined); or
    - ``tokenizer``: any object with ``ids_to_text(ids)`` or ``decode(ids)`` (word pieces);
      from YAML, ``tokenizer_model``: a SentencePiece ``.model`` file (packed into archives).
      A ``decode_fn(ids) -> str`` attribute may also be assigned after construction.
    - ``blank``: the blank's id (default ``len(labels)``; without labels, the last class).
    - ``use_cer``: count characters instead of words (character error rate).
    - ``log_prediction``: log the first hypothesis and reference of every update.
    - ``decoding``: ``greedy`` (default) or ``beam`` (CTC beam search); for beam search,
      ``beam_size`` (16), ``lexicon`` (a flashlight lexicon file), ``lm`` (a KenLM or ARPA
      n-gram file), ``lm_weight`` (2.0) and ``word_score`` (0.0); a lexicon or LM needs
      flashlight-text (in the ``asr`` extra). Both files are packed into archives.

    Errors and reference words are summed over updates (and across ranks), so the result over
    several batches is the ratio of sums, not the mean of per-batch rates. ``compute()`` returns
    a float tensor.

    Ports: ``predictions`` (B, T, D) log-probabilities, ``predictions_lengths`` (B,),
    ``targets`` (B, S) label ids, ``target_lengths`` (B,).
    """

    artifacts = ("tokenizer_model", "lexicon", "lm")
    full_state_update = False
    is_differentiable = False
    higher_is_better = False

    def __init__(
        self,
        labels: Sequence[str] | None = None,
        blank: int | None = None,
        use_cer: bool = False,
        log_prediction: bool = False,
        tokenizer: Any = None,
        tokenizer_model: str | None = None,
        decoding: str = "greedy",
        beam_size: int = 16,
        lexicon: str | None = None,
        lm: str | None = None,
        lm_weight: float = 2.0,
        word_score: float = 0.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if decoding not in DECODINGS:
            raise ValueError(f"decoding must be one of {list(DECODINGS)} (got {decoding!r})")
        if decoding == "greedy" and (lexicon is not None or lm is not None):
            raise ValueError("lexicon and lm are for decoding: beam (got decoding: greedy)")
        if tokenizer_model is not None:
            if tokenizer is not None:
                raise ValueError("give either tokenizer or tokenizer_model, not both")
            from neuralgraph_text import SentencePieceTokenizer

            tokenizer = SentencePieceTokenizer(tokenizer_model)
        self.tokenizer_model = tokenizer_model
        self.vocab_size = getattr(tokenizer, "vocab_size", None)
        if labels is not None and tokenizer is not None:
            raise ValueError("give either labels or tokenizer, not both")
        self.labels = list(labels) if labels is not None else None
        if blank is None and self.labels is not None:
            blank = len(self.labels)
        self.blank = check("blank", blank, optional(instance_of(int)))
        self.use_cer = bool(use_cer)
        self.log_prediction = bool(log_prediction)
        self.decode_fn: Callable[[Sequence[int]], str] | None = self._decoder_of(tokenizer)
        self.decoding = decoding
        self.lexicon, self.lm = lexicon, lm
        self._beam: Any = None
        if decoding == "beam":
            from neuralgraph_asr.decoding import CTCBeamSearchDecoder

            tokens = self.labels if self.labels is not None else getattr(tokenizer, "tokens", None)
            if tokens is None:
                raise ValueError("decoding: beam needs labels or a tokenizer with a token list")
            self._beam = CTCBeamSearchDecoder(
                tokens, blank=self.blank, beam_size=beam_size, lexicon=lexicon, lm=lm,
                lm_weight=lm_weight, word_score=word_score,
            )
        self.add_state("errors", default=torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("words", default=torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    @staticmethod
    def _decoder_of(tokenizer: Any) -> Callable[[Sequence[int]], str] | None:
        if tokenizer is None:
            return None
        for name in ("ids_to_text", "decode"):
            method = getattr(tokenizer, name, None)
            if callable(method):
                return method
        raise ValueError("tokenizer must have an ids_to_text(ids) or decode(ids) method")

    @property
    def input_types(self) -> dict[str, NeuralType]:
        vocab = len(self.labels) if self.labels else self.vocab_size
        classes = AxisType("D", vocab + 1) if vocab else AxisType("D")
        return {
            "predictions": NeuralType((AxisType("B"), AxisType("T"), classes), ng.LogprobsType()),
            "predictions_lengths": NeuralType(("B",), ng.LengthsType()),
            "targets": NeuralType(("B", "T"), ng.LabelsType(vocab_size=vocab)),
            "target_lengths": NeuralType(("B",), ng.LengthsType()),
        }

    def ids_to_text(self, ids: Sequence[int]) -> str:
        """Text of token ids, via ``decode_fn`` if set, else the labels."""
        if self.decode_fn is not None:
            return self.decode_fn(list(ids))
        if self.labels is None:
            raise ValueError("WER needs labels, a tokenizer or a decode_fn to turn ids into text")
        return text_from_ids(ids, self.labels)

    def update(
        self,
        predictions: Tensor,
        predictions_lengths: Tensor,
        targets: Tensor,
        target_lengths: Tensor,
    ) -> None:
        """Decode a batch (greedy or beam search) and add its errors and reference words."""
        blank = self.blank if self.blank is not None else predictions.shape[-1] - 1
        if self._beam is not None:
            decoded = self._beam.decode(predictions.detach(), predictions_lengths)
        else:
            decoded = ctc_greedy_decode(predictions.detach(), predictions_lengths, blank)
        hypotheses = [self.ids_to_text(ids) for ids in decoded]
        target_rows = targets.detach().long().cpu().tolist()
        lengths = target_lengths.detach().long().cpu().tolist()
        references = [self.ids_to_text(row[:n]) for row, n in zip(target_rows, lengths)]
        errors = words = 0
        for hypothesis, reference in zip(hypotheses, references):
            e, w = word_errors(hypothesis, reference, self.use_cer)
            errors, words = errors + e, words + w
        if self.log_prediction and references:
            log.info("reference: %s", references[0])
            log.info("predicted: %s", hypotheses[0])
        self.errors += errors
        self.words += words

    def compute(self) -> Tensor:
        """Errors / reference words over everything seen since the last reset.

        0 when nothing was counted; infinity for errors against empty references only.
        """
        errors, words = self.errors.double(), self.words.double()
        empty = torch.where(errors > 0, torch.full_like(errors, float("inf")), errors)
        return torch.where(words > 0, errors / words.clamp(min=1), empty).float()


def _class_count(num_classes: int | None, labels: Sequence[str] | None) -> int:
    """The number of classes from ``num_classes`` and/or ``labels`` (one of them, or both
    agreeing)."""
    check("num_classes", num_classes, optional(positive_int))
    check("labels", labels, optional(satisfies(lambda v: sequence.accepts(v)
                                               and non_empty.accepts(v),
                                               "a non-empty list of class names")))
    if num_classes is None and labels is None:
        raise ValueError("give num_classes or labels (the class names)")
    if num_classes is not None and labels is not None and len(labels) != num_classes:
        raise ValueError(f"num_classes ({num_classes}) must equal the number of labels "
                         f"({len(labels)})")
    return num_classes if num_classes is not None else len(labels or ())


class TopKClassificationAccuracy(ng.NeuralMetric, MulticlassStatScores):
    """Share of predictions whose true class is among the ``top_k`` highest logits (NeMo's
    ``TopKClassificationAccuracy``; torchmetrics' multiclass statistics underneath).

    Parameters:

    - ``num_classes`` and/or ``labels`` (the class names, ``${labels}``): the number of
      classes, checked against the logits' D and the labels' vocabulary before training.
    - ``top_k``: a prediction is right when the true class is among its ``top_k`` best (1:
      plain accuracy). NeMo takes a list of k and logs one figure each; a graph metric is one
      number, so write one metric per k.

    True positives, false positives and false negatives are kept per class and summed over
    updates (and across ranks): ``compute()`` is correct / total over the whole data set, and
    :meth:`details` (what ``neuralgraph evaluate`` prints beside the accuracy) gives each
    class's precision, recall and count.

    Ports: ``logits`` (B, D=num_classes) LogitsType (or probabilities: only their order
    matters), ``labels`` (B,) LabelsType.
    """

    full_state_update = False
    is_differentiable = False
    higher_is_better = True

    def __init__(self, num_classes: int | None = None, labels: Sequence[str] | None = None,
                 top_k: int = 1) -> None:
        classes = _class_count(num_classes, labels)
        check("top_k", top_k, positive_int)
        if top_k > classes:
            raise ParameterError("top_k", f"<= the number of classes ({classes})", top_k)
        super().__init__(num_classes=classes, top_k=top_k, average=None, validate_args=False)
        self.class_names = [str(label) for label in labels] if labels is not None else None

    @property
    def input_types(self) -> dict[str, NeuralType]:
        return {
            "logits": NeuralType((AxisType("B"), AxisType("D", self.num_classes)),
                                 ng.LogitsType()),
            "labels": NeuralType(("B",), ng.LabelsType(vocab_size=self.num_classes)),
        }

    def update(self, logits: Tensor, labels: Tensor) -> None:  # type: ignore[override]
        """Add a batch: logits (B, D), true classes (B,) (an empty batch adds nothing)."""
        if labels.numel() == 0:
            return
        super().update(logits.detach().float(), labels.detach().long())

    def compute(self) -> Tensor:
        """Correct / total predictions so far (0 before any)."""
        total = (self.tp + self.fn).sum()
        return (self.tp.sum().double() / total.clamp(min=1)).float()

    def details(self) -> dict[str, Any]:
        """``{"per_class": {name: {"precision", "recall", "count"}}}``: per class, the share
        of its predictions that were right, the share of its utterances found, and how many
        utterances it had (names are the labels, or the class indices without them).
        Precision is for top-1 predictions only, so it is left out when ``top_k > 1``."""
        with self.sync_context():
            tp, fp, fn = self.tp.tolist(), self.fp.tolist(), self.fn.tolist()
        names = self.class_names or [str(i) for i in range(self.num_classes)]
        table: dict[str, dict[str, float | int]] = {}
        for name, hits, false_alarms, misses in zip(names, tp, fp, fn, strict=True):
            count = hits + misses
            row: dict[str, float | int] = {}
            if self.top_k == 1:
                row["precision"] = hits / (hits + false_alarms) if hits + false_alarms else 0.0
            row["recall"] = hits / count if count else 0.0
            row["count"] = int(count)
            table[name] = row
        return {"per_class": table}


class ClassificationAccuracy(TopKClassificationAccuracy):
    """Accuracy of class logits: the share of predictions whose highest logit is the true
    class, with per-class precision, recall and count (:meth:`details`). Parameters:
    ``num_classes`` and/or ``labels``, as :class:`TopKClassificationAccuracy` with ``top_k``
    1. Ports: ``logits`` (B, D=num_classes), ``labels`` (B,)."""

    def __init__(self, num_classes: int | None = None,
                 labels: Sequence[str] | None = None) -> None:
        super().__init__(num_classes=num_classes, labels=labels, top_k=1)
