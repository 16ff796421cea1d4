"""ELMo character ids: the encoding bilm-tf and allennlp share."""
from __future__ import annotations

import numpy as np
import pytest

from stages.elmo.charids import BOS_IDS, EOS_IDS, MAX_CHARS, batch_ids, lengths_of, sentence_ids, token_ids


def test_ascii_token_layout():
    ids = token_ids("cat")
    # begin-of-word 258, bytes, end-of-word 259, padding 260; all +1
    assert list(ids[:6]) == [259, ord("c") + 1, ord("a") + 1, ord("t") + 1, 260, 261]
    assert np.all(ids[5:] == 261)
    assert ids.dtype == np.int32 and ids.shape == (MAX_CHARS,)


def test_utf8_bytes_not_code_points():
    ids = token_ids("café")
    assert list(ids[1:6]) == [b + 1 for b in "café".encode("utf-8")]
    assert ids[6] == 260


def test_long_token_is_cut_to_48_bytes_with_marks():
    ids = token_ids("x" * 80)
    assert ids[0] == 259 and ids[-1] == 260
    assert np.all(ids[1:49] == ord("x") + 1)


def test_sentence_marks_match_allennlp():
    assert list(BOS_IDS[:4]) == [259, 257, 260, 261]
    assert list(EOS_IDS[:4]) == [259, 258, 260, 261]
    assert np.array_equal(token_ids("<S>"), BOS_IDS)
    assert np.array_equal(token_ids("</S>"), EOS_IDS)


def test_padding_rows_are_zero_never_pseudo_words():
    ids = sentence_ids(["Hello", "world"], word_len=5)
    assert ids.shape == (5, MAX_CHARS)
    assert np.all(ids[2:] == 0)
    assert lengths_of(ids) == 2


def test_too_long_sentence_is_an_error():
    with pytest.raises(ValueError, match="more than word_len"):
        sentence_ids(["a"] * 9, word_len=8)


def test_empty_token_is_an_error():
    with pytest.raises(ValueError):
        token_ids("")


def test_batch_pads_to_longest():
    ids = batch_ids([["a"], ["b", "c", "d"], []])
    assert ids.shape == (3, 3, MAX_CHARS)
    assert list(lengths_of(ids)) == [1, 3, 0]
