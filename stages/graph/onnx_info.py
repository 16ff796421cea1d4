"""Facts about an ONNX graph that manifests and reports record."""
from __future__ import annotations

from collections import Counter


def _dims(value_info) -> list:
    return [d.dim_param or d.dim_value for d in value_info.type.tensor_type.shape.dim]


def describe(model) -> dict:
    graph = model.graph
    ops = Counter(node.op_type for node in graph.node)
    return {
        "schema": "elmo-onnx-info/1",
        "nodes": len(graph.node),
        "op_counts": dict(sorted(ops.items())),
        "inputs": {i.name: _dims(i) for i in graph.input},
        "outputs": {o.name: _dims(o) for o in graph.output},
        "opset": max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=None),
    }
