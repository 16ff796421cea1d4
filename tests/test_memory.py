"""The memory figures every report carries: a process's own peak, never a parent's."""
from __future__ import annotations

import multiprocessing

import numpy as np

from stages.common.memory import peak_rss_mb, rss_mb


def test_a_spawned_child_reports_its_own_peak_not_its_parents():
    held = np.ones(300 * 2 ** 20 // 8)  # 300 MB resident in this process when the child starts
    assert rss_mb() > 300 and peak_rss_mb() >= rss_mb() - 1
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        child_peak = pool.apply(peak_rss_mb)
    # ru_maxrss carries the parent's resident memory at the fork across exec: that read 300+ MB here.
    assert child_peak < rss_mb() - 250, (child_peak, rss_mb())
    del held
