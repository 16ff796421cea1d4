"""``make accuracy``: judge the target's outputs against two references.

(a) ONNX Runtime float32 on the simplified ONNX, over the same padded inputs
    (the seed's check: does compilation preserve the graph?);
(b) the PyTorch module on each sentence run alone, unpadded (is the deployed
    graph the model, padding included?).

For the cpu target the offline model also runs the corpus in batches of
``--batched`` and is judged against (a) again: the inference stage feeds one
sentence per call, and a model may take another path for larger batches
(the int8 model does, see ``stages.quantize``).

Passes when, against every reference, the mean sentence cosine >= ``--sentence-cos-min``
(0.99, the seed's threshold) and the minimum token cosine >= ``--token-cos-min``.
Writes ``accuracy.json`` (schema ``elmo-accuracy/1``, docs/formats.md),
``accuracy.md`` and ``accuracy_hist.png``; exits 1 on failure.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from stages.common.atomic import write_json, write_text
from stages.common.progress import step
from stages.common.errors import StageError, stale_record
from stages.common.hashing import sha256_file
from stages.reports.metrics import compare, summarize

SCHEMA = "elmo-accuracy/1"
FAILED = 1
WORST = 16  # sentences listed for make locate, which reruns them layer by layer


def torch_unpadded(options, weights, sentences, threads=None) -> list:
    """Each sentence alone at its own length; equal lengths share a batch (still unpadded)."""
    from stages.elmo.charids import batch_ids
    from stages.backends.runners import TorchRunner

    runner = TorchRunner.load(options, weights, threads=threads)
    by_length = {}
    for index, tokens in enumerate(sentences):
        by_length.setdefault(len(tokens), []).append(index)
    results = [None] * len(sentences)
    for length, indices in sorted(by_length.items()):
        for start in range(0, len(indices), 32):
            group = indices[start : start + 32]
            out = runner.infer({"input": batch_ids([sentences[i] for i in group])})["output"]
            for row, index in enumerate(group):
                results[index] = out[row]
    return results


def _real_tokens(outputs, lengths) -> list:
    return [outputs[i, :n] for i, n in enumerate(lengths)]


def _padding_max(outputs, lengths) -> float:
    """Largest |value| at a padded position (the gate wants exactly 0)."""
    return float(max((np.abs(outputs[i, n:]).max() if n < outputs.shape[1] else 0.0) for i, n in enumerate(lengths)))


def _comparison(name, description, raw, gate) -> dict:
    sentence = summarize(raw["sentence_cosine"])
    token = summarize(raw["token_cosine"])
    checks = {
        "sentence_cosine_mean": sentence["mean"] >= gate["sentence_cosine_mean_min"],
        "token_cosine_min": token["min"] >= gate["token_cosine_min"],
    }
    return {
        "reference": name,
        "description": description,
        "sentence_cosine": sentence,
        "token_cosine": token,
        "max_abs_error": raw["max_abs_error"],
        "mean_abs_error": raw["mean_abs_error"],
        "checks": checks,
        "passed": all(checks.values()),
    }


def worst_sentences(raws: dict, lengths, count: int = WORST) -> list:
    """The ``count`` sentences with the lowest token cosine against any reference, worst first."""
    starts = np.cumsum([0] + list(lengths))[:-1]
    worst = np.full(len(lengths), np.inf)
    against = [""] * len(lengths)
    for name, raw in raws.items():
        per_sentence = np.minimum.reduceat(np.asarray(raw["token_cosine"], dtype=np.float64), starts)
        for index in np.flatnonzero(per_sentence < worst):
            worst[index], against[index] = per_sentence[index], name
    order = np.argsort(worst, kind="stable")[:count]
    return [{"index": int(i), "tokens": int(lengths[i]), "token_cosine_min": float(worst[i]), "reference": against[i]}
            for i in order]


def evaluate(args) -> tuple:
    from stages.sources.data import load_samples, read_bin
    from stages.backends.infer import load_summary, read_outputs
    from stages.backends.runners import OrtRunner, infer_all
    from stages.sources.weights import load_source

    manifest, sentences = load_samples(args.data)
    word_len = manifest["word_len"]
    stems = [str(i) for i in range(len(sentences))]
    summary = load_summary(args.outputs)
    if summary.get("outputs", 0) < len(stems):
        raise stale_record(Path(args.outputs) / "summary.json",
                           f"{args.outputs}: {summary.get('outputs')} outputs for {len(stems)} inputs", "inference",
                           summary.get("schema", "elmo-infer-summary/1"))
    outputs = read_outputs(args.outputs, stems, word_len)
    args.model = args.model or summary["model"]
    ids = np.concatenate([read_bin(Path(args.data) / "bin" / f"{s}.bin", word_len) for s in stems])

    source = load_source(args.weights_source)
    with step(f"accuracy: reference 1 of 2, ONNX Runtime fp32 on {len(stems)} sentences"):
        onnx_out = infer_all(OrtRunner.load(args.onnx, threads=args.threads or None, name="onnxruntime-fp32"), ids)
    with step(f"accuracy: reference 2 of 2, PyTorch on each of {len(stems)} sentences unpadded"):
        torch_out = torch_unpadded(source["options"], source["weights"], sentences, threads=args.threads or None)

    lengths = [len(s) for s in sentences]
    target_real = _real_tokens(outputs, lengths)
    onnx_real = _real_tokens(onnx_out, lengths)
    padding_max = _padding_max(outputs, lengths)
    gate = {"sentence_cosine_mean_min": args.sentence_cos_min, "token_cosine_min": args.token_cos_min}
    raw_onnx = compare(target_real, onnx_real)
    raw_torch = compare(target_real, torch_out)
    comparisons = [
        _comparison("onnxruntime-fp32", "ONNX Runtime float32 on the simplified ONNX, same padded inputs",
                    raw_onnx, gate),
        _comparison("pytorch-unpadded", "PyTorch module on each sentence alone, unpadded", raw_torch, gate),
    ]
    raws = {"onnxruntime-fp32": raw_onnx, "pytorch-unpadded": raw_torch}
    if args.target == "cpu" and args.batched > 1:
        with step(f"accuracy: the target at batch {args.batched}"):
            batched = infer_all(OrtRunner.load(args.model, threads=args.threads or None, optimize=False,
                                               name="target-batched"), ids, batch_size=args.batched)
        raw_batched = compare(_real_tokens(batched, lengths), onnx_real)
        padding_max = max(padding_max, _padding_max(batched, lengths))
        name = f"onnxruntime-fp32 (target batch {args.batched})"
        comparisons.append(_comparison(
            name, f"the offline model in batches of {args.batched} against ONNX Runtime float32", raw_batched, gate))
        raws[name] = raw_batched
    dataset = json.loads(Path(args.dataset_source).read_text(encoding="utf-8")) if args.dataset_source else {}
    om_manifest_path = Path(str(args.model) + ".json")
    om_manifest = json.loads(om_manifest_path.read_text(encoding="utf-8")) if om_manifest_path.is_file() else {}
    report = {
        "schema": SCHEMA,
        "passed": all(c["passed"] for c in comparisons) and padding_max == 0.0,
        "target": args.target,
        "precision": om_manifest.get("precision") or om_manifest.get("precision_mode"),
        "model": {"path": str(args.model), "sha256": sha256_file(args.model) if Path(args.model).is_file() else None,
                  "manifest": om_manifest},
        "onnx": {"path": str(args.onnx), "sha256": sha256_file(args.onnx)},
        "weights": {k: source[k] for k in ("kind", "label", "synthetic", "reason", "options", "options_sha256",
                                          "weights", "weights_sha256")},
        "data": {
            "label": dataset.get("label") or manifest.get("source_label"),
            "kind": dataset.get("kind"),
            "reason": dataset.get("reason"),
            "dir": str(args.data),
            "sentences": str(Path(args.data) / manifest.get("sentences", "sentences.txt")),
            "inputs": str(Path(args.data) / manifest.get("bin_dir", "bin")),
            "manifest_sha256": sha256_file(Path(args.data) / "manifest.json"),
            "source_files": [{"path": f["path"], "sha256": f["sha256"]} for f in manifest.get("files", [])],
            "word_len": word_len,
            "min_len": manifest.get("min_len", 1),
            "samples": len(sentences),
            "tokens": int(sum(lengths)),
        },
        "outputs": {"dir": str(args.outputs), "summary": summary},
        "gate": gate,
        "padding_max_abs": padding_max,
        "comparisons": comparisons,
        "worst_sentences": worst_sentences(raws, lengths),
    }
    return report, raws


def render_markdown(report: dict) -> str:
    verdict = "PASSED" if report["passed"] else "FAILED"
    lines = [
        f"# Accuracy: {verdict}",
        "",
        f"- target: `{report['target']}` ({report.get('precision') or 'n/a'}), model `{report['model']['path']}`",
        f"- weights: {report['weights']['label']}",
        f"- data: {report['data']['label']} ({report['data']['samples']} sentences, "
        f"{report['data']['tokens']} tokens, WORD_LEN {report['data']['word_len']})",
        f"- gate: mean sentence cosine >= {report['gate']['sentence_cosine_mean_min']}, "
        f"min token cosine >= {report['gate']['token_cosine_min']}, padded positions exactly zero "
        f"(max |padding| = {report['padding_max_abs']:g})",
        "",
        "| reference | sentence cos mean | min | p1 | token cos mean | min | p1 | max abs err | mean abs err | pass |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for c in report["comparisons"]:
        s, t = c["sentence_cosine"], c["token_cosine"]
        lines.append(
            f"| {c['reference']} | {s['mean']:.6f} | {s['min']:.6f} | {s['p1']:.6f} | {t['mean']:.6f} | "
            f"{t['min']:.6f} | {t['p1']:.6f} | {c['max_abs_error']:.3g} | {c['mean_abs_error']:.3g} | "
            f"{'yes' if c['passed'] else 'NO'} |"
        )
    if report["weights"].get("synthetic"):
        lines += ["", "Weights are SYNTHETIC: these figures show the deployed graph computes the same function "
                      "as the model, not the quality of ELMo's vectors."]
    lines += ["", "![token cosine histogram](accuracy_hist.png)", ""]
    return "\n".join(lines)


# Exact matches (cosine 1) have no logarithm: they are drawn in the leftmost bin, at this floor.
DISTANCE_FLOOR = 1e-12


def plot_histogram(raw: dict, dest, report: dict) -> None:
    """Per reference, how far each token's cosine is from 1, with the gate drawn; titled with the
    target, precision, weights and corpus so a PNG on its own says what it shows."""
    from stages.reports.plots import pyplot, save_png

    gate = 1.0 - report["gate"]["token_cosine_min"]
    fig, axes = pyplot().subplots(1, len(raw), figsize=(5 * len(raw), 3.8), squeeze=False)
    for ax, (name, values) in zip(axes[0], raw.items()):
        distance = 1.0 - np.asarray(values["token_cosine"], dtype=np.float64)
        exact = int(np.sum(distance <= DISTANCE_FLOOR))
        logged = np.log10(np.clip(distance, DISTANCE_FLOOR, None))
        low = min(float(logged.min()), np.log10(DISTANCE_FLOOR))
        high = max(float(logged.max()), np.log10(gate)) + 0.5
        ax.hist(logged, bins=np.linspace(low, high, 41), color="#3a7")
        ax.axvline(np.log10(gate), color="#c33", linestyle="--", linewidth=1)
        ax.text(np.log10(gate), ax.get_ylim()[1] * 0.95, f" gate: cos >= {report['gate']['token_cosine_min']}",
                color="#c33", fontsize=7, va="top")
        ax.set_title(f"vs {name}", fontsize=9)
        ax.set_xlabel(f"log10(1 - token cosine); {exact} exact matches drawn at {np.log10(DISTANCE_FLOOR):.0f}",
                      fontsize=8)
        ax.set_ylabel("tokens")
    weights = report["weights"]["label"] + (" (SYNTHETIC)" if report["weights"].get("synthetic") else "")
    import textwrap

    title = (f"{report['target']} {report.get('precision') or ''}: token cosine against each reference; "
             f"weights: {weights}; data: {report['data']['label']}")
    fig.suptitle(textwrap.fill(title, 70 * len(raw)), fontsize=8)
    fig.tight_layout()
    save_png(fig, dest)


COMMAND = "accuracy"
COMMAND_HELP = dict(help="judge the target's outputs against ONNX Runtime and PyTorch")


def add_arguments(parser) -> None:
    parser.add_argument("--data", required=True, help="data stage folder")
    parser.add_argument("--outputs", required=True, help="inference output folder")
    parser.add_argument("--model", default="", help="the offline model that produced the outputs "
                        "(default: the one the inference summary names)")
    parser.add_argument("--onnx", required=True, help="simplified ONNX (reference a)")
    parser.add_argument("--weights-source", required=True, help="source.json of the weights stage")
    parser.add_argument("--dataset-source", default="", help="dataset source JSON, for the report's label")
    parser.add_argument("--target", default="cpu")
    parser.add_argument("--report-dir", required=True)
    parser.add_argument("--sentence-cos-min", type=float, default=0.99)
    parser.add_argument("--token-cos-min", type=float, default=0.99)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--batched", type=int, default=0,
                        help="cpu: also judge the offline model run in batches of this size (0: skip)")
    parser.add_argument("--report-only", action="store_true",
                        help="exit 0 whatever the verdict (for variants whose verdict goes into the perf report)")


def run(args) -> int:
    report, raw = evaluate(args)
    out = Path(args.report_dir)
    plot_histogram({k: v for k, v in raw.items()}, out / "accuracy_hist.png", report)
    write_text(out / "accuracy.md", render_markdown(report))
    write_json(out / "accuracy.json", report)
    for c in report["comparisons"]:
        print(f"accuracy vs {c['reference']}: sentence cos mean {c['sentence_cosine']['mean']:.6f}, "
              f"token cos min {c['token_cosine']['min']:.6f}, max abs {c['max_abs_error']:.3g} "
              f"-> {'pass' if c['passed'] else 'FAIL'}")
    print(f"accuracy: {'PASSED' if report['passed'] else 'FAILED'} ({out / 'accuracy.json'})",
          file=sys.stdout if report["passed"] else sys.stderr)
    return 0 if report["passed"] or args.report_only else FAILED
