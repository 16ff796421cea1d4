"""``python -m stages compare-runs``: do two runs of the pipeline agree?

Made for ``make test-docker``, which runs the same pipeline once in the
containers (torch 1.9.1) and once on the host (torch 2.x): the two exported
graphs differ in their bytes, so agreement is judged on what they compute.
Each of ``--a`` and ``--b`` is either an artifacts folder (its
``reports/accuracy.json`` must say passed, and names the outputs folder) or
an outputs folder of ``{i}_0.bin`` files. For every sample of ``--data``,
the real tokens' vectors of the two runs are compared by cosine; padded
positions must be zero in both.

Exit status: 0 when they agree, 1 when they do not (a failed accuracy
report, a missing output, a token below ``--min-token-cos``), 2 when an
input cannot be read at all.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import List, Optional, Tuple

import numpy as np

from stages.common.atomic import write_json
from stages.common.errors import StageError

SCHEMA = "elmo-compare-runs/1"
def _rebase(recorded: str, root: Path) -> Path:
    """The outputs folder a run recorded, as seen from here.

    The record holds the path the stage was given: under /artifacts in a
    container, or wherever the artifacts folder was on the host, which may
    since have moved (or be mounted elsewhere). The pipeline always puts
    outputs under ``<artifacts>/outputs/``, so that part is looked for under
    ``root`` when the recorded path is not there.
    """
    path = Path(recorded)
    if path.is_dir():
        return path
    parts = path.parts
    if "outputs" in parts:
        last = len(parts) - 1 - parts[::-1].index("outputs")
        moved = root.joinpath(*parts[last:])
        if moved.is_dir():
            return moved
    raise StageError(f"{root}: the outputs folder its accuracy report names ({recorded}) is not here "
                     f"nor under {root / 'outputs'}")


def resolve_run(path) -> Tuple[Path, Optional[dict]]:
    """``(outputs folder, accuracy report or None)`` of an artifacts folder or an outputs folder."""
    folder = Path(path)
    if not folder.is_dir():
        raise StageError(f"{folder}: no such folder")
    report_path = folder / "reports" / "accuracy.json"
    if report_path.is_file():
        try:
            report = json.loads(report_path.read_text(encoding="utf-8"))
        except ValueError as exc:
            raise StageError(f"{report_path}: not valid JSON ({exc})") from None
        recorded = (report.get("outputs") or {}).get("dir")
        if not recorded:
            raise StageError(f"{report_path}: names no outputs folder (outputs.dir)")
        return _rebase(recorded, folder), report
    if any(folder.glob("*_0.bin")):
        return folder, None
    raise StageError(f"{folder}: neither an artifacts folder (reports/accuracy.json) nor an outputs folder (*_0.bin)")


def _read_output(path: Path, word_len: int) -> Optional[np.ndarray]:
    if not path.is_file():
        return None
    data = np.fromfile(str(path), dtype="<f4")
    if data.size == 0 or data.size % word_len:
        raise StageError(f"{path}: {data.size} float32 values, not [1, {word_len}, D]")
    return data.astype(np.float32).reshape(word_len, -1)


def compare_runs(a, b, data, *, min_token_cos: float, data_b=None) -> dict:
    """The comparison as a dict; ``agree`` is the verdict and ``problems`` says why not."""
    from stages.sources.data import bin_path, load_samples, read_bin
    from stages.reports.metrics import cosine

    manifest, sentences = load_samples(data)
    word_len = manifest["word_len"]
    out_a, report_a = resolve_run(a)
    out_b, report_b = resolve_run(b)
    problems: List[str] = []
    for name, report in (("a", report_a), ("b", report_b)):
        if report is not None and not report.get("passed"):
            problems.append(f"run {name}: its accuracy report says FAILED")
    if data_b is not None:
        manifest_b, sentences_b = load_samples(data_b)
        if sentences_b != sentences:
            problems.append(f"the two data folders hold different sentences ({data} vs {data_b})")
        else:
            differ = [i for i in range(len(sentences)) if not np.array_equal(
                read_bin(bin_path(data, manifest, i), word_len), read_bin(bin_path(data_b, manifest_b, i), word_len))]
            if differ:
                problems.append(f"{len(differ)} input .bin files differ between the data folders (first: {differ[0]}.bin)")

    token_cos: List[np.ndarray] = []
    max_abs, padding_abs = 0.0, 0.0
    missing: List[str] = []
    low: List[dict] = []
    for i, tokens in enumerate(sentences):
        outputs = []
        for folder in (out_a, out_b):
            path = folder / f"{i}_0.bin"
            got = _read_output(path, word_len)
            if got is None:
                missing.append(str(path))
            outputs.append(got)
        if any(o is None for o in outputs):
            continue
        got_a, got_b = outputs
        if got_a.shape != got_b.shape:
            problems.append(f"sample {i}: output shapes differ ({list(got_a.shape)} vs {list(got_b.shape)})")
            continue
        n = len(tokens)
        cos = cosine(got_a[:n], got_b[:n], axis=-1)
        token_cos.append(cos)
        max_abs = max(max_abs, float(np.abs(got_a[:n].astype(np.float64) - got_b[:n]).max()))
        padding_abs = max(padding_abs, float(np.abs(got_a[n:]).max(initial=0.0)), float(np.abs(got_b[n:]).max(initial=0.0)))
        if cos.min() < min_token_cos:
            low.append({"sample": i, "token_cos_min": float(cos.min()), "sentence": " ".join(tokens)})
    if missing:
        problems.append(f"{len(missing)} output file(s) missing (first: {missing[0]})")
    if low:
        worst = min(low, key=lambda x: x["token_cos_min"])
        problems.append(f"{len(low)} sample(s) with a token cosine below {min_token_cos} "
                        f"(worst: sample {worst['sample']}, {worst['token_cos_min']:.6f})")
    if padding_abs != 0.0:
        problems.append(f"padded positions are not zero (max abs {padding_abs:.3g})")
    cos_all = np.concatenate(token_cos) if token_cos else np.zeros(0)
    return {
        "schema": SCHEMA,
        "agree": not problems,
        "problems": problems,
        "a": {"outputs": str(out_a), "accuracy_passed": None if report_a is None else bool(report_a.get("passed"))},
        "b": {"outputs": str(out_b), "accuracy_passed": None if report_b is None else bool(report_b.get("passed"))},
        "data": str(data),
        "samples": len(sentences),
        "compared": len(token_cos),
        "min_token_cos": min_token_cos,
        "token_cos_min": float(cos_all.min()) if cos_all.size else None,
        "token_cos_mean": float(cos_all.mean()) if cos_all.size else None,
        "max_abs": max_abs,
        "padding_max_abs": padding_abs,
        "missing": missing[:20],
        "below_threshold": low[:20],
    }


def _line(result: dict) -> str:
    if result["token_cos_min"] is None:
        return f"compare-runs: no sample compared out of {result['samples']}"
    return (f"compare-runs: {result['compared']}/{result['samples']} samples, token cosine min "
            f"{result['token_cos_min']:.7f} mean {result['token_cos_mean']:.7f}, max abs {result['max_abs']:.3g}, "
            f"accuracy passed: a {result['a']['accuracy_passed']}, b {result['b']['accuracy_passed']}")


def run(args) -> int:
    result = compare_runs(args.a, args.b, args.data, min_token_cos=args.min_token_cos, data_b=args.data_b)
    if args.out:
        write_json(args.out, result)
    print(_line(result))
    if result["agree"]:
        print(f"compare-runs: AGREE (every token cosine >= {args.min_token_cos})")
        return 0
    for problem in result["problems"]:
        print(f"compare-runs: {problem}", file=sys.stderr)
    print("compare-runs: DISAGREE", file=sys.stderr)
    return 1


COMMAND = "compare-runs"
COMMAND_HELP = dict(help="do two pipeline runs (e.g. docker vs host) agree?", description=__doc__.splitlines()[0])


def add_arguments(parser) -> None:
    parser.add_argument("--a", required=True, help="artifacts folder (or outputs folder) of the first run")
    parser.add_argument("--b", required=True, help="artifacts folder (or outputs folder) of the second run")
    parser.add_argument("--data", required=True, help="the data folder (sentences.txt, bin/, manifest.json)")
    parser.add_argument("--data-b", default=None, help="the second run's data folder: its inputs must be identical")
    parser.add_argument("--min-token-cos", type=float, default=0.9999)
    parser.add_argument("--out", default=None, help="write the comparison here as JSON")


def main(argv=None) -> int:
    """``python -m stages.reports.compare_runs``: the same command without the stage registry
    (make test-docker runs it with the host's Python, which may lack the other stages' dependencies)."""
    import argparse

    # COMMAND_HELP's "help" is for the stage registry's subcommand, not a keyword ArgumentParser takes.
    parser = argparse.ArgumentParser(prog="python -m stages.reports.compare_runs",
                                     description=COMMAND_HELP["description"])
    add_arguments(parser)
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    try:
        return run(args)
    except StageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
