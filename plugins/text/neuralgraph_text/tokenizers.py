"""Text to token ids and back: character labels and SentencePiece (BPE / unigram) models.

* :class:`CharTokenizer` maps each character of a text to its index in ``labels`` (NeMo's
  character ``labels`` list; a CTC blank is not a label).
* :class:`SentencePieceTokenizer` wraps a trained SentencePiece ``.model`` file; it pickles as the
  model's bytes, so datasets holding one work with ``num_workers > 0``.
* :func:`train_sentencepiece` trains a tokenizer on lines of text, as NeMo's
  ``process_asr_text_tokenizer.py`` does (no BOS/EOS/PAD pieces; ``<unk>`` is id 0).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from neuralgraph import UserError
from neuralgraph.validators import ParameterError
from neuralgraph_text.normalize import normalize_transcript

__all__ = ["CharTokenizer", "SentencePieceTokenizer", "train_sentencepiece"]


class CharTokenizer:
    """Characters to indices of ``labels`` and back (NeMo's character parser).

    Args:
        labels: the vocabulary, one character per label (the CTC blank is not part of it).
        normalize: whether :meth:`normalize` lowercases (unless a label is upper case) and drops
            punctuation that is not a label.
    """

    def __init__(self, labels: Sequence[str], *, normalize: bool = True) -> None:
        labels = list(labels)
        if not labels:
            raise ParameterError("labels", "a non-empty list of characters", labels)
        bad = [label for label in labels if not isinstance(label, str) or len(label) != 1]
        if bad:
            raise ParameterError("labels", f"a list of single characters ({bad[0]!r} is not one)",
                                 labels)
        _check_unique(labels)
        self.labels = labels
        self.normalize_text = normalize
        self._index = {label: i for i, label in enumerate(labels)}
        self._lowercase = all(label == label.lower() for label in labels)

    @property
    def vocab_size(self) -> int:
        """Number of labels."""
        return len(self.labels)

    def normalize(self, text: str) -> str:
        """The transcript as it is tokenized (unchanged when ``normalize`` is off)."""
        if not self.normalize_text:
            return text
        return normalize_transcript(text, self.labels, lowercase=self._lowercase)

    def oov_characters(self, text: str) -> list[str]:
        """Characters of the normalized ``text`` that are not labels, sorted."""
        return sorted(set(self.normalize(text)) - self._index.keys())

    def text_to_ids(self, text: str) -> list[int]:
        """Label indices of the normalized ``text``; characters that are not labels are skipped."""
        return [self._index[ch] for ch in self.normalize(text) if ch in self._index]

    def ids_to_text(self, ids: Iterable[int]) -> str:
        """The characters of label indices (each in ``[0, vocab_size)``)."""
        out = []
        for i in ids:
            i = int(i)
            if not 0 <= i < len(self.labels):
                raise ValueError(f"label id must be in [0, {len(self.labels)}) (got {i})")
            out.append(self.labels[i])
        return "".join(out)


def _check_unique(labels: Sequence[Any]) -> None:
    """A repeated label is a ParameterError naming its second place (``labels.<i>``)."""
    first: dict[Any, int] = {}
    for i, label in enumerate(labels):
        if label in first:
            raise ParameterError(f"labels.{i}", f"unique: labels[{first[label]}] is {label!r} too",
                                 label)
        first[label] = i


class SentencePieceTokenizer:
    """A SentencePiece model (``tokenizer.model``): text to piece ids and back.

    Args:
        model_path: the ``.model`` file written by :func:`train_sentencepiece` (or NeMo's
            tokenizer scripts: ``tokenizer_dir/tokenizer.model``).
        normalize: whether :meth:`normalize` lowercases and drops punctuation other than ``'``
            (what :func:`train_sentencepiece` does to its training text by default).

    Raises:
        ValueError: the file does not exist or is not a SentencePiece model.
    """

    def __init__(self, model_path: str | Path, *, normalize: bool = True) -> None:
        path = Path(model_path).expanduser()
        if not path.is_file():
            raise ValueError(f"tokenizer_model file not found: {path}")
        self.model_path = str(path)
        self.normalize_text = normalize
        self._proto = path.read_bytes()
        self._sp = self._load(self._proto, self.model_path)

    @staticmethod
    def _load(proto: bytes, where: str) -> Any:
        import sentencepiece as spm

        sp = spm.SentencePieceProcessor()
        try:
            sp.LoadFromSerializedProto(proto)
        except (RuntimeError, OSError) as err:
            message = f"tokenizer_model is not a SentencePiece model: {where} ({err})"
            raise ValueError(message) from None
        return sp

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        del state["_sp"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._sp = self._load(self._proto, self.model_path)

    @property
    def vocab_size(self) -> int:
        """Number of pieces (``<unk>`` included)."""
        return int(self._sp.GetPieceSize())

    @property
    def unk_id(self) -> int:
        """Id of ``<unk>``, given to text the model cannot cover."""
        return int(self._sp.unk_id())

    @property
    def tokens(self) -> list[str]:
        """All pieces in id order."""
        return [self._sp.IdToPiece(i) for i in range(self.vocab_size)]

    def normalize(self, text: str) -> str:
        """The transcript as it is tokenized (unchanged when ``normalize`` is off)."""
        return normalize_transcript(text, ("'",)) if self.normalize_text else text

    def text_to_tokens(self, text: str) -> list[str]:
        """Pieces of the normalized ``text``."""
        return list(self._sp.EncodeAsPieces(self.normalize(text)))

    def text_to_ids(self, text: str) -> list[int]:
        """Piece ids of the normalized ``text``."""
        return list(self._sp.EncodeAsIds(self.normalize(text)))

    def ids_to_text(self, ids: Iterable[int]) -> str:
        """Text of piece ids (each in ``[0, vocab_size)``)."""
        ids = [int(i) for i in ids]
        bad = [i for i in ids if not 0 <= i < self.vocab_size]
        if bad:
            raise ValueError(f"piece id must be in [0, {self.vocab_size}) (got {bad[0]})")
        return str(self._sp.DecodeIds(ids))


def train_sentencepiece(
    texts: Iterable[str],
    out_dir: str | Path,
    vocab_size: int,
    model_type: str = "bpe",
    character_coverage: float = 1.0,
    *,
    normalize: bool = True,
) -> Path:
    """Train a SentencePiece tokenizer on lines of text (e.g. transcripts).

    Writes ``out_dir/train_text.txt`` (one normalized line a line),
    ``out_dir/tokenizer.model`` and ``out_dir/vocab.txt`` (one piece a line, in id order);
    ``<unk>`` is id 0 and there are no BOS/EOS/PAD pieces, as in NeMo's ASR tokenizers.
    ``normalize`` lowercases and drops punctuation other than ``'``
    (:func:`~neuralgraph_text.normalize_transcript`); empty lines are left out.

    Returns:
        The path of ``tokenizer.model``.

    Raises:
        UserError: there is no text, or ``vocab_size`` is more than the text can give
            (SentencePiece's message says the largest size possible).
    """
    if model_type not in ("bpe", "unigram"):
        raise UserError(f"tokenizer type must be 'bpe' or 'unigram' (got {model_type!r})")
    if vocab_size < 2:
        raise UserError(f"vocab size must be at least 2 (got {vocab_size})")
    if not 0.0 < character_coverage <= 1.0:
        raise UserError(f"character coverage must be in (0, 1] (got {character_coverage})")
    lines = []
    for text in texts:
        text = normalize_transcript(text, ("'",)) if normalize else text.strip()
        if text:
            lines.append(text)
    if not lines:
        raise UserError("no text to train a tokenizer on")
    out = Path(out_dir).expanduser()
    out.mkdir(parents=True, exist_ok=True)
    text_file = out / "train_text.txt"
    text_file.write_text("\n".join(lines) + "\n", encoding="utf-8")
    _train(text_file, out / "tokenizer", vocab_size, model_type, character_coverage)
    model = out / "tokenizer.model"
    (out / "tokenizer.vocab").unlink(missing_ok=True)
    tokens = SentencePieceTokenizer(model, normalize=False).tokens
    (out / "vocab.txt").write_text("\n".join(tokens) + "\n", encoding="utf-8")
    return model


def _train(
    text_file: Path, prefix: Path, vocab_size: int, model_type: str, character_coverage: float
) -> None:
    import sentencepiece as spm

    try:
        spm.SentencePieceTrainer.Train(
            input=str(text_file),
            model_prefix=str(prefix),
            vocab_size=vocab_size,
            model_type=model_type,
            character_coverage=character_coverage,
            unk_id=0,
            bos_id=-1,
            eos_id=-1,
            pad_id=-1,
            num_threads=2,
            minloglevel=2,
        )
    except RuntimeError as err:
        reason = str(err).rsplit("] ", 1)[-1]  # drop "INTERNAL: src/file.cc(744) [(check)]"
        raise UserError(f"SentencePiece training failed: {reason}") from None
