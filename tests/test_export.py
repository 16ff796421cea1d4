"""The exported ONNX graph (and onnxsim's version of it) is the PyTorch model,
padding included, on every sentence length."""
from __future__ import annotations

import json

import numpy as np
import onnx
import pytest

from stages.__main__ import main
from stages.elmo.charids import batch_ids, sentence_ids
from stages.elmo.elmo_options import ORIGINAL_OPTIONS, ElmoOptions
from stages.elmo.hdf5_weights import synthetic_weights, write_weights
from stages.reports.metrics import cosine
from stages.backends.runners import DYNAMIC_BLOCK_BASE, OrtRunner, TorchRunner, infer_all

WORD_LEN = 8


def _export(tmp_path, options, weights, *extra):
    tmp_path.mkdir(parents=True, exist_ok=True)
    raw = tmp_path / "elmo.onnx"
    sim = tmp_path / "elmo_sim.onnx"
    assert main(["export", "--options", str(options), "--weights", str(weights), "--word-len", str(WORD_LEN),
                 "--out", str(raw), *extra]) == 0
    assert main(["simplify", str(raw), str(sim)]) == 0
    return raw, sim


@pytest.fixture(scope="module")
def fixture_graphs(bilm_fixture, tmp_path_factory):
    folder = tmp_path_factory.mktemp("fixture-onnx")
    model = (bilm_fixture / "options.json", bilm_fixture / "lm_weights.hdf5")
    static = _export(folder / "static", *model, "--batch", "2")
    dynamic = _export(folder / "dyn", *model, "--dynamic-batch")
    return {"static": static, "dynamic": dynamic}


def test_graph_contract(fixture_graphs):
    raw, sim = fixture_graphs["static"]
    for path in (raw, sim):
        model = onnx.load(str(path))
        onnx.checker.check_model(model)
        assert max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")) == 11
        (graph_input,) = model.graph.input
        (graph_output,) = model.graph.output
        assert graph_input.name == "input" and graph_input.type.tensor_type.elem_type == onnx.TensorProto.INT32
        assert [d.dim_value for d in graph_input.type.tensor_type.shape.dim] == [2, WORD_LEN, 50]
        assert graph_output.name == "output" and graph_output.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
        assert [d.dim_value for d in graph_output.type.tensor_type.shape.dim] == [2, WORD_LEN, 32]
        assert not any(n.op_type in ("Loop", "Scan", "NonZero") for n in model.graph.node)
    info = json.loads((sim.parent / (sim.name + ".json")).read_text())
    assert info["nodes_before"] > info["nodes_after"] > 0


def test_dynamic_batch_graph(fixture_graphs):
    _, sim = fixture_graphs["dynamic"]
    runner = OrtRunner.load(sim)
    assert runner.static_batch is None and runner.word_len == WORD_LEN
    for batch in (1, 3, 5):
        assert runner.infer({"input": np.zeros((batch, WORD_LEN, 50), np.int32)})["output"].shape == (batch, WORD_LEN, 32)


def test_static_graph_refuses_other_shapes(fixture_graphs):
    from stages.common.errors import StageError

    runner = OrtRunner.load(fixture_graphs["static"][1])
    with pytest.raises(StageError, match="does not fit"):
        runner.infer({"input": np.zeros((3, WORD_LEN, 50), np.int32)})


@pytest.mark.parametrize("graph", ["static", "dynamic"])
def test_onnx_matches_pytorch_unpadded_every_length(fixture_graphs, fixture_sentences, bilm_fixture, graph):
    ort_runner = OrtRunner.load(fixture_graphs[graph][1])
    torch_runner = TorchRunner.load(bilm_fixture / "options.json", bilm_fixture / "lm_weights.hdf5")
    sentences = [s for row in fixture_sentences for s in row]
    worst = 1.0
    for n in range(1, WORD_LEN + 1):
        picked = [s[:n] for s in sentences if len(s) >= n][:4]
        ids = batch_ids(picked, WORD_LEN)
        out = infer_all(ort_runner, ids, batch_size=2)
        for row, tokens in enumerate(picked):
            alone = torch_runner.infer({"input": sentence_ids(tokens)[None]})["output"][0]
            worst = min(worst, float(cosine(out[row, :n], alone).min()))
            assert np.all(out[row, n:] == 0.0)
    assert worst >= 0.99999


def test_mixed_lengths_in_one_onnx_batch(fixture_graphs, fixture_sentences, bilm_fixture):
    ort_runner = OrtRunner.load(fixture_graphs["dynamic"][1])
    torch_runner = TorchRunner.load(bilm_fixture / "options.json", bilm_fixture / "lm_weights.hdf5")
    rows = [fixture_sentences[0][3], fixture_sentences[1][0][:8], fixture_sentences[2][5][:5],
            fixture_sentences[0][9][:1]]
    out = ort_runner.infer({"input": batch_ids(rows, WORD_LEN)})["output"]
    for row, tokens in enumerate(rows):
        alone = torch_runner.infer({"input": sentence_ids(tokens)[None]})["output"][0]
        assert cosine(out[row, : len(tokens)], alone).min() >= 0.99999


def test_all_layers_export(tmp_path, tiny_model):
    raw, sim = _export(tmp_path, *tiny_model, "--batch", "1", "--all-layers")
    out = OrtRunner.load(sim).infer({"input": batch_ids([["a", "b"]], WORD_LEN)})["output"]
    assert out.shape == (1, 3, WORD_LEN, 16)


def test_full_size_original_onnx_matches_pytorch(tmp_path):
    """A full-size synthetic Original model: the same graph the pipeline deploys."""
    options = tmp_path / "options.json"
    weights = tmp_path / "weights.hdf5"
    options.write_text(json.dumps(ORIGINAL_OPTIONS))
    write_weights(weights, synthetic_weights(ElmoOptions.from_dict(ORIGINAL_OPTIONS), seed=7))
    _, sim = _export(tmp_path, options, weights, "--dynamic-batch")
    info = json.loads((tmp_path / "elmo_sim.onnx.json").read_text())
    assert info["outputs"]["output"] == ["batch", WORD_LEN, 1024]
    sentences = [["The", "market", "fell", "sharply", "on", "Monday", "."], ["Yes", "."], ["Café", "Zürich"] * 4,
                 ["A"]]
    out = OrtRunner.load(sim).infer({"input": batch_ids(sentences, WORD_LEN)})["output"]
    torch_runner = TorchRunner.load(options, weights)
    for row, tokens in enumerate(sentences):
        alone = torch_runner.infer({"input": sentence_ids(tokens)[None]})["output"][0]
        assert cosine(out[row, : len(tokens)], alone).min() >= 0.99999


def test_sessions_on_one_shared_arena_give_the_same_outputs(fixture_graphs, fixture_sentences):
    """perf opens its ONNX Runtime variants on one shared arena: each session opts in, a second one
    reuses the arena registered for the first, and the outputs are those of a session of its own."""
    _, sim = fixture_graphs["dynamic"]
    ids = batch_ids([s[:WORD_LEN] for s in fixture_sentences[0][:5]], WORD_LEN)
    alone = OrtRunner.load(sim)
    shared = [OrtRunner.load(sim, shared_arena=True), OrtRunner.load(sim, optimize=False, shared_arena=True)]
    with pytest.raises(Exception, match="use_env_allocators"):  # not set: an arena of its own
        alone.session.get_session_options().get_session_config_entry("session.use_env_allocators")
    for runner in shared:
        assert runner.session.get_session_options().get_session_config_entry("session.use_env_allocators") == "1"
        for batch in (1, 5):
            np.testing.assert_array_equal(runner.infer({"input": ids[:batch]})["output"],
                                          alone.infer({"input": ids[:batch]})["output"])


def test_offline_models_hand_out_work_in_shrinking_blocks_plain_sessions_do_not(fixture_graphs, fixture_sentences):
    """The cpu target's saved offline models (``optimize=False``) run with ONNX Runtime's dynamic
    blocks; the baseline, a plain session, keeps ONNX Runtime's defaults. Same outputs either way."""
    _, sim = fixture_graphs["dynamic"]
    ids = batch_ids([s[:WORD_LEN] for s in fixture_sentences[0][:5]], WORD_LEN)
    plain, offline = OrtRunner.load(sim), OrtRunner.load(sim, optimize=False)
    entry = "session.dynamic_block_base"
    with pytest.raises(Exception, match="dynamic_block_base"):
        plain.session.get_session_options().get_session_config_entry(entry)
    assert offline.session.get_session_options().get_session_config_entry(entry) == str(DYNAMIC_BLOCK_BASE)
    overridden = OrtRunner.load(sim, optimize=False, dynamic_blocks=False)
    with pytest.raises(Exception, match="dynamic_block_base"):
        overridden.session.get_session_options().get_session_config_entry(entry)
    for batch in (1, 5):
        np.testing.assert_allclose(offline.infer({"input": ids[:batch]})["output"],
                                   overridden.infer({"input": ids[:batch]})["output"], rtol=0, atol=1e-6)
