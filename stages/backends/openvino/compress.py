"""``make perf``'s OpenVINO + NNCF peer model: the simplified ONNX with its
weights compressed to int8 by NNCF, saved once as an OpenVINO IR folder
(``<name>.ov/model.xml`` + ``model.bin`` + ``manifest.json``), so perf loads it
instead of recompressing on every run. The folder is written under a
temporary name and renamed when complete.
"""
from __future__ import annotations

import time
from pathlib import Path

from stages.backends.openvino import loader
from stages.common.atomic import atomic_path, write_json
from stages.common.errors import StageError
from stages.common.hashing import sha256_file
from stages.common.progress import step

MODEL_FILE = "model.xml"


def compress(onnx_path, out_dir) -> dict:
    """``onnx_path`` -> ``out_dir/model.xml`` (+ ``.bin``, ``manifest.json``); the manifest."""
    ov = loader.require()
    nncf = loader.require("nncf")
    onnx_path, out_dir = Path(onnx_path), Path(out_dir)
    if not onnx_path.is_file():
        raise StageError(f"{onnx_path}: not found; run make simplify first")
    started = time.perf_counter()
    with atomic_path(out_dir) as tmp:
        tmp.mkdir(parents=True)
        with step(f"openvino: NNCF compresses the weights to int8 ({out_dir.name})"):
            model, form = loader.compress_int8(onnx_path)
            ov.save_model(model, str(tmp / MODEL_FILE), compress_to_fp16=False)
        manifest = {
            "schema": "elmo-openvino-ir/1",
            "path": str(out_dir / MODEL_FILE),
            "precision": "int8",
            "weights_form": form,
            "runtime": {"openvino": ov.__version__, "nncf": nncf.__version__},
            "onnx": str(onnx_path),
            "onnx_sha256": sha256_file(onnx_path),
            "compress_seconds": round(time.perf_counter() - started, 2),
        }
        write_json(tmp / "manifest.json", manifest)
    return manifest


COMMAND = "openvino-compress"
COMMAND_HELP = dict(help="the OpenVINO + NNCF int8-weights peer model make perf times (an IR folder)")


def add_arguments(parser) -> None:
    parser.add_argument("--model", required=True, help="simplified ONNX")
    parser.add_argument("--out", required=True, help="the IR folder to write (<name>.ov)")


def run(args) -> int:
    manifest = compress(args.model, args.out)
    print(f"openvino peer model {manifest['path']} ({manifest['weights_form']})")
    return 0
