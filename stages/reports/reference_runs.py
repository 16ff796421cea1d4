"""How the accuracy stage's two references are computed from a chunk of sentences.

Kept apart from the judge (``stages.reports.accuracy``) because the kept references are keyed by
this code (``stages.reports.references.MODEL_CODE``): a change here, or in the model and the
runners, computes them again, while a change in how they are judged or reported reuses them.

(a) ``onnx_padded``: ONNX Runtime float32 on the simplified ONNX, the same padded ``[B, W, 50]``
    inputs the target ran, ``onnx_batch(W)`` sentences a call;
(b) ``torch_unpadded``: the PyTorch module on each sentence at its own length, equal lengths
    ``TORCH_GROUP`` at a time.

Both return ``[real tokens, D]``: each sentence's real tokens, sentence after sentence.
"""
from __future__ import annotations

import numpy as np

# Reference (a)'s batch holds about this many padded tokens: at 8 tokens a batch of 64 ran 1.10x
# the sentences/s of 16, and 256 no faster (2-core AVX2 EPYC); at 32 tokens a batch of 64 took the
# pass to 1.56 GB where 16 stayed under 1 GB.
ORT_BATCH_TOKENS = 512
ORT_BATCH_MIN = 16


def onnx_batch(word_len: int) -> int:
    """Reference (a)'s batch for sentences of ``word_len`` tokens (padded): 64 at 8, 16 from 32 on."""
    return max(ORT_BATCH_MIN, ORT_BATCH_TOKENS // max(int(word_len), 1))


# Equal-length sentences PyTorch runs together (still unpadded). 128 ran 1.23x the sentences/s of
# 32 at 8 tokens (same host), but a group never crosses a chunk, so most stay small, and other
# groups move PyTorch's last bits: kept at 32, the whole-corpus stage's, for its statistics.
TORCH_GROUP = 32


def mask(lengths, word_len: int) -> np.ndarray:
    """``[N, W]``: True at each sentence's real tokens."""
    return np.arange(word_len)[None, :] < np.asarray(lengths)[:, None]


def real_tokens(outputs, lengths) -> np.ndarray:
    """``[sum(lengths), D]``: each sentence's real tokens, sentence after sentence."""
    return outputs[mask(lengths, outputs.shape[1])]


def onnx_padded(runner, ids: np.ndarray, lengths) -> np.ndarray:
    """Reference (a): ``runner`` (ONNX Runtime fp32) over the padded ``ids``, real tokens kept."""
    from stages.backends.runners import infer_all

    return real_tokens(infer_all(runner, ids, batch_size=onnx_batch(ids.shape[1])), lengths)


def torch_unpadded(runner, ids: np.ndarray, lengths) -> np.ndarray:
    """Reference (b): each sentence run alone at its own length (``ids[i, :n]``, the .bin's rows
    without padding); equal lengths share a batch, still unpadded."""
    by_length = {}
    for position, n in enumerate(lengths):
        by_length.setdefault(int(n), []).append(position)
    results = [None] * len(lengths)
    for n, positions in sorted(by_length.items()):
        for start in range(0, len(positions), TORCH_GROUP):
            group = positions[start : start + TORCH_GROUP]
            out = runner.infer({"input": ids[group, :n]})["output"]
            for row, position in enumerate(group):
                results[position] = out[row]
    return np.concatenate(results) if results else np.zeros((0, 0), dtype=np.float32)
