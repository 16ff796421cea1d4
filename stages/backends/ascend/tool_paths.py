"""Folders and files in the form recent ais_bench releases accept.

From 2024 on, ais_bench checks every path argument before it runs
(docs/ascend-releases.md): only ``A-Za-z0-9_-/.`` characters, no symbolic
link, owned by the running user (or its group), files it reads without a
group- or other-write bit, and the ``--output`` folder at most 0o750. A folder
made with ``mkdir`` under the usual umask 022 is 0o755 and refused; under umask
002 inputs and the .om are 0o664 and refused too. So modes are set explicitly
here, whatever the umask, and older releases (which check nothing) get the
same paths.
"""
from __future__ import annotations

import os
import re
import shutil
import stat
from pathlib import Path
from typing import Sequence

from stages.common.errors import StageError

SAFE_PATH = re.compile(r"^[A-Za-z0-9_\-/.]+$")
OUTPUT_DIR_MODE = 0o750
INPUT_DIR_MODE = 0o750
# Bits ais_bench refuses on anything it reads.
WRITABLE_BY_OTHERS = stat.S_IWGRP | stat.S_IWOTH


def check_safe(path, variable: str) -> Path:
    """``path`` made absolute, or ``StageError`` naming ``variable`` when ais_bench would refuse it."""
    path = Path(path).resolve()
    text = str(path)
    if not SAFE_PATH.match(text):
        bad = sorted({ch for ch in text if not SAFE_PATH.match(ch)})
        shown = " ".join(repr(ch) for ch in bad)
        raise StageError(
            f"{text}: ais_bench refuses paths holding {shown} (only A-Z a-z 0-9 _ - / . are accepted); "
            f"set {variable} to a path without them"
        )
    return path


def private_dir(path) -> Path:
    """Make ``path`` (a new folder) with mode 0o750, whatever the umask."""
    path = Path(path)
    path.mkdir(parents=True)
    os.chmod(path, OUTPUT_DIR_MODE)
    return path


def not_writable_by_others(path) -> None:
    """Drop group/other write bits from a file or folder ais_bench reads."""
    mode = os.stat(path).st_mode
    if mode & WRITABLE_BY_OTHERS:
        os.chmod(path, stat.S_IMODE(mode) & ~WRITABLE_BY_OTHERS)


def share_files(files: Sequence[Path], folder: Path) -> dict:
    """Put ``files`` into a new folder ``folder`` as hard links, else copies; never symbolic links.

    Returns ``{"linked": n, "copied": n, "copied_bytes": n}``. A hard link
    shares its source's mode, so the source loses any group/other write bit.
    """
    private_dir(folder)
    linked = copied = copied_bytes = 0
    for path in files:
        target = folder / path.name
        not_writable_by_others(path)
        try:
            os.link(str(path), str(target))
            linked += 1
        except OSError:
            # Another filesystem, or one without hard links: a real copy is what the tool accepts.
            shutil.copyfile(str(path), str(target))
            not_writable_by_others(target)
            copied += 1
            copied_bytes += target.stat().st_size
    return {"linked": linked, "copied": copied, "copied_bytes": copied_bytes}
