"""The whole chain through make, on small models: data -> export -> simplify ->
offline model -> infer -> accuracy -> perf, and the reruns a user relies on."""
from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import PERF, REPO, make, tiny_settings


def test_accuracy_report(first_run):
    artifacts, _, done = first_run
    report = json.loads((artifacts / "reports" / "accuracy.json").read_text())
    assert report["schema"] == "elmo-accuracy/1" and report["passed"] is True
    assert report["target"] == "cpu" and report["precision"] == "fp32"
    assert report["weights"]["synthetic"] is True and "SYNTHETIC" in report["weights"]["label"]
    assert "shipped sample" in report["data"]["label"]
    assert report["data"]["samples"] >= 150 and len(report["data"]["source_files"]) == 2
    assert all(len(f["sha256"]) == 64 for f in report["data"]["source_files"])
    assert Path(report["data"]["sentences"]).is_file() and Path(report["data"]["inputs"]).is_dir()
    assert report["padding_max_abs"] == 0.0
    by_ref = {c["reference"]: c for c in report["comparisons"]}
    # The cpu model is judged at batch 1 (infer) and at the largest BATCH (4 here).
    assert set(by_ref) == {"onnxruntime-fp32", "pytorch-unpadded", "onnxruntime-fp32 (target batch 4)"}
    for comparison in by_ref.values():
        assert comparison["token_cosine"]["min"] >= 0.99999
        assert comparison["sentence_cosine"]["count"] == report["data"]["samples"]
    assert (artifacts / "reports" / "accuracy.md").read_text().startswith("# Accuracy: PASSED")
    assert (artifacts / "reports" / "accuracy_hist.png").read_bytes()[:4] == b"\x89PNG"
    assert "accuracy: PASSED" in done.stdout


def test_outputs_in_ais_bench_layout(first_run):
    artifacts, _, _ = first_run
    (summary_path,) = artifacts.glob("outputs/cpu/*/*_fp32/summary.json")
    summary = json.loads(summary_path.read_text())
    assert summary["schema"] == "elmo-infer-summary/1"
    assert summary["inputs"] == summary["outputs"] == len(list(summary_path.parent.glob("*_0.bin")))
    assert summary["throughput"] == pytest.approx(1000.0 / summary["latency_ms"]["mean"])
    first = np.fromfile(str(summary_path.parent / "0_0.bin"), dtype=np.float32)
    assert first.size == 8 * 16  # [1, WORD_LEN, 2 x projection_dim]


def test_perf_report(first_run):
    artifacts, _, _ = first_run
    report = json.loads((artifacts / "reports" / "perf.json").read_text())
    assert report["schema"] == "elmo-perf/1" and report["weights_synthetic"] is True
    kinds = {(r["kind"], r["batch"]) for r in report["results"]}
    peers = ("peer",) if importlib.util.find_spec("openvino") else ()  # PERF_PEERS=auto: where it is installed
    assert kinds == {(k, b) for k in ("baseline", "target", "variant", "pytorch") + peers for b in (1, 4)}
    gates = {(r["kind"], r["precision"]): r["accuracy_gate"] for r in report["results"]}
    assert gates[("target", "fp32")] == "passed" and gates[("variant", "int8")] == "passed"
    summary = {m["precision"]: m for m in report["summary"] if m["kind"] != "peer"}
    assert set(summary) == {"fp32", "int8"}
    for m in summary.values():
        assert m["best_batch"] in (1, 4) and m["best_sentences_per_s"] >= m["batch1_sentences_per_s"] > 0
        assert m["batch1_vs_seed"] is None  # no seed graph in this run
        assert m["best_vs_baseline_batch1"] > 0
    assert gates[("baseline", "fp32")] == "reference"
    assert report["peak_rss_mb"]["onnxruntime_variants"] > 0 and report["peak_rss_mb"]["pytorch_worker"] > 0
    # Which runtime serves each batch size of each model: make om's probe decided, its manifest says.
    openvino_batches = {}
    for precision in ("fp32", "int8"):
        (model,) = artifacts.glob(f"om/cpu/*/*_{precision}.ort.onnx")
        engines = json.loads(Path(f"{model}.json").read_text())["engines"]
        openvino_batches[precision] = {b for e in engines if e["runtime"] == "openvino" for b in e["batches"]}
        assert ("openvino" in summary[precision]["engines"]) == bool(openvino_batches[precision])
    # int8's ONNX Runtime form: both int8 forms, or the batched one alone where OpenVINO serves batch 1.
    from stages.graph.quantize import BATCHED_ONLY_FORM

    assert (summary["int8"]["weights_form"] == BATCHED_ONLY_FORM) == (1 in openvino_batches["int8"])
    assert ("MatMulNBits" in summary["int8"]["weights_form"]) == (1 not in openvino_batches["int8"])
    for r in report["results"]:
        assert r["iterations"] >= 1 and r["sentences_per_s"] > 0
        assert r["latency_ms"]["p50"] <= r["latency_ms"]["p90"] <= r["latency_ms"]["p99"]
        assert r["roofline"]["flops_per_sentence"] > 0
        # Each row names the ceiling it was judged against and the kernel that ran.
        roof, kernel = r["roofline"], r["kernel"]
        assert roof["ceiling"] in ("fp32", "int8", "bf16") and roof["ceiling_gop_per_s"] > 0
        if r["precision"] == "fp32" or r["kind"] == "peer" and r["precision"] == "int8":  # NNCF: f32 compute
            assert roof["ceiling"] == "fp32" and roof["ceiling_note"] is None
        elif r["precision"] == "int8":
            assert roof["ceiling"] == "int8" and roof["ceiling_gop_per_s"] == report["machine"]["int8_gemm_gop_per_s"]
        assert kernel["name"] and kernel["source"]
        if r["kind"] == "peer" or r["kind"] in ("target", "variant") and r["batch"] in openvino_batches[r["precision"]]:
            # OpenVINO's: measured, read from the compiled model's runtime graph
            assert kernel["runtime"] == "openvino" and kernel["ops"] and "runtime graph" in kernel["source"]
        elif r["kind"] != "pytorch":
            assert kernel["runtime"] == "onnxruntime" and kernel["source"] == "derived from the ISA flags"
    machine = report["machine"]
    assert set(machine["ceilings"]) == {"fp32", "int8", "bf16"} and machine["ceilings"]["int8"]["gop_per_s"] > 0
    bf16 = machine["ceilings"]["bf16"]
    assert (bf16["gop_per_s"] is None) == bool(bf16["reason"])
    if not machine["isa"]["bf16"]:
        assert bf16["gop_per_s"] is None and "no bf16 path" in bf16["reason"]
    assert machine["cpu"] and machine["cpu_arch"] and set(machine["runtimes"]) >= {"onnxruntime", "openvino"}
    int8_rows = [r for r in report["results"] if r["kind"] == "variant" and r["batch"] not in openvino_batches["int8"]]
    assert {r["batch"]: r["kernel"]["name"].split(",")[0] for r in int8_rows} == \
        {b: k for b, k in {1: "MLAS SQNBitGemm 8-bit blocks", 4: "MLAS QGEMM u8s8"}.items()
         if b not in openvino_batches["int8"]}
    for m in report["summary"]:
        assert m["ceiling"] and m["best_fraction_of_floor"] > 0 and m["kernels"]
    md = (artifacts / "reports" / "perf.md").read_text()
    assert "compute ceilings, measured in this run: fp32 " in md and "| ceiling | floor fraction b1 |" in md
    baseline = [r for r in report["results"] if r["kind"] == "baseline"]
    assert all(r["speedup_vs_baseline_same_batch"] == 1.0 for r in baseline)
    assert [p["sentences_per_s"] for p in report["published"]] == [41.78, 26.74]
    assert all(p["label"] == "published, other hardware" for p in report["published"])
    assert (artifacts / "reports" / "perf.png").read_bytes()[:4] == b"\x89PNG"


def test_variant_failing_the_gate_is_reported_failing(tiny_synthetic, first_run):
    artifacts, settings, _ = first_run
    done = make("perf", *settings, "TOKEN_COS_MIN=0.9999999")
    report = json.loads((artifacts / "reports" / "perf.json").read_text())
    gates = {r["precision"]: r["accuracy_gate"] for r in report["results"] if r["kind"] in ("target", "variant")}
    assert gates == {"fp32": "passed", "int8": "FAILED"}
    assert "FAILED" in (artifacts / "reports" / "perf.md").read_text()
    assert done.returncode == 0


def test_rerun_does_nothing(first_run):
    _, settings, _ = first_run
    make("accuracy", "perf", *settings)  # settle after the tests above changed settings
    done = make("accuracy", "perf", *settings)
    assert "-m stages" not in done.stdout


def test_changed_setting_redoes_only_what_depends_on_it(first_run):
    _, settings, _ = first_run
    done = make("accuracy", *settings, "TOKEN_COS_MIN=0.995")
    assert "stages accuracy" in done.stdout
    for stage in ("weights", "data", "export", "simplify", "compile", "infer"):
        assert f"stages {stage}" not in done.stdout


def test_failed_gate_exits_nonzero_and_fails_again(first_run):
    artifacts, settings, _ = first_run
    for _ in range(2):
        done = make("accuracy", *settings, "TOKEN_COS_MIN=1", check=False)
        assert done.returncode != 0
        assert "accuracy: FAILED" in done.stderr
    assert json.loads((artifacts / "reports" / "accuracy.json").read_text())["passed"] is False


def test_killed_run_is_finished_by_rerun(tmp_path):
    settings = tiny_settings(tmp_path)
    proc = subprocess.Popen(["make", "-C", str(REPO), "accuracy", *settings], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 120
    # Kill it while the data stage or later is writing (a temporary is on disk).
    def writing() -> bool:
        try:
            artifacts = tmp_path / "artifacts"
            return bool(list(artifacts.glob("**/.*.tmp-*")) and list(artifacts.glob("model/*/*.onnx")))
        except FileNotFoundError:  # a temporary renamed away while glob walked it
            return False

    while time.time() < deadline and proc.poll() is None and not writing():
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    done = make("accuracy", *settings)
    assert "accuracy: PASSED" in done.stdout
    assert not list((tmp_path / "artifacts").glob("**/.*.tmp-*"))


def test_int8_gate_holds_on_trained_fixture(bilm_fixture, tmp_path):
    """Random weights can flatter quantization: judge int8 on the trained bilm-tf model too."""
    settings = [f"ARTIFACTS={tmp_path / 'a'}", f"ELMO_OPTIONS={bilm_fixture / 'options.json'}",
                f"ELMO_WEIGHTS={bilm_fixture / 'lm_weights.hdf5'}", "PRECISION=int8", *PERF]
    make("accuracy", *settings)
    report = json.loads((tmp_path / "a" / "reports" / "accuracy.json").read_text())
    assert report["passed"] and report["precision"] == "int8" and report["weights"]["kind"] == "user"
    # Both int8 forms are judged: batch 1 (MatMulNBits, or OpenVINO + NNCF where make om's probe gave
    # it batch 1) and batch 4 (DynamicQuantizeMatMul).
    manifest = report["model"]["manifest"]
    openvino_serves_batch1 = any(e["runtime"] == "openvino" and 1 in e["batches"] for e in manifest["engines"])
    assert ("MatMulNBits" in manifest["weights_form"]) != openvino_serves_batch1
    by_ref = {c["reference"]: c for c in report["comparisons"]}
    assert by_ref["pytorch-unpadded"]["token_cosine"]["min"] >= 0.99
    assert by_ref["onnxruntime-fp32 (target batch 4)"]["token_cosine"]["min"] >= 0.99


def test_bad_settings_are_one_clear_line():
    done = make("om", "TARGET=gpu", check=False)
    assert done.returncode != 0 and "TARGET=gpu: use cpu or ascend" in done.stderr
    done = make("om", "RUNNER=podman", check=False)
    assert done.returncode != 0 and "RUNNER=podman: use host or docker" in done.stderr


def test_help_lists_targets_and_variables():
    out = make("help").stdout
    for word in ("om", "accuracy", "perf", "clean", "test", "TARGET", "RUNNER", "WORD_LEN", "BATCH", "FILE_NUM",
                 "WEIGHTS", "DATASET", "ARTIFACTS", "PRECISION"):
        assert word in out


def test_fewer_outputs_than_inputs_is_an_error(first_run, tmp_path, capsys):
    import shutil

    from stages.__main__ import main

    artifacts = first_run[0]
    (outputs,) = [p.parent for p in artifacts.glob("outputs/cpu/*/*_fp32/summary.json")]
    partial = tmp_path / "outputs"
    shutil.copytree(outputs, partial)
    (partial / "5_0.bin").unlink()
    (data,) = [p.parent for p in artifacts.glob("data/*/manifest.json")]
    (sim,) = artifacts.glob("model/*/*_sim.onnx")
    (source,) = artifacts.glob("weights/*/source.json")
    code = main(["accuracy", "--data", str(data), "--outputs", str(partial), "--onnx", str(sim),
                 "--weights-source", str(source), "--report-dir", str(tmp_path / "reports")])
    assert code == 2 and "5_0.bin: missing output for input 5.bin" in capsys.readouterr().err
    assert not (tmp_path / "reports" / "accuracy.json").exists()


def test_wrong_size_input_is_named(first_run, tmp_path, capsys):
    import shutil

    from stages.__main__ import main

    artifacts = first_run[0]
    (data,) = [p.parent for p in artifacts.glob("data/*/manifest.json")]
    inputs = tmp_path / "bin"
    shutil.copytree(data / "bin", inputs)
    (inputs / "3.bin").write_bytes(b"\0" * 100)
    (model,) = artifacts.glob("om/cpu/*/*_fp32.ort.onnx")
    assert main(["infer", "--model", str(model), "--input", str(inputs), "--output", str(tmp_path / "out")]) == 2
    assert "3.bin: 100 bytes, expected 1600" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
