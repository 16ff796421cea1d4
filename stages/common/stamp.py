"""Content stamps: make sees a user's input file change when its bytes change.

``python3 -m stages.common.stamp STAMP FILE...`` records each file's sha256 in
the JSON file STAMP and rewrites STAMP only when a hash, or the set of files,
changed, so STAMP's modification time tells make whether the content did. A
file whose size and mtime are as recorded is not hashed again, which keeps a
no-op run cheap with a 374 MB weights file. Standard library only: make runs
it before the project's virtual environment exists.
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from stages.common.atomic import write_json
from stages.common.hashing import sha256_file

SCHEMA = "elmo-input-stamp/1"


def refresh(stamp, files) -> bool:
    """Bring ``stamp`` up to date with ``files``; True if it was rewritten."""
    stamp = Path(stamp)
    try:
        old = json.loads(stamp.read_text(encoding="utf-8")).get("files", {})
    except (OSError, ValueError, AttributeError):
        old = {}
    new = {}
    for name in files:
        path = Path(name).resolve()
        st = path.stat()
        seen = old.get(str(path), {})
        same = seen.get("size") == st.st_size and seen.get("mtime_ns") == st.st_mtime_ns and seen.get("sha256")
        new[str(path)] = {"size": st.st_size, "mtime_ns": st.st_mtime_ns,
                          "sha256": seen["sha256"] if same else sha256_file(path)}
    hashes = lambda table: {k: v["sha256"] for k, v in table.items()}  # noqa: E731
    if stamp.is_file() and hashes(old) == hashes(new):
        if old != new:
            # Same bytes, new mtime (a touch, a copy): remember it without telling make anything changed.
            mtime = stamp.stat().st_mtime_ns
            _write(stamp, new)
            os.utime(stamp, ns=(mtime, mtime))
        return False
    _write(stamp, new)
    return True


def _write(stamp: Path, files: dict) -> None:
    write_json(stamp, {"schema": SCHEMA, "files": files})


def main(argv) -> int:
    if len(argv) < 1:
        print("usage: python3 -m stages.common.stamp STAMP [FILE...]", file=sys.stderr)
        return 2
    try:
        refresh(argv[0], argv[1:])
    except OSError as exc:
        print(f"error: {exc.filename}: {exc.strerror}; check the path", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
