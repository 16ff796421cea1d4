"""Data stage: held-out corpus files -> kept sentences, per-sample char-id .bin files, manifest.

The output folder is what the inference, accuracy and perf stages read back:
``sentences.txt`` (line i = sample i), ``bin/{i}.bin`` (``[1, W, 50]`` int32
little-endian, the layout ais_bench feeds to the model) and ``manifest.json``
saying where every sample came from. It is built in a temporary sibling and
renamed into place, so a half-finished run never looks finished.
"""
from __future__ import annotations

import json
import os
import sys
from collections import Counter
from pathlib import Path
from typing import Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

import numpy as np
from tqdm import tqdm

from stages.elmo import charids
from stages.common.atomic import atomic_path
from stages.common.errors import StageError, stale_record
from stages.common.hashing import sha256_file

SCHEMA = "elmo-data-manifest/1"
TOTAL_FILES = 50
FILE_TEMPLATE = "news.en.heldout-{:05d}-of-00050"
MANIFEST_NAME = "manifest.json"
SENTENCES_NAME = "sentences.txt"
BIN_DIR = "bin"
DTYPE = "int32"
# ais_bench reads raw bytes, so the byte order is fixed rather than native.
_BIN_DTYPE = np.dtype("<i4")

EMPTY = "empty"
TOO_LONG = "too_long"
# With length buckets, a sentence belongs to the smallest bucket it fits, so a
# bucket's data skips those a smaller bucket holds.
SHORTER = "in_smaller_bucket"
NOT_UTF8 = "not_utf8"
SKIP_REASONS = (EMPTY, TOO_LONG, SHORTER, NOT_UTF8)

DATASET_FIX = (
    "run `make dataset` to download the held-out set, or use DATASET=sample, "
    "or set DATASET_DIR=... to a heldout-monolingual.tokenized.shuffled folder"
)


def heldout_paths(dataset_dir, file_num: int) -> Tuple[List[Path], List[Path]]:
    """``(present, missing)`` among the first ``file_num`` held-out files of ``dataset_dir``."""
    folder = Path(dataset_dir)
    present, missing = [], []
    for index in range(file_num):
        path = folder / FILE_TEMPLATE.format(index)
        (present if path.is_file() else missing).append(path)
    return present, missing


def classify_line(raw: bytes, word_len: Optional[int] = None, min_len: int = 1) -> Tuple[List[str], Optional[str]]:
    """``(tokens, None)`` for a usable line, else ``(tokens or [], reason)``."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return [], NOT_UTF8
    tokens = text.split()
    if not tokens:
        return tokens, EMPTY
    if word_len is not None and len(tokens) > word_len:
        return tokens, TOO_LONG
    if len(tokens) < min_len:
        return tokens, SHORTER
    return tokens, None


def iter_sentences(
    files: Iterable, word_len: Optional[int] = None, progress: bool = False, min_len: int = 1
) -> Iterator[Tuple[List[str], Optional[str]]]:
    """Yield ``(tokens, reason)`` for every line of ``files``, in order.

    ``reason`` is None for a kept sentence, else one of ``SKIP_REASONS``;
    ``too_long`` only appears when ``word_len`` is given. Lines are read as
    bytes and decoded one by one, so a single bad line costs only itself.
    """
    for path in files:
        path = Path(path)
        with path.open("rb") as handle, tqdm(
            total=path.stat().st_size,
            unit="B",
            unit_scale=True,
            desc=path.name,
            disable=None if progress else True,
            leave=False,
        ) as bar:
            for raw in handle:
                bar.update(len(raw))
                yield classify_line(raw, word_len, min_len)


def sample_bytes(word_len: int) -> int:
    return word_len * charids.MAX_CHARS * _BIN_DTYPE.itemsize


def write_bin(path, tokens: Sequence[str], word_len: int) -> None:
    ids = charids.sentence_ids(tokens, word_len)[np.newaxis]
    Path(path).write_bytes(np.ascontiguousarray(ids, dtype=_BIN_DTYPE).tobytes())


def read_bin(path, word_len: int) -> np.ndarray:
    """The ``[1, word_len, 50]`` int32 ids of one .bin file, checked for size."""
    path = Path(path)
    expected = sample_bytes(word_len)
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise stale_record(path.parent.parent / MANIFEST_NAME, f"{path}: missing", "the data stage", SCHEMA) from None
    if size != expected:
        raise stale_record(
            path.parent.parent / MANIFEST_NAME,
            f"{path}: {size} bytes, expected {expected} for word_len={word_len} ([1, {word_len}, "
            f"{charids.MAX_CHARS}] int32)", "the data stage", SCHEMA)
    data = np.fromfile(str(path), dtype=_BIN_DTYPE)
    return data.astype(np.int32, copy=False).reshape(1, word_len, charids.MAX_CHARS)


def build(
    dataset_dir,
    file_num: int,
    word_len: int,
    out_dir,
    source_label: Optional[str] = None,
    progress: bool = True,
    min_len: int = 1,
) -> dict:
    """Write the data folder ``out_dir`` and return its manifest: the sentences of
    ``min_len``..``word_len`` tokens (one length bucket's share of the corpus)."""
    if word_len < 1:
        raise StageError(f"--word-len must be at least 1, got {word_len}")
    if not 1 <= min_len <= word_len:
        raise StageError(f"--min-len must be between 1 and --word-len ({word_len}), got {min_len}")
    if not 1 <= file_num <= TOTAL_FILES:
        raise StageError(f"--file-num must be between 1 and {TOTAL_FILES}, got {file_num}")
    out = Path(out_dir)
    _check_replaceable(out)
    folder = Path(dataset_dir)
    if not folder.is_dir():
        raise StageError(f"dataset folder {folder} not found: {DATASET_FIX}")
    present, missing = heldout_paths(folder, file_num)
    if not present:
        raise StageError(
            f"no news.en.heldout-000NN-of-00050 file with NN < {file_num} in {folder}: {DATASET_FIX}"
        )
    if missing:
        # Expected with the shipped sample (2 files), so a warning, not an error.
        print(
            f"warning: {len(missing)} of {file_num} held-out files missing in {folder}; "
            f"using the {len(present)} present (listed in the manifest)",
            file=sys.stderr,
        )

    files_info = []
    skipped: Counter = Counter({reason: 0 for reason in SKIP_REASONS})
    lengths: Counter = Counter()
    total_lines = 0
    kept = 0
    with atomic_path(out) as tmp:
        (tmp / BIN_DIR).mkdir(parents=True)
        with (tmp / SENTENCES_NAME).open("w", encoding="utf-8", newline="\n") as sentences:
            for path in present:
                file_lines = file_kept = 0
                for tokens, reason in iter_sentences([path], word_len, progress, min_len):
                    file_lines += 1
                    if reason is not None:
                        skipped[reason] += 1
                        continue
                    write_bin(tmp / BIN_DIR / f"{kept}.bin", tokens, word_len)
                    sentences.write(" ".join(tokens) + "\n")
                    lengths[len(tokens)] += 1
                    kept += 1
                    file_kept += 1
                total_lines += file_lines
                files_info.append(
                    {"path": str(path), "sha256": sha256_file(path), "lines": file_lines, "kept": file_kept}
                )
        if kept == 0:
            raise StageError(
                f"no sentence of {f'at most {word_len}' if min_len == 1 else f'{min_len}..{word_len}'} tokens in {folder} "
                f"({len(present)} file(s), {total_lines} lines); "
                + ("raise WORD_LEN" if min_len == 1 else f"drop the bucket {word_len} from WORD_LEN")
            )
        manifest = {
            "schema": SCHEMA,
            "word_len": word_len,
            "min_len": min_len,
            "file_num": file_num,
            "dataset_dir": str(folder),
            "source_label": source_label if source_label is not None else str(folder),
            "files": files_info,
            "missing_files": [str(path) for path in missing],
            "counts": {
                "lines": total_lines,
                "kept": kept,
                "skipped": {reason: skipped[reason] for reason in SKIP_REASONS},
            },
            "length_histogram": {str(n): lengths[n] for n in sorted(lengths)},
            "samples": kept,
            "sentences": SENTENCES_NAME,
            "bin_dir": BIN_DIR,
            "input_shape": [1, word_len, charids.MAX_CHARS],
            "dtype": DTYPE,
        }
        (tmp / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return manifest


def _check_replaceable(out: Path) -> None:
    # A rerun replaces the old output wholesale; refuse anything that is not
    # one, so a mistyped --out cannot wipe an unrelated folder.
    if not out.exists():
        return
    if not out.is_dir():
        raise StageError(f"--out {out} exists and is not a folder; choose another path")
    # Without its manifest (removed as stale by a later stage) a data folder still holds only its own files.
    own = {MANIFEST_NAME, SENTENCES_NAME, BIN_DIR}
    if not (out / MANIFEST_NAME).is_file() and any(p.name not in own for p in out.iterdir()):
        raise StageError(
            f"--out {out} is a non-empty folder without {MANIFEST_NAME}, not an earlier data "
            "output; refusing to replace it (choose another path or remove it)"
        )


def _read_manifest(folder: Path) -> dict:
    manifest_path = folder / MANIFEST_NAME
    if not manifest_path.is_file():
        raise StageError(f"{manifest_path} not found: run the data stage first (make data)")
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise StageError(f"{manifest_path}: not valid JSON ({exc}); rerun the data stage") from None
    if not isinstance(manifest, dict) or manifest.get("schema") != SCHEMA:
        raise StageError(f"{manifest_path}: schema is not {SCHEMA}; rerun the data stage")
    word_len = manifest.get("word_len")
    samples = manifest.get("samples")
    if not isinstance(word_len, int) or word_len < 1 or not isinstance(samples, int) or samples < 1:
        raise StageError(f"{manifest_path}: bad word_len/samples; rerun the data stage")
    if manifest.get("input_shape") != [1, word_len, charids.MAX_CHARS] or manifest.get("dtype") != DTYPE:
        raise StageError(
            f"{manifest_path}: input_shape/dtype do not match [1, {word_len}, {charids.MAX_CHARS}] {DTYPE}"
        )
    return manifest


def _iter_sentences(folder: Path, manifest: dict) -> Iterator[List[str]]:
    """The checked token lists of ``sentences.txt``, read one line at a time."""
    manifest_path = folder / MANIFEST_NAME
    word_len, samples = manifest["word_len"], manifest["samples"]
    sentences_path = folder / manifest.get("sentences", SENTENCES_NAME)
    count = 0
    try:
        handle = sentences_path.open("rb")
    except FileNotFoundError:
        raise stale_record(manifest_path, f"{sentences_path} not found", "the data stage", SCHEMA) from None
    with handle:
        # Tokens never contain whitespace, so "\n" is the only line break; splitlines()
        # would also cut on characters such as U+2028 and shift sample numbers.
        for number, raw in enumerate(handle, 1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise stale_record(manifest_path, f"{sentences_path}: not UTF-8 ({exc})", "the data stage",
                                   SCHEMA) from None
            line = line[:-1] if line.endswith("\n") else line
            tokens = line.split(" ")
            if not line or "" in tokens or len(tokens) > word_len:
                raise stale_record(manifest_path, f"{sentences_path}:{number}: not 1..{word_len} single-space "
                                                  f"separated tokens", "the data stage", SCHEMA)
            count += 1
            if count <= samples:
                yield tokens
    if count != samples:
        raise stale_record(manifest_path, f"{sentences_path}: {count} lines, "
                                          f"manifest says {samples} samples", "the data stage", SCHEMA)


def _check_bins(folder: Path, manifest: dict) -> None:
    manifest_path = folder / MANIFEST_NAME
    samples = manifest["samples"]
    bin_dir = folder / manifest.get("bin_dir", BIN_DIR)
    if not bin_dir.is_dir():
        raise stale_record(manifest_path, f"{bin_dir} not found", "the data stage", SCHEMA)
    names = {name for name in os.listdir(bin_dir) if name.endswith(".bin")}
    expected = {f"{i}.bin" for i in range(samples)}
    if names != expected:
        extra, missing = sorted(names - expected), sorted(expected - names)
        shown = "; ".join(part for part in (
            f"extra {', '.join(extra[:3])}{' ...' if len(extra) > 3 else ''}" if extra else "",
            f"missing {', '.join(missing[:3])}{' ...' if len(missing) > 3 else ''}" if missing else "") if part)
        raise stale_record(manifest_path, f"{bin_dir}: {len(names)} .bin files, expected 0.bin..{samples - 1}.bin "
                                          f"({shown})", "the data stage", SCHEMA)


def load_samples(data_dir) -> Tuple[dict, List[List[str]]]:
    """``(manifest, sentences)`` of a data folder, each sentence a token list.

    Checks what later stages rely on: the schema, the shape/dtype fields,
    one sentence line per sample, each within ``word_len`` tokens, and one
    .bin per sample. Individual .bin sizes are checked by ``read_bin``.
    """
    folder = Path(data_dir)
    manifest = _read_manifest(folder)
    sentences = list(_iter_sentences(folder, manifest))
    _check_bins(folder, manifest)
    return manifest, sentences


def sample_lengths(data_dir) -> Tuple[dict, np.ndarray]:
    """``(manifest, lengths)``: ``load_samples``'s checks, but only each sentence's token count is
    kept (int32), so a stage that reads the ids from the .bin files holds no text."""
    folder = Path(data_dir)
    manifest = _read_manifest(folder)
    lengths = np.fromiter((len(tokens) for tokens in _iter_sentences(folder, manifest)), dtype=np.int32)
    _check_bins(folder, manifest)
    return manifest, lengths


def bin_path(data_dir, manifest: Dict, index: int) -> Path:
    """Where sample ``index`` of a loaded data folder lives."""
    return Path(data_dir) / manifest.get("bin_dir", BIN_DIR) / f"{index}.bin"


def run(args) -> int:
    if args.dataset_source:
        try:
            source = json.loads(Path(args.dataset_source).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise StageError(f"{args.dataset_source}: cannot read the dataset source ({exc}); rerun make data") from None
        args.dataset_dir = args.dataset_dir or source["path"]
        args.source_label = args.source_label or source["label"]
    if not args.dataset_dir:
        raise StageError("give --dataset-dir or --dataset-source")
    manifest = build(
        args.dataset_dir,
        args.file_num,
        args.word_len,
        args.out,
        source_label=args.source_label,
        progress=not args.no_progress,
        min_len=args.min_len,
    )
    counts = manifest["counts"]
    skipped = ", ".join(f"{reason} {n}" for reason, n in counts["skipped"].items())
    print(
        f"data: kept {counts['kept']} of {counts['lines']} lines (skipped: {skipped}) "
        f"from {len(manifest['files'])} file(s), {manifest['min_len']}..{manifest['word_len']} tokens -> {args.out}"
    )
    return 0


COMMAND = "data"
COMMAND_HELP = dict(help="held-out sentences -> sentences.txt, bin/{i}.bin char ids, manifest.json", description=__doc__.splitlines()[0])


def add_arguments(parser) -> None:
    parser.add_argument("--dataset-dir", default="", help="the heldout-monolingual.tokenized.shuffled folder")
    parser.add_argument("--dataset-source", default="", help="JSON from dataset-source (folder and label)")
    parser.add_argument("--file-num", type=int, default=TOTAL_FILES, help="read files 00000..N-1 (default 50)")
    parser.add_argument("--word-len", type=int, required=True, help="model word length W: longer sentences are skipped")
    parser.add_argument("--min-len", type=int, default=1,
                        help="shortest sentence kept: a length bucket keeps those no smaller bucket holds")
    parser.add_argument("--out", required=True, help="output folder (replaced as a whole)")
    parser.add_argument("--source-label", default=None, help="dataset label recorded for reports")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
