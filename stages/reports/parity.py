"""``python -m stages parity``: this project's export against allennlp, sentence length by length.

The truth is allennlp's own ``Elmo`` run eagerly on each sentence alone
(unpadded, from a fresh module). Against it, on real sentences of every
length 1..word_len:

* ``native_onnx``  this project's export (static batch 1, ONNX Runtime), the
  sentence zero-padded to word_len: what the pipeline deploys;
* ``seed_onnx``    allennlp's export (the seed guide's, batch 1), fed the
  seed's way: short sentences padded with pseudo-words whose 50 ids are all
  261. Those pseudo-words are real tokens to the model, so every vector of a
  short sentence changes: this measures the seed's padding flaw;
* ``allennlp_onnx_zero_pad``  the same allennlp export fed zero padding: its
  trace baked in full-length rows (see stages/export_allennlp.py), so the
  zero rows are still run as tokens;
* ``native_torch`` this project's PyTorch module, unpadded: the model code
  itself against allennlp's (float32 rounding only).

Runs in the export image (allennlp 2.7.0, torch 1.9.1): ``make parity``.
Writes ``parity.json`` (schema ``elmo-parity/1``) and ``parity.md``, and
prints the table. Importing this module needs neither torch nor allennlp.
"""
from __future__ import annotations

import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np

from stages.common.atomic import write_json, write_text
from stages.common.memory import peak_rss_mb
from stages.elmo.charids import ID_OFFSET, MAX_CHARS, PAD_CHAR, batch_ids, sentence_ids
from stages.common.errors import StageError

SCHEMA = "elmo-parity/1"
# The seed pads a short sentence with tokens made only of the padding
# character, shifted like every id: 260 + 1.
SEED_PAD_ID = PAD_CHAR + ID_OFFSET
DEFAULT_PER_LENGTH = 3

COMPARISONS = (
    ("native_onnx", "(a) native export, batch 1, ONNX Runtime, zero-padded"),
    ("seed_onnx", "(b) allennlp export (seed), 261-padded as the seed does"),
    ("allennlp_onnx_zero_pad", "(c) allennlp export, zero-padded"),
    ("native_torch", "(d) native PyTorch module, unpadded"),
)
SHORT_NAMES = {
    "native_onnx": "(a) native ONNX, 0-pad",
    "seed_onnx": "(b) seed ONNX, 261-pad",
    "allennlp_onnx_zero_pad": "(c) allennlp ONNX, 0-pad",
    "native_torch": "(d) native torch",
}


def seed_padded(ids: np.ndarray, word_len: int) -> np.ndarray:
    """``[n, 50]`` ids of one sentence -> ``[word_len, 50]``, rows after it all ``SEED_PAD_ID``."""
    ids = np.asarray(ids, dtype=np.int32)
    if ids.ndim != 2 or ids.shape[1] != MAX_CHARS or len(ids) > word_len:
        raise ValueError(f"expected [n <= {word_len}, {MAX_CHARS}] ids, got {list(ids.shape)}")
    out = np.full((word_len, MAX_CHARS), SEED_PAD_ID, dtype=np.int32)
    out[: len(ids)] = ids
    return out


def zero_padded(ids: np.ndarray, word_len: int) -> np.ndarray:
    """``[n, 50]`` ids -> ``[word_len, 50]`` with all-zero rows after the sentence (the project's padding)."""
    ids = np.asarray(ids, dtype=np.int32)
    out = np.zeros((word_len, MAX_CHARS), dtype=np.int32)
    out[: len(ids)] = ids
    return out


def sentence_files(path: Optional[str]) -> List[Path]:
    """The corpus files to draw sentences from: a file, a folder's files, or the shipped sample."""
    if not path:
        from stages.sources.dataset_source import REPO_ROOT, SAMPLE_REL

        folder = REPO_ROOT / SAMPLE_REL
        files = sorted(folder.glob("news.en.heldout-*"))
        if not files:
            raise StageError(f"shipped sample not found at {folder}: restore data/sample, or give --sentences")
        return files
    given = Path(path)
    if given.is_file():
        return [given]
    if given.is_dir():
        files = sorted(p for p in given.iterdir() if p.is_file() and not p.name.startswith("."))
        if files:
            return files
    raise StageError(f"--sentences {path}: not a file, nor a folder holding files (one tokenized sentence a line)")


def pick_sentences(files: Sequence[Path], word_len: int, per_length: int) -> Dict[int, List[List[str]]]:
    """The first ``per_length`` distinct sentences of each length 1..word_len, in file order."""
    from stages.sources.data import iter_sentences

    picked: Dict[int, List[List[str]]] = {n: [] for n in range(1, word_len + 1)}
    seen = set()
    for tokens, reason in iter_sentences(files, word_len):
        if reason is not None or len(picked[len(tokens)]) >= per_length:
            continue
        key = " ".join(tokens)
        if key not in seen:
            seen.add(key)
            picked[len(tokens)].append(tokens)
        if all(len(v) >= per_length for v in picked.values()):
            break
    return {n: v for n, v in picked.items() if v}


def agreement(got: np.ndarray, want: np.ndarray) -> dict:
    """Token cosine, sentence cosine (the seed's metric: flattened sentence) and
    max abs error of ``[sentences, tokens, D]`` outputs."""
    from stages.reports.metrics import cosine

    cos = cosine(got.reshape(-1, got.shape[-1]), want.reshape(-1, want.shape[-1]), axis=-1)
    sentence = cosine(got.reshape(len(got), -1), want.reshape(len(want), -1), axis=-1)
    diff = np.abs(got.astype(np.float64) - want.astype(np.float64))
    return {"token_cos_min": float(cos.min()), "token_cos_mean": float(cos.mean()),
            "sentence_cos_min": float(sentence.min()), "sentence_cos_mean": float(sentence.mean()),
            "max_abs": float(diff.max()), "tokens": int(cos.size), "sentences": int(len(got))}


def _ort_session(path, threads: int):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _run_b1(session, rows: np.ndarray) -> np.ndarray:
    """``[n, W, 50]`` padded rows through a batch-1 graph, one call each -> ``[n, W, D]``."""
    return np.concatenate([session.run(["output"], {"input": rows[i : i + 1]})[0] for i in range(len(rows))])


def _versions() -> dict:
    versions = {"python": platform.python_version(), "numpy": np.__version__}
    for name in ("torch", "allennlp", "onnxruntime", "onnx"):
        try:
            versions[name] = __import__(name).__version__
        except ImportError:
            versions[name] = None
    return versions


def run_parity(options, weights, *, word_len: int, sentences: Dict[int, List[List[str]]], workdir,
               threads: int = 0, progress=print) -> dict:
    """Every comparison for every length; the body of ``parity.json`` (without its labels)."""
    import torch

    from stages.graph.export import export_native
    from stages.graph.export_allennlp import allennlp_eager, export_allennlp
    from stages.elmo.model import load_elmo
    from stages.backends.runners import default_threads

    threads = threads or default_threads()
    torch.set_num_threads(threads)
    workdir = Path(workdir)
    started = time.perf_counter()
    exports = {}
    progress("parity: exporting the native graph (batch 1)")
    exports["native"] = export_native(options, weights, workdir / "native_b1.onnx", batch=1, word_len=word_len)
    progress("parity: exporting allennlp's graph (batch 1, the seed's way)")
    exports["allennlp"] = export_allennlp(options, weights, workdir / "allennlp_b1.onnx", batch=1, word_len=word_len)
    native_session = _ort_session(workdir / "native_b1.onnx", threads)
    allennlp_session = _ort_session(workdir / "allennlp_b1.onnx", threads)
    model = load_elmo(options, weights)

    lengths = []
    for n, group in sorted(sentences.items()):
        progress(f"parity: length {n}, {len(group)} sentence(s)")
        unpadded = batch_ids(group, n)  # every row exactly n tokens: no padding at all
        # A fresh allennlp module per call: it carries LSTM state between batches.
        truth = allennlp_eager(options, weights, unpadded)
        with torch.no_grad():
            native_torch = model(torch.from_numpy(unpadded)).numpy()
        zero = np.stack([zero_padded(sentence_ids(s), word_len) for s in group])
        seed = np.stack([seed_padded(sentence_ids(s), word_len) for s in group])
        outputs = {
            "native_onnx": _run_b1(native_session, zero)[:, :n],
            "seed_onnx": _run_b1(allennlp_session, seed)[:, :n],
            "allennlp_onnx_zero_pad": _run_b1(allennlp_session, zero)[:, :n],
            "native_torch": native_torch,
        }
        results = {key: agreement(got, truth) for key, got in outputs.items()}
        lengths.append({"length": n, "sentences": [" ".join(s) for s in group], "tokens": int(n * len(group)),
                        "results": results})

    overall = {}
    for key, _ in COMPARISONS:
        rows = [entry["results"][key] for entry in lengths]
        tokens, count = sum(r["tokens"] for r in rows), sum(r["sentences"] for r in rows)
        overall[key] = {
            "token_cos_min": min(r["token_cos_min"] for r in rows),
            "token_cos_mean": sum(r["token_cos_mean"] * r["tokens"] for r in rows) / tokens,
            "sentence_cos_min": min(r["sentence_cos_min"] for r in rows),
            "sentence_cos_mean": sum(r["sentence_cos_mean"] * r["sentences"] for r in rows) / count,
            "max_abs": max(r["max_abs"] for r in rows),
            "tokens": tokens,
            "sentences": count,
        }
    return {"lengths": lengths, "overall": overall, "exports": exports,
            "seconds": round(time.perf_counter() - started, 1),
            "peak_rss_mb": round(peak_rss_mb())}


def render_markdown(report: dict) -> str:
    keys = [key for key, _ in COMPARISONS]
    head = ["length", "sentences", "tokens"]
    for key in keys:
        head += [f"{SHORT_NAMES[key]} cos min", "cos mean", "max abs"]
    lines = [
        f"# ELMo parity against allennlp eager (unpadded), word_len {report['word_len']}",
        "",
        f"- weights: {report['weights']['label']}",
        f"- sentences: {report['sentences']['label']}",
        "- versions: " + ", ".join(f"{k} {v}" for k, v in report["versions"].items() if v),
        "",
    ]
    lines += [f"- {description}" for _, description in COMPARISONS]
    lines += ["", "| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]

    def cells(results):
        out = []
        for key in keys:
            r = results[key]
            out += [f"{r['token_cos_min']:.6f}", f"{r['token_cos_mean']:.6f}", f"{r['max_abs']:.2e}"]
        return out

    for entry in report["lengths"]:
        row = [str(entry["length"]), str(len(entry["sentences"])), str(entry["tokens"])] + cells(entry["results"])
        lines.append("| " + " | ".join(row) + " |")
    total_sentences = sum(len(e["sentences"]) for e in report["lengths"])
    total_tokens = sum(e["tokens"] for e in report["lengths"])
    lines.append("| all | " + f"{total_sentences} | {total_tokens} | " + " | ".join(cells(report["overall"])) + " |")
    lines += ["", "Sentence cosine (the seed's metric: each sentence's vectors flattened), mean by length:", "",
              "| length | " + " | ".join(SHORT_NAMES[key] for key in keys) + " |", "|" + " --- |" * (len(keys) + 1)]
    for entry in report["lengths"] + [{"length": "all", "results": report["overall"]}]:
        lines.append(f"| {entry['length']} | "
                     + " | ".join(f"{entry['results'][key]['sentence_cos_mean']:.6f}" for key in keys) + " |")
    missing = [n for n in range(1, report["word_len"] + 1) if n not in {e["length"] for e in report["lengths"]}]
    if missing:
        lines += ["", f"No sentence of length {', '.join(map(str, missing))} in the corpus given."]
    return "\n".join(lines) + "\n"


def _model_files(args) -> dict:
    if args.source:
        from stages.sources.weights import load_source

        source = load_source(args.source)
        for key in ("options", "weights"):
            if not Path(source[key]).is_file():
                raise StageError(f"{args.source}: its {key} file {source[key]} is not here; rerun `make weights`")
        return {"options": source["options"], "weights": source["weights"], "label": source["label"],
                "synthetic": source["synthetic"], "weights_sha256": source["weights_sha256"]}
    if not (args.options and args.weights):
        raise StageError("give --source, or both --options and --weights")
    for path in (args.options, args.weights):
        if not Path(path).is_file():
            raise StageError(f"{path}: not found")
    return {"options": args.options, "weights": args.weights, "label": f"{args.weights}", "synthetic": None,
            "weights_sha256": None}


def run(args) -> int:
    if args.word_len < 1 or args.per_length < 1:
        raise StageError("--word-len and --per-length must be at least 1")
    model = _model_files(args)
    files = sentence_files(args.sentences)
    sentences = pick_sentences(files, args.word_len, args.per_length)
    if not sentences:
        raise StageError(f"no sentence of 1..{args.word_len} tokens in {', '.join(map(str, files))}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    say = lambda text: print(text, file=sys.stderr)  # noqa: E731 - progress on stderr, the table on stdout
    # The two exported graphs are only a means: they stay out of the report folder.
    with tempfile.TemporaryDirectory(prefix="elmo-parity-") as workdir:
        body = run_parity(model["options"], model["weights"], word_len=args.word_len, sentences=sentences,
                          workdir=workdir, threads=args.threads, progress=say)
    where = args.sentences or "the shipped sample (data/sample)"
    report = {
        "schema": SCHEMA,
        "word_len": args.word_len,
        "per_length": args.per_length,
        "weights": model,
        "sentences": {"source": [str(f) for f in files],
                      "label": f"{sum(len(v) for v in sentences.values())} real sentences from {where}, "
                               f"up to {args.per_length} per length"},
        "truth": "allennlp Elmo eager (fresh module, dropout 0), each length's sentences unpadded",
        "comparisons": dict(COMPARISONS),
        "versions": _versions(),
        **body,
    }
    write_json(out / "parity.json", report)
    text = render_markdown(report)
    write_text(out / "parity.md", text)
    print(text, end="")
    say(f"parity: wrote {out / 'parity.json'} and {out / 'parity.md'} in {body['seconds']} s")
    return 0


COMMAND = "parity"
COMMAND_HELP = dict(help="(export image) native and seed exports against allennlp eager, by sentence length", description=__doc__.splitlines()[0])


def add_arguments(parser) -> None:
    parser.add_argument("--source", help="source.json of the weights stage (instead of --options/--weights)")
    parser.add_argument("--options")
    parser.add_argument("--weights")
    parser.add_argument("--word-len", type=int, default=8)
    parser.add_argument("--sentences", default=None,
                        help="file or folder of tokenized sentences, one a line (default: the shipped sample)")
    parser.add_argument("--per-length", type=int, default=DEFAULT_PER_LENGTH, help="sentences per length")
    parser.add_argument("--threads", type=int, default=0, help="0: all cores")
    parser.add_argument("--out", required=True, help="folder for parity.json and parity.md")
