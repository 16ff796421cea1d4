"""The offline models ``embed`` streams a corpus through: one per length bucket.

Each bucket is the all-layers graph (``[B, layers, W, D]``, dynamic batch) at a
fixed WORD_LEN, exported, simplified and compiled for the cpu target at the
chosen precision by the same stages ``make om`` uses. They are cached under
``<models dir>/<weights sha256[:12]>/``, so a second run (or a resumed one)
loads them instead of building them again.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, List

from stages.common.errors import StageError
from stages.common.hashing import sha256_file

LADDER = (8, 16, 32, 64, 128)


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


def bucket_models(options, weights, buckets: List[int], models_dir, precision: str,
                  weights_sha256: str = "") -> Dict[int, Path]:
    """``{word_len: offline model}``, building the ones not cached yet. Each model's manifest beside it
    also records the model's own sha256, so a run does not hash the cached models again."""
    from stages.backends.compile import compile_cpu
    from stages.common.atomic import write_json
    from stages.graph.export import export_native
    from stages.graph.simplify import simplify

    folder = Path(models_dir) / (weights_sha256 or sha256_file(weights))[:12]
    models = {}
    for word_len in buckets:
        model = folder / f"elmo_w{word_len}_layers_{precision}.ort.onnx"
        if not (model.is_file() and Path(str(model) + ".json").is_file()):
            raw = folder / f"elmo_w{word_len}_layers.onnx"
            sim = folder / f"elmo_w{word_len}_layers_sim.onnx"
            if not sim.is_file():
                export_native(options, weights, raw, batch=1, word_len=word_len, dynamic_batch=True, layers=True)
                simplify(raw, sim)
                raw.unlink()
            info = compile_cpu(sim, model, precision=precision)
            write_json(str(model) + ".json", dict(info, sha256=sha256_file(model)))
        models[word_len] = model
    return models


def describe_models(models: Dict[int, Path]) -> dict:
    out = {}
    for word_len, path in models.items():
        manifest = json.loads(Path(str(path) + ".json").read_text(encoding="utf-8"))
        out[str(word_len)] = {"path": str(path), "sha256": manifest.get("sha256") or sha256_file(path),
                              "weights_form": manifest.get("weights_form")}
    return out


def load_cpu_runners(models: Dict[int, Path], threads=None) -> dict:
    """``{word_len: OrtRunner}`` for the cpu bucket models."""
    from stages.backends.runners import OrtRunner

    return {b: OrtRunner.load(path, threads=threads, optimize=False, name=f"bucket {b}") for b, path in models.items()}
