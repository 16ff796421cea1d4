"""The alternating rounds perf's sweep and make om's engine probe time in."""
from __future__ import annotations

import numpy as np

from stages.common.timing import round_order
from stages.reports.perf import Variant, run_sweep


def test_every_other_round_runs_in_reverse():
    assert round_order("abc", 0) == ["a", "b", "c"]
    assert round_order("abc", 1) == ["c", "b", "a"]
    assert round_order("abc", 2) == ["a", "b", "c"]


class _Recorder:
    def __init__(self, name, log):
        self.name, self.log = name, log

    def infer(self, inputs):
        self.log.append(self.name)
        return {"output": np.zeros((len(inputs["input"]), 1), dtype=np.float32)}


def test_sweep_alternates_so_no_variant_always_follows_the_same_one(monkeypatch):
    log = []
    variants = [Variant(name, "peer", _Recorder(name, log), "fp32", 4) for name in ("a", "b", "c")]
    monkeypatch.setattr(Variant, "kernel", lambda self, batch, flags: {})
    ids = np.ones((4, 3, 50), dtype=np.int32)
    results = run_sweep(variants, ids, [1], seconds=0.0, warmup=0, rounds=4, min_iters=4, progress=False)
    assert log == ["a", "b", "c", "c", "b", "a"] * 2
    assert {r["variant"]: r["iterations"] for r in results} == {"a": 4, "b": 4, "c": 4}
