"""``make accuracy``'s one-line verdict; on a failed gate it names the first layer ``make locate``
found below the gate. Exit status 0 only for a pass, so a failed gate still fails make.

Standard library only: make runs it with the system ``python3`` (``$(PYTHON)``), whatever RUNNER is.

    python3 -m stages.reports.verdict ACCURACY_JSON [--locate LOCATE_JSON --locate-status N]
"""
from __future__ import annotations

import argparse
import json
import os
import sys


def cosine_text(value: float) -> str:
    """A cosine readable near 1, where six decimals would print 1.000000 for a value below a gate of 1."""
    return f"{value:.6f}" if value < 0.999999 else f"1 - {max(1.0 - value, 0.0):.2g}"


def _read(path: str) -> dict:
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def _located(path: str, status: int) -> str:
    """What make locate found; it just ran (or was up to date with this run's report) when status is 0."""
    if status != 0:
        return f"make locate could not run (exit status {status}, see above)"
    try:
        report = _read(path)
    except (OSError, ValueError):
        return f"make locate wrote no readable {path}"
    page = os.path.join(os.path.dirname(path), "locate.md")
    first = report.get("first_below_gate")
    if not first:
        return f"every layer passes on make locate's sample ({page})"
    worst = next(c for c in report["checkpoints"] if c["name"] == first["name"])
    return (f"first layer below the gate: {first['label']}, token cos min {cosine_text(worst['token_cosine_min'])} "
            f"({page})")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m stages.reports.verdict")
    parser.add_argument("accuracy")
    parser.add_argument("--locate", default="")
    parser.add_argument("--locate-status", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        report = _read(args.accuracy)
        passed = bool(report["passed"])
    except (OSError, ValueError, KeyError) as exc:
        print(f"error: {args.accuracy}: unreadable accuracy report ({exc}); rerun make accuracy", file=sys.stderr)
        return 2
    sample = report.get("sample")
    on = (f" on a SAMPLE of {sample['sentences']} of {sample['of_sentences']} sentences (ACCURACY_SAMPLE)"
          if sample else "")
    if passed:
        print(f"accuracy: PASSED ({args.accuracy}){on}")
        return 0
    where = f"; {_located(args.locate, args.locate_status)}" if args.locate else ""
    print(f"accuracy: FAILED ({args.accuracy}){on}{where}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
