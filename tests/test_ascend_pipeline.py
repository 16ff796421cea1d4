"""`make om accuracy perf TARGET=ascend` end to end against every release of the
Ascend tools that NPU hosts run, under umask 022 and 002.

The doubles (tests/doubles/: npu-smi, atc per CANN release, ais_bench per
release) speak each release's flags, path checks, output names and summary
layouts, and really run the graph, so the shared accuracy stage judges real
outputs, and a call a real release would refuse fails here too.
"""
from __future__ import annotations

import json
import os
import shutil
import stat

import pytest

from tests.conftest import REPO, make, tiny_settings
from tests.doubles.ais_bench.releases import env_for as env_for_ais
from tests.doubles.cann.releases import env_for_cann

# Each ais_bench release with the CANN release NPU hosts installed it beside.
PAIRS = {
    "ais_infer-2022-09": "cann-5.1.RC2",
    "ais_bench-2022-11": "cann-6.0.1",
    "msit-2024-06": "cann-7.0",
    "ais_bench-2025-master": "cann-8.0",
}
UMASKS = {"umask022": 0o022, "umask002": 0o002}


def npu_host_env(tmp_path, ais: str, cann: str, npus: int = 2) -> dict:
    """The environment of an NPU host with those releases installed and ``npus`` 310P3 chips."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FAKE_", "AIS_", "ASCEND_"))}
    env.pop("SOC_VERSION", None)
    env.pop("PYTHONPATH", None)
    env["PATH"] = f"{REPO / 'tests/doubles/bin'}:{REPO / '.venv/bin'}:{env['PATH']}"
    env = env_for_ais(ais, env_for_cann(cann, env))
    env["FAKE_NPU_COUNT"] = str(npus)
    dev = tmp_path / "dev"
    if not dev.is_dir():
        dev.mkdir()
        for name in ["davinci_manager", "devmm_svm", "hisi_hdc"] + [f"davinci{i}" for i in range(npus)]:
            (dev / name).write_bytes(b"")
    env["ASCEND_DEV_DIR"] = str(dev)
    return env


@pytest.fixture(scope="module", params=list(UMASKS))
def host(request, tmp_path_factory):
    """One artifacts folder per umask: the om and data are built once, each release then reruns
    inference, accuracy and perf."""
    folder = tmp_path_factory.mktemp(request.param)
    settings = [s for s in tiny_settings(folder, "PERF_TORCH=0") if not s.startswith("BATCH=")]
    return folder, settings, UMASKS[request.param]


def _forget_runs(artifacts) -> None:
    for name in ("outputs", "reports"):
        shutil.rmtree(artifacts / name, ignore_errors=True)


@pytest.mark.parametrize("ais", list(PAIRS))
def test_om_accuracy_perf_on_every_release(host, ais):
    folder, settings, umask = host
    artifacts = folder / "artifacts"
    env = npu_host_env(folder, ais, PAIRS[ais])
    _forget_runs(artifacts)
    make("om", "accuracy", "perf", "BATCH=1 4", "DEVICES=0,1", *settings, env=env, umask=umask)

    (om,) = artifacts.glob("om/ascend/*/*.om")
    assert om.name == "elmo_w8_b1-4.om"
    assert stat.S_IMODE(om.stat().st_mode) & 0o022 == 0
    manifest = json.loads(om.with_name(om.name + ".json").read_text())
    assert manifest["soc_version"] == "Ascend310P3" and manifest["batch_sizes"] == [1, 4]
    assert "--input_shape=input:-1,8,50" in manifest["command"] and "--dynamic_batch_size=1,4" in manifest["command"]
    assert manifest["atc_wrote"] in ("elmo_w8_b1-4.om", f"elmo_w8_b1-4_linux_{os.uname().machine}.om")

    accuracy = json.loads((artifacts / "reports" / "accuracy.json").read_text())
    assert accuracy["passed"] and accuracy["target"] == "ascend"
    tool = accuracy["outputs"]["summary"]["tool"]
    assert tool["name"] == "ais_bench" and accuracy["outputs"]["summary"]["devices"] == [0, 1]
    assert tool["inputs_placed"]["hard_links"] == accuracy["data"]["samples"]
    script = ais.startswith("ais_infer")
    assert tool["found_by"] == ("AIS_INFER_DIR" if script else "python3 -m ais_bench")
    assert ("--warmup_count" in tool["flags"]) is not script

    perf = json.loads((artifacts / "reports" / "perf.json").read_text())
    targets = [r for r in perf["results"] if r["kind"] == "target"]
    assert sorted(r["batch"] for r in targets) == [1, 4]
    for result in targets:
        assert result["sentences_per_s"] > 0 and "ais_bench" in result["measured_by"]
        assert ("--warmup_count" in result["command"]) is not script
        assert (result["warmup_method"] == "ais_bench --warmup_count") is not script
    assert "warm-up" in (artifacts / "reports" / "perf.md").read_text()


def test_a_release_without_output_dirname_is_refused_before_anything_runs(tmp_path):
    settings = [s for s in tiny_settings(tmp_path, "PERF_TORCH=0") if not s.startswith("BATCH=")]
    env = npu_host_env(tmp_path, "ais_infer-2022-06", "cann-5.1.RC2")
    done = make("accuracy", "BATCH=1", *settings, env=env, check=False)
    assert done.returncode != 0
    assert "has no --output_dirname" in done.stderr and "2022-09" in done.stderr
    assert not (tmp_path / "artifacts" / "model").exists()  # refused before export


def test_unsafe_artifacts_path_is_refused_naming_the_variable(tmp_path):
    settings = [s for s in tiny_settings(tmp_path, "PERF_TORCH=0") if not s.startswith(("BATCH=", "ARTIFACTS="))]
    env = npu_host_env(tmp_path, "ais_bench-2025-master", "cann-8.0")
    done = make("accuracy", "BATCH=1", f"ARTIFACTS={tmp_path / 'run+1'}", *settings, env=env, check=False)
    assert done.returncode != 0 and "set ARTIFACTS to a path without them" in done.stderr


def test_doctor_with_the_doubles(tmp_path):
    env = npu_host_env(tmp_path, "ais_infer-2022-09", "cann-5.1.RC2")
    done = make("-s", "doctor", "TARGET=ascend", f"ARTIFACTS={tmp_path / 'a'}", "DEVICES=0,1", env=env)
    out = done.stdout
    assert "2 chip(s): 310P3" in out and "Ascend310P3 (npu-smi)" in out
    assert "5.1.RC2" in out and "22.0.2" in out
    assert "force_fp16, force_fp32" in out and "ais_infer 2022-09" in out
    assert "the Ascend path is ready" in out
    bad = make("-s", "doctor", "TARGET=ascend", "PRECISION_MODE=allow_fp32_to_bf16", f"ARTIFACTS={tmp_path / 'a'}",
               env=env, check=False)
    assert bad.returncode != 0 and "PRECISION_MODE=allow_fp32_to_bf16: the installed atc does not accept" in bad.stdout


def test_doctor_without_an_npu(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PATH"] = f"{REPO / '.venv/bin'}:/usr/bin:/bin"
    done = make("-s", "doctor", "TARGET=cpu", env=env)
    assert "no NPU on this host" in done.stdout and "TARGET=cpu" in done.stdout
    failed = make("-s", "doctor", "TARGET=ascend", env=env, check=False)
    assert failed.returncode != 0 and "no NPU found" in failed.stdout


def test_target_defaults_to_ascend_when_npu_smi_is_present(tmp_path):
    env = npu_host_env(tmp_path, "ais_bench-2025-master", "cann-8.0")
    assert make("-s", "print-TARGET", env=env).stdout.strip() == "ascend"


@pytest.fixture(scope="module")
def settings(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ascend")
    settings = [s for s in tiny_settings(folder, "PERF_TORCH=0") if not s.startswith("BATCH=")]
    return folder, folder / "artifacts", settings


def test_static_single_batch_om(settings):
    folder, artifacts, args = settings
    env = npu_host_env(folder, "ais_bench-2025-master", "cann-8.0")
    make("om", "BATCH=1", "SOC_VERSION=Ascend310P3", *args, env=env)
    (om,) = artifacts.glob("om/ascend/*/*_b1.om")
    manifest = json.loads(om.with_name(om.name + ".json").read_text())
    assert "--input_shape=input:1,8,50" in manifest["command"]


def test_om_name_lists_batch_sizes_in_numeric_order(settings):
    folder, _, args = settings
    env = npu_host_env(folder, "ais_bench-2025-master", "cann-8.0")
    shown = make("-s", "print-OM", "BATCH=32 16 4 8 1", *args, env=env).stdout.strip()
    assert shown.endswith("elmo_w8_b1-4-8-16-32.om")


def test_atc_failure_leaves_no_om(settings):
    folder, artifacts, args = settings
    env = dict(npu_host_env(folder, "ais_bench-2025-master", "cann-8.0"), FAKE_ATC_FAIL="1")
    done = make("om", "BATCH=2", *args, env=env, check=False)
    assert done.returncode != 0 and "atc failed" in done.stderr
    assert not list(artifacts.glob("om/ascend/*/*_b1-2.om"))


def test_no_npu_is_a_clear_error(settings):
    folder, _, args = settings
    env = dict(npu_host_env(folder, "ais_bench-2025-master", "cann-8.0"), FAKE_NPU_NONE="1")
    done = make("om", "TARGET=ascend", "BATCH=8", *args, env=env, check=False)
    assert done.returncode != 0 and "no NPU found" in done.stderr and "TARGET=cpu" in done.stderr


def test_missing_device_is_named(settings):
    folder, _, args = settings
    env = npu_host_env(folder, "ais_bench-2025-master", "cann-8.0")
    done = make("accuracy", "BATCH=8", "DEVICES=3", *args, env=env, check=False)
    assert done.returncode != 0 and "device 3 does not exist" in done.stderr
