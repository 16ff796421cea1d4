"""`make locate`: per-layer comparison of the offline model against the PyTorch module.

On the trained bilm-tf fixture: the unperturbed model agrees at every layer (fp32); an offline
model built from weights with exactly one part perturbed (token layer, LSTM layer 1, LSTM layer 2)
fails the gate and locate names that part, on the CPU and on the Ascend target through its doubles.
The PyTorch reference always uses the original weights.
"""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys

import h5py
import numpy as np
import pytest

from stages.__main__ import main
from tests.conftest import REPO, make
from tests.test_ascend_pipeline import npu_host_env
from tests.test_formats import documented_keys

LABELS = {"token": "token layer", "lstm1": "LSTM layer 1", "lstm2": "LSTM layer 2"}
ORDER = ["token", "lstm1", "lstm2", "output"]


def _lstm(layer: int, name: str) -> list:
    return [f"RNN_{d}/RNN/MultiRNNCell/Cell{layer}/LSTMCell/{name}" for d in (0, 1)]


# The matrices of each part: noise, not a uniform scale (a scaled linear map keeps every cosine at 1).
PARTS = {
    "token": ["CNN_proj/W_proj", "CNN_high_0/W_transform"],
    "lstm1": _lstm(0, "W_0") + _lstm(0, "W_P_0"),
    "lstm2": _lstm(1, "W_0") + _lstm(1, "W_P_0"),
}


def perturbed_weights(fixture, part: str, dest):
    shutil.copyfile(fixture / "lm_weights.hdf5", dest)
    rng = np.random.default_rng(0)
    with h5py.File(dest, "r+") as f:
        for key in PARTS[part]:
            values = f[key][...]
            f[key][...] = values + rng.normal(0, values.std(), values.shape).astype(values.dtype)
    return dest


def debug_graph(fixture, weights, folder):
    """The debug graph from ``weights``, exported and simplified as make locate does (batch dynamic)."""
    raw, sim = folder / "debug.onnx", folder / "debug_sim.onnx"
    assert main(["export", "--options", str(fixture / "options.json"), "--weights", str(weights), "--word-len", "8",
                 "--dynamic-batch", "--checkpoints", "--out", str(raw)]) == 0
    assert main(["simplify", str(raw), str(sim)]) == 0
    return sim


@pytest.fixture(scope="module")
def cpu_run(tmp_path_factory, bilm_fixture):
    """make accuracy on the fixture with a gate no float32 run can meet (token cosine 1): the gate
    fails, so make runs locate by itself."""
    folder = tmp_path_factory.mktemp("locate")
    settings = [f"ARTIFACTS={folder / 'artifacts'}", f"ELMO_OPTIONS={bilm_fixture / 'options.json'}",
                f"ELMO_WEIGHTS={bilm_fixture / 'lm_weights.hdf5'}", "DATASET=sample", "WORD_LEN=8", "BATCH=1 4",
                "THREADS=2"]
    done = make("accuracy", *settings, "TOKEN_COS_MIN=1", check=False)
    artifacts = folder / "artifacts"
    (data,) = [p.parent for p in artifacts.glob("data/*/manifest.json")]
    (source,) = artifacts.glob("weights/*/source.json")
    return folder, artifacts, settings, done, data, source


def _report(folder):
    return json.loads((folder / "locate.json").read_text())


def test_failed_gate_runs_locate_and_names_the_layer(cpu_run):
    _, artifacts, settings, done, _, _ = cpu_run
    assert done.returncode != 0
    folder = artifacts / "reports" / "locate" / "cpu-fp32"
    report = _report(folder)
    first = report["first_below_gate"]
    # make's one-line verdict (the stages print their own lines before it)
    verdict = [line for line in done.stderr.splitlines() if line.startswith("accuracy: FAILED")][-1]
    assert verdict.startswith(f"accuracy: FAILED ({artifacts / 'reports' / 'accuracy.json'}); first layer below "
                              f"the gate: {first['label']}") and "locate.md" in verdict
    # Unperturbed fp32: every layer agrees to rounding, at batch 1 and at batch 4.
    assert [c["name"] for c in report["checkpoints"]] == ORDER
    assert [r["label"] for r in report["runs"]] == ["batch 1", "batch 4"]
    for run in report["runs"]:
        for checkpoint in run["checkpoints"]:
            assert checkpoint["token_cosine"]["min"] >= 0.99999 and checkpoint["padding_max_abs"] == 0.0
    # The sample starts from the accuracy run's worst sentences.
    accuracy = json.loads((artifacts / "reports" / "runs" / "cpu-fp32" / "accuracy.json").read_text())
    worst = [w["index"] for w in accuracy["worst_sentences"]]
    assert len(worst) == 16 and report["sample"]["indices"][:16] == worst
    assert report["sample"]["worst_from"].endswith("runs/cpu-fp32/accuracy.json")
    assert (folder / "locate.png").read_bytes()[:4] == b"\x89PNG"
    assert (folder / "locate.md").read_text().startswith(f"# Locate: first below the gate: {first['label']}")
    assert set(report) == documented_keys("elmo-locate/1")
    # Up to date: make locate with the same settings runs nothing.
    again = make("locate", *settings, "TOKEN_COS_MIN=1")
    assert "stages locate" not in again.stdout and "stages export" not in again.stdout


def test_locate_passes_with_the_usual_gate(cpu_run):
    _, artifacts, settings, _, _, _ = cpu_run
    done = make("locate", *settings)
    assert "every checkpoint passes the gate" in done.stdout
    report = _report(artifacts / "reports" / "locate" / "cpu-fp32")
    assert report["passed"] and report["first_below_gate"] is None


def _check_named(report, part):
    assert report["first_below_gate"]["name"] == part, report["checkpoints"]
    assert not report["passed"]
    by_name = {c["name"]: c for c in report["checkpoints"]}
    assert not by_name["output"]["passed"]  # the offline model itself fails the gate
    assert not by_name[part]["passed"] and by_name[part]["token_cosine_min"] < 0.99
    for before in ORDER[:ORDER.index(part)]:  # untouched parts agree as in fp32
        assert by_name[before]["token_cosine_min"] >= 0.99999


@pytest.mark.parametrize("part", list(PARTS))
def test_cpu_perturbed_part_is_named(cpu_run, bilm_fixture, part, tmp_path, capsys):
    _, _, _, _, data, source = cpu_run
    sim = debug_graph(bilm_fixture, perturbed_weights(bilm_fixture, part, tmp_path / "w.hdf5"), tmp_path)
    model = tmp_path / "debug_fp32.ort.onnx"
    assert main(["compile", "--target", "cpu", "--model", str(sim), "--out", str(model), "--precision", "fp32"]) == 0
    assert main(["locate", "--model", str(model), "--data", str(data), "--weights-source", str(source),
                 "--report-dir", str(tmp_path / "report")]) == 0
    report = _report(tmp_path / "report")
    _check_named(report, part)
    assert f"first below the gate: {report['first_below_gate']['label']}" in capsys.readouterr().out
    assert LABELS[part] in report["first_below_gate"]["label"]
    assert "graph or export fault" in (tmp_path / "report" / "locate.md").read_text()


def _int8_locate(cpu_run, bilm_fixture, part, batches, tmp_path):
    """``make locate``'s two stages on an int8 debug model whose ``part`` is perturbed: (report, the real
    simplified ONNX the advice names nodes from)."""
    _, artifacts, _, _, data, source = cpu_run
    sim = debug_graph(bilm_fixture, perturbed_weights(bilm_fixture, part, tmp_path / "w.hdf5"), tmp_path)
    model = tmp_path / "debug_int8.ort.onnx"
    assert main(["compile", "--target", "cpu", "--model", str(sim), "--out", str(model), "--precision", "int8"]) == 0
    (real,) = artifacts.glob("model/*/elmo_w8_dyn_sim.onnx")
    assert main(["locate", "--model", str(model), "--data", str(data), "--weights-source", str(source),
                 "--batch", *map(str, batches), "--onnx", str(real), "--report-dir", str(tmp_path / "report")]) == 0
    return _report(tmp_path / "report"), real


def test_int8_advice_names_the_nodes_to_keep_in_float(cpu_run, bilm_fixture, tmp_path):
    """int8 has no option to leave a part in float: the advice names that part's MatMul nodes, as
    they are named in the real graph that make om quantizes."""
    report, real = _int8_locate(cpu_run, bilm_fixture, "lstm1", (1, 4), tmp_path)
    assert report["precision"] == "int8" and report["first_below_gate"]["name"] == "lstm1"
    text = "\n".join(report["next_steps"]["lines"])
    assert "nodes_to_exclude" in text and "names in the real simplified ONNX" in text
    assert "PRECISION=fp32" in text and "MatMulNBits" in text and "DynamicQuantizeMatMul" in text
    import onnx

    real_names = {n.name for n in onnx.load(str(real)).graph.node}
    named = report["next_steps"]["weighted_nodes"]
    assert named and set(named) <= real_names and any("MatMul" in n for n in named)
    assert "char CNN convolutions" not in text  # LSTM layer 1 has none
    # The real model's int8 forms may differ from the debug model's: the advice says how to judge those.
    assert "CPU_ENGINE=onnxruntime" in text


def test_int8_advice_names_the_char_cnn_convolutions_as_quantized(cpu_run, bilm_fixture, tmp_path):
    """The batched int8 form quantizes the char CNN's convolutions as `<Conv>/MatMul` (char_convolutions.py):
    where the token layer loses accuracy, the advice names those MatMuls, as the quantizer sees them."""
    import onnx

    from stages.graph.char_convolutions import convolutions_as_matmuls

    report, real = _int8_locate(cpu_run, bilm_fixture, "token", (4,), tmp_path)
    assert report["first_below_gate"]["name"] == "token"
    line = next(l for l in report["next_steps"]["lines"] if "char CNN convolutions" in l)
    rewritten = onnx.load(str(real))
    convolutions = convolutions_as_matmuls(rewritten)
    quantizable = {n.name for n in rewritten.graph.node if n.op_type == "MatMul"}
    named = re.findall(r"`([^`]+/MatMul)`", line)
    assert convolutions and len(named) == convolutions and set(named) <= quantizable


# ---- the Ascend target, through the doubles ------------------------------------------------------

RELEASE = ("ais_bench-2025-master", "cann-8.0")


def test_ascend_make_locate_agrees_at_every_layer(cpu_run):
    folder, artifacts, settings, _, _, _ = cpu_run
    env = npu_host_env(folder, *RELEASE)
    done = make("locate", "TARGET=ascend", "DEVICES=0,1", *settings, env=env)
    (om,) = artifacts.glob("om/ascend/*/locate/*.om")
    assert om.name == "elmo_w8_b1-4.om"
    manifest = json.loads(om.with_name(om.name + ".json").read_text())
    assert "--dynamic_batch_size=1,4" in manifest["command"] and manifest["soc_version"] == "Ascend310P3"
    report = _report(artifacts / "reports" / "locate" / "ascend-b1-4")
    assert report["target"] == "ascend" and [r["label"] for r in report["runs"]] == ["om"]
    # The doubles run the .om's graph in float32, so this is the fp32 agreement.
    assert all(c["token_cosine_min"] >= 0.99999 for c in report["checkpoints"])
    assert "every checkpoint passes the gate" in done.stdout


def _stage(env, *args):
    done = subprocess.run([sys.executable, "-m", "stages", *args], cwd=str(REPO), env=env, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return done


@pytest.mark.parametrize("part", list(PARTS))
def test_ascend_perturbed_part_is_named(cpu_run, bilm_fixture, part, tmp_path):
    _, _, _, _, data, source = cpu_run
    env = npu_host_env(tmp_path, *RELEASE)
    sim = debug_graph(bilm_fixture, perturbed_weights(bilm_fixture, part, tmp_path / "w.hdf5"), tmp_path)
    om = tmp_path / "debug.om"
    _stage(env, "compile", "--target", "ascend", "--model", str(sim), "--out", str(om), "--batch", "1 4",
           "--word-len", "8")
    _stage(env, "locate", "--target", "ascend", "--model", str(om), "--data", str(data), "--weights-source",
           str(source), "--devices", "0,1", "--report-dir", str(tmp_path / "report"))
    report = _report(tmp_path / "report")
    _check_named(report, part)
    # What to try next on the NPU: atc's float32 modes (the om ran with the default, force_fp16), and
    # --keep_dtype, which this atc lists, with a file naming the part's operators.
    text = "\n".join(report["next_steps"]["lines"])
    assert "PRECISION_MODE=force_fp32" in text and "must_keep_origin_dtype" in text
    cfg = tmp_path / "report" / f"keep_dtype_{part}.cfg"
    import onnx

    names = cfg.read_text().split()
    assert names and set(names) <= {n.name for n in onnx.load(str(sim)).graph.node}
    assert f"--keep_dtype={cfg}" in text and "--output=<the .om, without .om>" in text
    assert "--modify_mixlist" in text


# ---- the pieces ------------------------------------------------------------------------------

def test_verdict_names_the_layer(tmp_path, capsys):
    from stages.reports.verdict import main as verdict

    accuracy = tmp_path / "accuracy.json"
    accuracy.write_text(json.dumps({"passed": False}))
    locate = tmp_path / "locate.json"
    locate.write_text(json.dumps({"first_below_gate": {"name": "lstm2", "label": "LSTM layer 2"},
                                  "checkpoints": [{"name": "lstm2", "token_cosine_min": 0.93}]}))
    assert verdict([str(accuracy), "--locate", str(locate)]) == 1
    assert "first layer below the gate: LSTM layer 2, token cos min 0.930000" in capsys.readouterr().err
    assert verdict([str(accuracy), "--locate", str(locate), "--locate-status", "2"]) == 1
    assert "make locate could not run (exit status 2" in capsys.readouterr().err
    accuracy.write_text(json.dumps({"passed": True}))
    assert verdict([str(accuracy)]) == 0 and "accuracy: PASSED" in capsys.readouterr().out


def test_perf_links_the_locate_report_of_a_failed_flavour(tmp_path):
    import os

    from stages.reports.perf import locate_links

    runs = tmp_path / "runs"
    for flavour, passed in (("cpu-fp32", True), ("cpu-int8", False)):
        (runs / flavour).mkdir(parents=True)
        (runs / flavour / "accuracy.json").write_text(json.dumps({"passed": passed, "target": "cpu",
                                                                  "precision": flavour[4:]}))
    reports = [str(runs / f / "accuracy.json") for f in ("cpu-fp32", "cpu-int8")]
    assert locate_links(reports, tmp_path) == [
        "- cpu-int8 failed the accuracy gate; `make locate PRECISION=int8` (same other settings) says which "
        "layer loses accuracy."]
    located = tmp_path / "locate" / "cpu-int8" / "locate.json"
    located.parent.mkdir(parents=True)
    located.write_text(json.dumps({"first_below_gate": {"name": "token", "label": "token layer"}}))
    later = os.stat(reports[1]).st_mtime + 1
    os.utime(located, (later, later))
    (line,) = locate_links(reports, tmp_path)
    assert "[locate/cpu-int8/locate.md](locate/cpu-int8/locate.md)" in line and "token layer" in line


def test_bad_arguments_are_one_line(tmp_path, capsys):
    assert main(["locate", "--model", str(tmp_path / "none.onnx"), "--data", str(tmp_path), "--weights-source",
                 str(tmp_path / "s.json"), "--run-only"]) == 2
    assert "--run-only writes the debug model's outputs: give --checkpoints" in capsys.readouterr().err
