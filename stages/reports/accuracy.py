"""``make accuracy``: judge the target's outputs against two references.

(a) ONNX Runtime float32 on the simplified ONNX, over the same padded inputs
    (the seed's check: does compilation preserve the graph?);
(b) the PyTorch module on each sentence run alone, unpadded (is the deployed
    graph the model, padding included?).

For the cpu target the offline model also runs in batches of ``--batched`` and is
judged against (a) again: the inference stage feeds one sentence per call, and a
model may take another path for larger batches (the int8 model does, see
``stages.quantize``). That check asks whether the batched kernels compute what the
batch-1 ones do, which every length answers, not every sentence: by default it runs on a
stratified sample of ``--batched-sample`` sentences per bucket (every length present),
and on every judged sentence with 0.

At corpus scale: the sentences are judged a chunk at a time and folded into running
statistics (``stages.reports.streaming``), so memory does not grow with the corpus; the
two references are computed once per (model, corpus, bucket, sample) and kept under
``--references`` (``stages.reports.references``) for every precision and target judged
against them. ``--sample N`` judges a stratified sample of N sentences (every length
represented, the same sample every time for the same corpus).

Passes when, against every reference, the mean sentence cosine >= ``--sentence-cos-min``
(0.99, the seed's threshold) and the minimum token cosine >= ``--token-cos-min``.
Writes ``accuracy.json`` (schema ``elmo-accuracy/1``, docs/formats.md),
``accuracy.md`` and ``accuracy_hist.png``; exits 1 on failure.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

from stages.common.atomic import write_json, write_text
from stages.common.errors import StageError, stale_record
from stages.common.hashing import sha256_file
from stages.common.memory import give_back_memory
from stages.reports import references as refs
from stages.reports.reference_runs import (ChunkWindows, mask, onnx_batch, onnx_padded, real_tokens,
                                          torch_unpadded)
from stages.reports.streaming import (BINS_PER_DECADE, FLOOR_LOG10, RunningComparison, WorstSentences,
                                      bin_distance)

SCHEMA = "elmo-accuracy/1"
FAILED = 1
WORST = 16  # sentences listed for make locate, which reruns them layer by layer
# A chunk's target outputs take about this much memory (float32 [sentences, W, D]); its
# references, the batched run and the float64 work arrays a few times more.
CHUNK_BYTES = 16 << 20
BATCHED_SAMPLE = 1024  # --batched-sample's default (make: ACCURACY_BATCHED_SAMPLE)
SAMPLE_METHOD = ("stratified by sentence length: one of every length, the rest in proportion to each "
                 "length's share; drawn with numpy's default_rng seeded by the data manifest's sha256")


def stratified_sample(lengths: np.ndarray, per_bucket: int, seed_hex: str) -> np.ndarray:
    """Sample numbers of ``per_bucket`` sentences (at least one of every length present, so more
    when there are more lengths than that), sorted; the same for the same corpus."""
    lengths = np.asarray(lengths)
    if per_bucket >= len(lengths):
        return np.arange(len(lengths))
    values, counts = np.unique(lengths, return_counts=True)
    quota = np.ones(len(values), dtype=np.int64)
    rest = per_bucket - len(values)
    if rest > 0:
        share = (counts - 1) * rest / (counts - 1).sum()
        extra = np.floor(share).astype(np.int64)
        order = np.argsort(-(share - extra), kind="stable")[: rest - int(extra.sum())]
        extra[order] += 1
        quota += np.minimum(extra, counts - 1)
    rng = np.random.default_rng(int(seed_hex[:16], 16))
    picked = [rng.choice(np.flatnonzero(lengths == value), size=int(q), replace=False)
              for value, q in zip(values, quota)]
    return np.sort(np.concatenate(picked))


def chunk_sentences(word_len: int, dim: int, batched: int) -> int:
    """Sentences per chunk: about CHUNK_BYTES of outputs, a whole number of reference (a)'s and
    the batched run's batches (so they see the batches a whole-corpus run would; PyTorch's
    equal-length groups depend on the chunk's lengths anyway)."""
    step = math.lcm(onnx_batch(word_len), max(batched, 1))
    rows = CHUNK_BYTES // max(word_len * dim * 4, 1)
    return max(step, rows // step * step)


def padding_max(outputs, lengths) -> float:
    """Largest |value| at a padded position (the gate wants exactly 0)."""
    padded = outputs[~mask(lengths, outputs.shape[1])]
    return float(np.abs(padded).max()) if padded.size else 0.0


def gate_checks(sentence: dict, token: dict, gate: dict) -> dict:
    """The gate on summarized cosines (``summarize``): make accuracy's, and make perf's for its peers."""
    return {
        "sentence_cosine_mean": sentence["mean"] >= gate["sentence_cosine_mean_min"],
        "token_cosine_min": token["min"] >= gate["token_cosine_min"],
    }


def _comparison(name, description, raw, gate) -> dict:
    sentence, token = raw["sentence_cosine"], raw["token_cosine"]
    checks = gate_checks(sentence, token, gate)
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


def _judge_bar(chunks, total: int):
    from tqdm import tqdm

    with tqdm(total=total, unit="sent", desc="judge", disable=None, file=sys.stderr, leave=False) as bar:
        for k, indices in enumerate(chunks):
            yield k, indices
            bar.update(len(indices))


def evaluate(args) -> tuple:
    from stages.sources.data import bin_path, read_bin, sample_lengths
    from stages.backends.infer import load_summary, read_outputs
    from stages.backends.runners import OrtRunner, TorchRunner, infer_all
    from stages.backends.engines import load_offline
    from stages.sources.weights import load_source

    manifest, all_lengths = sample_lengths(args.data)
    word_len = manifest["word_len"]
    summary = load_summary(args.outputs)
    if summary.get("outputs", 0) < len(all_lengths):
        raise stale_record(Path(args.outputs) / "summary.json",
                           f"{args.outputs}: {summary.get('outputs')} outputs for {len(all_lengths)} inputs", "inference",
                           summary.get("schema", "elmo-infer-summary/1"))
    args.model = args.model or summary["model"]
    data_sha256 = sha256_file(Path(args.data) / "manifest.json")
    sample_n = getattr(args, "sample", 0) or None
    if sample_n and sample_n >= len(all_lengths):  # a "sample" of every sentence is the full proof
        sample_n = None
    indices = (stratified_sample(all_lengths, sample_n, data_sha256) if sample_n
               else np.arange(len(all_lengths)))
    lengths = all_lengths[indices]
    batched = args.batched if args.target == "cpu" and args.batched > 1 else 0
    dim = read_outputs(args.outputs, [str(indices[0])], word_len).shape[2]
    size = getattr(args, "chunk", 0) or chunk_sentences(word_len, dim, batched)
    chunks = [indices[start : start + size] for start in range(0, len(indices), size)]

    def ids_of(chunk) -> np.ndarray:
        return np.concatenate([read_bin(bin_path(args.data, manifest, int(i)), word_len) for i in chunk])

    source = load_source(args.weights_source)
    onnx_sha256 = sha256_file(args.onnx)
    runners = {}

    def onnx_reference(chunk):
        if "onnx" not in runners:
            # Without the arena: at 64 tokens its pass peaked at 0.85 GB instead of 1.04, at the same speed.
            runners["onnx"] = OrtRunner.load(args.onnx, threads=args.threads or None, name="onnxruntime-fp32",
                                             arena=False)
        return onnx_padded(runners["onnx"], ids_of(chunk), all_lengths[chunk])

    def torch_sentences(indices):
        if "onnx" in runners:  # reference (a) is done: its session's memory goes back
            runners.pop("onnx")
            give_back_memory()
        if "torch" not in runners:
            # oneDNN: where PyTorch's dense GEMM is MKL on an AMD CPU, this pass took 1.5x as long.
            runners["torch"] = TorchRunner.load(source["options"], source["weights"], threads=args.threads or None,
                                                onednn=True)
        return torch_unpadded(runners["torch"], ids_of(indices), all_lengths[indices])

    torch_reference = ChunkWindows(torch_sentences, chunks, all_lengths)

    labels = {refs.ONNX_REF: f"ONNX Runtime fp32 on {len(indices)} sentences",
              refs.TORCH_REF: f"PyTorch on each of {len(indices)} sentences unpadded"}
    inputs = refs.key_inputs(onnx_sha256, source, data_sha256, word_len, manifest.get("min_len", 1), sample_n)
    ref_dir, ref_manifest, passes, reused = refs.ensure(
        args.references or Path(args.report_dir) / "references", inputs, chunks=chunks, lengths=lengths,
        chunk_sentences=size, compute={refs.ONNX_REF: onnx_reference, refs.TORCH_REF: torch_reference},
        labels=labels)
    runners.clear()
    give_back_memory()
    if ref_manifest["chunk_sentences"] != size or ref_manifest["chunks"] != len(chunks):
        # Kept by another chunking (another --chunk): read them back in theirs.
        size = ref_manifest["chunk_sentences"]
        chunks = [indices[start : start + size] for start in range(0, len(indices), size)]

    gate = {"sentence_cosine_mean_min": args.sentence_cos_min, "token_cosine_min": args.token_cos_min}
    names = [refs.ONNX_REF, refs.TORCH_REF]
    descriptions = {refs.ONNX_REF: "ONNX Runtime float32 on the simplified ONNX, same padded inputs",
                    refs.TORCH_REF: "PyTorch module on each sentence alone, unpadded"}
    batched_name = f"onnxruntime-fp32 (target batch {batched})"
    batched_sample = None
    if batched:
        per_bucket = args.batched_sample
        # Drawn from the judged sentences, so it is also a sample of ACCURACY_SAMPLE's sample.
        picked = indices[stratified_sample(lengths, per_bucket, data_sha256)] if per_bucket else indices
        in_batched = np.zeros(len(all_lengths), dtype=bool)
        in_batched[picked] = True
        batched_sample = {"per_bucket": per_bucket or None, "sentences": int(len(picked)),
                          "of_sentences": int(len(indices)), "tokens": int(all_lengths[picked].sum()),
                          "method": SAMPLE_METHOD if len(picked) < len(indices) else "every judged sentence"}
        names.append(batched_name)
        descriptions[batched_name] = (f"the offline model in batches of {batched} against ONNX Runtime float32"
                                      + (f", on a stratified sample of {len(picked)} of the {len(indices)} sentences"
                                         if len(picked) < len(indices) else ""))
        # Without the arena each activation is freed when done: at 32 tokens the arena held 0.1 GB
        # more at its peak, at the same speed. Without pre-packing the weights are not copied once
        # per step of the unrolled graph: 0.2 GB less at 32 tokens, for calls 1.45x slower, on a
        # sample of at most a few dozen batches. At 64 tokens the judge peaked at 1.51 GB with both.
        target_batched = load_offline(args.model, threads=args.threads or None, name="target-batched",
                                      first_batch=batched, arena=False, prepack=False)
    running = {name: RunningComparison() for name in names}
    worst = WorstSentences(WORST)
    largest_padding = 0.0
    inference_seconds = 0.0
    meter = refs.PassMeter("judge", "read the target's outputs and both references a chunk at a time, fold "
                           "them into running statistics" + (f"; run the target at batch {batched} on {batched_sample['sentences']} of "
                                                         f"them" if batched else ""),
                           int(len(indices)))
    label = f"accuracy: judging {len(indices)} sentences" + (
        f", the target also at batch {batched} on {batched_sample['sentences']}" if batched else "")
    from stages.common.progress import step

    with step(label):
        for k, chunk in _judge_bar(chunks, len(indices)):
            chunk_lengths = all_lengths[chunk]
            outputs = read_outputs(args.outputs, [str(i) for i in chunk], word_len)
            largest_padding = max(largest_padding, padding_max(outputs, chunk_lengths))
            target = real_tokens(outputs, chunk_lengths)
            del outputs
            onnx = refs.read_chunk(ref_dir, refs.ONNX_REF, k)
            per_reference = {
                refs.ONNX_REF: running[refs.ONNX_REF].add(target, onnx, chunk_lengths),
                refs.TORCH_REF: running[refs.TORCH_REF].add(target, refs.read_chunk(ref_dir, refs.TORCH_REF, k),
                                                            chunk_lengths),
            }
            chosen = in_batched[chunk] if batched else None
            if batched and chosen.any():
                started = time.perf_counter()
                out = infer_all(target_batched, ids_of(chunk[chosen]), batch_size=batched)
                inference_seconds += time.perf_counter() - started
                largest_padding = max(largest_padding, padding_max(out, all_lengths[chunk[chosen]]))
                token_rows = np.repeat(chosen, chunk_lengths)
                per_sentence = np.full(len(chunk), np.inf)  # not in the sample: never the worst
                per_sentence[chosen] = running[batched_name].add(real_tokens(out, all_lengths[chunk[chosen]]),
                                                                 onnx[token_rows], all_lengths[chunk[chosen]])
                per_reference[batched_name] = per_sentence
            worst.add(chunk, chunk_lengths, per_reference)
            meter.sample()
    passes.append(meter.done(**({"target_batched_seconds": round(inference_seconds, 3)} if batched else {})))
    comparisons = [_comparison(name, descriptions[name], running[name].raw(), gate) for name in names]

    dataset = json.loads(Path(args.dataset_source).read_text(encoding="utf-8")) if args.dataset_source else {}
    om_manifest_path = Path(str(args.model) + ".json")
    om_manifest = json.loads(om_manifest_path.read_text(encoding="utf-8")) if om_manifest_path.is_file() else {}
    sample = None if not sample_n else {
        "per_bucket": sample_n,
        "sentences": int(len(indices)),
        "tokens": int(lengths.sum()),
        "of_sentences": int(len(all_lengths)),
        "of_tokens": int(all_lengths.sum()),
        "lengths": int(len(np.unique(all_lengths))),
        "method": SAMPLE_METHOD,
        "seed": data_sha256[:16],
    }
    report = {
        "schema": SCHEMA,
        "passed": all(c["passed"] for c in comparisons) and largest_padding == 0.0,
        "target": args.target,
        "precision": om_manifest.get("precision") or om_manifest.get("precision_mode"),
        "model": {"path": str(args.model), "sha256": sha256_file(args.model) if Path(args.model).is_file() else None,
                  "manifest": om_manifest},
        "onnx": {"path": str(args.onnx), "sha256": onnx_sha256},
        "weights": {k: source[k] for k in ("kind", "label", "synthetic", "reason", "options", "options_sha256",
                                          "weights", "weights_sha256")},
        "data": {
            "label": dataset.get("label") or manifest.get("source_label"),
            "kind": dataset.get("kind"),
            "reason": dataset.get("reason"),
            "dir": str(args.data),
            "sentences": str(Path(args.data) / manifest.get("sentences", "sentences.txt")),
            "inputs": str(Path(args.data) / manifest.get("bin_dir", "bin")),
            "manifest_sha256": data_sha256,
            "source_files": [{"path": f["path"], "sha256": f["sha256"]} for f in manifest.get("files", [])],
            "word_len": word_len,
            "min_len": manifest.get("min_len", 1),
            "samples": int(len(indices)),
            "tokens": int(lengths.sum()),
        },
        "sample": sample,
        "batched_sample": batched_sample,
        "outputs": {"dir": str(args.outputs), "summary": summary},
        "gate": gate,
        "padding_max_abs": largest_padding,
        "comparisons": comparisons,
        "worst_sentences": worst.result(),
        "references": {"dir": str(ref_dir), "key": ref_manifest["key"], "reused": reused,
                       "chunks": ref_manifest["chunks"], "chunk_sentences": ref_manifest["chunk_sentences"]},
        "passes": passes,
    }
    return report, {name: running[name] for name in names}


def sample_line(report: dict) -> str:
    """What was judged: every sentence, or which sample (empty for every sentence)."""
    sample = report.get("sample")
    if not sample:
        return ""
    return (f"SAMPLE (ACCURACY_SAMPLE={sample['per_bucket']}): {sample['sentences']} of {sample['of_sentences']} "
            f"sentences judged ({sample['tokens']} of {sample['of_tokens']} tokens), every one of the "
            f"{sample['lengths']} lengths represented; the same sample every run on this corpus. "
            f"Leave ACCURACY_SAMPLE empty for the full proof.")


def render_markdown(report: dict) -> str:
    verdict = "PASSED" if report["passed"] else "FAILED"
    sample = sample_line(report)
    lines = [
        f"# Accuracy: {verdict}" + (" (on a sample)" if sample else ""),
        "",
        *([f"**{sample}**", ""] if sample else []),
        f"- target: `{report['target']}` ({report.get('precision') or 'n/a'}), model `{report['model']['path']}`",
        f"- weights: {report['weights']['label']}",
        f"- data: {report['data']['label']} ({report['data']['samples']} sentences"
        f"{' sampled' if sample else ''}, {report['data']['tokens']} tokens, WORD_LEN {report['data']['word_len']})",
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
    batched = report.get("batched_sample")
    if batched and batched["sentences"] < batched["of_sentences"]:
        lines += ["", f"The batched row ran on a stratified sample of {batched['sentences']} of the "
                      f"{batched['of_sentences']} judged sentences, every length represented "
                      f"(ACCURACY_BATCHED_SAMPLE={batched['per_bucket']}; 0 runs it on every one)."]
    lines += ["", f"p1 (1st percentile) is read from a histogram of 1 - cosine in bins of 1/{BINS_PER_DECADE} "
                  f"decade: within 0.12 % of the exact 1 - cosine. Means, minima and errors are exact."]
    if report["weights"].get("synthetic"):
        lines += ["", "Weights are SYNTHETIC: these figures show the deployed graph computes the same function "
                      "as the model, not the quality of ELMo's vectors."]
    ref = report.get("references") or {}
    lines += ["", "| pass | status | sentences | seconds | peak RSS MB |", "| --- | --- | --- | --- | --- |"]
    for p in report.get("passes", []):
        lines.append(f"| {p['name']} | {p['status']} | {p['sentences']} | {p['seconds']:.1f} | {p['peak_rss_mb']:.0f} |")
    if ref:
        lines += ["", f"References {'reused from' if ref['reused'] else 'computed into'} `{ref['dir']}`."]
    lines += ["", "![token cosine histogram](accuracy_hist.png)", ""]
    return "\n".join(lines)


# Exact matches (cosine 1) have no logarithm: they are drawn in the leftmost bin, at this floor.
DISTANCE_FLOOR = 10.0 ** FLOOR_LOG10


def plot_histogram(running: dict, dest, report: dict) -> None:
    """Per reference, how far each token's cosine is from 1, with the gate drawn; titled with the
    target, precision, weights and corpus so a PNG on its own says what it shows. Drawn from the
    running histogram (``stages.reports.streaming``), regrouped into 40 bins."""
    from stages.reports.plots import pyplot, save_png

    gate = 1.0 - report["gate"]["token_cosine_min"]
    fig, axes = pyplot().subplots(1, len(running), figsize=(5 * len(running), 3.8), squeeze=False)
    for ax, (name, comparison) in zip(axes[0], running.items()):
        token = comparison.token
        hist = token.hist
        exact = int(hist[0])
        filled = np.flatnonzero(hist)
        centres = np.array([FLOOR_LOG10] + [np.log10(bin_distance(int(i))) for i in filled if i > 0])
        counts = np.array([hist[0]] + [hist[i] for i in filled if i > 0])
        worst = np.log10(max(1.0 - token.min, DISTANCE_FLOOR)) if token.count else FLOOR_LOG10
        low = FLOOR_LOG10
        high = max(float(worst), np.log10(gate)) + 0.5
        ax.hist(centres, bins=np.linspace(low, high, 41), weights=counts, color="#3a7")
        ax.axvline(np.log10(gate), color="#c33", linestyle="--", linewidth=1)
        ax.text(np.log10(gate), ax.get_ylim()[1] * 0.95, f" gate: cos >= {report['gate']['token_cosine_min']}",
                color="#c33", fontsize=7, va="top")
        ax.set_title(f"vs {name}", fontsize=9)
        ax.set_xlabel(f"log10(1 - token cosine); {exact} exact matches drawn at {FLOOR_LOG10:.0f}",
                      fontsize=8)
        ax.set_ylabel("tokens")
    weights = report["weights"]["label"] + (" (SYNTHETIC)" if report["weights"].get("synthetic") else "")
    import textwrap

    sample = report.get("sample")
    title = (f"{report['target']} {report.get('precision') or ''}: token cosine against each reference; "
             f"weights: {weights}; data: {report['data']['label']}"
             + (f"; SAMPLE of {sample['sentences']} of {sample['of_sentences']} sentences" if sample else ""))
    fig.suptitle(textwrap.fill(title, 70 * len(running)), fontsize=8)
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
    parser.add_argument("--references", default="",
                        help="folder of kept references ($(ARTIFACTS)/references; default: <report-dir>/references)")
    parser.add_argument("--sample", type=int, default=0,
                        help="judge a stratified sample of this many sentences (every length represented; 0: all)")
    parser.add_argument("--batched-sample", type=int, default=BATCHED_SAMPLE,
                        help=f"run --batched on a stratified sample of this many of the judged sentences per bucket "
                             f"(default {BATCHED_SAMPLE}; 0: every one)")
    parser.add_argument("--chunk", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--report-only", action="store_true",
                        help="exit 0 whatever the verdict (for variants whose verdict goes into the perf report)")


def run(args) -> int:
    if args.sample < 0:
        raise StageError(f"--sample {args.sample}: give a number of sentences >= 1, or 0 for every sentence")
    if args.batched_sample < 0:
        raise StageError(f"--batched-sample {args.batched_sample}: give a number of sentences >= 1, or 0 for every "
                         f"judged sentence (make: ACCURACY_BATCHED_SAMPLE)")
    report, running = evaluate(args)
    out = Path(args.report_dir)
    plot_histogram(running, out / "accuracy_hist.png", report)
    write_text(out / "accuracy.md", render_markdown(report))
    write_json(out / "accuracy.json", report)
    for c in report["comparisons"]:
        print(f"accuracy vs {c['reference']}: sentence cos mean {c['sentence_cosine']['mean']:.6f}, "
              f"token cos min {c['token_cosine']['min']:.6f}, max abs {c['max_abs_error']:.3g} "
              f"-> {'pass' if c['passed'] else 'FAIL'}")
    if report["sample"]:
        print(f"accuracy: {sample_line(report)}")
    print(f"accuracy: {'PASSED' if report['passed'] else 'FAILED'} ({out / 'accuracy.json'})"
          + (" on a SAMPLE" if report["sample"] else ""),
          file=sys.stdout if report["passed"] else sys.stderr)
    return 0 if report["passed"] or args.report_only else FAILED
