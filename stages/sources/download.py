"""Verified, resumable HTTP(S) downloads for model weights and data sets.

Bytes go to ``<dest>.part`` and are renamed onto ``dest`` only once their
sha256 matches the pinned one, so a file at ``dest`` is always a verified
file. A transfer that breaks off keeps its ``.part``; the next call asks the
server for the rest with a ``Range`` header instead of starting over, which
matters for a 1.7 GB tarball on a flaky link.
"""
from __future__ import annotations

import http.client
import logging
import os
import re
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Tuple

from tqdm import tqdm

from stages.common.errors import StageError
from stages.common.hashing import sha256_file

log = logging.getLogger(__name__)

_USER_AGENT = "elmo-pipeline-download/1"
_SHA256_HEX = re.compile(r"[0-9a-f]{64}")
_CONTENT_RANGE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)")
_UNSATISFIED_RANGE = re.compile(r"bytes\s+\*/(\d+)")


class DownloadError(StageError):
    """A transfer failed, or what arrived is not the pinned file."""


@dataclass(frozen=True)
class Fetched:
    path: Path
    sha256: str  # what the file on disk hashes to; equals the pinned digest when one was given
    cached: bool  # dest was already there (and valid): no request was made
    resumed_from: int  # bytes of an earlier .part that were kept, 0 if fetched from scratch


def reachable(url: str, timeout: float = 5.0) -> bool:
    """Cheap probe for ``auto`` sources: can this host open a TCP connection to
    the server at all? (Hosts without internet fail this at once.)"""
    import socket
    import urllib.parse

    parsed = urllib.parse.urlparse(url)
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        with socket.create_connection((parsed.hostname, port), timeout=timeout):
            return True
    except OSError:
        return False


def fetch(url: str, dest: Path, sha256: Optional[str], **options) -> Path:
    """Return ``dest`` holding the file at ``url`` whose sha256 is ``sha256``
    (options as for ``fetch_info``)."""
    return fetch_info(url, dest, sha256, **options).path


def fetch_info(
    url: str,
    dest: Path,
    sha256: Optional[str],
    *,
    allow_unverified: bool = False,
    progress: bool = True,
    chunk: int = 1 << 20,
    timeout: float = 60,
) -> Fetched:
    """Like ``fetch``, but also report the digest seen and whether the
    transfer was cached or resumed.

    ``sha256=None`` is refused unless ``allow_unverified=True``; the digest
    seen is then logged and returned so it can be pinned from then on.
    """
    dest = Path(dest)
    expected = _expected_digest(url, sha256, allow_unverified)
    if dest.is_file():
        seen = sha256_file(dest)
        if expected is None or seen == expected:
            return Fetched(dest, seen, cached=True, resumed_from=0)
        # A file under the trusted name that fails its digest must not
        # survive to be picked up by anything that only checks existence.
        log.warning("%s has sha256 %s, not the pinned %s; downloading it again", dest, seen, expected)
        dest.unlink()

    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    resumed_from = _transfer(url, part, dest.name, progress=progress, chunk=chunk, timeout=timeout)
    seen = sha256_file(part, chunk=chunk)
    if expected is not None and seen != expected:
        # Resuming a corrupt .part would only reproduce the mismatch.
        part.unlink()
        raise DownloadError(
            f"sha256 mismatch for {url} (saved as {dest}): expected {expected}, got {seen}; "
            "the download was deleted, so rerun to fetch it afresh, and if it mismatches again "
            "check the URL and the pinned sha256"
        )
    if expected is None:
        log.warning("%s was downloaded unverified; its sha256 is %s: pin it to verify later downloads", url, seen)
    os.replace(part, dest)
    return Fetched(dest, seen, cached=False, resumed_from=resumed_from)


def _expected_digest(url: str, sha256: Optional[str], allow_unverified: bool) -> Optional[str]:
    if sha256 is None:
        if not allow_unverified:
            raise DownloadError(
                f"no sha256 given for {url}: pin the file's sha256, or pass allow_unverified=True "
                "to accept whatever the server sends"
            )
        return None
    digest = sha256.strip().lower()
    if not _SHA256_HEX.fullmatch(digest):
        raise DownloadError(f"pinned sha256 for {url} is not 64 hex digits: {sha256!r}")
    return digest


class _RangeNotSatisfiable(Exception):
    """HTTP 416: the server has nothing past the offset we asked for."""

    def __init__(self, total: Optional[int]) -> None:
        super().__init__(total)
        self.total = total


def _transfer(url: str, part: Path, label: str, *, progress: bool, chunk: int, timeout: float) -> int:
    """Fill ``part`` with the whole file and return how many bytes of an
    earlier attempt were kept."""
    offset = part.stat().st_size if part.is_file() else 0
    try:
        response = _open(url, offset, timeout)
    except _RangeNotSatisfiable as exc:
        if exc.total is None or exc.total == offset:
            # The earlier attempt got every byte but died before the rename;
            # the digest check decides whether the .part is good.
            return offset
        log.warning("%s is %d bytes but the server's file is %s; starting over", part, offset, exc.total)
        part.unlink()
        offset = 0
        response = _open(url, 0, timeout)

    with response:
        length = _int_header(response, "Content-Length")
        if response.status == 206:
            start, total = _content_range(response.headers.get("Content-Range"), url)
            if start != offset:
                raise DownloadError(
                    f"{url} answered a resume request for byte {offset} with bytes from {start}; "
                    f"delete {part} and rerun to download from scratch"
                )
            mode = "ab"
            if total is None and length is not None:
                total = offset + length
        else:
            if offset:
                log.info("%s ignored the request to resume at byte %d; downloading from scratch", url, offset)
            offset, total, mode = 0, length, "wb"
        received = _receive(response, part, mode, url, label, offset=offset, total=total,
                            progress=progress, chunk=chunk)

    if length is not None and received < length:
        raise DownloadError(
            f"download of {url} stopped after {offset + received} of {offset + length} bytes; "
            f"{part} is kept: rerun to resume"
        )
    return offset


def _open(url: str, offset: int, timeout: float) -> http.client.HTTPResponse:
    # identity: byte counts and ranges must refer to the file itself, not to
    # a compressed rendering of it.
    headers = {"User-Agent": _USER_AGENT, "Accept-Encoding": "identity"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    try:
        return urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)
    except urllib.error.HTTPError as exc:
        exc.close()
        if exc.code == 416 and offset:
            match = _UNSATISFIED_RANGE.fullmatch((exc.headers.get("Content-Range") or "").strip())
            raise _RangeNotSatisfiable(int(match.group(1)) if match else None) from None
        if 500 <= exc.code < 600:
            fix = "the server failed; rerun later, a partial download resumes"
        else:
            fix = "check the URL"
        raise DownloadError(f"cannot download {url}: HTTP {exc.code} {exc.reason}; {fix}") from None
    except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
        reason = getattr(exc, "reason", None) or exc
        raise DownloadError(
            f"cannot download {url}: {reason}; check the network and rerun, a partial download resumes"
        ) from None


def _receive(response, part: Path, mode: str, url: str, label: str, *, offset: int,
             total: Optional[int], progress: bool, chunk: int) -> int:
    received = 0
    with part.open(mode) as out, tqdm(
        total=total, initial=offset, desc=label, unit="B", unit_scale=True, unit_divisor=1024,
        disable=None if progress else True,
    ) as bar:
        while True:
            try:
                block = response.read(chunk)
            except (OSError, http.client.HTTPException) as exc:
                # Flush what did arrive: it is valid and the rerun resumes after it.
                out.flush()
                raise DownloadError(
                    f"download of {url} broke off after {offset + received} bytes ({exc!r}); "
                    f"{part} is kept: rerun to resume"
                ) from None
            if not block:
                break
            out.write(block)
            received += len(block)
            bar.update(len(block))
        out.flush()
        # The rename that follows must not publish bytes still in the page cache.
        os.fsync(out.fileno())
    return received


def _content_range(value: Optional[str], url: str) -> Tuple[int, Optional[int]]:
    match = _CONTENT_RANGE.fullmatch((value or "").strip())
    if not match:
        raise DownloadError(f"{url} answered 206 with an unreadable Content-Range {value!r}; rerun, or report the server")
    total = match.group(3)
    return int(match.group(1)), (None if total == "*" else int(total))


def _int_header(response, name: str) -> Optional[int]:
    value = response.headers.get(name)
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None
