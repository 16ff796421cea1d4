"""Read the summary JSON that ais_bench writes after a run.

Where it lands depends on the release, given ``--output ROOT --output_dirname NAME``:

- ais_infer (2022): ``ROOT/NAME/sumary.json`` (sic), inside the output folder;
- ais_bench (2023 on): ``ROOT/NAME_summary.json``, beside it.

Both hold ``NPU_compute_time``, ``H2D_latency`` and ``D2H_latency`` as
``{min, max, mean, median, <p99>}`` in ms, where the p99 key is
``percentile(99%)`` in most releases and ``P99`` in newer ones; later releases
add ``count`` and the per-iteration ``npu_compute_time_list`` (a list of
[start, end] pairs when ais_bench ran multi-threaded).
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import List, Optional, Sequence

from stages.common.errors import StageError

_P99 = re.compile(r"^(percentile\(99(\.0)?%\)|P99(\.0)?)$")


def summary_file(output_root, dirname) -> Optional[Path]:
    root = Path(output_root)
    for path in (root / f"{dirname}_summary.json", root / dirname / "sumary.json"):
        if path.is_file():
            return path
    return None


def _stats(block, path: Path, key: str, required: bool) -> Optional[dict]:
    if not isinstance(block, dict) or "mean" not in block:
        if required:
            raise StageError(f"{path}: no {key}.mean; not an ais_bench summary layout this pipeline knows")
        return None

    def number(name):
        value = block.get(name)
        return None if value is None else float(value)

    p99 = next((v for k, v in block.items() if _P99.match(k)), None)
    out = {
        "mean": float(block["mean"]),
        "median": number("median"),
        "min": number("min"),
        "max": number("max"),
        "p99": None if p99 is None else float(p99),
    }
    if "count" in block:
        out["count"] = int(block["count"])
    return out


def _durations(items) -> Optional[List[float]]:
    if not isinstance(items, list) or not items:
        return None
    if all(isinstance(x, (list, tuple)) and len(x) == 2 for x in items):
        return [float(end) - float(start) for start, end in items]
    return [float(x) for x in items]


def read_summary(output_root, dirname) -> dict:
    """The run's timings, in ms, the same whichever layout ais_bench used."""
    path = summary_file(output_root, dirname)
    if path is None:
        raise StageError(
            f"{output_root}: ais_bench left no summary for {dirname!r} "
            f"(looked for {dirname}_summary.json and {dirname}/sumary.json)"
        )
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise StageError(f"{path}: unreadable ais_bench summary ({exc})")
    if not isinstance(data, dict):
        raise StageError(f"{path}: not an ais_bench summary (expected a JSON object)")
    throughput = data.get("throughput")
    return {
        "npu_compute_ms": _stats(data.get("NPU_compute_time"), path, "NPU_compute_time", True),
        "h2d_ms": _stats(data.get("H2D_latency"), path, "H2D_latency", False),
        "d2h_ms": _stats(data.get("D2H_latency"), path, "D2H_latency", False),
        "throughput": None if throughput is None else float(throughput),
        "npu_compute_time_list": _durations(data.get("npu_compute_time_list")),
        "summary_file": str(path),
    }


def percentile(values: Sequence[float], q: float) -> float:
    """numpy's default (linear) percentile, without importing numpy for it."""
    ordered = sorted(values)
    if not ordered:
        raise ValueError("percentile of no values")
    pos = (len(ordered) - 1) * q / 100.0
    low = int(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def stats_of(values: Sequence[float]) -> dict:
    ordered = sorted(values)
    return {
        "mean": sum(ordered) / len(ordered),
        "median": percentile(ordered, 50),
        "min": ordered[0],
        "max": ordered[-1],
        "p99": percentile(ordered, 99),
        "count": len(ordered),
    }


def merge_stats(parts: Sequence[Optional[dict]], counts: Sequence[int]) -> Optional[dict]:
    """One device's stats from several, when only their summaries are known.

    mean is weighted by count, min and max are exact; median and p99 cannot be
    recovered from per-device summaries, so the largest is kept (an upper bound).
    """
    known = [(p, p.get("count", c)) for p, c in zip(parts, counts) if p is not None]
    if not known:
        return None
    if len(known) == 1:
        return dict(known[0][0])
    weights = [c for _, c in known]
    if not sum(weights):
        weights = [1] * len(known)

    def pick(name, how):
        values = [p[name] for p, _ in known if p.get(name) is not None]
        return how(values) if values else None

    return {
        "mean": sum(p["mean"] * w for (p, _), w in zip(known, weights)) / sum(weights),
        "median": pick("median", max),
        "min": pick("min", min),
        "max": pick("max", max),
        "p99": pick("p99", max),
        "count": sum(c for _, c in known),
    }
