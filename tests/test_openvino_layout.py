"""What OpenVINO reads: the ONNX's MatMul weights in FullyConnected's layout, each held once
(layout.py), the simplified ONNX as an IR with the same outputs, and an IR's weights file out of the
process's memory once compiled. No timing or size is asserted."""
from __future__ import annotations

import json

import numpy as np
import pytest

from stages.__main__ import main
from stages.elmo.charids import batch_ids

openvino = pytest.importorskip("openvino")
WORD_LEN = 8


@pytest.fixture(scope="module")
def fixture_onnx(bilm_sim_onnx):
    return bilm_sim_onnx


@pytest.fixture(scope="module")
def ids(fixture_sentences):
    return batch_ids([s[:WORD_LEN] for s in fixture_sentences[0][:3]], WORD_LEN)


def _matmul_weights(model):
    weights = []
    for node in model.get_ordered_ops():
        source = node.input_value(1).get_node() if node.get_type_name() == "MatMul" else None
        if source is not None and source.get_type_name() == "Constant" and len(source.get_output_shape(0)) == 2:
            weights.append((node.get_attributes()["transpose_b"], source.get_instance_id()))
    return weights


def test_every_matmul_weight_is_out_in_and_a_shared_weight_stays_one(fixture_onnx):
    import onnx

    from stages.backends.openvino import loader
    from stages.backends.openvino.layout import weights_out_in

    graph = onnx.load(str(fixture_onnx)).graph
    constants = {i.name for i in graph.initializer if len(i.dims) == 2}
    # OpenVINO reads ONNX's Gemm (onnxsim's hoisted input projections) as a MatMul too.
    read = [n.input[1] for n in graph.node if n.op_type in ("MatMul", "Gemm") and n.input[1] in constants]
    assert len(read) > len(set(read))  # the unrolled steps share their weights: what is at stake
    model = loader.read_model(fixture_onnx)
    weights = _matmul_weights(model)
    assert len(weights) == len(read) and all(transposed for transposed, _ in weights)
    assert len({key for _, key in weights}) == len(set(read))
    assert weights_out_in(model) == 0  # read once already: nothing left to rewrite


def test_the_ir_of_the_onnx_answers_as_the_onnx_and_leaves_its_file(fixture_onnx, ids, tmp_path):
    from stages.backends.openvino.runner import OpenVinoRunner
    from stages.common.memory import file_rss_mb

    out = tmp_path / "elmo_fp32.ov"
    assert main(["openvino-ir", "--model", str(fixture_onnx), "--out", str(out), "--weights", "float32"]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["precision"] == "fp32" and manifest["runtime"]["nncf"] is None
    ir = OpenVinoRunner.load(out / "model.xml", setting="f32", threads=1)
    assert file_rss_mb(out / "model.bin") == 0.0  # compiled: the file's pages left the process
    onnx_runner = OpenVinoRunner.load(fixture_onnx, setting="f32", threads=1)
    for batch in (1, 3):  # recompiled for the second shape
        np.testing.assert_array_equal(ir.infer({"input": ids[:batch]})["output"],
                                      onnx_runner.infer({"input": ids[:batch]})["output"])


def test_an_unknown_weights_form_is_refused(fixture_onnx, tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["openvino-ir", "--model", str(fixture_onnx), "--out", str(tmp_path / "x.ov"), "--weights", "int4"])
    assert not (tmp_path / "x.ov").exists()


def test_a_released_runner_compiles_again_and_answers_the_same(fixture_onnx, ids):
    from stages.backends.openvino.runner import OpenVinoRunner

    runner = OpenVinoRunner.load(fixture_onnx, setting="f32", threads=1)
    before = runner.infer({"input": ids})["output"]
    runner.release()
    assert runner.compiled is None and runner.request is None
    np.testing.assert_array_equal(runner.infer({"input": ids})["output"], before)
