"""The cpu target's token layer runs once per distinct token of a call (stages/graph/unique_tokens.py)."""
from __future__ import annotations

import json

import numpy as np
import onnx
import pytest

from stages.backends.runners import OrtRunner
from stages.elmo.charids import batch_ids
from stages.backends.compile import REWRITE
from stages.graph.unique_tokens import unique_tokens


def _run(model_or_path, ids, tmp_path, name="m"):
    """ONNX Runtime's output for ``ids`` from a model file, or from an in-memory model saved first."""
    path = model_or_path
    if isinstance(model_or_path, onnx.ModelProto):
        path = tmp_path / f"{name}.onnx"
        onnx.save(model_or_path, str(path))
    return OrtRunner.load(path, threads=1).infer({"input": ids})["output"]


def _ops(graph) -> set:
    """Operator types in ``graph`` and its subgraphs."""
    found = set()
    for node in graph.node:
        found.add(node.op_type)
        for attribute in node.attribute:
            if attribute.type == onnx.AttributeProto.GRAPH:
                found |= _ops(attribute.g)
    return found


def test_the_same_outputs_from_the_distinct_tokens(bilm_sim_onnx, fixture_sentences, tmp_path):
    model = onnx.load(str(bilm_sim_onnx))
    assert unique_tokens(model)
    onnx.checker.check_model(model)
    ops = [n.op_type for n in model.graph.node]
    assert ops.count("Unique") == 1
    # Repeats of every kind: the sentence marks, the padding, a word in two sentences, a whole sentence twice.
    rows = [row[:8] for row in fixture_sentences[0][:4]]
    rows += [rows[0], ["the", "the", "the"], [rows[1][0]]]
    ids = batch_ids(rows, word_len=8)
    want = _run(bilm_sim_onnx, ids, tmp_path)
    got = _run(model, ids, tmp_path, "unique")
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)
    assert np.all(got[ids.sum(-1) == 0] == 0)  # padded positions stay exactly zero
    # One sentence, no repeats but its marks and padding: the same too.
    np.testing.assert_allclose(_run(model, ids[:1], tmp_path, "unique"), want[:1], rtol=0, atol=1e-6)


def test_a_graph_without_the_pattern_is_left_alone(bilm_sim_onnx):
    model = onnx.load(str(bilm_sim_onnx))
    assert unique_tokens(model)
    before = [n.name for n in model.graph.node]
    assert not unique_tokens(model) and [n.name for n in model.graph.node] == before  # rewritten once
    other = onnx.load(str(bilm_sim_onnx))
    for init in other.graph.initializer:
        if init.name == "elmo.proj_weight":
            init.name = "renamed"
    for node in other.graph.node:
        node.input[:] = ["renamed" if name == "elmo.proj_weight" else name for name in node.input]
    names = [n.name for n in other.graph.node]
    assert not unique_tokens(other) and [n.name for n in other.graph.node] == names


def test_the_cpu_offline_model_records_it_and_matches_float32(bilm_sim_onnx, fixture_sentences, tmp_path):
    """make om's cpu model carries the rewrite in both precisions; its manifest says so."""
    from stages.__main__ import main

    ids = batch_ids([row[:8] for row in fixture_sentences[0][:6]] * 2, word_len=8)
    want = _run(bilm_sim_onnx, ids, tmp_path)
    for precision, atol in (("fp32", 1e-6), ("int8", None)):
        out = tmp_path / f"elmo_{precision}.ort.onnx"
        assert main(["compile", "--target", "cpu", "--model", str(bilm_sim_onnx), "--out", str(out),
                     "--precision", precision, "--threads", "1"]) == 0
        manifest = json.loads(out.with_name(out.name + ".json").read_text())
        assert manifest["graph_rewrites"] == [REWRITE]
        graph = onnx.load(str(out), load_external_data=False)
        assert "Unique" in _ops(graph.graph)  # int8: in both forms, behind the If on the batch size
        assert not list(tmp_path.glob("*cpu-graph*"))  # the rewritten graph was scratch
        got = OrtRunner.load(out, threads=1, optimize=False).infer({"input": ids})["output"]
        if atol is not None:
            np.testing.assert_allclose(got, want, rtol=0, atol=atol)
        else:
            real = ids.sum(-1) > 0
            a, b = got[real], want[real]
            cos = (a * b).sum(-1) / np.linalg.norm(a, axis=-1) / np.linalg.norm(b, axis=-1)
            assert cos.min() > 0.999, cos.min()


def test_batch_1_forms_compile_the_graph_as_it_is(bilm_sim_onnx, tmp_path):
    """OpenVINO's batch-1 model is compiled from the simplified ONNX as it is, its batched ones with the
    distinct-token layer; likewise int8's batch-1 MatMulNBits form in ONNX Runtime."""
    pytest.importorskip("openvino")
    from stages.__main__ import main
    from stages.backends import engines
    from stages.backends.openvino import loader

    out = tmp_path / "elmo_fp32.ort.onnx"
    assert main(["compile", "--target", "cpu", "--model", str(bilm_sim_onnx), "--out", str(out), "--precision",
                 "fp32", "--threads", "1", "--engine", "openvino", "--batch", "1 4"]) == 0
    layers = {}
    for batch in (1, 4):
        compiled, _mapping = loader.import_compiled(engines.openvino_path(out, batch), threads=1)
        layers[batch] = {op.get_rt_info()["layerType"].astype(str) for op in compiled.get_runtime_model().get_ops()}
    assert "Unique" not in layers[1] and "Unique" in layers[4], layers

    from stages.graph.quantize import blockwise_int8_supported

    if blockwise_int8_supported():
        pytest.skip(f"no 8-bit MatMulNBits in this onnxruntime: {blockwise_int8_supported()}")
    out = tmp_path / "elmo_int8.ort.onnx"
    assert main(["compile", "--target", "cpu", "--model", str(bilm_sim_onnx), "--out", str(out), "--precision",
                 "int8", "--threads", "1"]) == 0
    (dispatch,) = [n for n in onnx.load(str(out)).graph.node if n.op_type == "If"]
    for branch in (a.g for a in dispatch.attribute):
        ops = _ops(branch)
        assert ("Unique" in ops) == ("MatMulNBits" not in ops), ops
