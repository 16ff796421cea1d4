"""This process's memory: resident now, its high-water mark, and handing freed heap back."""
from __future__ import annotations

import os
import resource
from pathlib import Path


def peak_rss_mb() -> float:
    """This process's resident-memory high-water mark so far: Linux's VmHWM, the mark of the
    program now running. ru_maxrss (the fallback) survives exec, so in a child started by spawn
    (perf's PyTorch worker) it read the parent's 1.5 GB at the fork instead of the child's own."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    except (OSError, IndexError, ValueError):
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def rss_mb() -> float:
    """This process's resident memory now (NaN where /proc is not there)."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return float("nan")
    return pages * os.sysconf("SC_PAGE_SIZE") / 2 ** 20


def give_back_memory() -> None:
    """Return freed heap to the system: glibc keeps a freed model's pages (PyTorch's 0.4 GB,
    an OpenVINO model compiled for another batch size) resident under whatever comes next."""
    import ctypes
    import gc

    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc
        pass
