"""neuralgraph's shared text home: normalization and tokenizers.

Used by every domain that turns text into token ids (ASR transcripts, NLP, TTS frontends).

* :func:`normalize_transcript`: NFC, lowercase, punctuation dropped (normalize.py).
* :class:`CharTokenizer`, :class:`SentencePieceTokenizer`, :func:`train_sentencepiece`: text to
  ids and back, and training a SentencePiece (BPE / unigram) model on lines of text
  (tokenizers.py).
"""

from __future__ import annotations

from neuralgraph_text.normalize import normalize_transcript
from neuralgraph_text.tokenizers import CharTokenizer, SentencePieceTokenizer, train_sentencepiece

__all__ = ["CharTokenizer", "SentencePieceTokenizer", "normalize_transcript", "train_sentencepiece"]
