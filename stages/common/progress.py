"""A status line for steps that take more than a few seconds and have no loop to put a bar on
(export, onnxsim, quantize, compile, accuracy's references): what is being done, a
"still ..." line every ``every`` seconds, and the elapsed time at the end, on stderr."""
from __future__ import annotations

import contextlib
import os
import sys
import threading
import time

EVERY_S = 15.0


@contextlib.contextmanager
def step(label: str, every: float = EVERY_S):
    started = time.perf_counter()
    print(f"{label} ...", file=sys.stderr, flush=True)
    done = threading.Event()

    def tick():
        while not done.wait(every):
            print(f"  still {label} ({time.perf_counter() - started:.0f} s)", file=sys.stderr, flush=True)

    ticker = threading.Thread(target=tick, daemon=True)
    ticker.start()
    try:
        yield
        _pause_if_asked(label)
    finally:
        done.set()
        ticker.join()
    print(f"{label}: done in {time.perf_counter() - started:.1f} s", file=sys.stderr, flush=True)


def _pause_if_asked(label: str) -> None:
    """``ELMO_PAUSE_AFTER=<label prefix>`` holds the step at its end, its temporaries still on disk,
    so the fault tests can kill -9 a run at exactly that moment."""
    wanted = os.environ.get("ELMO_PAUSE_AFTER")
    if wanted and label.startswith(wanted):
        print(f"paused after {label} (ELMO_PAUSE_AFTER)", file=sys.stderr, flush=True)
        time.sleep(3600)
