"""Agreement metrics between two sets of ELMo outputs.

* sentence cosine: the seed's check, cosine of the flattened outputs of one
  sentence (its real tokens);
* token cosine: cosine per real token vector;
* max / mean absolute error over real tokens.
"""
from __future__ import annotations

from typing import List, Sequence

import numpy as np

EPS = 1e-12


def cosine(a: np.ndarray, b: np.ndarray, axis=-1) -> np.ndarray:
    a = a.astype(np.float64)
    b = b.astype(np.float64)
    num = (a * b).sum(axis=axis)
    den = np.linalg.norm(a, axis=axis) * np.linalg.norm(b, axis=axis)
    # Two zero vectors agree perfectly; one zero vector against a non-zero one does not.
    both_zero = den < EPS
    safe = np.where(both_zero, 1.0, den)
    return np.where(both_zero, np.where(np.abs(num) < EPS, 1.0, 0.0), num / safe)


def compare(candidate: Sequence[np.ndarray], reference: Sequence[np.ndarray]) -> dict:
    """Per-sentence arrays ``[n_i, D]`` (real tokens only) -> raw per-item metrics."""
    if len(candidate) != len(reference):
        raise ValueError(f"{len(candidate)} candidate sentences but {len(reference)} reference sentences")
    sentence_cos: List[float] = []
    token_cos: List[np.ndarray] = []
    max_abs: List[float] = []
    abs_sum = 0.0
    count = 0
    for got, want in zip(candidate, reference):
        if got.shape != want.shape:
            raise ValueError(f"shape {got.shape} vs reference {want.shape}")
        sentence_cos.append(float(cosine(got.reshape(-1), want.reshape(-1))))
        token_cos.append(cosine(got, want, axis=-1))
        diff = np.abs(got.astype(np.float64) - want)
        max_abs.append(float(diff.max()) if diff.size else 0.0)
        abs_sum += float(diff.sum())
        count += diff.size
    tokens = np.concatenate(token_cos) if token_cos else np.zeros(0)
    return {
        "sentence_cosine": np.asarray(sentence_cos),
        "token_cosine": tokens,
        "max_abs_error": max(max_abs) if max_abs else 0.0,
        "mean_abs_error": abs_sum / max(count, 1),
    }


def summarize(values: np.ndarray) -> dict:
    values = np.asarray(values, dtype=np.float64)
    return {
        "mean": float(values.mean()),
        "min": float(values.min()),
        "p1": float(np.percentile(values, 1)),
        "count": int(values.size),
    }
