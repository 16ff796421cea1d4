"""``make perf``'s OpenVINO peer models, each saved once as an OpenVINO IR folder
(``<name>.ov/model.xml`` + ``model.bin`` + ``manifest.json``): the simplified ONNX
as OpenVINO reads it (``--weights float32``), and with its weights compressed to
int8 by NNCF (``--weights int8``), so perf does not recompress on every run. An IR's
weights file is mapped, not read into memory, so its pages leave the process once
compiled (``loader.compile_file``); an ONNX's weights would stay. The folder is
written under a temporary name and renamed when complete.
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


WEIGHTS = ("int8", "float32")


def compress(onnx_path, out_dir, weights: str = "int8") -> dict:
    """``onnx_path`` -> ``out_dir/model.xml`` (+ ``.bin``, ``manifest.json``) with ``weights`` (``WEIGHTS``);
    the manifest."""
    if weights not in WEIGHTS:
        raise StageError(f"--weights {weights!r}: use {' or '.join(WEIGHTS)}")
    ov = loader.require()
    nncf = loader.require("nncf") if weights == "int8" else None
    onnx_path, out_dir = Path(onnx_path), Path(out_dir)
    if not onnx_path.is_file():
        raise StageError(f"{onnx_path}: not found; run make simplify first")
    started = time.perf_counter()
    with atomic_path(out_dir) as tmp:
        tmp.mkdir(parents=True)
        what = "NNCF compresses the weights to int8" if weights == "int8" else "the ONNX as an IR, float32 weights"
        with step(f"openvino: {what} ({out_dir.name})"):
            if weights == "int8":
                model, form = loader.compress_int8(onnx_path)
            else:
                model, form = loader.read_model(onnx_path), "float32, the simplified ONNX's (FullyConnected's layout)"
            ov.save_model(model, str(tmp / MODEL_FILE), compress_to_fp16=False)
            del model
        manifest = {
            "schema": "elmo-openvino-ir/1",
            "path": str(out_dir / MODEL_FILE),
            "precision": "int8" if weights == "int8" else "fp32",
            "weights_form": form,
            "runtime": {"openvino": ov.__version__, "nncf": nncf.__version__ if nncf else None},
            "onnx": str(onnx_path),
            "onnx_sha256": sha256_file(onnx_path),
            "compress_seconds": round(time.perf_counter() - started, 2),
        }
        write_json(tmp / "manifest.json", manifest)
    return manifest


COMMAND = "openvino-ir"
COMMAND_HELP = dict(help="an OpenVINO peer model make perf times (an IR folder): float32, or NNCF int8 weights")


def add_arguments(parser) -> None:
    parser.add_argument("--model", required=True, help="simplified ONNX")
    parser.add_argument("--out", required=True, help="the IR folder to write (<name>.ov)")
    parser.add_argument("--weights", choices=WEIGHTS, default="int8",
                        help="int8: NNCF compress_weights INT8_ASYM; float32: the ONNX's weights as they are")


def run(args) -> int:
    manifest = compress(args.model, args.out, args.weights)
    print(f"openvino peer model {manifest['path']} ({manifest['weights_form']})")
    return 0
