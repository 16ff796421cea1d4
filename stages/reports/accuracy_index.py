"""``make accuracy``'s front page: ``reports/accuracy.md`` lists every flavour that has a
verdict (each cpu precision, each om) with a link to its own report, then the flavour just
judged in full; ``accuracy.json`` and ``accuracy_hist.png`` are that flavour's."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

from stages.common.atomic import atomic_path, write_text
from stages.common.errors import StageError

PARTS = ("accuracy.json", "accuracy_hist.png")


def _row(run: Path, report: dict, reports: Path) -> str:
    worst = min((c["token_cosine"]["min"] for c in report["comparisons"]), default=float("nan"))
    mean = min((c["sentence_cosine"]["mean"] for c in report["comparisons"]), default=float("nan"))
    link = (run / "accuracy.md").relative_to(reports)
    return (f"| [{run.name}]({link}) | {'PASSED' if report['passed'] else 'FAILED'} | {worst:.6f} | {mean:.6f} | "
            f"{report['data']['samples']} | {report['weights']['label']} |")


def write_index(reports, current) -> dict:
    reports, current = Path(reports), Path(current)
    try:
        chosen = json.loads((current / "accuracy.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise StageError(f"{current / 'accuracy.json'}: unreadable ({exc}); rerun make accuracy")
    rows = []
    for path in sorted(reports.glob("runs/*/accuracy.json")):
        try:
            rows.append(_row(path.parent, json.loads(path.read_text(encoding="utf-8")), reports))
        except (OSError, ValueError, KeyError):
            rows.append(f"| {path.parent.name} | unreadable | | | | |")
    for name in PARTS:
        with atomic_path(reports / name) as tmp:
            shutil.copyfile(str(current / name), str(tmp))
    detail = (current / "accuracy.md").read_text(encoding="utf-8")
    lines = [
        f"# Accuracy: {'PASSED' if chosen.get('passed') else 'FAILED'} ({current.name}, the flavour just judged)",
        "",
        "## Every flavour judged",
        "",
        "Each offline model (cpu precision, or om) gets its own verdict through the same gate; the worst "
        "token cosine and the lowest sentence-cosine mean are over all references.",
        "",
        "| flavour | verdict | worst token cos min | lowest sentence cos mean | sentences | weights |",
        "| --- | --- | --- | --- | --- | --- |",
        *rows,
        "",
        f"## The flavour just judged: {current.name}",
        "",
        detail.split("\n", 1)[1] if detail.startswith("# ") else detail,
    ]
    write_text(reports / "accuracy.md", "\n".join(lines))
    return chosen


COMMAND = "accuracy-index"
COMMAND_HELP = dict(help="reports/accuracy.*: every flavour's verdict, and the one just judged")


def add_arguments(parser) -> None:
    parser.add_argument("--reports", required=True, help="the reports folder (holds runs/<flavour>/)")
    parser.add_argument("--current", required=True, help="runs/<flavour> folder just judged")


def run(args) -> int:
    write_index(args.reports, args.current)
    return 0
