"""Which nodes of the debug graph compute which checkpoint (token layer, each LSTM layer, the mix).

The debug graph (``export --checkpoints``) stacks the checkpoints into its one output, so each
checkpoint is one input of that final ``Concat`` (behind an ``Unsqueeze``). A checkpoint's nodes are
its ancestors that no earlier checkpoint needs: what ``make locate`` names when it says which
operators to keep in float. ONNX node names are the tracer's (``/MatMul_12``); the real graph,
traced from the same module in the same order, gives the shared part the same names.
"""
from __future__ import annotations

from typing import Dict, List, Tuple

from stages.common.errors import StageError

Node = Tuple[str, str]  # (name, op_type)


def checkpoint_nodes(model) -> List[List[Node]]:
    """Per checkpoint, in output order, its own nodes ``(name, op_type)`` in graph order."""
    graph = model.graph
    producer = {out: node for node in graph.node for out in node.output}
    final = producer.get(graph.output[0].name)
    if final is None or final.op_type != "Concat":
        raise StageError(f"the debug graph's output comes from {final.op_type if final else 'nothing'}, not the "
                         f"Concat that `export --checkpoints` writes; rebuild it with make locate")
    order = {id(node): index for index, node in enumerate(graph.node)}
    seen: set = set()
    parts: List[List[Node]] = []
    for tensor in final.input:
        mine: Dict[int, object] = {}
        stack = [tensor]
        while stack:
            node = producer.get(stack.pop())
            if node is None or id(node) in seen or id(node) in mine:
                continue
            mine[id(node)] = node
            stack.extend(node.input)
        seen.update(mine)
        ordered = sorted(mine.values(), key=lambda n: order[id(n)])
        parts.append([(n.name, n.op_type) for n in ordered])
    return parts


def weighted_nodes(nodes: List[Node]) -> List[Node]:
    """The nodes that hold weights int8 quantizes or atc may run in float16 (MatMul, Gemm, Conv)."""
    return [(name, op) for name, op in nodes if op in ("MatMul", "Gemm", "Conv")]
