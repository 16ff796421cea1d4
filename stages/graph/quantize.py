"""int8 weights for the CPU offline model, by ONNX Runtime's own quantization tools.

Two int8 forms of the same weights suit two regimes, measured on this model
(full-size shapes, 2 AVX2 cores, ``make perf``):

* **batch 1** is bound by reading weights: every LSTM step is a vector times
  a 512 x 16384 matrix. ``MatMulNBits`` with 8-bit blocks (block 128, int8
  compute, ``accuracy_level`` 4) has a GEMV kernel and ran 1.14-1.41x faster
  than ``DynamicQuantizeMatMul`` there.
* **batch > 1** is bound by arithmetic: ``DynamicQuantizeMatMul`` (per-channel
  int8 weights, activations quantized per call) runs MLAS's packed int8 GEMM
  and was 1.3-1.4x faster than ``MatMulNBits`` from batch 4 up.

``dispatch_on_batch`` puts both into one model behind an ONNX ``If`` on the
batch size, so one dynamic-batch offline model serves the whole sweep. Both
branches are judged: the inference stage runs batch 1, the accuracy stage
also runs the corpus batched (``--batched``).
"""
from __future__ import annotations

import logging
from contextlib import contextmanager
from pathlib import Path

from stages.common.errors import StageError

BLOCK_SIZE = 128
INPUT, OUTPUT = "input", "output"


@contextmanager
def quiet_quantizers():
    """ONNX Runtime's quantizers log advice on the root logger (and the
    MatMulNBits module sets it to INFO on import): one line per MatMul."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)


def single_matmul_model(weight, rows: int):
    """``output = input @ weight`` with ``input`` of ``rows`` rows: the small model
    the int8 probes quantize and time."""
    from onnx import TensorProto, helper, numpy_helper

    k, n = weight.shape
    graph = helper.make_graph([helper.make_node("MatMul", [INPUT, "w"], [OUTPUT])], "single_matmul",
                              [helper.make_tensor_value_info(INPUT, TensorProto.FLOAT, [rows, k])],
                              [helper.make_tensor_value_info(OUTPUT, TensorProto.FLOAT, [rows, n])],
                              [numpy_helper.from_array(weight, "w")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    return model


def gemm_as_matmul(model) -> None:
    """``Gemm(x, W, b)`` -> ``MatMul(x, W) + b``, in place.

    onnxsim folds the hoisted LSTM input projections into Gemm, which the
    block-wise quantizer skips; left in float32 they were a third of the
    weight bytes at batch 1.
    """
    from onnx import helper

    nodes = []
    for node in model.graph.node:
        if node.op_type != "Gemm":
            nodes.append(node)
            continue
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        if attrs.get("transA", 0) or attrs.get("transB", 0) or attrs.get("alpha", 1.0) != 1.0 \
                or attrs.get("beta", 1.0) != 1.0 or len(node.input) != 3:
            nodes.append(node)
            continue
        product = f"{node.output[0]}/matmul"
        nodes.append(helper.make_node("MatMul", node.input[:2], [product], name=f"{node.name}/MatMul"))
        nodes.append(helper.make_node("Add", [product, node.input[2]], list(node.output), name=f"{node.name}/Add"))
    del model.graph.node[:]
    model.graph.node.extend(nodes)


@contextmanager
def _scratch_in(workdir):
    """Every temporary file made meanwhile (ours and the quantizers' own) goes into ``workdir``,
    named by the caller's temporary scheme, so a killed run's scratch is found and removed."""
    import shutil
    import tempfile

    if workdir is None:
        yield
        return
    path = Path(workdir)
    path.mkdir(parents=True, exist_ok=True)
    saved = tempfile.tempdir
    tempfile.tempdir = str(path)
    try:
        yield
    finally:
        tempfile.tempdir = saved
        shutil.rmtree(str(path), ignore_errors=True)


def dynamic_int8(src):
    """Per-channel int8 MatMul weights (7 bits of range), activations quantized at run time.

    ``reduce_range``: on CPUs without VNNI (AVX2-only hosts) MLAS's u8 x s8
    kernel adds pairs of products in int16 with saturation; full 8-bit weights
    overflowed it on the trained bilm-tf model (token cosine 0.986 at batch 4
    on an AVX2 EPYC). 7-bit weights cannot overflow, on every CPU.

    The char CNN's convolutions are MatMuls first, and int8 with the rest (char_convolutions.py).
    """
    import tempfile

    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    from stages.graph.char_convolutions import convolutions_as_matmuls

    with tempfile.TemporaryDirectory() as tmp:
        model = onnx.load(str(src))
        if convolutions_as_matmuls(model):
            src = Path(tmp) / "convolutions-as-matmuls.onnx"
            onnx.save(model, str(src))
        del model
        dest = Path(tmp) / "dynamic-int8.onnx"
        with quiet_quantizers():
            quantize_dynamic(str(src), str(dest), weight_type=QuantType.QInt8, per_channel=True, reduce_range=True,
                             op_types_to_quantize=["MatMul"])
        return onnx.load(str(dest))


def blockwise_int8(src, block_size: int = BLOCK_SIZE):
    """Symmetric 8-bit block-wise MatMul weights (``MatMulNBits``), int8 compute."""
    import onnx

    with quiet_quantizers():
        from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer

        model = onnx.load(str(src))
        gemm_as_matmul(model)
        quantizer = MatMulNBitsQuantizer(model, bits=8, block_size=block_size, is_symmetric=True, accuracy_level=4)
        quantizer.process()
    return quantizer.model.model


def _as_branch(model, prefix: str, output: str):
    """``model``'s graph as an If branch: no inputs (it reads the outer ``input``),
    every other name prefixed so the two branches cannot collide. Its weights are
    returned apart, for the outer graph (``dispatch_on_batch`` says why)."""
    from onnx import helper

    graph = model.graph
    outputs = [o for o in graph.output if o.name == OUTPUT]
    if len(outputs) != 1:
        raise StageError(f"quantized model has outputs {[o.name for o in graph.output]}; expected '{OUTPUT}'")

    def rename(name: str) -> str:
        return {"": "", INPUT: INPUT, OUTPUT: output}.get(name, prefix + name)

    for node in graph.node:
        node.name = prefix + node.name
        node.input[:] = [rename(n) for n in node.input]
        node.output[:] = [rename(n) for n in node.output]
    for init in graph.initializer:
        init.name = rename(init.name)
    value_info = helper.make_tensor_value_info(output, outputs[0].type.tensor_type.elem_type, None)
    return helper.make_graph(list(graph.node), prefix.strip("/"), [], [value_info]), list(graph.initializer)


def dispatch_on_batch(single, batched, reference):
    """One model: ``single``'s graph for batch 1, ``batched``'s otherwise.

    ``reference`` (the float model) supplies the outer input and output. The
    branches' weights live in the outer graph, which the branches read by name:
    ONNX Runtime keeps a subgraph's initializers twice, as the model's protobuf
    and as tensors (and a third time once prepacked), where it frees an outer
    graph's. Full size, after loading: 208 MB resident against 570, the same
    outputs bit for bit and the same speed."""
    import onnx
    from onnx import TensorProto, helper

    then_branch, then_weights = _as_branch(single, "batch1/", "batch1_output")
    else_branch, else_weights = _as_branch(batched, "batchN/", "batchN_output")
    nodes = [
        helper.make_node("Shape", [INPUT], ["dispatch/shape"], name="dispatch/Shape"),
        helper.make_node("Gather", ["dispatch/shape", "dispatch/zero"], ["dispatch/batch"], name="dispatch/Gather",
                         axis=0),
        helper.make_node("Equal", ["dispatch/batch", "dispatch/one"], ["dispatch/is_batch1"], name="dispatch/Equal"),
        helper.make_node("If", ["dispatch/is_batch1"], [OUTPUT], name="dispatch/If",
                         then_branch=then_branch, else_branch=else_branch),
    ]
    constants = [helper.make_tensor("dispatch/zero", TensorProto.INT64, [], [0]),
                 helper.make_tensor("dispatch/one", TensorProto.INT64, [], [1])]
    graph = helper.make_graph(nodes, "elmo_int8", list(reference.graph.input), list(reference.graph.output),
                              constants + then_weights + else_weights)
    opsets = {}
    for model in (reference, single, batched):
        for entry in model.opset_import:
            opsets[entry.domain] = max(opsets.get(entry.domain, 0), entry.version)
    merged = helper.make_model(graph, opset_imports=[helper.make_opsetid(d, v) for d, v in sorted(opsets.items())],
                               producer_name="elmo-pipeline")
    merged.ir_version = max(m.ir_version for m in (reference, single, batched))
    onnx.checker.check_model(merged, full_check=False)
    return merged


BATCHED_ONLY_FORM = ("DynamicQuantizeMatMul per-channel, the char CNN's too, at every batch size ONNX Runtime "
                     "serves (batch 1 is OpenVINO's: the manifest's engines)")


def batched_only(model):
    """``dispatch_on_batch``'s model (optimised or not) without its batch-1 branch, in place: the
    batched branch's nodes become the graph, with the weights they read. For an offline model whose
    batch 1 OpenVINO serves: ONNX Runtime never takes that branch, and it held 0.1 GB at full size.
    Returns False, changing nothing, where ``model`` is not such a model."""
    from onnx import helper

    nodes = list(model.graph.node)
    dispatch = [n for n in nodes if n.op_type == "If" and n.name == "dispatch/If"]
    if len(dispatch) != 1 or list(dispatch[0].output) != [OUTPUT]:
        return False
    branch = next(helper.get_attribute_value(a) for a in dispatch[0].attribute if a.name == "else_branch")
    (result,) = [o.name for o in branch.output]
    body = list(branch.node)
    for node in body:
        node.output[:] = [OUTPUT if name == result else name for name in node.output]
        node.input[:] = [OUTPUT if name == result else name for name in node.input]
    read = {name for node in body for name in node.input}
    for node in body:  # names the branch's own subgraphs read (none today; kept should one appear)
        for attribute in node.attribute:
            if attribute.g.node:
                read |= {name for inner in attribute.g.node for name in inner.input}
    # ONNX Runtime's optimiser leaves some constants in the branch itself.
    weights = [w for w in model.graph.initializer if w.name in read] + list(branch.initializer)
    del model.graph.node[:]
    model.graph.node.extend(body)
    del model.graph.initializer[:]
    model.graph.initializer.extend(weights)
    return True


def blockwise_int8_supported() -> str:
    """Why this ONNX Runtime cannot build or run 8-bit ``MatMulNBits`` ('' if it can).

    Older releases (the Docker images' 1.16) quantize and run 4-bit blocks
    only; a tiny model is quantized and run rather than trusting a version table.
    """
    import tempfile

    import numpy as np
    import onnx

    model = single_matmul_model(np.linspace(-1, 1, 256 * 256, dtype=np.float32).reshape(256, 256), rows=1)
    try:
        import onnxruntime as ort

        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "probe.onnx"
            onnx.save(model, str(path))
            quantized = blockwise_int8(path)
            if not any(n.op_type == "MatMulNBits" for n in quantized.graph.node):
                return "its quantizer left the MatMul in float"
            session = ort.InferenceSession(quantized.SerializeToString(), providers=["CPUExecutionProvider"])
            session.run(None, {INPUT: np.ones((1, 256), dtype=np.float32)})
    except Exception as exc:  # ImportError, TypeError, or ORT's own untyped errors: all mean "not here"
        return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    return ""


def int8_model(src, workdir=None, batched_src=None):
    """The int8 offline model's graph before ORT optimisation, and a line on its form.

    ``batched_src``: the float graph of the batched form where it differs from ``src`` (the cpu
    target's token layer on distinct tokens, stages/backends/compile.py). Where this ONNX Runtime
    lacks 8-bit ``MatMulNBits`` every batch size gets ``DynamicQuantizeMatMul``: same accuracy,
    slower at batch 1.
    """
    import onnx

    from stages.common.progress import step

    # The step inside the scratch folder: a run killed at its end leaves that folder to clean up.
    with _scratch_in(workdir), step("compile: int8 weights (ONNX Runtime's quantizers)"):
        dynamic = dynamic_int8(batched_src or src)
        missing = blockwise_int8_supported()
        if missing:
            return dynamic, (f"DynamicQuantizeMatMul at every batch, the char CNN's too (no 8-bit MatMulNBits in "
                             f"this onnxruntime: {missing})")
        reference = onnx.load(str(src), load_external_data=False)
        return (dispatch_on_batch(blockwise_int8(src), dynamic, reference),
                f"batch 1: MatMulNBits 8-bit, block {BLOCK_SIZE}; larger batches: DynamicQuantizeMatMul per-channel, "
                f"the char CNN's too")
