"""``make om``: the simplified ONNX -> an offline model for the target.

* ``cpu``: an ONNX Runtime offline model: graph optimisations applied once
  and saved (``*.ort.onnx``), optionally after int8 weight quantization, so
  start-up does no graph rewriting and what runs is what was judged. It may
  also carry OpenVINO compiled models, one per batch size OpenVINO ran faster
  here (``engine``; stages/backends/engines.py).
* ``ascend``: atc -> ``.om`` (``stages.backends.ascend.atc``).

Either way a sidecar ``<model>.json`` (schema ``elmo-om-manifest/1``) records
how the model was made; the inference stages check it against their inputs.
"""
from __future__ import annotations

import time
from pathlib import Path

from stages.common.atomic import atomic_path, temporary, write_json
from stages.common.progress import step
from stages.common.errors import StageError
from stages.common.hashing import sha256_file

PRECISIONS = ("fp32", "int8")
REWRITE = ("token layer once per distinct token, above batch 1 (at batch 1 too where one ONNX Runtime graph "
           "serves every batch size: fp32, and int8 without 8-bit MatMulNBits)")


def compile_cpu(onnx_path, out_path, *, precision="fp32", threads=None, engine="onnxruntime", batches=(1,)) -> dict:
    """``engine``: ``engines.CHOICES``; the default serves every batch from ONNX Runtime. ``batches``: the
    batch sizes the model will serve, where ``auto`` times both runtimes."""
    import onnx
    import onnxruntime as ort

    from stages.backends.runners import OrtRunner

    if precision not in PRECISIONS:
        raise StageError(f"PRECISION={precision!r} is not one of {', '.join(PRECISIONS)}")
    from stages.backends import engines

    if engine not in engines.CHOICES:  # before minutes of work, not after
        raise StageError(f"CPU_ENGINE={engine!r} is not one of {', '.join(engines.CHOICES)}")
    onnx_path, out_path = Path(onnx_path), Path(out_path)
    if not onnx_path.is_file():
        raise StageError(f"{onnx_path}: not found; run make simplify first")
    started = time.perf_counter()
    with atomic_path(out_path) as tmp:
        # The batched forms start from this graph, and ONNX Runtime's fp32 model at every batch size.
        graph, rewrites = _cpu_graph(onnx_path, temporary(out_path, "cpu-graph.onnx"))
        try:
            source, form = graph, "float32"
            if precision == "int8":
                # Why int8 this way (dynamic, two forms behind an If): stages/quantize.py.
                from stages.graph.quantize import int8_model

                model, form = int8_model(onnx_path, workdir=temporary(out_path, "quantize"), batched_src=graph)
                source = temporary(out_path, "int8.onnx")
                onnx.save(model, str(source))
                del model  # the protobuf copy: ORT loads its own from the file
            try:
                with step(f"compile: ONNX Runtime optimises and saves {out_path.name}"):
                    OrtRunner.load(source, threads=threads, optimize=True, save_optimized=tmp)
            finally:
                if source not in (onnx_path, graph) and source.exists():
                    source.unlink()
            with step(f"compile: which runtime serves each batch size (CPU_ENGINE={engine})"):
                served = engines.build(onnx_path, tmp, out_path, choice=engine, precision=precision, threads=threads,
                                       batches=batches, batched_onnx=graph)
        finally:
            if graph != onnx_path and graph.exists():
                graph.unlink()
        model = onnx.load(str(tmp), load_external_data=False)
        if 1 in engines.openvino_batches(served):
            from stages.graph.quantize import BATCHED_ONLY_FORM, batched_only

            if batched_only(model):
                with step("compile: OpenVINO serves batch 1: ONNX Runtime's model drops its batch-1 form"):
                    onnx.save(model, str(tmp))
                form = BATCHED_ONLY_FORM
    graph_input = model.graph.input[0]
    return {
        "schema": "elmo-om-manifest/1",
        "target": "cpu",
        "path": str(out_path),
        "precision": precision,
        "weights_form": form,
        "runtime": f"onnxruntime {ort.__version__}",
        "optimization": "ORT_ENABLE_ALL, saved",
        "onnx": str(onnx_path),
        "onnx_sha256": sha256_file(onnx_path),
        "input_shape": [d.dim_param or d.dim_value for d in graph_input.type.tensor_type.shape.dim],
        "graph_rewrites": rewrites,
        "nodes": len(model.graph.node),
        **served,
        "compile_seconds": round(time.perf_counter() - started, 2),
    }


def _cpu_graph(onnx_path: Path, scratch: Path):
    """The simplified ONNX as the cpu target runs it above batch 1: ``(path, rewrites)``, ``scratch``
    written only when a rewrite applies. The token layer runs once per distinct token of a call
    (stages/graph/unique_tokens.py): full size, 2 threads, alternating rounds on an AVX-512 EPYC, 480
    and 465 against 357 and 363 sentences/s for ONNX Runtime's int8 form at batch 32, 380 against 328
    at 16; OpenVINO f32 148 and 144 against 118 and 110 at batch 32. At batch 1 a sentence repeats
    little (its marks and padding), and OpenVINO + NNCF ran 88-99 against 101-107 sentences/s with
    the rewrite (a dynamic shape inside a static graph), so the batch-1 forms of both int8 runtimes and
    OpenVINO's fp32 one compile the simplified ONNX as it is; ONNX Runtime's fp32 model serves every
    batch size from one graph and keeps it (+9% at batch 1 for its int8 form). The Ascend target
    compiles the simplified ONNX as it is (atc wants static shapes, and ``Unique``'s output has none)."""
    import onnx

    from stages.graph.unique_tokens import unique_tokens

    model = onnx.load(str(onnx_path))
    if not unique_tokens(model):
        return onnx_path, []
    with step("compile: the token layer once per distinct token (Unique)"):
        onnx.save(model, str(scratch))
    return scratch, [REWRITE]


COMMAND = "compile"
COMMAND_HELP = dict(help="build the offline model for a target (cpu | ascend)")


def add_arguments(parser) -> None:
    parser.add_argument("--target", choices=("cpu", "ascend"), default="cpu")
    parser.add_argument("--model", required=True, help="simplified ONNX")
    parser.add_argument("--out", required=True)
    parser.add_argument("--precision", default="fp32", help="cpu: fp32 | int8")
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--engine", default="onnxruntime",
                        help="cpu: which runtime serves each batch size: auto (timed here at each --batch) | "
                             "onnxruntime | openvino")
    parser.add_argument("--batch", default="1", help="batch size(s), e.g. '1' or '1 4 8': ascend: the om's; "
                        "cpu: the sizes where the model may run on OpenVINO")
    parser.add_argument("--word-len", type=int, default=8)
    parser.add_argument("--soc-version", default="", help="ascend: overrides npu-smi detection")
    parser.add_argument("--precision-mode", default="", help="ascend: atc --precision_mode")


def run(args) -> int:
    if args.target == "cpu":
        batches = args.batch.split()
        if not batches or not all(b.isdigit() and int(b) > 0 for b in batches):
            raise StageError(f"--batch {args.batch!r}: give batch sizes as positive integers, e.g. '1 4 8'")
        info = compile_cpu(args.model, args.out, precision=args.precision, threads=args.threads or None,
                           engine=args.engine, batches=[int(b) for b in batches])
        write_json(str(args.out) + ".json", info)
    else:
        from stages.backends.ascend.target import compile_ascend

        info = compile_ascend(args)
    print(f"offline model {args.out} ({args.target}, {info.get('precision') or info.get('precision_mode') or ''})")
    return 0
