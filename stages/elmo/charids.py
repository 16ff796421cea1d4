"""ELMo character ids: the encoding bilm-tf and allennlp use.

Each token becomes ``MAX_CHARS`` ids: begin-of-word, its UTF-8 bytes (cut so
the word marks fit), end-of-word, then the padding character. Every id is
shifted by +1 so that 0 can mean "no token here": a sentence shorter than the
model's word length is padded with all-zero rows, never with pseudo-words.
Sentence marks (``<S>``/``</S>``) are added inside the model, not here.
"""
from __future__ import annotations

from typing import Iterable, List, Sequence

import numpy as np

MAX_CHARS = 50
BOS_CHAR = 256
EOS_CHAR = 257
BOW_CHAR = 258
EOW_CHAR = 259
PAD_CHAR = 260
# Ids leave this module shifted by one; 0 is reserved for padding.
ID_OFFSET = 1
VOCAB_SIZE = PAD_CHAR + ID_OFFSET + 1  # 262 embedding rows, row 0 = padding

BOS_TOKEN = "<S>"
EOS_TOKEN = "</S>"


def _mark_ids(mark: int) -> List[int]:
    ids = [PAD_CHAR] * MAX_CHARS
    ids[0] = BOW_CHAR
    ids[1] = mark
    ids[2] = EOW_CHAR
    return [c + ID_OFFSET for c in ids]


BOS_IDS = np.asarray(_mark_ids(BOS_CHAR), dtype=np.int32)
EOS_IDS = np.asarray(_mark_ids(EOS_CHAR), dtype=np.int32)


def token_ids(token: str) -> np.ndarray:
    """The ``MAX_CHARS`` shifted ids of one token (long tokens are cut, as ELMo does)."""
    if token == BOS_TOKEN:
        return BOS_IDS.copy()
    if token == EOS_TOKEN:
        return EOS_IDS.copy()
    if not token:
        raise ValueError("empty token: tokens come from str.split() and are never empty")
    encoded = token.encode("utf-8", "ignore")[: MAX_CHARS - 2]
    ids = [PAD_CHAR] * MAX_CHARS
    ids[0] = BOW_CHAR
    ids[1 : len(encoded) + 1] = list(encoded)
    ids[len(encoded) + 1] = EOW_CHAR
    return np.asarray([c + ID_OFFSET for c in ids], dtype=np.int32)


def sentence_ids(tokens: Sequence[str], word_len: int | None = None) -> np.ndarray:
    """``[word_len, MAX_CHARS]`` int32 ids of one sentence, zero rows after its end.

    ``word_len=None`` sizes the array to the sentence. A sentence longer than
    ``word_len`` is an error: silently cutting it would change its vectors.
    """
    n = len(tokens)
    size = n if word_len is None else word_len
    if n > size:
        raise ValueError(f"sentence has {n} tokens, more than word_len={size}")
    out = np.zeros((size, MAX_CHARS), dtype=np.int32)
    for i, token in enumerate(tokens):
        out[i] = token_ids(token)
    return out


def batch_ids(sentences: Iterable[Sequence[str]], word_len: int | None = None) -> np.ndarray:
    """``[batch, word_len, MAX_CHARS]`` int32 ids; ``word_len=None`` uses the longest sentence."""
    sentences = [list(s) for s in sentences]
    size = word_len if word_len is not None else max((len(s) for s in sentences), default=0)
    if not sentences:
        return np.zeros((0, size, MAX_CHARS), dtype=np.int32)
    return np.stack([sentence_ids(s, size) for s in sentences])


def lengths_of(ids: np.ndarray) -> np.ndarray:
    """Number of real tokens per row of a ``[..., word_len, MAX_CHARS]`` id array."""
    return (ids != 0).any(axis=-1).sum(axis=-1)
