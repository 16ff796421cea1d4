"""sha256 of files, recorded in manifests and reports so results can be traced."""
from __future__ import annotations

import hashlib
from pathlib import Path


def sha256_file(path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for block in iter(lambda: handle.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()
