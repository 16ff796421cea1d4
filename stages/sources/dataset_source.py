"""Which corpus a run uses: the 1B Word held-out set, the shipped sample, or a user folder.

The resolved label travels into every report, so a number measured on the
small sample can never be mistaken for a benchmark result.
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from stages.common.atomic import write_json
from stages.common.errors import StageError

HELDOUT_REL = Path(
    "data/1-billion-word-language-modeling-benchmark-r13output/heldout-monolingual.tokenized.shuffled"
)
SAMPLE_REL = Path("data/sample/heldout-monolingual.tokenized.shuffled")
FILE_GLOB = "news.en.heldout-*"
TOTAL_FILES = 50
KINDS = ("auto", "heldout", "sample")
NOT_COMPARABLE = "results are not comparable to the benchmark"
REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class DatasetSource:
    kind: str  # "heldout" or "sample"
    path: Path
    label: str
    reason: str

    def to_json(self) -> dict:
        return {"kind": self.kind, "path": str(self.path), "label": self.label, "reason": self.reason}


def _heldout_files(folder: Path):
    return sorted(folder.glob(FILE_GLOB)) if folder.is_dir() else []


def _count_sentences(folder: Path) -> int:
    total = 0
    for path in _heldout_files(folder):
        with path.open("rb") as handle:
            total += sum(1 for line in handle if line.strip())
    return total


def _sample(repo_root: Path, why: str) -> DatasetSource:
    folder = repo_root / SAMPLE_REL
    if not _heldout_files(folder):
        raise StageError(f"shipped sample missing at {folder}: restore data/sample from git")
    count = _count_sentences(folder)
    label = f"shipped sample ({count} sentences written for this project, not the 1B Word held-out set)"
    return DatasetSource("sample", folder, label, f"{why} ({count} sentences): {NOT_COMPARABLE}")


def _heldout_label(folder: Path, count: int, prefix: str) -> str:
    partial = "" if count >= TOTAL_FILES else f", only {count} of {TOTAL_FILES} files"
    return f"{prefix} {folder} ({count} news.en.heldout files{partial})"


def resolve_dataset(kind: str, dataset_dir: Optional[str], repo_root, fetch=None) -> DatasetSource:
    """Pick the corpus folder for ``kind``; an explicit ``dataset_dir`` overrides it.

    ``fetch`` (see ``official_fetcher``) lets ``heldout`` download a missing
    set and ``auto`` download it when the server answers.
    """
    if kind not in KINDS:
        raise StageError(f"DATASET={kind!r}: expected one of {', '.join(KINDS)}")
    repo_root = Path(repo_root)
    if dataset_dir:
        folder = Path(dataset_dir).expanduser()
        if not folder.is_dir():
            raise StageError(f"DATASET_DIR={dataset_dir}: no such folder")
        files = _heldout_files(folder)
        if not files:
            raise StageError(
                f"DATASET_DIR={dataset_dir}: no {FILE_GLOB} files in it; point it at a "
                "heldout-monolingual.tokenized.shuffled folder"
            )
        if folder.resolve() == (repo_root / SAMPLE_REL).resolve():
            return _sample(repo_root, "DATASET_DIR is the shipped sample")
        return DatasetSource(
            "heldout",
            folder,
            _heldout_label(folder, len(files), "user folder"),
            f"DATASET_DIR={dataset_dir} overrides DATASET={kind}",
        )

    heldout = repo_root / HELDOUT_REL
    files = _heldout_files(heldout)
    if kind == "sample":
        return _sample(repo_root, "DATASET=sample: using the shipped sample")
    if files:
        reason = "DATASET=heldout" if kind == "heldout" else f"DATASET=auto: held-out set found at {heldout}"
        return DatasetSource("heldout", heldout, _heldout_label(heldout, len(files), "1B Word held-out set"), reason)
    if fetch is not None and (kind == "heldout" or fetch(probe_only=True)):
        fetch(probe_only=False)
        files = _heldout_files(heldout)
        why = "downloaded the held-out set (verified sha256)"
        return DatasetSource("heldout", heldout, _heldout_label(heldout, len(files), "1B Word held-out set"), why)
    if kind == "heldout":
        raise StageError(
            f"held-out set not found at {heldout}: run `make dataset` to download it (or DATASET=sample)"
        )
    return _sample(repo_root, f"held-out set not found at {heldout} nor downloadable; using the shipped sample")


def official_fetcher(repo_root: Path):
    """``fetch(probe_only)`` for ``resolve_dataset``: probe the benchmark's server, or download and unpack."""
    from stages.sources.dataset_fetch import fetch_dataset
    from stages.sources.download import reachable
    from stages.sources.official import LM1B_TARBALL

    def fetch(probe_only: bool) -> bool:
        if probe_only:
            return reachable(LM1B_TARBALL[0])
        url, sha256, _ = LM1B_TARBALL
        fetch_dataset(repo_root / HELDOUT_REL.parent, url=url, sha256=sha256, cache_dir=repo_root / "data" / "cache")
        return True

    return fetch


def run(args) -> int:
    fetch = official_fetcher(args.repo_root) if args.fetch else None
    source = resolve_dataset(args.dataset, args.dataset_dir or None, args.repo_root, fetch=fetch)
    if args.out:
        write_json(args.out, source.to_json())
    line = f"dataset: {source.label}"
    line = f"{line}; {source.reason}" if source.reason else line
    if args.print_path:
        print(line, file=sys.stderr)
        print(source.path)
    else:
        print(line)
    return 0


COMMAND = "dataset-source"
COMMAND_HELP = dict(help="resolve DATASET/DATASET_DIR to a corpus folder and its report label", description=__doc__.splitlines()[0])


def add_arguments(parser) -> None:
    parser.add_argument("--dataset", choices=KINDS, default="auto")
    parser.add_argument("--dataset-dir", default="", help="explicit corpus folder; '' means none")
    parser.add_argument("--repo-root", type=Path, default=REPO_ROOT, help=argparse.SUPPRESS)
    parser.add_argument("--out", default=None, help="write the resolved source here as JSON")
    parser.add_argument("--fetch", action="store_true",
                        help="download the held-out set when it is missing (heldout) or reachable (auto)")
    parser.add_argument("--print-path", action="store_true", help="print only the resolved folder on stdout")
