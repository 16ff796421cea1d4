"""The cpu target's engines: which runtime serves each batch size of the fp32 offline model.

OpenVINO's compiled batch-1 model is exported beside the ONNX Runtime model where it serves, its
outputs match ONNX Runtime's, the runner holds one runtime's model at a time, ``auto`` keeps it only
where the probe timed it faster (no stale file otherwise), and a model this host cannot use is
refused in one line. No timing is asserted: the probe's figures are only checked for consistency."""
from __future__ import annotations

import json

import numpy as np
import pytest

from stages.__main__ import main
from stages.backends import engines
from stages.backends.runners import OrtRunner
from stages.common.errors import StageError
from stages.elmo.charids import batch_ids
from tests.conftest import make

pytest.importorskip("openvino")
WORD_LEN = 8


@pytest.fixture(scope="module")
def fixture_onnx(bilm_sim_onnx):
    return bilm_sim_onnx


@pytest.fixture(scope="module")
def ids(fixture_sentences):
    return batch_ids([s[:WORD_LEN] for s in fixture_sentences[0][:3]], WORD_LEN)


def _compile(sim, out, precision="fp32", engine="openvino", batches="1"):
    assert main(["compile", "--target", "cpu", "--model", str(sim), "--out", str(out), "--precision", precision,
                 "--threads", "1", "--engine", engine, "--batch", batches]) == 0
    return json.loads((out.parent / f"{out.name}.json").read_text())


def test_openvino_serves_batch_1_and_onnxruntime_the_rest(fixture_onnx, ids, tmp_path):
    out = tmp_path / "elmo_fp32.ort.onnx"
    manifest = _compile(fixture_onnx, out)
    blob = tmp_path / "elmo_fp32.b1.openvino"
    assert blob.is_file() and engines.openvino_files(out) == [blob]
    first, rest = manifest["engines"]
    assert first["runtime"] == "openvino" and first["batches"] == [1] and first["cpu"]["model"]
    (model,) = first["models"]
    assert model["batch"] == 1 and model["input_shape"] == [1, WORD_LEN, 50] and model["size"] == blob.stat().st_size
    assert rest == {"runtime": "onnxruntime", "version": rest["version"], "path": str(out), "batches": "others"}
    assert manifest["engine_choice"]["chosen"] == "openvino"

    runner = engines.load_offline(out, threads=1)
    assert isinstance(runner, engines.ByBatchRunner) and runner.held_runtime == "openvino"
    assert runner.word_len == WORD_LEN
    want = OrtRunner.load(out, threads=1, optimize=False).infer({"input": ids})["output"]
    single = np.concatenate([runner.infer({"input": ids[i : i + 1]})["output"] for i in range(len(ids))])
    assert runner.held_runtime == "openvino"
    np.testing.assert_allclose(single, want, rtol=0, atol=1e-5)
    assert all(not single[i, (ids[i].sum(-1) == 0)].any() for i in range(len(ids)))  # padding exactly zero
    batched = runner.infer({"input": ids})["output"]
    # The batched call swapped runtimes: OpenVINO's model is freed, ONNX Runtime's serves it.
    assert runner.held_runtime == "onnxruntime" and isinstance(runner.current, OrtRunner)
    np.testing.assert_array_equal(batched, want)
    assert engines.runtime_of(runner, 1) == "openvino" and engines.runtime_of(runner, 3) == "onnxruntime"


def test_a_released_by_batch_runner_loads_its_model_again(fixture_onnx, ids, tmp_path):
    out = tmp_path / "elmo_fp32.ort.onnx"
    _compile(fixture_onnx, out)
    runner = engines.load_offline(out, threads=1)
    before = runner.infer({"input": ids[:1]})["output"]
    runner.release()
    assert runner.held is None and runner.current is None
    np.testing.assert_array_equal(runner.infer({"input": ids[:1]})["output"], before)
    assert runner.held_runtime == "openvino"


def test_openvino_may_serve_several_batch_sizes_one_model_each(fixture_onnx, ids, tmp_path):
    out = tmp_path / "elmo_fp32.ort.onnx"
    manifest = _compile(fixture_onnx, out, batches="1 3")
    assert manifest["engines"][0]["batches"] == [1, 3]
    assert engines.openvino_files(out) == [engines.openvino_path(out, 1), engines.openvino_path(out, 3)]
    runner = engines.load_offline(out, threads=1, first_batch=3)
    assert runner.held == ("openvino", 3)
    got = runner.infer({"input": ids})["output"]
    np.testing.assert_allclose(got, OrtRunner.load(out, threads=1, optimize=False).infer({"input": ids})["output"],
                               rtol=0, atol=1e-5)
    runner.infer({"input": ids[:1]})
    assert runner.held == ("openvino", 1)  # one model held at a time
    runner.infer({"input": ids[:2]})
    assert runner.held == ("onnxruntime", None)


def test_the_infer_stage_runs_batch_1_on_the_runtime_the_manifest_names(fixture_onnx, ids, tmp_path):
    from stages.backends.infer import infer_cpu

    out = tmp_path / "elmo_fp32.ort.onnx"
    _compile(fixture_onnx, out)
    inputs = tmp_path / "bin"
    inputs.mkdir()
    for i, row in enumerate(ids):
        row.astype(np.int32).tofile(str(inputs / f"{i}.bin"))
    summary = infer_cpu(out, inputs, tmp_path / "outputs", threads=1, progress=False)
    assert summary["tool"]["name"] == "openvino" and summary["outputs"] == len(ids)


@pytest.mark.parametrize("faster", ["openvino", "onnxruntime"])
def test_auto_keeps_openvino_only_where_the_probe_timed_it_faster(fixture_onnx, tmp_path, monkeypatch, faster):
    """The probe's verdict decides; a batch-1 model left from an earlier build does not outlive a verdict
    against it."""
    out = tmp_path / "elmo_fp32.ort.onnx"
    blob = engines.openvino_path(out, 1)
    blob.write_bytes(b"an earlier build's")
    other = engines.openvino_path(out, 32)
    other.write_bytes(b"an earlier build's, for a batch size no longer asked for")
    timed = []

    def probe(runners, ids, **kwargs):
        timed.append(sorted(runners))
        assert ids.shape == (1, WORD_LEN, 50)
        return {"openvino": 2.0, "onnxruntime": 1.0} if faster == "openvino" else {"openvino": 1.0, "onnxruntime": 2.0}

    monkeypatch.setattr(engines, "probe", probe)
    manifest = _compile(fixture_onnx, out, engine="auto")
    choice = manifest["engine_choice"]
    assert timed == [["onnxruntime", "openvino"]]
    assert choice["asked"] == "auto" and choice["chosen"] == faster
    assert [e["runtime"] for e in manifest["engines"]] == (["openvino", "onnxruntime"] if faster == "openvino"
                                                          else ["onnxruntime"])
    assert blob.is_file() == (faster == "openvino") and not other.exists()
    if faster == "openvino":
        assert blob.stat().st_size == manifest["engines"][0]["models"][0]["size"]
    assert choice["sentences_per_s"]["1"][faster] == 2.0
    assert not [p for p in tmp_path.iterdir() if ".tmp-" in p.name]


def test_the_real_probe_times_both_and_its_verdict_matches_its_figures(fixture_onnx, ids, tmp_path):
    rates = engines.probe({"onnxruntime": OrtRunner.load(fixture_onnx, threads=1),
                           "openvino": _imported(fixture_onnx, tmp_path)}, ids[:1], rounds=2, seconds=0.05)
    assert set(rates) == {"onnxruntime", "openvino"} and all(r > 0 for r in rates.values())


def _imported(sim, tmp_path):
    from stages.backends.openvino import loader
    from stages.backends.openvino.runner import OpenVinoRunner

    blob = tmp_path / "b1.openvino"
    loader.export_compiled(sim, blob, shape=[1, WORD_LEN, 50], threads=1)
    return OpenVinoRunner.imported(blob, threads=1)


def test_an_exported_model_refuses_another_shape(fixture_onnx, ids, tmp_path):
    runner = _imported(fixture_onnx, tmp_path)
    with pytest.raises(StageError, match=r"input shape \[3, 8, 50\] does not fit the model's \[1, 8, 50\]"):
        runner.infer({"input": ids})


def test_an_imported_model_leaves_its_file_pages_and_still_answers_the_same(fixture_onnx, ids, tmp_path):
    """Imported, the file's pages leave the process (the plugin holds the weights in its own layout),
    and it answers as the model compiled straight from the ONNX. (What inference reads of the file
    again faults back in: at full size next to nothing, on this tiny model, whose small weights some
    kernels read as they are, more of it.)"""
    from stages.backends.openvino.runner import OpenVinoRunner
    from stages.common.memory import file_rss_mb

    runner = _imported(fixture_onnx, tmp_path)
    assert file_rss_mb(tmp_path / "b1.openvino") == 0.0
    compiled = OpenVinoRunner.load(fixture_onnx, setting="f32", threads=1)
    for _ in range(2):
        np.testing.assert_array_equal(runner.infer({"input": ids[:1]})["output"],
                                      compiled.infer({"input": ids[:1]})["output"])


def test_onnxruntime_leaves_no_openvino_model(fixture_onnx, tmp_path):
    out = tmp_path / "elmo_fp32.ort.onnx"
    _compile(fixture_onnx, out)
    assert engines.openvino_path(out, 1).is_file()
    manifest = _compile(fixture_onnx, out, engine="onnxruntime")
    assert not engines.openvino_files(out)
    assert manifest["engines"] == [dict(manifest["engines"][0], runtime="onnxruntime", batches="all")]
    assert isinstance(engines.load_offline(out, threads=1), OrtRunner)


def test_int8_on_openvino_runs_nncf_int8_weights(fixture_onnx, ids, tmp_path):
    """The int8 model's OpenVINO form: NNCF's int8 weights, OpenVINO's default activations; close to
    float32 as the int8 model is, padding exactly zero."""
    pytest.importorskip("nncf")
    from stages.reports.metrics import cosine

    out = tmp_path / "elmo_int8.ort.onnx"
    manifest = _compile(fixture_onnx, out, precision="int8")
    (ov_engine, rest) = manifest["engines"]
    assert ov_engine["batches"] == [1] and "INT8_ASYM" in ov_engine["weights_form"]
    assert ov_engine["setting"] == "default" and ov_engine["inference_precision"] in ("f32", "bf16", "f16")
    assert rest["runtime"] == "onnxruntime" and rest["batches"] == "others"
    runner = engines.load_offline(out, threads=1)
    single = np.concatenate([runner.infer({"input": ids[i : i + 1]})["output"] for i in range(len(ids))])
    want = OrtRunner.load(fixture_onnx, threads=1).infer({"input": ids})["output"]
    real = ids.sum(-1) > 0
    assert cosine(single[real], want[real]).min() >= 0.999 and not single[~real].any()
    # ONNX Runtime never runs batch 1 here: its model carries only the batched form, which answers
    # the batch of 3 as the two-form model built with CPU_ENGINE=onnxruntime does.
    import onnx

    from stages.graph.quantize import BATCHED_ONLY_FORM

    assert manifest["weights_form"] == BATCHED_ONLY_FORM
    assert not [n for n in onnx.load(str(out)).graph.node if n.op_type in ("If", "MatMulNBits")]
    batched = runner.infer({"input": ids})["output"]
    both = tmp_path / "both" / "elmo_int8.ort.onnx"
    both.parent.mkdir()
    manifest = _compile(fixture_onnx, both, precision="int8", engine="onnxruntime")
    assert not engines.openvino_files(both) and manifest["engine_choice"]["chosen"] == "onnxruntime"
    assert "MatMulNBits" in manifest["weights_form"]
    np.testing.assert_array_equal(batched, engines.load_offline(both, threads=1).infer({"input": ids})["output"])


@pytest.mark.parametrize("change, message", [
    (lambda m, blob: m["engines"][0].update(version="2020.1.0"), "compiled by OpenVINO 2020.1.0, this Python has"),
    (lambda m, blob: m["engines"][0]["cpu"].update(isa_flags=["asimd"]), "compiled on a CPU with other ISA extensions"),
    (lambda m, blob: blob.write_bytes(b"truncated"), "missing or not the file its manifest"),
    (lambda m, blob: blob.unlink(), "missing or not the file its manifest"),
])
def test_a_batch_1_model_this_host_cannot_use_is_refused_in_one_line(fixture_onnx, tmp_path, change, message):
    out = tmp_path / "elmo_fp32.ort.onnx"
    manifest = _compile(fixture_onnx, out)
    blob = engines.openvino_path(out, 1)
    change(manifest, blob)
    (tmp_path / f"{out.name}.json").write_text(json.dumps(manifest))
    with pytest.raises(StageError, match=message) as raised:
        engines.load_offline(out, threads=1)
    assert "make om" in str(raised.value) and "\n" not in str(raised.value)


def test_compile_refuses_a_bad_batch_list(fixture_onnx, tmp_path, capsys):
    assert main(["compile", "--target", "cpu", "--model", str(fixture_onnx), "--out", str(tmp_path / "m.ort.onnx"),
                 "--batch", "1 x"]) == 2
    assert "--batch '1 x': give batch sizes as positive integers" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


def test_make_refuses_an_unknown_cpu_engine():
    done = make("om", "CPU_ENGINE=fastest", check=False)
    assert done.returncode != 0 and 'CPU_ENGINE="fastest": use auto, onnxruntime or openvino' in done.stderr
    assert "CPU_ENGINE" in make("help").stdout


def test_a_host_without_openvino_is_told_how_to_go_on(fixture_onnx, tmp_path, monkeypatch):
    from stages.backends.openvino import loader

    out = tmp_path / "elmo_fp32.ort.onnx"
    _compile(fixture_onnx, out)
    def missing(what="openvino"):
        raise StageError(f"{what} is not installed in this Python")

    monkeypatch.setattr(loader, "available", lambda: False)
    monkeypatch.setattr(loader, "require", missing)
    with pytest.raises(StageError, match="OpenVINO serves batch 1 and is not installed in this Python; "
                                         r"rebuild it here with make om \(or CPU_ENGINE=onnxruntime\)"):
        engines.load_offline(out, threads=1)
    # Where it is missing at build time, auto serves every batch from ONNX Runtime and says why.
    manifest = _compile(fixture_onnx, out, engine="auto")
    assert manifest["engine_choice"]["reason"] == "OpenVINO is not installed in this Python"
    assert manifest["engines"] == [dict(manifest["engines"][0], runtime="onnxruntime", batches="all")]
    assert not engines.openvino_files(out)
