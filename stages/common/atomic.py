"""Write-then-rename helpers, so an interrupted stage never leaves a file or
folder that a later run would mistake for finished work.

Every temporary the project writes is named ``.<final name>.tmp-<pid>`` (the
atomic target) or ``.<final name>.tmp-<pid>.<purpose>`` (a scratch file or
folder beside it: the int8 model before ORT saves it, atc's working folder,
the quantizers' work), so one rule finds the leftovers of a killed run: the
pid is dead.
"""
from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
from pathlib import Path


@contextlib.contextmanager
def atomic_path(dest):
    """Yield a temporary sibling path; rename it onto ``dest`` only on success."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary(dest)
    _remove(tmp)
    remove_orphans(dest)
    try:
        yield tmp
        if dest.is_dir() and tmp.is_dir():
            shutil.rmtree(dest)
        os.replace(tmp, dest)
    finally:
        _remove(tmp)


def temporary(dest, purpose: str = "") -> Path:
    """This process's temporary for ``dest`` (``purpose`` names a scratch path beside it)."""
    dest = Path(dest)
    return dest.with_name(f".{dest.name}.tmp-{os.getpid()}" + (f".{purpose}" if purpose else ""))


def write_json(dest, payload) -> None:
    with atomic_path(dest) as tmp:
        tmp.write_text(json.dumps(payload, indent=2, sort_keys=False) + "\n", encoding="utf-8")


def write_text(dest, text: str) -> None:
    with atomic_path(dest) as tmp:
        tmp.write_text(text, encoding="utf-8")


_PID = re.compile(r"\.tmp-(\d+)(?:\.|$)")


def remove_orphans(dest) -> None:
    """Temporaries of ``dest`` left by a run that was killed (its pid is gone) are garbage."""
    dest = Path(dest)
    if not dest.parent.is_dir():
        return
    for stale in dest.parent.glob(f".{dest.name}.tmp-*"):
        found = _PID.search(stale.name[len(dest.name) + 1:])
        if found and not _alive(int(found.group(1))):
            _remove(stale)



def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A killed process whose parent never reaped it still answers kill(0).
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state not in ("Z", "X")


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()
