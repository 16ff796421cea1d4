"""``make prune-references``: remove the kept references that no accuracy report names.

The accuracy stage keeps its two references per (model, corpus, bucket, sample) in
``references/<key>/`` (``stages.reports.references``) and never removes one: a changed model or
corpus keys a new folder and the old one stays. At corpus scale a folder takes gigabytes. They are
caches, so removing one loses only the time to compute it again.

Kept: every folder an ``accuracy.json`` under the reports folder names (``references.key``; the key,
not the path, so reports written in a container count too), and anything that is not a complete
references folder (a temporary of a run in progress, a stranger's file). A folder whose lock a judge
holds is skipped. A report that cannot be read stops the command before anything is removed: it
might name a folder still wanted. Run it while no ``make accuracy`` runs: a judge reading a folder
this removes stops with an error naming the file, writes no report, and its next run computes the
references again.
"""
from __future__ import annotations

import fcntl
import json
import shutil
from pathlib import Path
from typing import List, Set, Tuple

from stages.common.errors import StageError
from stages.reports.references import finished, lock_path

COMMAND = "prune-references"
COMMAND_HELP = dict(help="remove kept references (references/<key>/) that no accuracy report names",
                    description=__doc__.splitlines()[0])


def keys_in_use(reports: Path) -> Set[str]:
    """The reference keys named by every ``accuracy.json`` under ``reports``."""
    keys = set()
    for report in sorted(Path(reports).rglob("accuracy.json")):
        try:
            record = json.loads(report.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise StageError(f"{report}: cannot be read ({exc}); it may name references still wanted: fix or "
                             f"remove it, then rerun make prune-references (nothing was removed)") from None
        key = (record.get("references") or {}).get("key") if isinstance(record, dict) else None
        if key:
            keys.add(str(key))
    return keys


def _size(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())


def _remove_unless_held(root: Path, folder: Path) -> bool:
    """Remove ``folder`` and its lock unless a judge holds the lock (tried, never waited for); the lock is
    held while the folder goes, so no judge starts on it half removed."""
    lock = lock_path(root, folder.name)
    with open(lock, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        try:
            shutil.rmtree(folder)
            lock.unlink()
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
    return True


def prune(root, reports, *, dry_run: bool = False) -> Tuple[List[Tuple[Path, int]], List[Path]]:
    """Remove (or, ``dry_run``, list) the complete references folders under ``root`` that no report
    under ``reports`` names. Returns ``(removed, kept)``: ``(folder, bytes)`` each, and the folders kept."""
    root = Path(root)
    if not root.is_dir():
        return [], []
    in_use = keys_in_use(reports)
    removed, kept = [], []
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        manifest = finished(folder)
        if manifest is None or manifest.get("key", folder.name) != folder.name:
            continue  # not a references folder this project finished writing: not ours to judge
        if folder.name in in_use:
            kept.append(folder)
            continue
        size = _size(folder)
        if not dry_run and not _remove_unless_held(root, folder):
            kept.append(folder)
            continue
        removed.append((folder, size))
    return removed, kept


def add_arguments(parser) -> None:
    parser.add_argument("--references", required=True, help="the kept references' folder ($(ARTIFACTS)/references)")
    parser.add_argument("--reports", required=True, help="the reports folder whose accuracy.json files are kept")
    parser.add_argument("--dry-run", action="store_true", help="list what would go, remove nothing")


def run(args) -> int:
    removed, kept = prune(args.references, args.reports, dry_run=args.dry_run)
    verb = "would remove" if args.dry_run else "removed"
    for folder, size in removed:
        print(f"prune-references: {verb} {folder} ({size / 1e6:.1f} MB)")
    total = sum(size for _, size in removed) / 1e6
    print(f"prune-references: {verb} {len(removed)} folder(s), {total:.1f} MB; kept {len(kept)} that a report "
          f"names or a judge holds")
    return 0
