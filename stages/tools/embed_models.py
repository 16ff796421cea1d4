"""The offline models ``embed`` streams a corpus through: one per length bucket.

Each bucket is the all-layers graph (``[B, layers, W, D]``, dynamic batch) at a
fixed WORD_LEN, exported, simplified and compiled for the cpu target at the
chosen precision by the same stages ``make om`` uses. They are cached under
``<models dir>/<weights sha256[:12]>/``, so a second run (or a resumed one)
loads them instead of building them again.

What loading costs, and why the choices below (full-size model, 2 AVX2 cores):
the LSTMs are unrolled over WORD_LEN steps, and ONNX Runtime pre-packs a
weight once per node that reads it, so opening a bucket's session costs time
in proportion to its WORD_LEN (the 64-token int8 model: ~5 s, fp32: ~19 s,
against ~0.4 s for one batch of 32 short sentences).

- The ladder of automatic buckets steps by about 1.5 (8 16 24 32 48 64 96 128):
  padding stays near 80% without opening many wide sessions.
- The int8 model holds two forms behind an ``If`` on the batch size
  (``stages.graph.quantize``); embed runs batches, so it loads the batched form
  alone (``*_batched.ort.onnx``, cut from the judged model, same nodes and
  weights: bit-identical outputs at batch > 1; a lone sentence runs through it
  too). That halves the int8 load.
- A bucket that few batches will use opens without pre-packing
  (``prepack_plan``): packing pays back only over many calls, and on a small
  input the opening would be most of the wait.
- glibc hands each pre-packed copy back to the kernel and faults fresh pages
  for the next; ``load_cpu_runners`` lets the heap keep them (fp32: ~30% less).
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Dict, List, Mapping, Optional

from stages.common.errors import StageError
from stages.common.hashing import sha256_file

LADDER = (8, 16, 24, 32, 48, 64, 96, 128)
BATCHED_SUFFIX = "_batched.ort.onnx"
PREPACK_CHOICES = ("auto", "on", "off")
# Calls from which pre-packing a bucket's weights at opening pays for itself. Measured on the
# full-size model, 2 AVX2 cores, packed against not packed (not packing means repacking every
# weight on every call, whatever the batch): fp32, 16-token bucket, batch 32: opens in 7-17 s
# packed, 0.7-1.0 s not, each call 0.3-1.5 s slower; int8, 16 tokens, batch 32: 0.8-1.3 s against
# 0.14 s, each call about 0.2 s slower; int8, 48 tokens, one call of 15: 2.5 s against 0.3 s, the
# call 0.1-0.4 s slower. On the 411-sentence sample this plan made the whole run 1.2x (int8) and
# 1.45x (fp32) faster than packing every bucket (README, Speed on the CPU).
PREPACK_FROM_CALLS = {"fp32": 16, "int8": 4}


def auto_buckets(longest: int) -> List[int]:
    """The ladder's buckets up to the first that holds ``longest`` tokens (at most its top)."""
    chosen = []
    for size in LADDER:
        chosen.append(size)
        if size >= longest:
            break
    return chosen


def parse_buckets(text: str, longest: int) -> List[int]:
    if not str(text).strip() or str(text).strip() == "auto":
        return auto_buckets(max(longest, 1))
    try:
        sizes = sorted({int(b) for b in str(text).replace(",", " ").split()})
    except ValueError:
        raise StageError(f"WORD_LEN={text!r}: give bucket sizes as whole numbers, e.g. WORD_LEN='16 32 64'") from None
    if sizes[0] < 1:
        raise StageError(f"WORD_LEN={text!r}: bucket sizes must be at least 1")
    return sizes


def planned_calls(lengths: Mapping[int, int], buckets: List[int], batch: int, windows: int) -> Dict[int, int]:
    """At most how many runs each bucket will get: ``lengths`` counts lines by tokens; every
    window may end one bucket's batch early, so at most ``windows - 1`` calls more than
    ``ceil(count / batch)`` (and never more than one per sentence)."""
    counts = {b: 0 for b in buckets}
    for n, lines in lengths.items():
        bucket = next((b for b in sorted(buckets) if b >= n), None)
        if n and bucket is not None:
            counts[bucket] += lines
    return {b: min(c, math.ceil(c / batch) + max(windows, 1) - 1) for b, c in counts.items()}


def prepack_plan(calls: Dict[int, int], precision: str, asked: str = "auto") -> Dict[int, bool]:
    """``{bucket: pre-pack its weights when opening}``: ``auto`` packs a bucket with at least
    PREPACK_FROM_CALLS calls ahead of it; ``on``/``off`` for every bucket."""
    if asked not in PREPACK_CHOICES:
        raise StageError(f"EMBED_PREPACK={asked}: use auto, on or off")
    if asked != "auto":
        return {b: asked == "on" for b in calls}
    return {b: n >= PREPACK_FROM_CALLS.get(precision, 1) for b, n in calls.items()}


def layers_graph(options, weights, folder, word_len: int, *, dynamic_batch: bool) -> Path:
    """The simplified all-layers graph (``[B, layers, W, D]``) at ``word_len``, exported unless
    ``folder`` has it: what every target's bucket model is compiled from."""
    from stages.graph.export import export_native
    from stages.graph.simplify import simplify

    shape = "dyn" if dynamic_batch else "b1"
    sim = Path(folder) / f"elmo_w{word_len}_layers_{shape}_sim.onnx"
    if not sim.is_file():
        raw = Path(folder) / f"elmo_w{word_len}_layers_{shape}.onnx"
        export_native(options, weights, raw, batch=1, word_len=word_len, dynamic_batch=dynamic_batch, layers=True)
        simplify(raw, sim)
        raw.unlink()
    return sim


def bucket_models(options, weights, buckets: List[int], models_dir, precision: str,
                  weights_sha256: str = "") -> Dict[int, Path]:
    """``{word_len: offline model}``, building the ones not cached yet. Each model's manifest beside it
    also records the model's own sha256, so a run does not hash the cached models again. For int8
    the model given is its batched form (``batched_form``) where the compiled model has one."""
    from stages.backends.compile import compile_cpu
    from stages.common.atomic import write_json

    folder = Path(models_dir) / (weights_sha256 or sha256_file(weights))[:12]
    models = {}
    for word_len in buckets:
        model = folder / f"elmo_w{word_len}_layers_{precision}.ort.onnx"
        if not (model.is_file() and Path(str(model) + ".json").is_file()):
            sim = layers_graph(options, weights, folder, word_len, dynamic_batch=True)
            info = compile_cpu(sim, model, precision=precision)
            write_json(str(model) + ".json", dict(info, sha256=sha256_file(model)))
        models[word_len] = batched_form(model) if precision == "int8" else model
    return models


def _dispatch_if(model):
    """The ``If`` that picks the batch-1 or the batched int8 form, when ``model`` is built that way."""
    nodes = list(model.graph.node)
    if [n.op_type for n in nodes] != ["Shape", "Gather", "Equal", "If"] or list(nodes[-1].output) != ["output"]:
        return None
    branches = {a.name: a.g for a in nodes[-1].attribute}
    return branches if set(branches) == {"then_branch", "else_branch"} else None


def batched_form(model_path) -> Path:
    """The int8 model's batched (``else``) branch as a model of its own, cached beside it; the model
    itself when it has no batch dispatch. Its manifest copies the compiled model's and names the
    model (and sha256) it was cut from."""
    import onnx
    from onnx import helper

    from stages.common.atomic import atomic_path, write_json

    model_path = Path(model_path)
    out = model_path.with_name(model_path.name[: -len(".ort.onnx")] + BATCHED_SUFFIX)
    record = Path(str(out) + ".json")
    source = json.loads(Path(str(model_path) + ".json").read_text(encoding="utf-8"))
    source_sha = source.get("sha256") or sha256_file(model_path)
    try:
        known = json.loads(record.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        known = {}
    if known.get("derived_from_sha256") == source_sha:
        if known.get("no_dispatch"):
            return model_path
        if out.is_file():
            return out
    model = onnx.load(str(model_path))
    branches = _dispatch_if(model)
    if branches is None:  # remembered, so later runs do not parse the model again
        write_json(record, {"no_dispatch": True, "derived_from": str(model_path), "derived_from_sha256": source_sha})
        return model_path
    branch = branches["else_branch"]
    (result,) = [o.name for o in branch.output]
    nodes = list(branch.node)
    for node in nodes:
        node.input[:] = ["output" if name == result else name for name in node.input]
        node.output[:] = ["output" if name == result else name for name in node.output]
    # The branch reads its weights from the outer graph (quantize.dispatch_on_batch): take the ones it reads.
    read = {name for node in nodes for name in node.input}
    weights = list(branch.initializer) + [t for t in model.graph.initializer if t.name in read]
    graph = helper.make_graph(nodes, branch.name or "batched", list(model.graph.input), list(model.graph.output),
                              weights)
    graph.value_info.extend(v for v in branch.value_info if v.name != result)
    batched = helper.make_model(graph, opset_imports=list(model.opset_import), producer_name=model.producer_name)
    batched.ir_version = model.ir_version
    del model
    with atomic_path(out) as tmp:
        onnx.save(batched, str(tmp))
    form = str(source.get("weights_form") or "")
    form = form.split("larger batches:", 1)[-1].strip() if "larger batches:" in form else form
    write_json(record, dict(source, path=str(out), sha256=sha256_file(out),
                            weights_form=f"{form} (the int8 model's batched form, for every batch size)",
                            derived_from=str(model_path), derived_from_sha256=source_sha))
    return out


def describe_models(models: Dict[int, Path]) -> dict:
    out = {}
    for word_len, path in models.items():
        manifest = json.loads(Path(str(path) + ".json").read_text(encoding="utf-8"))
        out[str(word_len)] = {"path": str(path), "sha256": manifest.get("sha256") or sha256_file(path),
                              "weights_form": manifest.get("weights_form")}
    return out


_HEAP_KEPT = False


def keep_freed_memory() -> None:
    """Let glibc's heap keep large freed blocks (mmap threshold 1 GiB, no trimming) instead of
    returning them to the kernel: ONNX Runtime allocates and frees one pre-packed copy of a
    weight per node while a session loads, and each fresh mmap faults in zeroed pages. No-op
    where the C library is not glibc."""
    global _HEAP_KEPT
    if _HEAP_KEPT:
        return
    _HEAP_KEPT = True
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-3, 1 << 30)  # M_MMAP_THRESHOLD
        libc.mallopt(-1, (1 << 31) - 1)  # M_TRIM_THRESHOLD
    except (OSError, AttributeError):
        pass


def load_cpu_runners(models: Dict[int, Path], threads=None, prepack: Optional[Mapping[int, bool]] = None) -> dict:
    """``{word_len: OrtRunner}`` for the cpu bucket models; ``prepack`` (``prepack_plan``) says
    which open without pre-packing (default: all pre-pack)."""
    from stages.backends.runners import OrtRunner

    keep_freed_memory()
    prepack = prepack or {}
    return {b: OrtRunner.load(path, threads=threads, optimize=False, name=f"bucket {b}", prepack=prepack.get(b, True))
            for b, path in models.items()}
