"""The token layer computed once per distinct token of a call, not once per position.

The char CNN, highway and projection map each token's 50 char ids to its vector, and nothing else
enters: a token's vector is the same wherever it stands. A batch repeats tokens a lot: every
sentence has the same ``<S>`` and ``</S>``, every padded position the same empty token, and words
recur. So ``Unique`` (over the ``[N, 50]`` rows of char ids) hands the token layer the distinct
rows, and a ``Gather`` with its inverse indices puts each position's vector back::

    ids [N, 50] -> Unique(axis=0) -> distinct [U, 50] -> char CNN, highway, projection -> [U, P]
                                  -> inverse [N] ---------------------------------------> Gather -> [N, P]

Same arithmetic per token. In the int8 model the per-tensor scales of the token layer's dynamic
quantization are taken over the distinct rows, whose minimum and maximum are those of all rows,
so they do not change either.

The pattern, as ``ElmoBiLM.token_embedding`` exports it: the ``Gather`` that looks the flat char ids
up in the ``char_table`` initializer, and the ``Add`` of ``proj_bias`` after the ``MatMul`` with
``proj_weight``. A graph without exactly one of each, or rewritten already, is left as it is.
"""
from __future__ import annotations

CHAR_TABLE, PROJ_WEIGHT, PROJ_BIAS = "elmo.char_table", "elmo.proj_weight", "elmo.proj_bias"


def unique_tokens(model) -> bool:
    """Rewrite ``model`` in place (see the module's docstring); returns whether it changed."""
    from onnx import helper

    graph = model.graph
    lookups = [n for n in graph.node if n.op_type == "Gather" and n.input and n.input[0] == CHAR_TABLE]
    projections = [n for n in graph.node if n.op_type == "MatMul" and PROJ_WEIGHT in n.input]
    if len(lookups) != 1 or len(projections) != 1:
        return False
    lookup, projection = lookups[0], projections[0]
    producer = {name: node for node in graph.node for name in node.output}
    if getattr(producer.get(lookup.input[1]), "op_type", None) == "Unique":
        return False  # rewritten already
    biases = [n for n in graph.node if n.op_type == "Add" and projection.output[0] in n.input and PROJ_BIAS in n.input]
    if len(biases) != 1:
        return False
    vectors = biases[0].output[0]
    if any(o.name == vectors for o in graph.output):
        return False
    ids, prefix = lookup.input[1], "unique_tokens"
    distinct, inverse, restored = f"{prefix}/distinct", f"{prefix}/inverse", f"{prefix}/vectors"
    unique = helper.make_node("Unique", [ids], [distinct, f"{prefix}/first", inverse, f"{prefix}/counts"], axis=0,
                              sorted=1, name=f"{prefix}/Unique")
    gather = helper.make_node("Gather", [vectors, inverse], [restored], axis=0, name=f"{prefix}/Gather")
    for node in graph.node:
        if node is not biases[0]:
            node.input[:] = [restored if name == vectors else name for name in node.input]
    lookup.input[1] = distinct
    nodes = list(graph.node)
    nodes.insert(nodes.index(lookup), unique)
    nodes.insert(nodes.index(biases[0]) + 1, gather)
    del graph.node[:]
    graph.node.extend(nodes)
    return True
