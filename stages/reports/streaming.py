"""Accuracy statistics folded chunk by chunk, in memory that does not grow with the corpus.

A ``RunningComparison`` takes one chunk of sentences at a time (the candidate's and the
reference's real tokens, ``[T, D]`` each, and the sentence lengths) and keeps only running
figures: sums and minima of the sentence and token cosines, max and summed absolute error,
and for each cosine a fixed-bin histogram of its distance from 1. The 1st percentile and
the accuracy plot come from that histogram; means, minima and errors are exact.

The histogram: bin 0 holds ``1 - cosine <= 1e-12`` (exact matches, and cosines a rounding
above 1); bin ``i >= 1`` holds ``log10(1 - cosine)`` in ``[-12 + (i-1)/B, -12 + i/B)`` with
``B = BINS_PER_DECADE`` (1000: a bin is 1/1000 of a decade), up to ``1 - cosine = 2``. A
percentile is read as the geometric centre of the bin holding each of the two order statistics
``np.percentile`` interpolates between, clamped to the observed minimum and maximum, so it
is within half a bin, a factor ``10 ** (1 / 2000)`` (0.116 %), of the exact ``1 - cosine`` of
the larger of those two order statistics.

``WorstSentences`` keeps the ``count`` sentences with the lowest token cosine against any
reference, as the whole-corpus ranking would (ties: the lower sample number first).
"""
from __future__ import annotations

import heapq
import math
from typing import Dict, List, Optional, Sequence

import numpy as np

from stages.reports.metrics import EPS, cosine

FLOOR_LOG10 = -12.0  # 1 - cosine at or below 1e-12 counts as an exact match
TOP_LOG10 = math.log10(2.0)  # 1 - cosine is at most 2
BINS_PER_DECADE = 1000
BINS = 1 + int(math.ceil((TOP_LOG10 - FLOOR_LOG10) * BINS_PER_DECADE)) + 1
# Half a bin, as a factor on 1 - cosine: how far a histogram percentile can be from the exact one.
HALF_BIN_FACTOR = 10 ** (0.5 / BINS_PER_DECADE)


def distance_bins(values: np.ndarray) -> np.ndarray:
    """Histogram bin of each cosine (see the module's docstring)."""
    distance = 1.0 - np.asarray(values, dtype=np.float64)
    bins = np.zeros(distance.shape, dtype=np.int64)
    above = distance > 10.0 ** FLOOR_LOG10
    logged = np.log10(distance[above])
    bins[above] = 1 + np.floor((logged - FLOOR_LOG10) * BINS_PER_DECADE).astype(np.int64)
    return np.clip(bins, 0, BINS - 1)


def bin_distance(index: int) -> float:
    """The geometric centre of a bin, as 1 - cosine (0 for the exact-match bin)."""
    if index <= 0:
        return 0.0
    return 10.0 ** (FLOOR_LOG10 + (index - 0.5) / BINS_PER_DECADE)


class RunningCosine:
    """Count, sum, min, max and distance histogram of one kind of cosine."""

    def __init__(self):
        self.count = 0
        self.total = 0.0
        self.min = math.inf
        self.max = -math.inf
        self.hist = np.zeros(BINS, dtype=np.int64)

    def add(self, values: np.ndarray) -> None:
        values = np.asarray(values, dtype=np.float64)
        if not values.size:
            return
        self.count += int(values.size)
        self.total += float(values.sum())
        # A NaN (an overflowed fp16 output) must fail the gate, so it sticks: Python's min/max
        # would drop it, and the histogram counts it as the worst cosine, not a match.
        if np.isnan(values).any():
            self.min = self.max = math.nan
        elif not math.isnan(self.min):
            self.min = min(self.min, float(values.min()))
            self.max = max(self.max, float(values.max()))
        self.hist += np.bincount(distance_bins(np.nan_to_num(values, nan=-1.0)), minlength=BINS)

    def _order_statistic(self, k: int) -> float:
        """Estimate of the k-th smallest cosine (0-based): the k-th largest distance's bin."""
        if k <= 0:
            return self.min
        if k >= self.count - 1:
            return self.max
        # Distances ascending <=> cosines descending: the k-th smallest cosine is the
        # (count - 1 - k)-th smallest distance.
        position = self.count - 1 - k
        index = int(np.searchsorted(np.cumsum(self.hist), position, side="right"))
        return float(min(max(1.0 - bin_distance(index), self.min), self.max))

    def percentile(self, q: float) -> float:
        """``np.percentile(values, q)`` (linear interpolation) from the histogram."""
        rank = (self.count - 1) * q / 100.0
        low = int(math.floor(rank))
        fraction = rank - low
        value = self._order_statistic(low)
        if fraction:
            value += fraction * (self._order_statistic(low + 1) - value)
        return float(value)

    def summary(self) -> dict:
        """The fields ``metrics.summarize`` gives (``mean``, ``min``, ``p1``, ``count``)."""
        if not self.count:
            nan = float("nan")
            return {"mean": nan, "min": nan, "p1": nan, "count": 0}
        return {"mean": self.total / self.count, "min": self.min, "p1": self.percentile(1), "count": self.count}


def sentence_cosine(candidate: np.ndarray, reference: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """The seed's sentence cosine (flattened real tokens) for consecutive sentences of ``[T, D]`` tokens."""
    a = candidate.astype(np.float64)
    b = reference.astype(np.float64)
    num = np.add.reduceat((a * b).sum(axis=1), starts)
    den = np.sqrt(np.add.reduceat((a * a).sum(axis=1), starts)) * np.sqrt(np.add.reduceat((b * b).sum(axis=1), starts))
    both_zero = den < EPS
    safe = np.where(both_zero, 1.0, den)
    return np.where(both_zero, np.where(np.abs(num) < EPS, 1.0, 0.0), num / safe)


class RunningComparison:
    """One candidate against one reference, folded a chunk of sentences at a time."""

    def __init__(self):
        self.sentence = RunningCosine()
        self.token = RunningCosine()
        self.max_abs = 0.0
        self.abs_sum = 0.0
        self.abs_count = 0

    def add(self, candidate: np.ndarray, reference: np.ndarray, lengths: Sequence[int]) -> np.ndarray:
        """Fold a chunk in: ``[T, D]`` real tokens of consecutive sentences of ``lengths``.
        Returns the chunk's per-sentence minimum token cosine (for the worst sentences)."""
        if candidate.shape != reference.shape:
            raise ValueError(f"shape {candidate.shape} vs reference {reference.shape}")
        lengths = np.asarray(lengths, dtype=np.int64)
        if not lengths.size:
            return np.zeros(0)
        starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
        token = cosine(candidate, reference, axis=-1)
        self.token.add(token)
        self.sentence.add(sentence_cosine(candidate, reference, starts))
        diff = np.abs(candidate.astype(np.float64) - reference)
        if diff.size:
            largest = float(diff.max())  # NaN when any is: kept, as in RunningCosine
            self.max_abs = largest if math.isnan(largest) else max(self.max_abs, largest)
            self.abs_sum += float(diff.sum())
            self.abs_count += int(diff.size)
        return np.minimum.reduceat(token, starts)

    def raw(self) -> dict:
        """What ``accuracy._comparison`` reads: summaries and the two errors."""
        return {"sentence_cosine": self.sentence.summary(), "token_cosine": self.token.summary(),
                "max_abs_error": self.max_abs, "mean_abs_error": self.abs_sum / max(self.abs_count, 1)}


class WorstSentences:
    """The ``count`` sentences with the lowest token cosine against any reference, worst first."""

    def __init__(self, count: int):
        self.count = count
        self._heap: List[tuple] = []  # (-cosine, -index, tokens, reference): the best of the kept on top

    def add(self, indices: Sequence[int], lengths: Sequence[int], per_reference: Dict[str, np.ndarray]) -> None:
        """``per_reference``: name -> per-sentence min token cosine, in the report's reference order
        (a tie between references names the first, as the whole-corpus ranking did)."""
        worst: Optional[np.ndarray] = None
        against: List[str] = [""] * len(indices)
        for name, values in per_reference.items():
            values = np.nan_to_num(np.asarray(values, dtype=np.float64), nan=-np.inf)  # NaN: the worst
            if worst is None:
                worst = np.full(len(indices), np.inf)
            for i in np.flatnonzero(values < worst):
                worst[i], against[i] = values[i], name
        if worst is None:
            return
        for i, index in enumerate(indices):
            item = (-float(worst[i]), -int(index), int(lengths[i]), against[i])
            if len(self._heap) < self.count:
                heapq.heappush(self._heap, item)
            elif item > self._heap[0]:
                heapq.heapreplace(self._heap, item)

    def result(self) -> list:
        ranked = sorted(self._heap, key=lambda item: (-item[0], -item[1]))
        return [{"index": -neg_index, "tokens": tokens, "token_cosine_min": -neg_cos, "reference": reference}
                for neg_cos, neg_index, tokens, reference in ranked]
