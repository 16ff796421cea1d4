"""Which corpus a run uses: the 1B Word held-out set, the shipped sample, or a user folder.

The resolved label travels into every report, so a number measured on the
small sample can never be mistaken for a benchmark result.
"""
from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from .atomic import write_json
from .errors import StageError

HELDOUT_REL = Path(
    "data/1-billion-word-language-modeling-benchmark-r13output/heldout-monolingual.tokenized.shuffled"
)
SAMPLE_REL = Path("data/sample/heldout-monolingual.tokenized.shuffled")
FILE_GLOB = "news.en.heldout-*"
TOTAL_FILES = 50
KINDS = ("auto", "heldout", "sample")
NOT_COMPARABLE = "results are not comparable to the benchmark"
REPO_ROOT = Path(__file__).resolve().parents[1]


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


def resolve_dataset(kind: str, dataset_dir: Optional[str], repo_root) -> DatasetSource:
    """Pick the corpus folder for ``kind``; an explicit ``dataset_dir`` overrides it."""
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
    if kind == "heldout":
        raise StageError(
            f"held-out set not found at {heldout}: run `make dataset` to download it (or DATASET=sample)"
        )
    return _sample(repo_root, f"held-out set not found at {heldout}; using the shipped sample")


def _run(args) -> int:
    source = resolve_dataset(args.dataset, args.dataset_dir or None, args.repo_root)
    if args.out:
        write_json(args.out, source.to_json())
    line = f"dataset: {source.label}"
    print(f"{line}; {source.reason}" if source.reason else line)
    return 0


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "dataset-source",
        help="resolve DATASET/DATASET_DIR to a corpus folder and its report label",
        description=__doc__.splitlines()[0],
    )
    parser.add_argument("--dataset", choices=KINDS, default="auto")
    parser.add_argument("--dataset-dir", default="", help="explicit corpus folder; '' means none")
    parser.add_argument("--repo-root", type=Path, default=REPO_ROOT, help=argparse.SUPPRESS)
    parser.add_argument("--out", default=None, help="write the resolved source here as JSON")
    parser.set_defaults(func=_run)
