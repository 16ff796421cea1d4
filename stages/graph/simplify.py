"""onnxsim over an exported graph, recording what it removed."""
from __future__ import annotations

import time
from pathlib import Path

from stages.common.atomic import atomic_path, write_json
from stages.common.progress import step
from stages.common.errors import StageError
from stages.graph.onnx_info import describe


def simplify(src, dest) -> dict:
    import onnx
    import onnxsim

    try:
        model = onnx.load(str(src))
    except (OSError, ValueError) as exc:
        raise StageError(f"{src}: cannot load ONNX model ({exc}); rerun the export")
    before = describe(model)
    started = time.perf_counter()
    with atomic_path(dest) as tmp, step(f"simplify: onnxsim on {Path(src).name} ({before['nodes']} nodes)"):
        simplified, ok = onnxsim.simplify(model)
        if not ok:
            raise StageError(f"{src}: onnxsim could not validate the simplified graph; keep using the exported one")
        seconds = round(time.perf_counter() - started, 2)
        onnx.save(simplified, str(tmp))
        onnx.checker.check_model(str(tmp))
    after = describe(simplified)
    return {
        "schema": after["schema"],
        "source": str(src),
        "path": str(dest),
        "onnxsim_version": getattr(onnxsim, "__version__", "unknown"),
        "simplify_seconds": seconds,
        "nodes_before": before["nodes"],
        "nodes_after": after["nodes"],
        **{k: v for k, v in after.items() if k not in ("nodes", "schema")},
        "nodes": after["nodes"],
    }


COMMAND = "simplify"
COMMAND_HELP = dict(help="run onnxsim over an ONNX model")


def add_arguments(parser) -> None:
    parser.add_argument("src")
    parser.add_argument("dest")


def run(args) -> int:
    info = simplify(args.src, args.dest)
    write_json(str(args.dest) + ".json", info)
    print(f"simplified {args.dest}: {info['nodes_before']} -> {info['nodes_after']} nodes in {info['simplify_seconds']} s")
    return 0
