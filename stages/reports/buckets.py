"""``make accuracy``/``make perf`` with length buckets (``WORD_LEN="16 32 64"``): one table.

Each bucket is judged and timed by its own run (``reports/buckets/w<lo>-<hi>/``), on the
sentences no smaller bucket holds. This command reads those reports and writes
``reports/accuracy-buckets.*`` or ``reports/perf-buckets.*``: a row per bucket and an
overall line over every sentence. Overall speed weighs each bucket by its sentences,
because a corpus pays each bucket's time per sentence once for every sentence in it:
``overall sentences/s = sum(n_b) / sum(n_b / rate_b)``.

A bucket whose run failed before it was judged (or timed) has no current report: it
is listed as such, never filled in from an earlier run.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Dict, List, Optional

from stages.common.atomic import write_json, write_text
from stages.common.errors import StageError

ACCURACY_SCHEMA = "elmo-accuracy-buckets/1"
PERF_SCHEMA = "elmo-perf-buckets/1"


def _read(path: Path) -> Optional[dict]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise StageError(f"{path}: unreadable ({exc}); rerun the make command") from None


def _range_of(folder: Path) -> str:
    lo, _, hi = folder.name[1:].partition("-")
    return f"{lo}..{hi}"


def summarize_accuracy(buckets: List[Path], failed: List[str]) -> dict:
    rows, per_reference = [], {}
    for folder in buckets:
        report = None if folder.name in failed and not (folder / "accuracy.json").is_file() else _read(
            folder / "accuracy.json")
        if report is None:
            rows.append({"bucket": _range_of(folder), "report": None, "passed": False,
                         "status": "not judged: its make accuracy failed before the gate (see above)"})
            continue
        comparisons = report["comparisons"]
        samples, tokens = report["data"]["samples"], report["data"]["tokens"]
        rows.append({
            "bucket": _range_of(folder),
            "report": str(folder / "accuracy.md"),
            "passed": bool(report["passed"]),
            "status": "PASSED" if report["passed"] else "FAILED",
            "samples": samples,
            "tokens": tokens,
            "token_cosine_min": min(c["token_cosine"]["min"] for c in comparisons),
            "sentence_cosine_mean_min": min(c["sentence_cosine"]["mean"] for c in comparisons),
            "sentence_cosine_min": min(c["sentence_cosine"]["min"] for c in comparisons),
            "max_abs_error": max(c["max_abs_error"] for c in comparisons),
            "padding_max_abs": report["padding_max_abs"],
            # ACCURACY_SAMPLE: judged on a stratified sample (null: every sentence).
            "sample": report.get("sample"),
        })
        for c in comparisons:
            ref = per_reference.setdefault(c["reference"], {"samples": 0, "tokens": 0, "sentence_sum": 0.0,
                                                             "token_sum": 0.0, "token_min": 1.0,
                                                             "sentence_min": 1.0, "max_abs_error": 0.0})
            ref["samples"] += samples
            ref["tokens"] += c["token_cosine"]["count"]
            ref["sentence_sum"] += c["sentence_cosine"]["mean"] * samples
            ref["token_sum"] += c["token_cosine"]["mean"] * c["token_cosine"]["count"]
            ref["token_min"] = min(ref["token_min"], c["token_cosine"]["min"])
            ref["sentence_min"] = min(ref["sentence_min"], c["sentence_cosine"]["min"])
            ref["max_abs_error"] = max(ref["max_abs_error"], c["max_abs_error"])
    references = {name: {"sentence_cosine_mean": r["sentence_sum"] / max(r["samples"], 1),
                         "sentence_cosine_min": r["sentence_min"],
                         "token_cosine_mean": r["token_sum"] / max(r["tokens"], 1),
                         "token_cosine_min": r["token_min"], "max_abs_error": r["max_abs_error"]}
                  for name, r in per_reference.items()}
    judged = [r for r in rows if r["report"]]
    overall = {
        "passed": bool(rows) and all(r["passed"] for r in rows),
        "buckets_judged": len(judged),
        "buckets": len(rows),
        "samples": sum(r["samples"] for r in judged),
        "tokens": sum(r["tokens"] for r in judged),
        "token_cosine_min": min((r["token_cosine_min"] for r in judged), default=None),
        "sentence_cosine_mean_min": min((v["sentence_cosine_mean"] for v in references.values()), default=None),
        "references": references,
        "sampled": any(r.get("sample") for r in judged),
    }
    return {"schema": ACCURACY_SCHEMA, "passed": overall["passed"], "buckets": rows, "overall": overall}


def summarize_perf(buckets: List[Path], failed: List[str]) -> dict:
    rows, points = [], {}
    for folder in buckets:
        report = None if folder.name in failed else _read(folder / "perf.json")
        if report is None:
            rows.append({"bucket": _range_of(folder), "report": None,
                         "status": "not timed: its make perf failed (see above)"})
            continue
        samples, tokens = report["data"]["samples"], report["data"]["tokens"]
        rows.append({"bucket": _range_of(folder), "report": str(folder / "perf.md"), "status": "timed",
                     "samples": samples, "tokens": tokens, "word_len": report["word_len"],
                     "machine_cpu": report["machine"].get("cpu"),
                     "results": [{"variant": r["variant"], "batch": r["batch"], "sentences_per_s": r["sentences_per_s"],
                                  "accuracy_gate": r["accuracy_gate"]} for r in report["results"]]})
        for r in report["results"]:
            point = points.setdefault((r["variant"], r["batch"]), {"samples": 0, "tokens": 0, "seconds": 0.0,
                                                                   "buckets": 0, "gates": set()})
            if r["sentences_per_s"]:
                point["samples"] += samples
                point["tokens"] += tokens
                point["seconds"] += samples / r["sentences_per_s"]
                point["buckets"] += 1
                point["gates"].add(str(r["accuracy_gate"]))
    timed = [r for r in rows if r["report"]]
    overall = []
    for (variant, batch), p in points.items():
        complete = p["buckets"] == len(rows)
        overall.append({
            "variant": variant, "batch": batch, "complete": complete,
            "sentences_per_s": p["samples"] / p["seconds"] if p["seconds"] else None,
            "tokens_per_s": p["tokens"] / p["seconds"] if p["seconds"] else None,
            "accuracy_gate": p["gates"].pop() if len(p["gates"]) == 1 else "mixed: " + ", ".join(sorted(p["gates"])),
        })
    return {"schema": PERF_SCHEMA, "buckets": rows, "overall": overall,
            "samples": sum(r["samples"] for r in timed), "tokens": sum(r["tokens"] for r in timed)}


def _fmt(value, digits=6) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def sample_lines(summary: dict) -> list:
    """The SAMPLE label: which buckets were judged on a sample (ACCURACY_SAMPLE), not in full."""
    sampled = [r for r in summary["buckets"] if r.get("sample")]
    if not sampled:
        return []
    parts = ", ".join(f"{r['bucket']}: {r['sample']['sentences']} of {r['sample']['of_sentences']}" for r in sampled)
    return [f"**SAMPLE (ACCURACY_SAMPLE={sampled[0]['sample']['per_bucket']}): sentences judged per bucket: {parts}; "
            "the counts below are the sentences judged. Leave ACCURACY_SAMPLE empty for the full proof.**", ""]


def render_accuracy(summary: dict, reports: Path) -> str:
    o = summary["overall"]
    lines = [f"# Accuracy by length bucket: {'PASSED' if summary['passed'] else 'FAILED'}", "",
             "Each sentence is judged in the smallest bucket it fits; each bucket has its own report.", "",
             *sample_lines(summary),
             "| bucket (tokens) | verdict | sentences | tokens | worst token cos min | lowest sentence cos mean "
             "| sentence cos min | max abs error |", "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in summary["buckets"]:
        if not r["report"]:
            lines.append(f"| {r['bucket']} | {r['status']} | | | | | | |")
            continue
        link = Path(r["report"]).relative_to(reports) if Path(r["report"]).is_relative_to(reports) else r["report"]
        lines.append(f"| [{r['bucket']}]({link}) | {r['status']} | {r['samples']} | {r['tokens']} | "
                     f"{_fmt(r['token_cosine_min'])} | {_fmt(r['sentence_cosine_mean_min'])} | "
                     f"{_fmt(r['sentence_cosine_min'])} | {_fmt(r['max_abs_error'], 3)} |")
    lines.append(f"| **overall** | **{'PASSED' if summary['passed'] else 'FAILED'}** | {o['samples']} | {o['tokens']} | "
                 f"{_fmt(o['token_cosine_min'])} | {_fmt(o['sentence_cosine_mean_min'])} | | |")
    lines += ["", "Overall, per reference (sentence means weighted by sentences, token means by tokens):", "",
              "| reference | sentence cos mean | sentence cos min | token cos mean | token cos min | max abs error |",
              "| --- | --- | --- | --- | --- | --- |"]
    for name, v in o["references"].items():
        lines.append(f"| {name} | {_fmt(v['sentence_cosine_mean'])} | {_fmt(v['sentence_cosine_min'])} | "
                     f"{_fmt(v['token_cosine_mean'])} | {_fmt(v['token_cosine_min'])} | {_fmt(v['max_abs_error'], 3)} |")
    return "\n".join(lines) + "\n"


def render_perf(summary: dict, reports: Path) -> str:
    cpus = sorted({r["machine_cpu"] for r in summary["buckets"] if r.get("machine_cpu")})
    lines = ["# Speed by length bucket (sentences/s)", "",
             f"CPU: {', '.join(cpus) or 'unknown'}. Each bucket is timed on its own sentences; the overall "
             "rate weighs each bucket by its sentences (sum n / sum n/rate).", ""]
    keys = list(dict.fromkeys((p["variant"], p["batch"]) for p in summary["overall"]))
    timed = [r for r in summary["buckets"] if r["report"]]
    header = ["variant", "batch"] + [f"{r['bucket']} ({r['samples']})" for r in timed] + ["overall", "overall tokens/s", "gate"]
    lines += ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    overall = {(p["variant"], p["batch"]): p for p in summary["overall"]}
    for variant, batch in keys:
        cells = []
        for r in timed:
            hit = next((x for x in r["results"] if x["variant"] == variant and x["batch"] == batch), None)
            cells.append(_fmt(hit["sentences_per_s"], 2) if hit and hit["sentences_per_s"] else "—")
        p = overall[(variant, batch)]
        total = _fmt(p["sentences_per_s"], 2) + ("" if p["complete"] else " (some buckets only)")
        lines.append(f"| {variant} | {batch} | " + " | ".join(cells) + f" | {total} | {_fmt(p['tokens_per_s'], 1)} | "
                     f"{p['accuracy_gate']} |")
    missing = [r for r in summary["buckets"] if not r["report"]]
    if missing:
        lines += [""] + [f"- bucket {r['bucket']}: {r['status']}" for r in missing]
    lines += ["", "Per-bucket reports: " + ", ".join(
        f"[{r['bucket']}]({Path(r['report']).relative_to(reports) if Path(r['report']).is_relative_to(reports) else r['report']})"
        for r in timed)]
    return "\n".join(lines) + "\n"


COMMAND = "buckets-report"
COMMAND_HELP = dict(help="one table over the length buckets' accuracy or perf reports")


def add_arguments(parser) -> None:
    parser.add_argument("--kind", required=True, choices=("accuracy", "perf"))
    parser.add_argument("--reports", required=True, help="the reports folder the summary goes to")
    parser.add_argument("--bucket", action="append", required=True,
                        help="a bucket's reports folder, reports/buckets/w<lo>-<hi> (once per bucket)")
    parser.add_argument("--failed", default="", help="buckets (w<lo>-<hi>) whose make run failed")


def run(args) -> int:
    reports, buckets = Path(args.reports), [Path(b) for b in args.bucket]
    failed = args.failed.split()
    if args.kind == "accuracy":
        summary = summarize_accuracy(buckets, failed)
        write_text(reports / "accuracy-buckets.md", render_accuracy(summary, reports))
        write_json(reports / "accuracy-buckets.json", summary)
        o = summary["overall"]
        verdict = "PASSED" if summary["passed"] else "FAILED"
        print(f"accuracy: {verdict} over {len(buckets)} buckets ({o['buckets_judged']} judged, {o['samples']} sentences, "
              f"worst token cos {_fmt(o['token_cosine_min'])}{', on a SAMPLE' if o['sampled'] else ''}) "
              f"({reports / 'accuracy-buckets.md'})",
              file=sys.stdout if summary["passed"] else sys.stderr)
        return 0 if summary["passed"] else 1
    summary = summarize_perf(buckets, failed)
    write_text(reports / "perf-buckets.md", render_perf(summary, reports))
    write_json(reports / "perf-buckets.json", summary)
    print(f"perf: {len([r for r in summary['buckets'] if r['report']])} of {len(buckets)} buckets timed "
          f"({reports / 'perf-buckets.md'})")
    return 0 if not failed else 1
