"""`make om accuracy perf TARGET=ascend` end to end, with stand-in npu-smi, atc
and ais_bench (tests/doubles/: clearly test doubles that speak the real tools'
formats and really run the graph, so the shared accuracy stage judges real
outputs)."""
from __future__ import annotations

import json
import os

import pytest

from tests.conftest import REPO, make, tiny_settings


@pytest.fixture(scope="module")
def ascend_env():
    env = dict(os.environ)
    env["PATH"] = f"{REPO / 'tests/doubles/bin'}:{REPO / '.venv/bin'}:{env['PATH']}"
    env["PYTHONPATH"] = str(REPO / "tests/doubles/pylib")
    env.pop("SOC_VERSION", None)
    return env


@pytest.fixture(scope="module")
def settings(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ascend")
    # Each test names its own BATCH (the om's batch sizes), so the shared default is left out.
    settings = [s for s in tiny_settings(folder, "PERF_TORCH=0") if not s.startswith("BATCH=")]
    return folder / "artifacts", settings


def test_target_defaults_to_ascend_when_npu_smi_is_present(ascend_env):
    assert make("-s", "print-TARGET", env=ascend_env).stdout.strip() == "ascend"


def test_om_accuracy_perf_on_ascend(ascend_env, settings):
    artifacts, args = settings
    done = make("om", "accuracy", "perf", "BATCH=1 4", *args, env=ascend_env)
    assert "atc --framework=5" not in done.stdout  # atc is run by the stage, its argv recorded in the manifest
    (om,) = artifacts.glob("om/ascend/*/*.om")
    manifest = json.loads(om.with_name(om.name + ".json").read_text())
    assert manifest["soc_version"] == "Ascend310P3"
    assert "--input_shape=input:-1,8,50" in manifest["command"]
    assert "--dynamic_batch_size=1,4" in manifest["command"]
    accuracy = json.loads((artifacts / "reports" / "accuracy.json").read_text())
    assert accuracy["passed"] and accuracy["target"] == "ascend"
    assert accuracy["outputs"]["summary"]["tool"]["name"] == "ais_bench"
    perf = json.loads((artifacts / "reports" / "perf.json").read_text())
    targets = [r for r in perf["results"] if r["kind"] == "target"]
    assert sorted(r["batch"] for r in targets) == [1, 4]
    assert all("ais_bench" in r["measured_by"] and r["speedup_vs_baseline_same_batch"] for r in targets)
    assert {r["kind"] for r in perf["results"]} == {"baseline", "target"}


def test_two_devices_split_and_merge(ascend_env, settings):
    artifacts, args = settings
    env = dict(ascend_env, FAKE_NPU_COUNT="2")
    make("accuracy", "BATCH=1", "DEVICES=0,1", *args, env=env)
    accuracy = json.loads((artifacts / "reports" / "accuracy.json").read_text())
    assert accuracy["passed"] and accuracy["outputs"]["summary"]["devices"] == [0, 1]


def test_static_single_batch_om(ascend_env, settings):
    artifacts, args = settings
    make("om", "BATCH=1", "SOC_VERSION=Ascend310P3", *args, env=ascend_env)
    (om,) = artifacts.glob("om/ascend/*/*_b1.om")
    manifest = json.loads(om.with_name(om.name + ".json").read_text())
    assert "--input_shape=input:1,8,50" in manifest["command"]


def test_atc_failure_leaves_no_om(ascend_env, settings):
    _, args = settings
    env = dict(ascend_env, FAKE_ATC_FAIL="1")
    done = make("om", "BATCH=2", *args, env=env, check=False)
    assert done.returncode != 0 and "atc failed" in done.stderr
    assert not list(settings[0].glob("om/ascend/*/*_b1-2.om"))


def test_no_npu_is_a_clear_error(ascend_env, settings):
    _, args = settings
    env = dict(ascend_env, FAKE_NPU_NONE="1")
    done = make("om", "TARGET=ascend", "BATCH=8", *args, env=env, check=False)
    assert done.returncode != 0 and "no NPU found" in done.stderr and "TARGET=cpu" in done.stderr


def test_missing_device_is_named(ascend_env, settings):
    _, args = settings
    done = make("accuracy", "BATCH=8", "DEVICES=3", *args, env=ascend_env, check=False)
    assert done.returncode != 0 and "device 3 does not exist" in done.stderr
