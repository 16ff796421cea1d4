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

    def release(self):
        self.log.append(f"release {self.name}")


def test_sweep_alternates_so_no_variant_always_follows_the_same_one(monkeypatch):
    log = []
    variants = [Variant(name, "peer", _Recorder(name, log), "fp32", 4) for name in ("a", "b", "c")]
    monkeypatch.setattr(Variant, "kernel", lambda self, batch, flags: {})
    ids = np.ones((4, 3, 50), dtype=np.int32)
    results = run_sweep(variants, ids, [1], seconds=0.0, warmup=0, rounds=4, min_iters=4, progress=False)
    assert log == ["release a", "release b", "release c"] + ["a", "b", "c", "c", "b", "a"] * 2
    assert {r["variant"]: r["iterations"] for r in results} == {"a": 4, "b": 4, "c": 4}


def test_every_model_lets_go_of_the_last_batch_size_before_any_warms_at_the_next(monkeypatch):
    log = []
    variants = [Variant(name, "peer", _Recorder(name, log), "fp32", 4) for name in ("a", "b")]
    variants[1].batches = [4]  # not timed at batch 2: released all the same
    monkeypatch.setattr(Variant, "kernel", lambda self, batch, flags: {})
    ids = np.ones((4, 3, 50), dtype=np.int32)
    run_sweep(variants, ids, [2, 4], seconds=0.0, warmup=1, rounds=1, min_iters=1, progress=False)
    assert log == ["release a", "release b", "a", "a",
                   "release a", "release b", "a", "b", "a", "b"]
