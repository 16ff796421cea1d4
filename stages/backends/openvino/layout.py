"""The ONNX graph's MatMul weights in the layout OpenVINO's FullyConnected reads, each held once.

ONNX stores a MatMul weight as [in, out]; OpenVINO's CPU FullyConnected wants [out, in], so its
plugin puts a Transpose in front of every MatMul. The LSTM's hidden and projection matrices are
each shared by the 9-10 unrolled steps, and in bf16 (OpenVINO's default on a CPU with AVX512-BF16
or AMX) each of those Transposes kept a converted copy of its own. Measured on the full-size
model, static batch 1, 2 threads: 2130 MB resident against 703 MB with each weight stored once as
[out, in] behind ``transpose_b``, and 56 against 84 sentences/s, the same outputs bit for bit;
float32 the same speed and size either way. Every OpenVINO model of this project, peers and the
cpu target's alike, is read through this pass (``loader.read_model``), before NNCF too, which
compresses a ``transpose_b`` weight as it does any other.
"""
from __future__ import annotations


def weights_out_in(model) -> int:
    """Rewrite, in place, each ``MatMul(x, W)`` whose ``W`` is a 2-D constant as
    ``MatMul(x, W.T, transpose_b=True)``, one ``W.T`` per ``W`` however many MatMuls read it.
    Returns how many MatMuls were rewritten; a model rewritten already is left as it is."""
    import numpy as np
    from openvino import opset13 as ops

    transposed = {}
    rewritten = 0
    for node in model.get_ordered_ops():
        if node.get_type_name() != "MatMul":
            continue
        attributes = node.get_attributes()
        weight = node.input_value(1).get_node()
        if attributes["transpose_b"] or weight.get_type_name() != "Constant" or len(weight.get_output_shape(0)) != 2:
            continue
        key = weight.get_instance_id()
        if key not in transposed:
            transposed[key] = ops.constant(np.ascontiguousarray(weight.get_data().T))
            transposed[key].set_friendly_name(f"{weight.get_friendly_name()}/out_in")
        product = ops.matmul(node.input_value(0), transposed[key].output(0), attributes["transpose_a"], True)
        product.set_friendly_name(node.get_friendly_name())
        node.output(0).replace(product.output(0))
        rewritten += 1
    if rewritten:
        model.validate_nodes_and_infer_types()
    return rewritten
