"""Timing calls: perf's sweep and make om's engine probe measure with the same loop."""
from __future__ import annotations

import time
from typing import Callable, List, Sequence, TypeVar

T = TypeVar("T")

import numpy as np


def timed_slot(infer: Callable[[np.ndarray], object], inputs: np.ndarray, seconds: float, min_count: int) -> list:
    """Call ``infer`` for ``seconds`` (at least ``min_count`` times); the duration of each call."""
    timings = []
    slot_end = time.perf_counter() + seconds
    while len(timings) < min_count or time.perf_counter() < slot_end:
        started = time.perf_counter()
        infer(inputs)
        timings.append(time.perf_counter() - started)
    return timings


def round_order(items: Sequence[T], round_: int) -> List[T]:
    """The order of ``items`` in alternating round ``round_``: reversed every other round, so no item
    always runs right after the same neighbour (whose caches, heat and clock it would inherit)."""
    return list(items) if round_ % 2 == 0 else list(items)[::-1]
