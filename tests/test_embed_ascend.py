"""`make embed TARGET=ascend`: bucket .om files run through ais_bench's Python API (InferSession),
one session per device, or through its CLI where the release has no API (2022-09 ais_infer.py).

Against the doubles (tests/doubles: npu-smi, atc per CANN release, ais_bench per release, whose
``ais_bench.infer.interface`` runs the fake .om on onnxruntime), on the trained bilm-tf fixture: the
vectors must match the PyTorch module, the manifest must say how the .om ran, and a two-device run
must put work on both devices.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

import h5py
import numpy as np
import pytest

from stages.__main__ import main
from stages.backends.ascend.session import ApiRunner, DeviceWorkers, plan, split_rows
from tests.conftest import REPO, make
from tests.doubles.ais_bench._engine import api as api_double
from tests.doubles.ais_bench.releases import env_for as env_for_ais
from tests.test_ascend_pipeline import PAIRS, npu_host_env
from tests.test_ais_doubles import _onnx_bytes, fake_om

LENGTHS = [1, 3, 5, 7, 8, 2, 0, 9, 12, 16, 4, 6, 11]  # buckets 8 and 16: batches of 1 to 4 rows, an empty line


# ---- the pieces ---------------------------------------------------------------------------------

def test_plan_covers_rows_with_the_om_batch_sizes():
    assert plan(3, [1, 4, 8]) == [(0, 3, 4)]
    assert plan(8, [1, 4, 8]) == [(0, 8, 8)]
    assert plan(19, [1, 4, 8]) == [(0, 8, 8), (8, 8, 8), (16, 3, 4)]
    assert plan(2, [1]) == [(0, 1, 1), (1, 1, 1)]
    assert plan(5, [4]) == [(0, 4, 4), (4, 1, 4)]
    assert split_rows(5, 2) == [(0, 3), (3, 5)] and split_rows(1, 2) == [(0, 1)]


@pytest.fixture(scope="module")
def tiny_om(tmp_path_factory):
    """A dynamic-batch fake .om (gears 1, 4): int32 [B, 8, 50] -> float32 [B, 8, 1], each word's id sum."""
    path = tmp_path_factory.mktemp("om") / "tiny.om"
    meta = {"test_double": True, "soc_version": "Ascend310P3", "input_name": "input", "input_shape": [-1, 8, 50],
            "dynamic_batch_size": [1, 4], "precision_mode": None, "outputs": ["output"]}
    fake_om.write(str(path), meta, _onnx_bytes(-1))
    os.chmod(path, 0o640)
    return path


@pytest.mark.parametrize("session_class", [api_double.InferSession2022, api_double.InferSession2024,
                                          api_double.InferSession2025])
def test_api_runner_pads_splits_and_spreads_rows(tiny_om, session_class, monkeypatch, tmp_path):
    """Any row count, on two devices: rows beyond the largest batch are split, a short share padded."""
    log = tmp_path / "api.log"
    monkeypatch.setenv("FAKE_NPU_COUNT", "2")
    monkeypatch.setenv(api_double.LOG_ENV, str(log))
    runner = ApiRunner(DeviceWorkers([0, 1]), session_class, tiny_om, [1, 4], True, "tiny")
    ids = np.random.default_rng(0).integers(0, 262, size=(11, 8, 50), dtype=np.int32)
    for rows in (1, 3, 11):
        out = runner.infer({"input": ids[:rows]})["output"]
        assert out.shape == (rows, 8, 1)
        assert np.array_equal(out[..., 0], ids[:rows].sum(-1).astype(np.float32))
    runner.close()
    events = [json.loads(line) for line in log.read_text().splitlines()]
    # Device 1's shares: 1 of 3 rows (batch 1), then 5 of 11 (a batch of 4 and one of 1); device 0
    # got 1 row, 2 rows (padded to 4) and 6 rows (4, and 2 padded to 4).
    infers = {d: sorted(e["batch"] for e in events if e["event"] == "infer" and e["device"] == d) for d in (0, 1)}
    assert infers == {0: [1, 4, 4, 4], 1: [1, 1, 4]}
    freed = [e["device"] for e in events if e["event"] == "free"]
    assert sorted(freed) == ([0, 1] if hasattr(session_class, "free_resource") else [])


API_PROBE = r"""
import json, sys
import numpy as np
from ais_bench.infer.interface import InferSession
s = InferSession(0, sys.argv[1])
x = np.ones((4, 8, 50), np.int32)
found = {"timing": [n for n in ("sumary", "summary") if hasattr(s, n)],
         "free_resource": hasattr(s, "free_resource")}
try:
    s.set_dynamic_batchsize("4")
except TypeError:
    found["str_batch"] = "TypeError"
s.set_dynamic_batchsize(4)
for mode in ("nonsense", "static"):
    try:
        s.infer([x], mode=mode)
        found[mode] = "ran"
    except RuntimeError as exc:
        found[mode] = str(exc)[:20]
try:
    s.set_dynamic_batchsize(3)
except RuntimeError:
    found["gear_3"] = "RuntimeError"
s.set_dynamic_batchsize(4)
try:
    found["set_then_static"] = "ran" if s.infer([x], mode="static")[0].shape == (4, 8, 1) else "?"
except RuntimeError as exc:
    found["set_then_static"] = str(exc)[:20]
print(json.dumps(found))
"""


@pytest.mark.parametrize("release", ["ais_bench-2022-11", "msit-2024-06", "ais_bench-2025-master"])
def test_api_double_keeps_each_release_s_differences(release, tiny_om):
    env = env_for_ais(release, {**os.environ, "PATH": f"{REPO / '.venv/bin'}:{os.environ['PATH']}"})
    done = subprocess.run([sys.executable, "-c", API_PROBE, str(tiny_om)], capture_output=True, text=True, env=env,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout.splitlines()[-1])
    assert found["str_batch"] == "TypeError" and found["gear_3"] == "RuntimeError"
    if release == "ais_bench-2022-11":
        # no mode table: any mode runs as is, and `static` keeps the batch set before
        assert found["timing"] == ["sumary"] and not found["free_resource"]
        assert found["nonsense"] == "ran" and found["set_then_static"] == "ran"
    else:
        # the mode table; `static` resets a dynamic om to no batch at all
        assert found["timing"] == ["summary"] and found["free_resource"]
        assert found["nonsense"].startswith("wrong infer_mode:")
        assert found["static"].startswith("[-1][ACL") and found["set_then_static"].startswith("[-1][ACL")


def test_api_runner_on_a_static_om(tmp_path, monkeypatch):
    """An om built for batch 1 only (BATCH=1): static, every row its own run, mode static."""
    om = tmp_path / "static.om"
    meta = {"test_double": True, "soc_version": "Ascend310P3", "input_name": "input", "input_shape": [1, 8, 50],
            "dynamic_batch_size": [], "precision_mode": None, "outputs": ["output"]}
    fake_om.write(str(om), meta, _onnx_bytes(1))
    os.chmod(om, 0o640)
    monkeypatch.setenv(api_double.LOG_ENV, str(tmp_path / "api.log"))
    runner = ApiRunner(DeviceWorkers([0]), api_double.InferSession2025, om, [1], False, "static")
    ids = np.arange(3 * 8 * 50, dtype=np.int32).reshape(3, 8, 50) % 262
    assert np.array_equal(runner.infer({"input": ids})["output"][..., 0], ids.sum(-1).astype(np.float32))
    events = [json.loads(line) for line in (tmp_path / "api.log").read_text().splitlines()]
    assert [e["batch"] for e in events if e["event"] == "infer"] == [1, 1, 1]


def test_no_api_double_for_the_2022_releases():
    for release in ("ais_infer-2022-06", "ais_infer-2022-09"):
        assert not list((REPO / "tests/doubles/ais_bench" / release).rglob("interface.py"))


# ---- make embed TARGET=ascend --------------------------------------------------------------------

def _cosines(a, b):
    from stages.reports.metrics import cosine

    return cosine(a, b, axis=-1).reshape(-1)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, bilm_fixture):
    """The input, its PyTorch-module vectors, and one artifacts folder every run shares (the .om
    files are built by the first run and reused by the others)."""
    folder = tmp_path_factory.mktemp("embed-ascend")
    words = [w for w in (bilm_fixture / "vocab_test.txt").read_text().split() if not w.startswith("<")]
    rng = np.random.default_rng(1)
    text = folder / "in.txt"
    text.write_text("\n".join(" ".join(rng.choice(words, size=n)) for n in LENGTHS) + "\n", encoding="utf-8")
    reference = folder / "torch.hdf5"
    assert main(["embed", str(text), str(reference), "--options", str(bilm_fixture / "options.json"),
                 "--weights", str(bilm_fixture / "lm_weights.hdf5")]) == 0
    return folder, text, reference


def _make_embed(corpus, bilm_fixture, release, devices, out_name, **extra_env):
    folder, text, _ = corpus
    env = npu_host_env(folder, release, PAIRS[release])
    log = folder / f"{out_name}.api.log"
    env.update({api_double.LOG_ENV: str(log), **extra_env})
    out = folder / f"{out_name}.hdf5"
    done = make("embed", "TARGET=ascend", f"INPUT={text}", f"OUTPUT={out}", f"DEVICES={devices}", "BATCH=1 4",
                "WORD_LEN=8 16", "PRECISION_MODE=force_fp32", f"ARTIFACTS={folder / 'artifacts'}",
                f"ELMO_OPTIONS={bilm_fixture / 'options.json'}", f"ELMO_WEIGHTS={bilm_fixture / 'lm_weights.hdf5'}",
                env=env, check=False)
    return done, out, log


@pytest.fixture(scope="module")
def built(corpus, bilm_fixture):
    """The first run (2025 master, one device) builds the .om files; their times tell later runs' reuse."""
    done, out, log = _make_embed(corpus, bilm_fixture, "ais_bench-2025-master", "0", "first")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    oms = sorted((corpus[0] / "artifacts" / "embed-models" / "ascend").glob("*/*.om"))
    assert [p.name for p in oms] == ["elmo_w16_layers_b1-4_force_fp32.om", "elmo_w8_layers_b1-4_force_fp32.om"]
    return done, out, log, {p: p.stat().st_mtime_ns for p in oms}


def _check_run(corpus, out, log, release, devices):
    _, _, reference = corpus
    manifest = json.loads(out.with_name(out.name + ".json").read_text())
    assert manifest["target"] == "ascend" and manifest["counts"] == {"8": 8, "16": 4, "long": 0, "empty": 1}
    way = "cli" if release == "ais_infer-2022-09" else "api"
    for bucket, record in manifest["models"].items():
        assert record["runtime"] == way and record["devices"] == devices
        assert record["soc_version"] == "Ascend310P3" and record["batch_sizes"] == [1, 4]
        assert record["precision_mode"] == "force_fp32" and len(record["sha256"]) == 64
    release_text = manifest["models"]["8"]["release"]
    assert {"ais_bench-2022-11": "sumary()", "msit-2024-06": "ait-benchmark", "ais_bench-2025-master": "summary()",
            "ais_infer-2022-09": "ais_infer 2022-09"}[release] in release_text
    with h5py.File(out, "r") as got, h5py.File(reference, "r") as ref:
        assert got.attrs["target"] == "ascend"
        for i, n in enumerate(LENGTHS):
            x, y = got[str(i)][...], ref[str(i)][...]
            assert x.shape == y.shape == (3, n, 32)
            for layer in range(3):
                if n:
                    assert _cosines(x[layer], y[layer]).min() >= 0.99999, (i, layer)
    if way == "api":
        events = [json.loads(line) for line in log.read_text().splitlines()]
        assert {e["device"] for e in events if e["event"] == "infer"} == set(devices)
        assert len({e["pid"] for e in events}) == 1  # in-process: the embed process itself
    else:
        assert not log.exists()


def test_one_device_through_the_api(built, corpus):
    done, out, log, _ = built
    _check_run(corpus, out, log, "ais_bench-2025-master", [0])
    assert "export:" in done.stderr  # this run built the .om files


@pytest.mark.parametrize("release, devices", [
    ("ais_bench-2025-master", "0,1"),
    ("msit-2024-06", "0,1"),
    ("ais_bench-2022-11", "0,1"),
    ("ais_infer-2022-09", "0,1"),  # no API in this release: the CLI, on both devices
])
def test_each_release_on_two_devices(built, corpus, bilm_fixture, release, devices):
    done, out, log = _make_embed(corpus, bilm_fixture, release, devices, release)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    _check_run(corpus, out, log, release, [int(d) for d in devices.split(",")])
    assert "export:" not in done.stderr  # the .om files of the first run were reused
    assert {p: p.stat().st_mtime_ns for p in built[3]} == built[3]


def test_a_failing_device_is_named(built, corpus, bilm_fixture):
    done, out, _ = _make_embed(corpus, bilm_fixture, "ais_bench-2025-master", "0,1", "failing",
                               FAKE_AIS_FAIL_DEVICE="1")
    assert done.returncode != 0 and not out.exists()
    assert "ais_bench InferSession on NPU device 1 failed" in done.stderr


def test_a_device_the_host_lacks_is_refused(built, corpus, bilm_fixture):
    done, _, _ = _make_embed(corpus, bilm_fixture, "ais_bench-2025-master", "0,2", "nodevice")
    assert done.returncode != 0 and "NPU device 2 does not exist on this host" in done.stderr + done.stdout


def test_soc_version_may_only_name_this_host_s_chip(monkeypatch):
    """The .om files run on this host, so SOC_VERSION cannot build them for another chip."""
    from stages.common.errors import StageError
    from stages.tools.embed_ascend import _host_soc

    monkeypatch.setenv("PATH", f"{REPO / 'tests/doubles/bin'}:{REPO / '.venv/bin'}:{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_NPU_COUNT", "2")
    monkeypatch.delenv("SOC_VERSION", raising=False)
    assert _host_soc([0, 1], "310P3") == ([0, 1], "Ascend310P3")
    with pytest.raises(StageError, match="SOC_VERSION=Ascend910B: this host's NPUs are Ascend310P3"):
        _host_soc([0], "Ascend910B")
