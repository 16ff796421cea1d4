"""How the accuracy stage's two references are computed from a chunk of sentences.

Kept apart from the judge (``stages.reports.accuracy``) because the kept references are keyed by
this code (``stages.reports.references.MODEL_CODE``): a change here, or in the model and the
runners, computes them again, while a change in how they are judged or reported reuses them.

(a) ``onnx_padded``: ONNX Runtime float32 on the simplified ONNX, the same padded ``[B, W, 50]``
    inputs the target ran, ``onnx_batch(W)`` sentences a call;
(b) ``torch_unpadded``: the PyTorch module on each sentence at its own length, equal lengths
    ``torch_group(length)`` at a time, over ``TORCH_WINDOW_CHUNKS`` chunks at once (``ChunkWindows``).

Both return ``[real tokens, D]``: each sentence's real tokens, sentence after sentence.
"""
from __future__ import annotations

import collections
from typing import Callable, Sequence

import numpy as np

# Reference (a)'s batch holds about this many padded tokens: at 8 tokens a batch of 64 ran 1.10x
# the sentences/s of 16, and 256 no faster (2-core AVX2 EPYC); at 32 tokens a batch of 64 took the
# pass to 1.56 GB where 16 stayed under 1 GB.
ORT_BATCH_TOKENS = 512
ORT_BATCH_MIN = 16


def onnx_batch(word_len: int) -> int:
    """Reference (a)'s batch for sentences of ``word_len`` tokens (padded): 64 at 8, 16 from 32 on."""
    return max(ORT_BATCH_MIN, ORT_BATCH_TOKENS // max(int(word_len), 1))


# Equal-length sentences PyTorch runs together (still unpadded): about this many positions (sentence
# marks included) a group, between 32 and 128 sentences. On oneDNN at 8 tokens, groups of 128 ran
# 1.17x the sentences/s of 32 with bit-identical results (2-core AVX2 EPYC); from 38 tokens on a
# group stays at 32, whose [B, T, 4C] gate inputs already take 0.14 GB at 64 tokens, full size.
TORCH_GROUP_POSITIONS = 1280
TORCH_GROUP_MIN, TORCH_GROUP_MAX = 32, 128
# Reference (b) runs this many of the stage's chunks at once, so that its equal-length groups can
# fill: a chunk at 8 tokens holds 512 sentences, about 64 of each common length.
TORCH_WINDOW_CHUNKS = 4


def torch_group(length: int) -> int:
    """Sentences of ``length`` tokens reference (b) runs in one call."""
    return min(TORCH_GROUP_MAX, max(TORCH_GROUP_MIN, TORCH_GROUP_POSITIONS // (int(length) + 2)))


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
        size = torch_group(n)
        for start in range(0, len(positions), size):
            group = positions[start : start + size]
            out = runner.infer({"input": ids[group, :n]})["output"]
            for row, position in enumerate(group):
                results[position] = out[row]
    return np.concatenate(results) if results else np.zeros((0, 0), dtype=np.float32)


class ChunkWindows:
    """A reference computed ``window`` chunks at a time and handed back one chunk per call.

    ``compute(indices)`` returns the ``[real tokens, D]`` outputs of those sentences; ``lengths[i]``
    is sentence i's token count. Calls must ask for ``chunks`` in their order, the order the
    references are computed and kept in.
    """

    def __init__(self, compute: Callable[[np.ndarray], np.ndarray], chunks: Sequence[np.ndarray],
                 lengths: np.ndarray, window: int = TORCH_WINDOW_CHUNKS):
        self.compute, self.chunks, self.lengths, self.window = compute, list(chunks), lengths, window
        self._next = 0
        self._ready = collections.deque()

    def __call__(self, chunk: np.ndarray) -> np.ndarray:
        if not self._ready and self._next < len(self.chunks):
            taken = self.chunks[self._next : self._next + self.window]
            self._next += len(taken)
            out = self.compute(np.concatenate(taken))
            ends = np.cumsum([int(np.sum(self.lengths[c])) for c in taken])[:-1]
            self._ready.extend(zip(taken, np.split(out, ends)))
        if not self._ready or not np.array_equal(self._ready[0][0], chunk):
            raise RuntimeError("ChunkWindows: chunks must be asked for in the order they were listed")
        return self._ready.popleft()[1]
