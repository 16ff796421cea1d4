"""The char CNN's convolutions as MatMuls, so the int8 quantizer can reach them.

ONNX Runtime's dynamic quantizer turns a ``Conv`` into ``ConvInteger``, which ran the int8 model at
half the speed at batch 32; left in float32, the seven convolutions were a fifth of its time there.
As ``Gather`` (each position's window of char vectors) -> ``MatMul`` they become
``DynamicQuantizeMatMul``s like the LSTM's: full size, 2 threads, alternating rounds on an AVX-512
EPYC, 298.5 against 244.1 sentences/s at batch 16 and 311.8 against 295.0 at batch 32, token
cosine 0.99993 against 0.99994. Batch 1 keeps its convolutions (ten tokens: too little work to gain).

The pattern, as ``ElmoBiLM._char_cnn`` exports it: char vectors ``[N, chars, E]`` -> ``Transpose``
``[N, E, chars]`` -> ``Conv`` (width ``w``, ``count`` filters, no padding, stride 1) -> ``ReduceMax``
over positions. Each such Conv and its ReduceMax become::

    Gather(chars_vectors, windows[positions, w], axis=1)  -> [N, positions, w, E]
    Reshape                                               -> [N, positions, w * E]
    MatMul(., W[w * E, count]) + bias                     -> [N, positions, count]
    ReduceMax(axis=1)                                     -> [N, count]

the same arithmetic in float32, summed in another order. A Conv that does not fit the pattern is
left as it is.
"""
from __future__ import annotations

from typing import Dict, List


def _attributes(node) -> dict:
    from onnx import helper

    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _plain(conv) -> bool:
    """A 1-D Conv with no padding, stride, dilation or groups."""
    attributes = _attributes(conv)
    return (len(attributes.get("kernel_shape", [])) == 1 and not any(attributes.get("pads", [0, 0]))
            and attributes.get("strides", [1]) == [1] and attributes.get("dilations", [1]) == [1]
            and attributes.get("group", 1) == 1 and attributes.get("auto_pad", b"NOTSET") in (b"NOTSET", "NOTSET")
            and len(conv.input) == 3)


def convolutions_as_matmuls(model) -> int:
    """Rewrite ``model`` in place (see the module's docstring); returns how many convolutions changed."""
    import numpy as np
    from onnx import helper, numpy_helper

    graph = model.graph
    dims = graph.input[0].type.tensor_type.shape.dim
    if len(dims) != 3 or not dims[2].dim_value:
        return 0
    chars = dims[2].dim_value  # [B, W, chars]: each token's char ids
    weights = {w.name: w for w in graph.initializer}
    producer = {name: node for node in graph.node for name in node.output}
    readers: Dict[str, List] = {}
    for node in graph.node:
        for name in node.input:
            readers.setdefault(name, []).append(node)

    replaced: Dict[str, list] = {}  # first output of a node -> the nodes in its place
    fed = set()  # the Transposes that fed a rewritten Conv
    added = []
    for conv in graph.node:
        if conv.op_type != "Conv" or not _plain(conv) or conv.input[1] not in weights or conv.input[2] not in weights:
            continue
        transpose = producer.get(conv.input[0])
        after = readers.get(conv.output[0], [])
        if transpose is None or transpose.op_type != "Transpose" or _attributes(transpose).get("perm") != [0, 2, 1]:
            continue
        if len(after) != 1 or after[0].op_type != "ReduceMax" or len(after[0].input) != 1 \
                or _attributes(after[0]).get("axes") not in ([-1], [2]) or _attributes(after[0]).get("keepdims", 1):
            continue
        kernel = numpy_helper.to_array(weights[conv.input[1]])  # [count, E, w]
        count, embed, width = kernel.shape
        positions = chars - width + 1
        prefix = conv.name or conv.output[0]
        fed.add(transpose.output[0])
        windows = (np.arange(positions)[:, None] + np.arange(width)[None, :]).astype(np.int64)
        added += [
            numpy_helper.from_array(windows, f"{prefix}/windows"),
            numpy_helper.from_array(np.array([0, positions, width * embed], dtype=np.int64), f"{prefix}/shape"),
            # Row k * E + e of the matrix is tap k of input channel e: the Reshape's order of [w, E].
            numpy_helper.from_array(np.ascontiguousarray(kernel.transpose(2, 1, 0).reshape(width * embed, count)),
                                    f"{prefix}/matrix"),
        ]
        replaced[conv.output[0]] = [
            helper.make_node("Gather", [transpose.input[0], f"{prefix}/windows"], [f"{prefix}/windows_out"], axis=1,
                             name=f"{prefix}/Gather"),
            helper.make_node("Reshape", [f"{prefix}/windows_out", f"{prefix}/shape"], [f"{prefix}/patches"],
                             name=f"{prefix}/Reshape"),
            helper.make_node("MatMul", [f"{prefix}/patches", f"{prefix}/matrix"], [f"{prefix}/product"],
                             name=f"{prefix}/MatMul"),
            helper.make_node("Add", [f"{prefix}/product", conv.input[2]], [f"{prefix}/convolved"], name=f"{prefix}/Add"),
            helper.make_node("ReduceMax", [f"{prefix}/convolved"], list(after[0].output), axes=[1], keepdims=0,
                             name=f"{prefix}/ReduceMax"),
        ]
        replaced[after[0].output[0]] = []
    if not replaced:
        return 0
    nodes = [new for node in graph.node for new in replaced.get(node.output[0], [node])]
    read = {name for node in nodes for name in node.input} | {o.name for o in graph.output}
    nodes = [n for n in nodes if n.output[0] not in fed or n.output[0] in read]  # a Transpose now read by none
    kept = [w for w in graph.initializer if w.name in read]  # the convolutions' kernels go
    del graph.node[:]
    graph.node.extend(nodes)
    del graph.initializer[:]
    graph.initializer.extend(kept + added)
    return sum(1 for nodes_ in replaced.values() if nodes_)
