"""OpenVINO as make perf's peer: the runner agrees with ONNX Runtime float32, perf.json carries the
peers with real verdicts, PERF_PEERS=none leaves them out, and asking for OpenVINO where it is not
installed is one line. No timing is asserted."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import REPO

openvino = pytest.importorskip("openvino")


def _tiny_paths(artifacts: Path) -> dict:
    (sim,) = artifacts.glob("model/*/elmo_w8_dyn_sim.onnx")
    (data,) = [p.parent for p in artifacts.glob("data/*/manifest.json")]
    (ir,) = artifacts.glob("om/openvino/*/elmo_w8_dyn_nncf-int8.ov/model.xml")
    (source,) = artifacts.glob("weights/*/source.json")
    return {"sim": sim, "data": data, "ir": ir, "source": source}


def _ids(data: Path) -> tuple:
    from stages.sources.data import load_samples, read_bin

    manifest, sentences = load_samples(data)
    ids = np.concatenate([read_bin(data / "bin" / f"{i}.bin", manifest["word_len"]) for i in range(len(sentences))])
    return ids, [len(s) for s in sentences]


@pytest.mark.parametrize("static", [True, False])
def test_runner_matches_onnxruntime_fp32(first_run, static):
    from stages.backends.openvino.runner import OpenVinoRunner
    from stages.backends.runners import OrtRunner, infer_all
    from stages.reports.metrics import compare

    paths = _tiny_paths(first_run[0])
    ids, lengths = _ids(paths["data"])
    want = infer_all(OrtRunner.load(paths["sim"], threads=2), ids, batch_size=4)
    runner = OpenVinoRunner.load(paths["sim"], setting="f32", threads=2, static=static)
    assert runner.inference_precision == "f32"
    for batch in (1, 4):  # a static runner recompiles for each batch size
        got = infer_all(runner, ids, batch_size=batch)
        assert got.shape == want.shape and got.dtype == np.float32
        np.testing.assert_allclose(got, want, atol=1e-5, rtol=0)
        raw = compare([got[i, :n] for i, n in enumerate(lengths)], [want[i, :n] for i, n in enumerate(lengths)])
        assert raw["token_cosine"].min() >= 0.99999
        assert all(not got[i, n:].any() for i, n in enumerate(lengths))  # padding exactly zero


def test_nncf_ir_is_made_once_with_a_manifest(first_run):
    paths = _tiny_paths(first_run[0])
    manifest = json.loads((paths["ir"].parent / "manifest.json").read_text())
    assert manifest["schema"] == "elmo-openvino-ir/1" and manifest["precision"] == "int8"
    assert Path(manifest["onnx"]) == paths["sim"] and manifest["runtime"]["nncf"]
    assert paths["ir"].with_suffix(".bin").stat().st_size > 0


def test_perf_json_has_peer_rows_with_verdicts(first_run):
    artifacts = first_run[0]
    report = json.loads((artifacts / "reports" / "perf.json").read_text())
    peers = {p["variant"]: p for p in report["peers"]}
    assert peers and all(p["runtime"] == "openvino" for p in peers.values())
    assert {p["source"] for p in peers.values()} == {"onnx", "nncf"}
    rows = [r for r in report["results"] if r["kind"] == "peer"]
    assert {r["variant"] for r in rows} == set(peers) and {r["batch"] for r in rows} == {1, 4}
    for p in peers.values():
        # A real verdict: the comparison ran at batch 1 and the largest batch over every sentence.
        assert [run["batch"] for run in p["runs"]] == [1, 4]
        assert all(run["token_cosine"]["count"] > 0 and run["padding_max_abs"] == 0.0 for run in p["runs"])
        assert p["passed"] == all(run["passed"] for run in p["runs"])
        assert all(run["passed"] == (run["token_cosine"]["min"] >= 0.99 and run["sentence_cosine"]["mean"] >= 0.99)
                   for run in p["runs"])
        assert p["gate"] == {"sentence_cosine_mean_min": 0.99, "token_cosine_min": 0.99}
    assert all(r["accuracy_gate"] == peers[r["variant"]]["accuracy_gate"] for r in rows)
    exact = next(p for p in peers.values() if p["source"] == "onnx" and p["setting"] == "f32")
    assert exact["passed"] and exact["token_cosine_min"] >= 0.99999
    assert {(c["class"], c["point"]) for c in report["peer_comparison"]} == {
        (k, point) for k in ("exact fp32", "reduced precision") for point in ("batch 1", "best batch <= 32")}
    for c in report["peer_comparison"]:
        if c["project"] and c["peer"]:
            assert c["project_vs_peer"] == pytest.approx(c["project"]["sentences_per_s"] / c["peer"]["sentences_per_s"])
    assert report["machine"]["runtimes"]["openvino"] and report["machine"]["runtimes"]["onnxruntime"]
    assert report["peak_rss_mb"]["process"] >= report["peak_rss_mb"]["onnxruntime_before_peers"] > 0
    # Where the peak comes from: memory after each phase, in order, the last peak the process's.
    trace = report["memory_trace"]
    assert [p["after"] for p in trace] == ["loading the ONNX Runtime variants", "loading the peers",
                                           "judging the peers", "batch 1", "batch 4"]
    assert all(p["rss_mb"] > 0 and p["peak_rss_mb"] >= p["rss_mb"] for p in trace)
    assert [p["peak_rss_mb"] for p in trace] == sorted(p["peak_rss_mb"] for p in trace)
    assert trace[-1]["peak_rss_mb"] <= report["peak_rss_mb"]["process"] + 0.1
    md = (artifacts / "reports" / "perf.md").read_text()
    assert "Memory of the perf process" in md
    assert "Against the peers" in md and "exact fp32" in md and "openvino" in md


def _perf_command(artifacts: Path, out: Path, *extra, model=None) -> list:
    paths = _tiny_paths(artifacts)
    if model is None:
        (model,) = artifacts.glob("om/cpu/*/elmo_w8_dyn_fp32.ort.onnx")
    return [sys.executable, "-m", "stages", "perf", "--model", str(model), "--onnx", str(paths["sim"]),
            "--data", str(paths["data"]), "--weights-source", str(paths["source"]), "--batch", "1",
            "--seconds", "0.05", "--rounds", "1", "--threads", "2", "--no-torch", "--no-progress",
            "--report-dir", str(out), *extra]


def test_perf_peers_none_leaves_them_out(first_run, tmp_path):
    done = subprocess.run(_perf_command(first_run[0], tmp_path, "--peers", "none"), cwd=REPO, capture_output=True,
                          text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads((tmp_path / "perf.json").read_text())
    assert report["peers"] == [] and report["peer_comparison"] == []
    assert not [r for r in report["results"] if r["kind"] == "peer"]
    assert report["peak_rss_mb"]["peers"] == []
    assert "Against the peers" not in (tmp_path / "perf.md").read_text()


def test_missing_openvino_is_one_line_when_asked_for(first_run, tmp_path):
    # An openvino that fails to import, first on the path: what a host without it sees.
    stub = tmp_path / "stub" / "openvino"
    stub.mkdir(parents=True)
    (stub / "__init__.py").write_text("raise ImportError(\"No module named 'openvino'\")\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(stub.parent), str(REPO)])}
    sim = _tiny_paths(first_run[0])["sim"]
    for command in (_perf_command(first_run[0], tmp_path / "out", "--peers", "openvino"),
                    [sys.executable, "-m", "stages", "openvino-ir", "--model", str(sim), "--out",
                     str(tmp_path / "x.ov")]):
        done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, env=env)
        assert done.returncode == 2
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
        assert lines[0].startswith("error: ") and "not installed" in lines[0] and "PERF_PEERS=none" in lines[0]
    assert not (tmp_path / "out" / "perf.json").exists() and not (tmp_path / "x.ov").exists()
    # auto where it is missing: no peers, said once, and the run goes on (on a model built where OpenVINO
    # is missing too, which ONNX Runtime serves alone: a model with OpenVINO's is refused, tests/test_engines.py).
    alone = tmp_path / "elmo_w8_dyn_fp32.ort.onnx"
    done = subprocess.run([sys.executable, "-m", "stages", "compile", "--target", "cpu", "--model", str(sim),
                           "--out", str(alone), "--engine", "auto"], cwd=REPO, capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(Path(f"{alone}.json").read_text())["engine_choice"]["reason"] == \
        "OpenVINO is not installed in this Python"
    done = subprocess.run(_perf_command(first_run[0], tmp_path / "auto", "--peers", "auto", model=alone),
                          cwd=REPO, capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "OpenVINO is not installed here; no peers are timed" in done.stderr
    assert json.loads((tmp_path / "auto" / "perf.json").read_text())["peers"] == []


def test_a_fresh_clone_first_run_times_the_peers(tmp_path):
    """PERF_PEERS=auto where make is about to create the .venv (a fresh clone's first `make om accuracy
    perf`): the .venv will hold what requirements.txt pins, so the peers are timed on the first run too,
    not only from the second on."""
    from tests.conftest import make

    requirements = (REPO / "requirements.txt").read_text().lower().splitlines()
    assert any(line.startswith("openvino==") for line in requirements)  # the README: timed by default
    planned = make("-n", "perf", f"VENV={tmp_path / 'not-yet'}", f"ARTIFACTS={tmp_path / 'artifacts'}",
                   "WEIGHTS=synthetic", "RUNNER=host").stdout
    assert "-m venv" in planned  # this make creates the .venv
    assert "--peers openvino" in planned and "openvino-ir --model" in planned and "--weights float32" in planned
