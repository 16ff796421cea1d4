"""Split input files across NPU devices and gather ais_bench's outputs back.

Each device gets its own input folder holding only its share of the ``.bin``
files, so ais_bench (which reads every file in a folder) sees nothing else;
``tool_paths.share_files`` puts them there.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Dict, List, Sequence

from stages.common.errors import StageError

_OUTPUT = re.compile(r"^(?P<stem>.+)_(?P<index>\d+)\.bin$")


def input_files(input_dir) -> List[Path]:
    folder = Path(input_dir)
    if not folder.is_dir():
        raise StageError(f"{input_dir}: no such input folder; run make data first")
    files = sorted(p for p in folder.iterdir() if p.suffix == ".bin" and p.is_file())
    if not files:
        raise StageError(f"{input_dir}: holds no .bin input files; run make data first")
    return files


def round_robin(files: Sequence[Path], devices: Sequence[int]) -> Dict[int, List[Path]]:
    """File i goes to ``devices[i % len(devices)]``; devices left without files are dropped."""
    shares: Dict[int, List[Path]] = {d: [] for d in devices}
    for index, path in enumerate(files):
        shares[devices[index % len(devices)]].append(path)
    return {d: share for d, share in shares.items() if share}


def gather_outputs(produced: Path, stems: Sequence[str], dest: Path) -> List[str]:
    """Move ``<stem>_<k>.bin`` for the given stems from ``produced`` into ``dest``.

    Returns the stems that have no ``<stem>_0.bin``.
    """
    wanted = set(stems)
    if produced.is_dir():
        for path in produced.iterdir():
            match = _OUTPUT.match(path.name)
            if match and match.group("stem") in wanted:
                os.replace(str(path), str(dest / path.name))
    return [stem for stem in stems if not (dest / f"{stem}_0.bin").is_file()]
