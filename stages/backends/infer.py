"""``python -m stages infer``: run an offline model over a folder of ``.bin``
inputs, writing ais_bench's output layout so outputs from an NPU and from the
CPU are read by the same code:

* ``{stem}_0.bin``: float32 output 0 for input ``{stem}.bin``;
* ``summary.json``: schema ``elmo-infer-summary/1`` (docs/formats.md), with
  throughput computed as ais_bench does: 1000 x batch / mean latency in ms.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from stages.common.atomic import atomic_path, write_json
from stages.common.errors import StageError, stale_record

SCHEMA = "elmo-infer-summary/1"


def input_files(folder) -> list:
    folder = Path(folder)
    if not folder.is_dir():
        raise StageError(f"{folder}: input folder not found; run the data stage first (make data)")
    files = [p for p in folder.iterdir() if p.suffix == ".bin"]
    if not files:
        raise StageError(f"{folder}: no .bin inputs; run the data stage first (make data)")
    # Numeric order (0, 1, ..., 10) like the data stage numbers samples.
    return sorted(files, key=lambda p: (int(p.stem) if p.stem.isdigit() else float("inf"), p.stem))


def latency_stats(seconds) -> dict:
    ms = np.asarray(seconds, dtype=np.float64) * 1000.0
    return {
        "mean": float(ms.mean()),
        "median": float(np.median(ms)),
        "min": float(ms.min()),
        "max": float(ms.max()),
        "p99": float(np.percentile(ms, 99)),
        "count": int(ms.size),
    }


def output_path(output_dir, stem: str) -> Path:
    return Path(output_dir) / f"{stem}_0.bin"


def read_outputs(output_dir, stems, word_len: int) -> np.ndarray:
    """``[N, W, D]`` float32 outputs for ``stems``, each file checked."""
    arrays = []
    for stem in stems:
        path = output_path(output_dir, stem)
        if not path.is_file():
            raise stale_record(Path(output_dir) / "summary.json", f"{path}: missing output for input {stem}.bin",
                               "inference", SCHEMA)
        data = np.fromfile(str(path), dtype=np.float32)
        if data.size % word_len:
            raise stale_record(Path(output_dir) / "summary.json",
                               f"{path}: {data.size} floats is not a multiple of word_len {word_len}", "inference", SCHEMA)
        arrays.append(data.reshape(word_len, -1))
    dims = {a.shape[1] for a in arrays}
    if len(dims) > 1:
        raise stale_record(Path(output_dir) / "summary.json",
                           f"{output_dir}: outputs have different sizes {sorted(dims)}", "inference", SCHEMA)
    return np.stack(arrays)


def infer_cpu(model, input_dir, output_dir, *, threads=None, progress=True) -> dict:
    from tqdm import tqdm

    from stages.sources.data import read_bin
    from stages.backends.engines import load_offline, runtime_of

    runner = load_offline(model, threads=threads)
    word_len = runner.word_len
    if word_len is None:
        raise StageError(f"{model}: word_len axis is not static; export with a fixed WORD_LEN")
    files = input_files(input_dir)
    timings = []
    with atomic_path(output_dir) as tmp:
        tmp.mkdir(parents=True)
        for path in tqdm(files, unit="sent", desc="infer", disable=None if progress else True):
            ids = read_bin(path, word_len)
            started = time.perf_counter()
            output = runner.infer({"input": ids})["output"]
            timings.append(time.perf_counter() - started)
            output.astype(np.float32).tofile(str(output_path(tmp, path.stem)))
        latency = latency_stats(timings)
        summary = {
            "schema": SCHEMA,
            "target": "cpu",
            "model": str(model),
            "input_dir": str(input_dir),
            "output_dir": str(output_dir),
            "inputs": len(files),
            "outputs": len(files),
            "batch_size": 1,
            "latency_ms": latency,
            "throughput": 1000.0 * 1 / latency["mean"],
            "h2d_ms": None,
            "d2h_ms": None,
            "devices": ["cpu"],
            "tool": {"name": runtime_of(runner, 1), "threads": threads or "all cores"},
        }
        write_json(tmp / "summary.json", summary)
    return summary


def load_summary(output_dir) -> dict:
    from stages.common.records import read_record

    return read_record(Path(output_dir) / "summary.json", schema=SCHEMA, missing="run inference (make infer)")


COMMAND = "infer"
COMMAND_HELP = dict(help="run an offline model over .bin inputs (ais_bench layout)")


def add_arguments(parser) -> None:
    parser.add_argument("--model", required=True)
    parser.add_argument("--input", required=True, help="folder of {i}.bin inputs")
    parser.add_argument("--output", required=True, help="folder for {i}_0.bin outputs and summary.json")
    parser.add_argument("--target", choices=("cpu", "ascend"), default="cpu")
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--devices", default="0", help="ascend: comma-separated NPU ids")


def run(args) -> int:
    if args.target == "cpu":
        summary = infer_cpu(args.model, args.input, args.output, threads=args.threads or None)
    else:
        from stages.backends.ascend.target import infer_ascend

        summary = infer_ascend(args)
    print(f"infer: {summary['outputs']} outputs in {args.output}, {summary['throughput']:.2f} sentences/s "
          f"(mean {summary['latency_ms']['mean']:.2f} ms)")
    return 0

