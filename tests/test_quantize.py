"""The int8 offline model: two int8 forms behind one If on the batch size,
each taken where it should be, each close to float32; and a plain fallback
where ONNX Runtime lacks 8-bit MatMulNBits."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from stages.graph import quantize
from stages.elmo.charids import batch_ids
from stages.reports.metrics import cosine
from stages.backends.runners import OrtRunner


@pytest.fixture(scope="module")
def trained_onnx(bilm_sim_onnx):
    return bilm_sim_onnx


def _session(model, tmp_path, name):
    path = tmp_path / f"{name}.onnx"
    onnx.save(model, str(path))
    return OrtRunner.load(path, threads=1, optimize=False)


def _ids(fixture_sentences, batch):
    return batch_ids([row[:8] for row in fixture_sentences[0][:batch]], word_len=8)


def test_gemm_becomes_matmul_plus_add_exactly(tmp_path):
    rng = np.random.default_rng(0)
    weight, bias = rng.normal(size=(16, 8)).astype(np.float32), rng.normal(size=8).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("Gemm", ["input", "w", "b"], ["output"], name="g")], "gemm",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["n", 16])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["n", 8])],
        [numpy_helper.from_array(weight, "w"), numpy_helper.from_array(bias, "b")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    x = rng.normal(size=(3, 16)).astype(np.float32)
    before = _session(model, tmp_path, "gemm").session.run(None, {"input": x})[0]
    quantize.gemm_as_matmul(model)
    assert [n.op_type for n in model.graph.node] == ["MatMul", "Add"]
    after = _session(model, tmp_path, "matmul").session.run(None, {"input": x})[0]
    np.testing.assert_allclose(after, before, rtol=1e-6, atol=1e-6)


def test_this_onnxruntime_runs_8bit_blocks():
    assert quantize.blockwise_int8_supported() == ""


def test_each_batch_size_takes_its_form(trained_onnx, fixture_sentences, tmp_path):
    model, form = quantize.int8_model(trained_onnx)
    assert [n.op_type for n in model.graph.node][-1] == "If" and "MatMulNBits" in form
    dispatch = _session(model, tmp_path, "dispatch")
    single = _session(quantize.blockwise_int8(trained_onnx), tmp_path, "single")
    batched = _session(quantize.dynamic_int8(trained_onnx), tmp_path, "batched")
    reference = OrtRunner.load(trained_onnx, threads=1)

    one = _ids(fixture_sentences, 1)
    out = dispatch.infer({"input": one})["output"]
    np.testing.assert_array_equal(out, single.infer({"input": one})["output"])
    assert not np.array_equal(out, batched.infer({"input": one})["output"])

    many = _ids(fixture_sentences, 5)
    out = dispatch.infer({"input": many})["output"]
    np.testing.assert_array_equal(out, batched.infer({"input": many})["output"])
    assert not np.array_equal(out, single.infer({"input": many})["output"])

    # Both forms stay close to float32 on the trained weights, token by token.
    for ids in (one, many):
        got, want = dispatch.infer({"input": ids})["output"], reference.infer({"input": ids})["output"]
        real = np.abs(want).sum(-1) > 0
        assert cosine(got[real], want[real]).min() >= 0.999


def test_without_8bit_blocks_every_batch_gets_dynamic_int8(trained_onnx, monkeypatch):
    monkeypatch.setattr(quantize, "blockwise_int8_supported", lambda: "TypeError: bits=8 unsupported")
    model, form = quantize.int8_model(trained_onnx)
    ops = {n.op_type for n in model.graph.node}
    assert "If" not in ops and "MatMulNBits" not in ops and "MatMulInteger" in ops
    assert "DynamicQuantizeMatMul at every batch" in form and "bits=8 unsupported" in form


def test_the_offline_models_weights_live_outside_its_branches(trained_onnx, tmp_path):
    """ONNX Runtime keeps an If branch's initializers twice (protobuf and tensors) and an outer
    graph's once: the int8 model held 570 MB resident at full size with its weights in the
    branches, 208 MB with them outside."""
    from stages.backends.compile import compile_cpu

    out = tmp_path / "int8.ort.onnx"
    compile_cpu(trained_onnx, out, precision="int8", threads=1)
    model = onnx.load(str(out))
    branches = [a.g for n in model.graph.node for a in n.attribute if a.type == onnx.AttributeProto.GRAPH]
    assert len(branches) == 2
    in_branches = sum(numpy_helper.to_array(t).nbytes for g in branches for t in g.initializer)
    outside = sum(numpy_helper.to_array(t).nbytes for t in model.graph.initializer)
    assert in_branches <= 64 and outside > 100_000, (in_branches, outside)


def test_the_char_convolutions_become_matmuls_with_the_same_outputs(trained_onnx, fixture_sentences, tmp_path):
    from stages.graph.char_convolutions import convolutions_as_matmuls

    model = onnx.load(str(trained_onnx))
    convolutions = sum(n.op_type == "Conv" for n in model.graph.node)
    assert convolutions and convolutions_as_matmuls(model) == convolutions
    ops = [n.op_type for n in model.graph.node]
    assert "Conv" not in ops and ops.count("Transpose") == 0  # the Transpose fed only the convolutions
    onnx.checker.check_model(model)
    ids = _ids(fixture_sentences, 5)
    want = OrtRunner.load(trained_onnx, threads=1).infer({"input": ids})["output"]
    got = _session(model, tmp_path, "matmuls").infer({"input": ids})["output"]
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)  # float32 summed in another order
    assert convolutions_as_matmuls(model) == 0  # nothing left to rewrite


def test_a_convolution_off_the_pattern_is_left_alone(trained_onnx):
    from stages.graph.char_convolutions import convolutions_as_matmuls

    model = onnx.load(str(trained_onnx))
    padded = next(n for n in model.graph.node if n.op_type == "Conv")
    padded.attribute.append(helper.make_attribute("pads", [1, 1]))
    del padded.attribute[[a.name for a in padded.attribute].index("pads")]
    convolutions = sum(n.op_type == "Conv" for n in model.graph.node)
    assert convolutions_as_matmuls(model) == convolutions - 1
    assert [n.name for n in model.graph.node if n.op_type == "Conv"] == [padded.name]


def test_the_batched_form_quantizes_the_char_convolutions(trained_onnx):
    batched = quantize.dynamic_int8(trained_onnx)
    ops = [n.op_type for n in batched.graph.node]
    assert "Conv" not in ops and "ConvInteger" not in ops
    quantized = {n.name for n in batched.graph.node if n.op_type == "MatMulInteger"}
    assert any("Conv" in name for name in quantized)  # the convolutions' MatMuls are int8 too
