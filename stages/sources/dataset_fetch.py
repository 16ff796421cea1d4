"""The 1 Billion Word Benchmark: download the tarball once into a cache and
unpack only the folder the pipeline reads (the held-out sentences), not the
whole 1.7 GB archive.

An unpack is built in a temporary sibling folder and renamed into place, with
a marker file written last, so a killed run never leaves a folder that looks
finished. Members are written by this module itself rather than by
``tarfile.extract``: only regular files under the wanted folder are ever
created, whatever tarfile's extraction filters do on the running Python.
"""
from __future__ import annotations

import shutil
import tarfile
import urllib.parse
from pathlib import Path, PurePosixPath
from typing import Optional

from stages.common.atomic import atomic_path
from stages.sources.download import fetch_info
from stages.common.errors import StageError
from stages.sources.official import LM1B_TARBALL

OFFICIAL_URL, OFFICIAL_SHA256, OFFICIAL_SIZE = LM1B_TARBALL
ARCHIVE_ROOT = "1-billion-word-language-modeling-benchmark-r13output"
FOLDERS = {
    "heldout": "heldout-monolingual.tokenized.shuffled",
    "training": "training-monolingual.tokenized.shuffled",
}
DEFAULT_CACHE_DIR = Path("data") / "cache"
# Holds the sha256 of the tarball it came from: a different tarball means
# the unpacked folder is stale.
MARKER = ".unpacked"


class DatasetError(StageError):
    """The archive is not the benchmark layout, or holds an unsafe member."""


def fetch_dataset(
    dest_dir: Path,
    url: str = OFFICIAL_URL,
    sha256: Optional[str] = OFFICIAL_SHA256,
    members: str = "heldout",
    *,
    cache_dir: Path = DEFAULT_CACHE_DIR,
    allow_unverified: bool = False,
    progress: bool = True,
) -> Path:
    """Return ``dest_dir/<folder>`` (by default
    ``heldout-monolingual.tokenized.shuffled``) holding that folder of the
    benchmark tarball, downloading and unpacking only if not done already."""
    if members not in FOLDERS:
        raise DatasetError(f"unknown member set {members!r}: choose one of {', '.join(FOLDERS)}")
    folder = FOLDERS[members]
    target = Path(dest_dir) / folder
    # Checked before the download so that a finished unpack needs neither the
    # network nor the cached tarball.
    if _unpacked_from(target, sha256):
        return target

    tarball = fetch_info(
        url,
        Path(cache_dir) / _file_name(url),
        sha256,
        allow_unverified=allow_unverified,
        progress=progress,
    )
    with atomic_path(target) as tmp:
        tmp.mkdir()
        count = _unpack(tarball.path, f"{ARCHIVE_ROOT}/{folder}", tmp)
        if count == 0:
            raise DatasetError(f"{tarball.path} has no files under {ARCHIVE_ROOT}/{folder}/: is {url} the benchmark tarball?")
        (tmp / MARKER).write_text(tarball.sha256 + "\n", encoding="utf-8")
    return target


def _unpacked_from(target: Path, sha256: Optional[str]) -> bool:
    marker = target / MARKER
    if not marker.is_file():
        return False
    return sha256 is None or marker.read_text(encoding="utf-8").strip() == sha256.strip().lower()


def _file_name(url: str) -> str:
    return PurePosixPath(urllib.parse.urlsplit(url).path).name or "lm1b.tar.gz"


def _unpack(tarball: Path, prefix: str, out: Path) -> int:
    count = 0
    # Streamed in archive order: a .tar.gz cannot seek, and the wanted folder
    # is a small part of it.
    with tarfile.open(tarball, "r:*") as archive:
        for member in archive:
            rel = _inside(member.name, prefix)
            if rel is None:
                continue
            if rel.is_absolute() or ".." in rel.parts or not (member.isfile() or member.isdir()):
                raise DatasetError(
                    f"{tarball} holds an unsafe member {member.name!r} (a link, a device or a path "
                    "leaving its folder); delete the tarball and rerun, or check the URL"
                )
            path = out.joinpath(*rel.parts)
            if member.isdir():
                path.mkdir(parents=True, exist_ok=True)
                continue
            path.parent.mkdir(parents=True, exist_ok=True)
            source = archive.extractfile(member)
            with source, path.open("wb") as sink:
                shutil.copyfileobj(source, sink, 1 << 20)
            count += 1
    return count


def _inside(name: str, prefix: str) -> Optional[PurePosixPath]:
    """The member's path relative to ``prefix``, or None if it lies elsewhere."""
    while name.startswith("./"):
        name = name[2:]
    if not name.startswith(prefix + "/"):
        return None
    rest = name[len(prefix) + 1:].rstrip("/")
    return PurePosixPath(rest) if rest else None
