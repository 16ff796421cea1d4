"""This process's memory: resident now, its high-water mark, and handing freed heap and read file pages back."""
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


def drop_file_pages(path) -> int:
    """Unmap from this process the resident pages of every mapping of the file ``path`` (bytes
    covered, 0 where none or not Linux). The mappings stay: a page read again faults back in from
    the file, so nothing changes but what sits in this process's memory. For a weights file a
    runtime mapped, read once while compiling (packing the weights into its own layout), and
    does not read again."""
    import ctypes
    import mmap

    target = str(Path(path).resolve())
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        maps = Path("/proc/self/maps").read_text().splitlines()
    except OSError:
        return 0
    libc.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    covered = 0
    for line in maps:
        fields = line.split(maxsplit=5)
        if len(fields) == 6 and fields[5] == target:
            start, end = (int(x, 16) for x in fields[0].split("-"))
            if libc.madvise(start, end - start, mmap.MADV_DONTNEED) == 0:
                covered += end - start
    return covered


def file_rss_mb(path) -> float:
    """How much of the file ``path`` is resident in this process's mappings (MB)."""
    target = str(Path(path).resolve())
    total, inside = 0, False
    try:
        lines = Path("/proc/self/smaps").read_text().splitlines()
    except OSError:
        return float("nan")
    for line in lines:
        fields = line.split(maxsplit=5)
        if not fields:
            continue
        if "-" in fields[0] and len(fields) >= 5 and ":" in fields[3]:  # a mapping's header line
            inside = len(fields) == 6 and fields[5] == target
        elif inside and fields[0] == "Rss:":
            total += int(fields[1])
    return total / 1024.0
