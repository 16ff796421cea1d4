"""``make locate``: when the accuracy gate fails, say which part of the model broke.

The debug graph (``export --checkpoints``: every ELMo layer, then the mix, stacked into one output
``[B, n_layers + 2, W, D]``, padding-masked like ``output``) is simplified and compiled by the same
stages as the offline model under test (cpu: the same precision; ascend: an .om with the same atc
options), then run over a sample of sentences next to the PyTorch module on each sentence alone.
Per checkpoint (token layer, each LSTM layer, the mix) the report gives token cosine min/mean, max
abs error and the gate's verdict, the first checkpoint below the gate, how the error grows from one
to the next, and what to try next for that part (``locate_advice``).

The sample: the worst sentences of the flavour's last accuracy run (its ``worst_sentences``), plus
the first few sentences of every length. Two phases, so each runs where its tools are (the runtime
image has ais_bench, the export image torch): ``--run-only`` runs the debug model and writes
``--checkpoints``; the comparison reads it. Without either flag one call does both.

Writes ``locate.json`` (schema ``elmo-locate/1``, docs/formats.md), ``locate.md``, ``locate.png``.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Dict, List

import numpy as np

from stages.common.atomic import atomic_path, write_json, write_text
from stages.common.errors import StageError
from stages.common.hashing import sha256_file
from stages.common.progress import step
from stages.reports.metrics import compare, summarize
from stages.reports.verdict import cosine_text

SCHEMA = "elmo-locate/1"


def checkpoint_names(n_layers: int) -> List[tuple]:
    """(key, label) of each checkpoint, in the order the debug graph stacks them."""
    return ([("token", "token layer (char CNN, highway, projection)")]
            + [(f"lstm{k}", f"LSTM layer {k}") for k in range(1, n_layers + 1)]
            + [("output", "output (scalar mix)")])


# ---- the sample ------------------------------------------------------------------------------

def pick_sample(sentences, accuracy_report=None, worst: int = 16, per_length: int = 2) -> dict:
    """Indices to rerun: the accuracy run's worst sentences, then ``per_length`` of each length."""
    from_report = []
    if accuracy_report:
        path = Path(accuracy_report)
        try:
            report = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise StageError(f"{path}: unreadable ({exc}); rerun make accuracy, or run make locate without it")
        listed = report.get("worst_sentences")
        if listed is None:
            raise StageError(f"{path}: an accuracy report from before worst_sentences was recorded; "
                             f"rerun make accuracy")
        from_report = [int(entry["index"]) for entry in listed[:worst] if int(entry["index"]) < len(sentences)]
    chosen = list(dict.fromkeys(from_report))
    taken: Dict[int, int] = {}
    for index, tokens in enumerate(sentences):
        if taken.get(len(tokens), 0) < per_length and index not in chosen:
            taken[len(tokens)] = taken.get(len(tokens), 0) + 1
            chosen.append(index)
    if not chosen:
        raise StageError("no sentences to compare: the data folder is empty; rerun make data")
    return {"worst_from": str(accuracy_report) if accuracy_report else None, "worst": from_report,
            "per_length": per_length, "indices": chosen, "sentences": len(chosen),
            "tokens": int(sum(len(sentences[i]) for i in chosen))}


# ---- phase 1: the debug model ------------------------------------------------------------------

def run_debug_model(args, ids: np.ndarray, out_shape) -> List[dict]:
    """Per run: ``label``, ``batch`` and the ``[N, checkpoints, W, D]`` outputs. The cpu model runs at
    each ``--batch`` (int8 takes another path above batch 1); an .om once, at the batch sizes it has."""
    from stages.backends.runners import OrtRunner, infer_all

    if args.target == "ascend":
        from stages.backends.ascend.target import open_om_runner

        runner, record = open_om_runner(args.model, args.devices, out_shape, "locate")
        with step(f"locate: the debug .om on {len(ids)} sentences ({record['runtime']}, {record['release']})"):
            got = runner.infer({"input": ids})["output"]
        return [{"label": "om", "batch": None, "outputs": got}]
    runs = []
    for batch in sorted(set(args.batch)):
        runner = OrtRunner.load(args.model, threads=args.threads or None, optimize=False, name="locate")
        with step(f"locate: the debug model on {len(ids)} sentences at batch {batch}"):
            runs.append({"label": f"batch {batch}", "batch": batch, "outputs": infer_all(runner, ids, batch)})
    return runs


def save_runs(path, sample: dict, runs: List[dict]) -> None:
    meta = {"sample": sample, "runs": [{k: r[k] for k in ("label", "batch")} for r in runs]}
    arrays = {f"run{i}": r["outputs"] for i, r in enumerate(runs)}
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as handle:
            np.savez(handle, meta=np.asarray(json.dumps(meta)), **arrays)


def load_runs(path):
    try:
        with np.load(str(path)) as saved:
            meta = json.loads(str(saved["meta"]))
            runs = [dict(r, outputs=saved[f"run{i}"]) for i, r in enumerate(meta["runs"])]
    except (OSError, ValueError, KeyError) as exc:
        raise StageError(f"{path}: not a locate checkpoints file ({exc}); rerun make locate")
    return meta["sample"], runs


# ---- phase 2: against the PyTorch module -------------------------------------------------------

def reference_checkpoints(options, weights, sentences, threads=None) -> list:
    """Per sentence ``[checkpoints, n, D]``: the PyTorch module on it alone, unpadded."""
    import torch

    from stages.elmo.charids import batch_ids
    from stages.elmo.model import load_elmo

    if threads:
        torch.set_num_threads(threads)
    model = load_elmo(options, weights)
    out = [None] * len(sentences)
    by_length: Dict[int, list] = {}
    for index, tokens in enumerate(sentences):
        by_length.setdefault(len(tokens), []).append(index)
    with torch.no_grad():
        for group in by_length.values():
            layers = model.layers(torch.from_numpy(batch_ids([sentences[i] for i in group])))[0]
            stacked = torch.stack(layers + [model.mix(layers)], dim=1).numpy()
            for row, index in enumerate(group):
                out[index] = stacked[row]
    return out


def compare_run(outputs: np.ndarray, reference: list, lengths, names, gate) -> List[dict]:
    if outputs.shape[1] != len(names):
        raise StageError(f"the debug model has {outputs.shape[1]} checkpoints, the weights' options {len(names)}; "
                         f"rebuild it from the same weights with make locate")
    rows = []
    for k, (key, label) in enumerate(names):
        raw = compare([outputs[i, k, :n] for i, n in enumerate(lengths)], [r[k] for r in reference])
        padding = max((float(np.abs(outputs[i, k, n:]).max()) if n < outputs.shape[2] else 0.0)
                      for i, n in enumerate(lengths))
        token, sentence = summarize(raw["token_cosine"]), summarize(raw["sentence_cosine"])
        passed = token["min"] >= gate["token_cosine_min"] and sentence["mean"] >= gate["sentence_cosine_mean_min"]
        rows.append({"name": key, "label": label, "token_cosine": token, "sentence_cosine": sentence,
                     "max_abs_error": raw["max_abs_error"], "mean_abs_error": raw["mean_abs_error"],
                     "padding_max_abs": padding, "passed": bool(passed and padding == 0.0)})
    return rows


def _distance(row) -> float:
    return max(1.0 - row["token_cosine"]["min"], 0.0)


def summarize_checkpoints(runs: List[dict]) -> List[dict]:
    """Per checkpoint, its worst run; ``growth``: how much further from 1 its token cosine min is than
    the checkpoint before's (null for the first, or when the one before is exact)."""
    out = []
    for k in range(len(runs[0]["checkpoints"])):
        rows = [(run, run["checkpoints"][k]) for run in runs]
        run, worst = min(rows, key=lambda pair: pair[1]["token_cosine"]["min"])
        previous = out[-1]["distance"] if out else None
        out.append({"name": worst["name"], "label": worst["label"],
                    "token_cosine_min": worst["token_cosine"]["min"],
                    "token_cosine_mean": min(r["token_cosine"]["mean"] for _, r in rows),
                    "sentence_cosine_mean": min(r["sentence_cosine"]["mean"] for _, r in rows),
                    "max_abs_error": max(r["max_abs_error"] for _, r in rows),
                    "passed": all(r["passed"] for _, r in rows), "worst_run": run["label"],
                    "failed_runs": [run["label"] for run, r in rows if not r["passed"]],
                    "distance": _distance(worst),
                    "growth": (_distance(worst) / previous) if previous else None})
    return out


def evaluate(args, sample: dict, runs: List[dict]) -> dict:
    from stages.elmo.elmo_options import load_options
    from stages.sources.data import load_samples
    from stages.sources.weights import load_source
    from stages.reports.locate_advice import next_steps

    manifest, sentences = load_samples(args.data)
    source = load_source(args.weights_source)
    names = checkpoint_names(load_options(source["options"]).n_layers)
    chosen = [sentences[i] for i in sample["indices"]]
    lengths = [len(s) for s in chosen]
    with step(f"locate: PyTorch on each of {len(chosen)} sentences unpadded, every layer"):
        reference = reference_checkpoints(source["options"], source["weights"], chosen, args.threads or None)
    gate = {"sentence_cosine_mean_min": args.sentence_cos_min, "token_cosine_min": args.token_cos_min}
    for run in runs:
        run["checkpoints"] = compare_run(run.pop("outputs"), reference, lengths, names, gate)
    checkpoints = summarize_checkpoints(runs)
    first = next((c for c in checkpoints if not c["passed"]), None)
    model_manifest = _manifest(args.model)
    report = {
        "schema": SCHEMA,
        "passed": first is None,
        "target": args.target,
        "precision": model_manifest.get("precision") or model_manifest.get("precision_mode")
        or ("atc default (force_fp16)" if args.target == "ascend" else None),
        "model": {"path": str(args.model), "sha256": sha256_file(args.model), "manifest": model_manifest},
        "weights": {k: source[k] for k in ("kind", "label", "synthetic", "options", "weights", "weights_sha256")},
        "data": {"dir": str(args.data), "word_len": manifest["word_len"], "samples": len(sentences)},
        "gate": gate,
        "sample": sample,
        "checkpoints": checkpoints,
        "first_below_gate": ({"name": first["name"], "label": first["label"], "runs": first["failed_runs"]}
                             if first else None),
        "runs": runs,
    }
    report["next_steps"] = next_steps(report, debug_onnx=model_manifest.get("onnx"), real_onnx=args.onnx or None,
                                      report_dir=Path(args.report_dir))
    return report


def _manifest(model) -> dict:
    path = Path(str(model) + ".json")
    if not Path(model).is_file():
        raise StageError(f"{model}: no such debug model; run make locate (it builds it)")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise StageError(f"{path}: missing or unreadable (it records how the debug model was built); "
                         f"rerun make locate") from None


# ---- the report ------------------------------------------------------------------------------

def render_markdown(report: dict) -> str:
    first = report["first_below_gate"]
    verdict = f"first below the gate: {first['label']}" if first else "every checkpoint passes the gate"
    gate = report["gate"]
    sample = report["sample"]
    lines = [
        f"# Locate: {verdict}",
        "",
        f"- target: `{report['target']}` ({report['precision'] or 'n/a'}), debug model `{report['model']['path']}`",
        f"- weights: {report['weights']['label']}",
        f"- sample: {sample['sentences']} sentences, {sample['tokens']} tokens: "
        + (f"the {len(sample['worst'])} worst of `{sample['worst_from']}`, plus " if sample["worst_from"]
           else "no accuracy report for this flavour yet, so ")
        + f"up to {sample['per_length']} of every length",
        f"- gate: min token cosine >= {gate['token_cosine_min']}, mean sentence cosine >= "
        f"{gate['sentence_cosine_mean_min']}, padded positions exactly zero; each checkpoint is compared "
        f"with the PyTorch module on each sentence alone",
        "",
        "| checkpoint | token cos min | token cos mean | sentence cos mean | max abs err | 1 - cos min, x previous "
        "| worst run | pass |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for c in report["checkpoints"]:
        growth = "" if c["growth"] is None else f", x{c['growth']:.3g}"
        lines.append(f"| {c['label']} | {cosine_text(c['token_cosine_min'])} | "
                     f"{cosine_text(c['token_cosine_mean'])} | {cosine_text(c['sentence_cosine_mean'])} | "
                     f"{c['max_abs_error']:.3g} | {c['distance']:.3g}{growth} | "
                     f"{c['worst_run']} | {'yes' if c['passed'] else 'NO'} |")
    if len(report["runs"]) > 1:
        lines += ["", "Per run (token cos min / max abs err):", "",
                  "| checkpoint | " + " | ".join(r["label"] for r in report["runs"]) + " |",
                  "| --- |" + " --- |" * len(report["runs"])]
        for k, c in enumerate(report["checkpoints"]):
            cells = [f"{cosine_text(r['checkpoints'][k]['token_cosine']['min'])} / "
                     f"{r['checkpoints'][k]['max_abs_error']:.3g}"
                     for r in report["runs"]]
            lines.append(f"| {c['label']} | " + " | ".join(cells) + " |")
    lines += ["", "## What to try next", "", *report["next_steps"]["lines"], "", "![error by layer](locate.png)", ""]
    return "\n".join(lines)


FLOOR = 1e-12  # exact agreement has no logarithm: drawn at this floor


def plot(report: dict, dest) -> None:
    """1 - token cosine min and max abs error per checkpoint, one line per run, the gate drawn."""
    from stages.reports.plots import pyplot, save_png

    labels = [c["name"] for c in report["checkpoints"]]
    fig, axes = pyplot().subplots(1, 2, figsize=(9, 3.6))
    for run in report["runs"]:
        distance = [max(1.0 - c["token_cosine"]["min"], FLOOR) for c in run["checkpoints"]]
        error = [max(c["max_abs_error"], FLOOR) for c in run["checkpoints"]]
        axes[0].plot(labels, distance, marker="o", label=run["label"])
        axes[1].plot(labels, error, marker="o", label=run["label"])
    axes[0].axhline(max(1.0 - report["gate"]["token_cosine_min"], FLOOR), color="#c33", linestyle="--",
                    linewidth=1, label="gate")
    for ax, title in zip(axes, ("1 - token cosine min", "max abs error")):
        ax.set_yscale("log")
        ax.set_title(title, fontsize=9)
        ax.legend(fontsize=7)
    fig.suptitle(f"{report['target']} {report['precision'] or ''}: error by checkpoint; weights: "
                 f"{report['weights']['label']}", fontsize=8)
    save_png(fig, dest)


COMMAND = "locate"
COMMAND_HELP = dict(help="per-layer comparison of the offline model against PyTorch: where accuracy is lost")


def add_arguments(parser) -> None:
    parser.add_argument("--model", required=True, help="the debug offline model (export --checkpoints, compiled)")
    parser.add_argument("--data", required=True, help="data stage folder")
    parser.add_argument("--weights-source", required=True, help="source.json of the weights stage (the reference)")
    parser.add_argument("--target", choices=("cpu", "ascend"), default="cpu")
    parser.add_argument("--accuracy-report", default="", help="the flavour's accuracy.json: its worst sentences")
    parser.add_argument("--worst", type=int, default=16, help="how many of the worst sentences to rerun")
    parser.add_argument("--per-length", type=int, default=2, help="sentences of every length added")
    parser.add_argument("--batch", type=int, nargs="+", default=[1], help="cpu: batch sizes to run the model at")
    parser.add_argument("--devices", default="0", help="ascend: NPU ids, e.g. 0 or 0,1")
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--onnx", default="", help="the real simplified ONNX: names the nodes to keep in float")
    parser.add_argument("--checkpoints", default="", help="the debug model's outputs (.npz), written by --run-only")
    parser.add_argument("--run-only", action="store_true", help="run the debug model, write --checkpoints, stop")
    parser.add_argument("--report-dir", default="", help="where locate.{json,md,png} go")
    parser.add_argument("--sentence-cos-min", type=float, default=0.99)
    parser.add_argument("--token-cos-min", type=float, default=0.99)


def run(args) -> int:
    from stages.elmo.elmo_options import load_options
    from stages.sources.data import bin_path, load_samples, read_bin
    from stages.sources.weights import load_source

    if args.run_only and not args.checkpoints:
        raise StageError("--run-only writes the debug model's outputs: give --checkpoints FILE.npz")
    if not args.run_only and not args.report_dir:
        raise StageError("give --report-dir (where locate.json goes)")
    if args.worst < 0 or args.per_length < 0 or any(b < 1 for b in args.batch):
        raise StageError("--worst and --per-length must be >= 0 and --batch sizes >= 1")
    if args.run_only or not args.checkpoints:
        manifest, sentences = load_samples(args.data)
        sample = pick_sample(sentences, args.accuracy_report or None, args.worst, args.per_length)
        word_len = manifest["word_len"]
        ids = np.concatenate([read_bin(bin_path(args.data, manifest, i), word_len) for i in sample["indices"]])
        options = load_options(load_source(args.weights_source)["options"])
        runs = run_debug_model(args, ids, (options.n_layers + 2, word_len, options.output_dim))
        if args.run_only:
            save_runs(args.checkpoints, sample, runs)
            return 0
    else:
        sample, runs = load_runs(args.checkpoints)
    report = evaluate(args, sample, runs)
    out = Path(args.report_dir)
    plot(report, out / "locate.png")
    write_text(out / "locate.md", render_markdown(report))
    write_json(out / "locate.json", report)
    for c in report["checkpoints"]:
        print(f"locate {c['label']:<45} token cos min {cosine_text(c['token_cosine_min'])}, max abs "
              f"{c['max_abs_error']:.3g} -> {'pass' if c['passed'] else 'BELOW THE GATE'}", file=sys.stderr)
    first = report["first_below_gate"]
    print(f"locate: {'first below the gate: ' + first['label'] if first else 'every checkpoint passes the gate'} "
          f"({out / 'locate.md'})")
    return 0
