"""The Ascend target against sample outputs and test doubles of its tools.

No NPU or CANN here: ``tests/doubles`` holds stand-ins for ``npu-smi``, and
for ``atc`` and ais_bench one double per real release, each taking that
release's flags, making its path checks and writing its file layouts; the fake
.om carries the ONNX model, which the fake ais_bench runs with onnxruntime, so
outputs can be checked against numpy. Unless a test names a release, the
newest (strictest) ones stand in: ais_bench 2025 master and CANN 8.0.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from stages.backends.ascend import ais_bench, atc, npu_smi
from stages.backends.ascend.ais_summary import read_summary
from stages.backends.ascend.npu_smi import NpuChip
from stages.backends.ascend.om_manifest import SCHEMA, manifest_path
from stages.common.errors import StageError
from tests.doubles.ais_bench.releases import env_for as env_for_ais
from tests.doubles.cann.releases import atc_path, env_for_cann

HERE = Path(__file__).resolve().parent
DOUBLES_BIN = HERE / "doubles" / "bin"
SAMPLES = HERE / "samples" / "ascend"
VENV_BIN = Path(sys.executable).parent
DIM = 4
FAKE_VARS = (
    "FAKE_NPU_NAME", "FAKE_NPU_COUNT", "FAKE_NPU_NONE", "FAKE_ATC_FAIL", "FAKE_ATC_VERSION_SILENT",
    "FAKE_AIS_FAIL_DEVICE", "FAKE_AIS_DROP_OUTPUT", "SOC_VERSION", "AIS_BENCH",
    "ASCEND_TOOLKIT_HOME", "ASCEND_HOME_PATH", "ATC", "CANN_SET_ENV", "AIS_INFER_DIR", "PYTHONPATH",
    "ASCEND_DRIVER_HOME", "ASCEND_INSTALL_INFO",
)
AIS_RELEASE, CANN_RELEASE = "ais_bench-2025-master", "cann-8.0"
ATC = atc_path(CANN_RELEASE)


def _use_doubles(mp, ais: str = AIS_RELEASE, cann: str = CANN_RELEASE) -> None:
    for name in FAKE_VARS:
        mp.delenv(name, raising=False)
    # The doubles are `#!/usr/bin/env python3` scripts that need onnx/onnxruntime.
    base = dict(os.environ, PATH=os.pathsep.join([str(DOUBLES_BIN), str(VENV_BIN), os.environ.get("PATH", "")]))
    for key, value in env_for_ais(ais, env_for_cann(cann, base)).items():
        if os.environ.get(key) != value:
            mp.setenv(key, value)


@pytest.fixture
def doubles(monkeypatch):
    _use_doubles(monkeypatch)
    return monkeypatch


def _weights() -> np.ndarray:
    return (np.arange(50 * DIM, dtype=np.float32).reshape(50, DIM) % 7) / 10


def make_onnx(path: Path, word_len: int) -> Path:
    """int32 [1,W,50] -> float32 [1,W,DIM]: Cast then MatMul, opset 11 like the real export."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    graph = helper.make_graph(
        [
            helper.make_node("Cast", ["input"], ["ids"], to=TensorProto.FLOAT),
            helper.make_node("MatMul", ["ids", "w"], ["output"]),
        ],
        "tiny_elmo",
        [helper.make_tensor_value_info("input", TensorProto.INT32, [1, word_len, 50])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, word_len, DIM])],
        initializer=[numpy_helper.from_array(_weights(), "w")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 11)])
    model.ir_version = 7
    onnx.save(model, str(path))
    return path


def reference(ids: np.ndarray) -> np.ndarray:
    return ids.astype(np.float32) @ _weights()


def write_inputs(folder: Path, count: int, word_len: int, seed: int = 0) -> dict:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    made = {}
    for index in range(count):
        ids = rng.integers(0, 262, size=(1, word_len, 50)).astype(np.int32)
        ids.tofile(str(folder / f"{index}.bin"))
        made[str(index)] = ids
    return made


def _build(folder: Path, batch_sizes, word_len=8) -> Path:
    with pytest.MonkeyPatch.context() as mp:
        _use_doubles(mp)
        folder.mkdir(parents=True, exist_ok=True)
        onnx_path = make_onnx(folder / "tiny.onnx", word_len)
        om = folder / "tiny.om"
        atc.compile_om(onnx_path, om, batch_sizes=batch_sizes, word_len=word_len, soc_version="Ascend310P3",
                       precision_mode="force_fp16")
    return om


@pytest.fixture(scope="module")
def om_static(tmp_path_factory):
    return _build(tmp_path_factory.mktemp("static"), [1])


@pytest.fixture(scope="module")
def om_dynamic(tmp_path_factory):
    return _build(tmp_path_factory.mktemp("dynamic"), [1, 4, 8])


# --- atc command line -------------------------------------------------------

BASE = ["atc", "--framework=5", "--model=m.onnx", "--output=out/m", "--input_format=ND"]


@pytest.mark.parametrize(
    "batch_sizes, word_len, precision, expected",
    [
        ([1], 8, None, BASE + ["--input_shape=input:1,8,50", "--log=error", "--soc_version=Ascend310P3"]),
        ([4], 16, None, BASE + ["--input_shape=input:4,16,50", "--log=error", "--soc_version=Ascend310P3"]),
        ([1], 8, "force_fp16",
         BASE + ["--input_shape=input:1,8,50", "--log=error", "--soc_version=Ascend310P3",
                 "--precision_mode=force_fp16"]),
        ([1], 16, "allow_mix_precision",
         BASE + ["--input_shape=input:1,16,50", "--log=error", "--soc_version=Ascend310P3",
                 "--precision_mode=allow_mix_precision"]),
        ([8, 1, 4], 8, None,
         BASE + ["--input_shape=input:-1,8,50", "--log=error", "--soc_version=Ascend310P3",
                 "--dynamic_batch_size=1,4,8"]),
        ([1, 4, 8], 16, "must_keep_origin_dtype",
         BASE + ["--input_shape=input:-1,16,50", "--log=error", "--soc_version=Ascend310P3",
                 "--dynamic_batch_size=1,4,8", "--precision_mode=must_keep_origin_dtype"]),
    ],
)
def test_atc_command_matrix(batch_sizes, word_len, precision, expected):
    argv = atc.atc_command("m.onnx", "out/m", batch_sizes=batch_sizes, word_len=word_len,
                           soc_version="Ascend310P3", precision_mode=precision)
    assert argv == expected


def test_atc_command_matches_the_guide():
    argv = atc.atc_command("elmo_sim.onnx", "elmo_sim", batch_sizes=[1], word_len=8, soc_version="Ascend310P3")
    guide = ('atc --framework=5 --model=elmo_sim.onnx --output=elmo_sim --input_format=ND '
             '--input_shape="input:1,8,50" --log=error --soc_version=Ascend310P3')
    assert " ".join(argv) == guide.replace('"', "")


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(soc_version="310P3"), "Ascend310P3"),
        (dict(precision_mode="fp16"), "PRECISION_MODE=fp16"),
        (dict(batch_sizes=[0]), "batch sizes"),
        (dict(batch_sizes=[]), "batch sizes"),
        (dict(word_len=0), "word_len"),
        (dict(log="verbose"), "log level"),
    ],
)
def test_atc_command_rejects_bad_settings(kwargs, message):
    settings = dict(batch_sizes=[1], word_len=8, soc_version="Ascend310P3")
    settings.update(kwargs)
    with pytest.raises(StageError, match=message):
        atc.atc_command("m.onnx", "m", **settings)


# --- npu-smi -----------------------------------------------------------------

def _sample(name: str) -> str:
    return (SAMPLES / "npu-smi" / name).read_text(encoding="utf-8")


def test_parse_seed_two_chip_table():
    chips = npu_smi.parse_npu_smi_info(_sample("seed_310p3_2chip.txt"))
    assert chips == [
        NpuChip(npu_id=0, chip_id=0, device_id=0, name="310P3", health="OK", bus_id="0000:82:00.0"),
        NpuChip(npu_id=1, chip_id=0, device_id=1, name="310P3", health="OK", bus_id="0000:89:00.0"),
    ]


def test_parse_single_chip_with_version_line_and_process_table():
    chips = npu_smi.parse_npu_smi_info(_sample("310p3_single.txt"))
    assert chips == [NpuChip(4, 0, 0, "310P3", "OK", "0000:81:00.0")]
    assert npu_smi.device_ids(chips) == [0]


def test_parse_duo_cards_two_chips_each():
    chips = npu_smi.parse_npu_smi_info(_sample("310p3_duo.txt"))
    assert [(c.npu_id, c.chip_id, c.device_id) for c in chips] == [
        (2, 0, 0), (2, 1, 1), (32770, 0, 2), (32770, 1, 3),
    ]
    assert [c.health for c in chips] == ["OK", "OK", "Warning", "OK"]
    assert {c.bus_id for c in chips} == {"0000:01:00.0", "0000:83:00.0"}
    assert npu_smi.soc_version(chips) == "Ascend310P3"


def test_parse_910b_without_device_column():
    chips = npu_smi.parse_npu_smi_info(_sample("910b3_no_device_column.txt"))
    assert [(c.npu_id, c.chip_id, c.device_id, c.name) for c in chips] == [(0, 0, None, "910B3"), (1, 0, None, "910B3")]
    assert npu_smi.device_ids(chips) == [0, 1]
    assert npu_smi.soc_version(chips) == "Ascend910B3"


@pytest.mark.parametrize("name", ["garbage.txt", "no_driver.txt"])
def test_parse_rejects_text_without_a_table(name):
    with pytest.raises(StageError, match="could not read any chip from `npu-smi info`"):
        npu_smi.parse_npu_smi_info(_sample(name))


def test_parse_rejects_empty_text():
    with pytest.raises(StageError, match=r"\(empty\)"):
        npu_smi.parse_npu_smi_info("")


def test_detect_chips_from_the_double(doubles):
    doubles.setenv("FAKE_NPU_COUNT", "3")
    chips = npu_smi.detect_chips()
    assert [c.device_id for c in chips] == [0, 1, 2]
    assert npu_smi.soc_version(chips) == "Ascend310P3"


def test_detect_chips_without_driver(doubles):
    doubles.setenv("FAKE_NPU_NONE", "1")
    with pytest.raises(StageError) as info:
        npu_smi.detect_chips()
    assert "dcmi module initialize failed" in str(info.value)
    assert "use TARGET=cpu" in str(info.value)


def test_detect_chips_without_npu_smi(doubles):
    doubles.setenv("PATH", str(VENV_BIN))
    with pytest.raises(StageError, match=r"^no NPU found \(npu-smi not on PATH\); use TARGET=cpu$"):
        npu_smi.detect_chips()


def test_soc_version_override_and_mixed_chips():
    chips = npu_smi.parse_npu_smi_info(_sample("seed_310p3_2chip.txt"))
    assert npu_smi.soc_version(chips) == "Ascend310P3"
    assert npu_smi.soc_version(chips, override="Ascend310P1") == "Ascend310P1"
    assert npu_smi.soc_version(chips, override="310P1") == "Ascend310P1"
    assert npu_smi.soc_version([], override="Ascend910B3") == "Ascend910B3"
    mixed = chips + [NpuChip(2, 0, 2, "910B3", "OK", "0000:C1:00.0")]
    with pytest.raises(StageError, match=r"different chips \(310P3, 910B3\); set SOC_VERSION"):
        npu_smi.soc_version(mixed)
    with pytest.raises(StageError, match="set SOC_VERSION"):
        npu_smi.soc_version([])


def test_check_devices():
    chips = npu_smi.parse_npu_smi_info(_sample("seed_310p3_2chip.txt"))
    assert npu_smi.check_devices(chips, [1, 0]) == [1, 0]
    with pytest.raises(StageError, match=r"^NPU device 2 does not exist on this host; its devices are: 0, 1$"):
        npu_smi.check_devices(chips, [0, 2])
    with pytest.raises(StageError, match="listed twice"):
        npu_smi.check_devices(chips, [0, 0])
    with pytest.raises(StageError, match="no NPU device requested"):
        npu_smi.check_devices(chips, [])
    duo = npu_smi.parse_npu_smi_info(_sample("310p3_duo.txt"))
    assert npu_smi.check_devices(duo, [3]) == [3]


# --- ais_bench summaries -------------------------------------------------------

def test_read_summary_2022_layout():
    got = read_summary(SAMPLES / "ais_bench" / "2022" / "out", "2022_09_17-01_26_57")
    assert got["npu_compute_ms"] == {"mean": 23.73, "median": 23.73, "min": 23.41, "max": 24.05, "p99": 24.0436}
    assert got["h2d_ms"]["p99"] == pytest.approx(0.07278)
    assert got["d2h_ms"]["mean"] == pytest.approx(0.44)
    assert got["throughput"] == pytest.approx(1000 / 23.73)
    assert got["npu_compute_time_list"] is None
    assert got["summary_file"].endswith("sumary.json")


def test_read_summary_later_layout():
    got = read_summary(SAMPLES / "ais_bench" / "2023" / "out", "run")
    assert got["npu_compute_ms"] == {"mean": 3.0, "median": 3.0, "min": 2.0, "max": 4.0, "p99": 3.98, "count": 3}
    assert got["h2d_ms"]["count"] == 3
    assert got["npu_compute_time_list"] == [2.0, 3.0, 4.0]
    assert got["throughput"] == pytest.approx(1000 / 3.0)
    assert got["summary_file"].endswith("run_summary.json")


def test_read_summary_p99_key():
    got = read_summary(SAMPLES / "ais_bench" / "p99" / "out", "run")
    assert got["npu_compute_ms"]["p99"] == 12.97
    assert got["d2h_ms"] == {"mean": 0.9, "median": 0.9, "min": 0.9, "max": 0.9, "p99": 0.9, "count": 1}


def test_read_summary_multithread_record():
    got = read_summary(SAMPLES / "ais_bench" / "multithread" / "out", "run")
    assert got["npu_compute_ms"] == {"mean": 5.0, "median": None, "min": None, "max": None, "p99": None, "count": 2}
    assert got["npu_compute_time_list"] == [4.0, 6.0]


def test_read_summary_prefers_the_later_layout(tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "sumary.json").write_text(json.dumps({"NPU_compute_time": {"mean": 1.0}}))
    (tmp_path / "run_summary.json").write_text(json.dumps({"NPU_compute_time": {"mean": 2.0}}))
    assert read_summary(tmp_path, "run")["npu_compute_ms"]["mean"] == 2.0


def test_read_summary_missing_and_unknown(tmp_path):
    with pytest.raises(StageError, match=r"left no summary for 'run'.*run_summary.json and run/sumary.json"):
        read_summary(tmp_path, "run")
    (tmp_path / "run_summary.json").write_text(json.dumps({"latency": 1}))
    unknown = r"run_summary.json: no NPU_compute_time.mean; not an ais_bench summary layout"
    with pytest.raises(StageError, match=unknown):
        read_summary(tmp_path, "run")
    (tmp_path / "run_summary.json").write_text("{not json")
    with pytest.raises(StageError, match="unreadable ais_bench summary"):
        read_summary(tmp_path, "run")


# --- finding atc, its version, compiling ------------------------------------------

def test_find_atc_on_path(doubles):
    tool = atc.find_atc()
    assert tool.path == str(ATC) and tool.env is None


def test_find_atc_named(doubles):
    assert atc.find_atc("atc").path == str(ATC)
    doubles.setenv("PATH", str(VENV_BIN))
    doubles.setenv("ATC", str(ATC))
    assert atc.find_atc().path == str(ATC)


def test_find_atc_missing(doubles, tmp_path):
    doubles.setenv("PATH", str(VENV_BIN))
    doubles.setattr(atc, "DEFAULT_SET_ENV", str(tmp_path / "no" / "set_env.sh"))
    with pytest.raises(StageError, match="atc not found: not on PATH and no CANN toolkit at"):
        atc.find_atc()
    with pytest.raises(StageError, match="not an executable atc"):
        atc.find_atc(atc_path=tmp_path / "atc")


@pytest.mark.parametrize("release, version", [("cann-5.1.RC2", "5.1.RC2"), ("cann-8.0", "8.0.0")])
def test_find_atc_through_set_env(doubles, tmp_path, release, version):
    from tests.doubles.cann.releases import set_env_path

    doubles.setenv("PATH", os.pathsep.join([str(VENV_BIN), "/usr/bin", "/bin"]))
    doubles.delenv("ASCEND_TOOLKIT_HOME", raising=False)
    tool = atc.find_atc(set_env=set_env_path(release))
    assert tool.path == str(atc_path(release))
    onnx_path = make_onnx(tmp_path / "m.onnx", 8)
    manifest = atc.compile_om(onnx_path, tmp_path / "m.om", batch_sizes=[1], word_len=8,
                              soc_version="Ascend310P3", atc=tool)
    assert (tmp_path / "m.om").is_file() and manifest["atc_version"] == version


def test_atc_version_from_the_toolkit_files(tmp_path):
    # atc --version prints no number (gflags prints the program name): the toolkit's files say it.
    bin_dir = tmp_path / "toolkit" / "latest" / "bin"
    bin_dir.mkdir(parents=True)
    script = bin_dir / "atc"
    script.write_text("#!/bin/sh\necho atc.bin\n")
    script.chmod(0o755)
    tool = atc.AtcTool(str(script), {"PATH": os.environ["PATH"]})
    assert atc.atc_version(tool) == "unknown"
    (bin_dir.parent / "compiler").mkdir()
    (bin_dir.parent / "compiler" / "version.info").write_text("Version=7.6.0.1.220\nversion_dir=8.0.0\n")
    assert atc.atc_version(tool) == "8.0.0"
    (bin_dir.parent / "version.cfg").write_text("toolkit_running_version=[1.82.22.2.220:5.1.RC2]\n")
    assert atc.atc_version(tool) == "5.1.RC2"


def test_precision_modes_of_each_release(doubles):
    from tests.doubles.cann.releases import CANN_RELEASES

    for release in CANN_RELEASES:
        modes, source = atc.precision_modes(atc.AtcTool(str(atc_path(release))))
        assert source == "atc --help" and "force_fp16" in modes and "must_keep_origin_dtype" in modes
        assert ("allow_fp32_to_bf16" in modes) is (release in ("cann-7.0", "cann-8.0"))


def test_compile_refuses_a_precision_mode_the_installed_atc_lacks(doubles, tmp_path):
    _use_doubles(doubles, cann="cann-5.1.RC2")
    onnx_path = make_onnx(tmp_path / "m.onnx", 8)
    with pytest.raises(StageError, match=r"PRECISION_MODE=allow_mix_precision_fp16: the installed atc does not"):
        atc.compile_om(onnx_path, tmp_path / "m.om", batch_sizes=[1], word_len=8, soc_version="Ascend310P3",
                       precision_mode="allow_mix_precision_fp16")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx"]


@pytest.mark.parametrize("release", ["cann-5.1.RC2", "cann-7.0"])
def test_compile_keeps_one_canonical_name(doubles, tmp_path, release):
    from tests.doubles.cann.releases import atc_output_name

    _use_doubles(doubles, cann=release)
    onnx_path = make_onnx(tmp_path / "m.onnx", 8)
    manifest = atc.compile_om(onnx_path, tmp_path / "elmo_b1.om", batch_sizes=[1], word_len=8,
                              soc_version="Ascend310P3")
    assert manifest["atc_wrote"] == atc_output_name(release, "elmo_b1")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["elmo_b1.om", "elmo_b1.om.json", "m.onnx"]


def test_compile_om_static(om_static):
    manifest = json.loads(manifest_path(om_static).read_text())
    assert manifest["schema"] == SCHEMA and manifest["target"] == "ascend"
    assert manifest["input_shape"] == [1, 8, 50] and manifest["batch_sizes"] == [1]
    assert manifest["soc_version"] == "Ascend310P3" and manifest["precision_mode"] == "force_fp16"
    assert manifest["atc_version"] == "8.0.0"
    assert manifest["onnx"] == str(om_static.parent / "tiny.onnx") and len(manifest["onnx_sha256"]) == 64
    command = manifest["command"]
    assert command[0] == str(ATC)
    assert command[1:2] == ["--framework=5"] and "--input_shape=input:1,8,50" in command
    assert "--precision_mode=force_fp16" in command
    # Only the om, its manifest and the ONNX: atc's scratch folder and fusion_result.json are gone.
    assert sorted(p.name for p in om_static.parent.iterdir()) == ["tiny.om", "tiny.om.json", "tiny.onnx"]


def test_compile_om_dynamic(om_dynamic):
    manifest = json.loads(manifest_path(om_dynamic).read_text())
    assert manifest["input_shape"] == [-1, 8, 50] and manifest["batch_sizes"] == [1, 4, 8]
    assert "--dynamic_batch_size=1,4,8" in manifest["command"]


def test_compile_om_failure_leaves_no_om(doubles, tmp_path):
    onnx_path = make_onnx(tmp_path / "m.onnx", 8)
    doubles.setenv("FAKE_ATC_FAIL", "1")
    with pytest.raises(StageError) as info:
        atc.compile_om(onnx_path, tmp_path / "m.om", batch_sizes=[1], word_len=8, soc_version="Ascend310P3")
    message = str(info.value)
    assert message.startswith("atc failed (exit status 255) compiling m.onnx for Ascend310P3; last lines:")
    assert "ATC run failed, Please check the detail log" in message and "E19010" in message
    assert len(message.splitlines()) <= 21
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx"]


def test_compile_om_input_shape_checked_by_atc(doubles, tmp_path):
    onnx_path = make_onnx(tmp_path / "m.onnx", 8)
    with pytest.raises(StageError, match=r"E10001: .*--input_shape"):
        atc.compile_om(onnx_path, tmp_path / "m.om", batch_sizes=[1], word_len=16, soc_version="Ascend310P3")
    assert not (tmp_path / "m.om").exists()


# --- ais_bench commands ---------------------------------------------------------------

@pytest.mark.parametrize("release, launcher, found_by, warmup", [
    ("ais_infer-2022-09", "ais_infer.py", "AIS_INFER_DIR", False),
    ("ais_bench-2022-11", "ais_bench", "python3 -m ais_bench", True),
    ("msit-2024-06", "ais_bench", "python3 -m ais_bench", True),
    ("ais_bench-2025-master", "ais_bench", "python3 -m ais_bench", True),
])
def test_each_release_is_found_and_its_flags_read(doubles, release, launcher, found_by, warmup):
    from stages.backends.ascend import ais_tool

    _use_doubles(doubles, ais=release)
    tool = ais_tool.discover()
    ais_tool.check_drivable(tool)
    assert tool.launcher[-1].endswith(launcher) and tool.found_by == found_by
    assert tool.has("--warmup_count") is warmup and tool.has("--output_dirname")


def test_infer_command():
    from stages.backends.ascend.ais_tool import AisTool

    tool = AisTool(("python3", "-m", "ais_bench"), "test", frozenset(), None)
    assert ais_bench.infer_command(tool, "m.om", "in", "out", "device0", 1) == list(tool.launcher) + [
        "--model", "m.om", "--input", "in", "--output", "out", "--output_dirname", "device0",
        "--outfmt", "BIN", "--device", "1",
    ]
    assert ais_bench.infer_command(tool, "m.om", "in", "out", "d", 0, 1)[-2:] == ["--dymBatch", "1"]


def test_fake_ais_bench_fails_on_a_missing_device(doubles, om_static, tmp_path):
    doubles.setenv("FAKE_NPU_COUNT", "1")
    done = subprocess.run([sys.executable, "-m", "ais_bench", "--model", str(om_static), "--device", "1"],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True)
    assert done.returncode != 0 and "open device 1 failed" in done.stdout


# --- run_inference --------------------------------------------------------------------

def _check_outputs(output_dir: Path, made: dict) -> None:
    bins = sorted(p.name for p in output_dir.glob("*.bin"))
    assert bins == sorted(f"{stem}_0.bin" for stem in made)
    for stem, ids in made.items():
        got = np.fromfile(str(output_dir / f"{stem}_0.bin"), dtype=np.float32).reshape(1, 8, DIM)
        np.testing.assert_allclose(got, reference(ids), rtol=1e-6)


def test_run_inference_one_device(doubles, om_static, tmp_path):
    made = write_inputs(tmp_path / "in", 3, 8)
    (tmp_path / "in" / "notes.txt").write_text("not an input")
    out = tmp_path / "out"
    summary = ais_bench.run_inference(om_static, tmp_path / "in", out)
    _check_outputs(out, made)
    assert json.loads((out / "summary.json").read_text()) == summary
    assert summary["schema"] == "elmo-infer-summary/1" and summary["target"] == "ascend"
    assert (summary["inputs"], summary["outputs"], summary["batch_size"]) == (3, 3, 1)
    assert summary["devices"] == [0] and summary["model"] == str(om_static)
    assert set(summary["latency_ms"]) == {"mean", "median", "min", "max", "p99"}
    assert summary["latency_ms"]["min"] <= summary["latency_ms"]["mean"] <= summary["latency_ms"]["max"]
    assert summary["throughput"] > 0 and summary["h2d_ms"]["count"] == 3
    (command,) = summary["tool"]["commands"]
    assert command[:3] == ["python3", "-m", "ais_bench"] and "--dymBatch" not in command
    assert summary["tool"]["summary_files"] == ["ais_bench/device0_summary.json"]
    assert sorted(p.name for p in out.iterdir() if not p.name.endswith(".bin")) == ["ais_bench", "summary.json"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in", "out"]


def test_run_inference_2022_09_release(doubles, om_static, tmp_path):
    _use_doubles(doubles, ais="ais_infer-2022-09")
    made = write_inputs(tmp_path / "in", 2, 8)
    summary = ais_bench.run_inference(om_static, tmp_path / "in", tmp_path / "out")
    _check_outputs(tmp_path / "out", made)
    assert summary["latency_ms"]["p99"] is not None and "count" not in summary["h2d_ms"]
    assert summary["tool"]["launcher"][1].endswith("ais_infer.py")


def test_run_inference_two_devices(doubles, om_static, tmp_path):
    doubles.setenv("FAKE_NPU_COUNT", "2")
    made = write_inputs(tmp_path / "in", 5, 8)
    out = tmp_path / "out"
    summary = ais_bench.run_inference(om_static, tmp_path / "in", out, devices=[0, 1])
    _check_outputs(out, made)
    assert summary["devices"] == [0, 1] and len(summary["tool"]["commands"]) == 2
    shares = []
    for name in summary["tool"]["summary_files"]:
        info = json.loads((out / name).read_text())["filesinfo"]
        shares.append(sorted(Path(v["infiles"][0]).stem for v in info.values()))
    assert shares == [["0", "2", "4"], ["1", "3"]]
    assert summary["h2d_ms"]["count"] == 5


def test_run_inference_skips_the_host_check_a_runner_made_once(doubles, om_static, tmp_path, monkeypatch):
    """A runner calling once per batch (embed's CLI runner) checked chip and devices when it opened."""
    asked = []
    real = ais_bench.check_host
    monkeypatch.setattr(ais_bench, "check_host", lambda *a: asked.append(a) or real(*a))
    made = write_inputs(tmp_path / "in", 2, 8)
    ais_bench.run_inference(om_static, tmp_path / "in", tmp_path / "out", host_checked=True)
    _check_outputs(tmp_path / "out", made)
    assert asked == []
    ais_bench.run_inference(om_static, tmp_path / "in", tmp_path / "again")
    assert len(asked) == 1


def test_run_inference_dynamic_batch_om(doubles, om_dynamic, tmp_path):
    made = write_inputs(tmp_path / "in", 2, 8)
    summary = ais_bench.run_inference(om_dynamic, tmp_path / "in", tmp_path / "out")
    _check_outputs(tmp_path / "out", made)
    assert summary["tool"]["commands"][0][-2:] == ["--dymBatch", "1"]


def test_run_inference_replaces_an_old_output(doubles, om_static, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "stale_0.bin").write_bytes(b"old")
    made = write_inputs(tmp_path / "in", 1, 8)
    ais_bench.run_inference(om_static, tmp_path / "in", out)
    _check_outputs(out, made)


def test_run_inference_device_failure(doubles, om_static, tmp_path):
    doubles.setenv("FAKE_NPU_COUNT", "2")
    doubles.setenv("FAKE_AIS_FAIL_DEVICE", "1")
    write_inputs(tmp_path / "in", 4, 8)
    with pytest.raises(StageError) as info:
        ais_bench.run_inference(om_static, tmp_path / "in", tmp_path / "out", devices=[0, 1])
    message = str(info.value)
    assert message.startswith("ais_bench failed on NPU device 1 (exit status 1); last lines of its log:")
    assert "open device 1 failed" in message and "RuntimeError" in message
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in"]


def test_run_inference_unknown_device(doubles, om_static, tmp_path):
    doubles.setenv("FAKE_NPU_COUNT", "2")
    write_inputs(tmp_path / "in", 2, 8)
    with pytest.raises(StageError, match=r"^NPU device 3 does not exist on this host; its devices are: 0, 1$"):
        ais_bench.run_inference(om_static, tmp_path / "in", tmp_path / "out", devices=[0, 3])


def test_run_inference_wrong_input_size(doubles, om_static, tmp_path):
    write_inputs(tmp_path / "in", 1, 16)
    with pytest.raises(StageError, match=r"0\.bin: 3200 bytes, but tiny\.om takes .*\[1,8,50\] = 1600 bytes"):
        ais_bench.run_inference(om_static, tmp_path / "in", tmp_path / "out")


def test_run_inference_om_for_another_chip(doubles, om_static, tmp_path):
    doubles.setenv("FAKE_NPU_NAME", "910B3")
    write_inputs(tmp_path / "in", 1, 8)
    expected = r"^tiny\.om was built for Ascend310P3 but this host has Ascend910B3; rerun make om$"
    with pytest.raises(StageError, match=expected):
        ais_bench.run_inference(om_static, tmp_path / "in", tmp_path / "out")


def test_run_inference_host_check_ignores_soc_version(doubles, om_static, tmp_path):
    # SOC_VERSION names the chip to build for; this host's chip is what npu-smi says.
    doubles.setenv("FAKE_NPU_NAME", "910B3")
    doubles.setenv("SOC_VERSION", "Ascend310P3")
    write_inputs(tmp_path / "in", 1, 8)
    with pytest.raises(StageError, match="this host has Ascend910B3"):
        ais_bench.run_inference(om_static, tmp_path / "in", tmp_path / "out")


def test_run_inference_missing_ais_bench(doubles, om_static, tmp_path):
    doubles.delenv("PYTHONPATH")
    write_inputs(tmp_path / "in", 1, 8)
    with pytest.raises(StageError, match="ais_bench not found"):
        ais_bench.run_inference(om_static, tmp_path / "in", tmp_path / "out")


def test_run_inference_lost_output(doubles, om_static, tmp_path):
    doubles.setenv("FAKE_AIS_DROP_OUTPUT", "1")
    write_inputs(tmp_path / "in", 3, 8)
    with pytest.raises(StageError, match=r"^ais_bench wrote no output for 1 of 3 inputs: 1$"):
        ais_bench.run_inference(om_static, tmp_path / "in", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_run_inference_needs_the_manifest(doubles, om_static, tmp_path):
    bare = tmp_path / "bare.om"
    bare.write_bytes(om_static.read_bytes())
    write_inputs(tmp_path / "in", 1, 8)
    with pytest.raises(StageError, match=r"bare\.om\.json: missing .*rerun make om"):
        ais_bench.run_inference(bare, tmp_path / "in", tmp_path / "out")


def test_run_inference_empty_input_folder(doubles, om_static, tmp_path):
    (tmp_path / "in").mkdir()
    with pytest.raises(StageError, match="holds no .bin input files"):
        ais_bench.run_inference(om_static, tmp_path / "in", tmp_path / "out")


# --- run_perf ------------------------------------------------------------------------------

def test_run_perf_static(doubles, om_static):
    result = ais_bench.run_perf(om_static, batch=1, loop=5, warmup=2, device=0)
    assert set(result) == {"batch", "sentences_per_s", "latency_ms", "h2d_ms", "d2h_ms", "iterations",
                           "warmup", "warmup_method", "device", "tool", "tool_record", "command", "commands"}
    assert (result["batch"], result["iterations"], result["warmup"], result["tool"]) == (1, 5, 2, "ais_bench")
    latency = result["latency_ms"]
    assert result["sentences_per_s"] == pytest.approx(1000.0 / latency["mean"])
    assert latency["p50"] <= latency["p90"] <= latency["p99"]
    assert result["h2d_ms"]["count"] >= 1  # the 2025 release copies pure-inference data in once
    command = result["command"]
    assert "--input" not in command
    assert command[command.index("--loop") + 1] == "5" and command[command.index("--warmup_count") + 1] == "2"


def test_run_perf_dynamic_batch(doubles, om_dynamic):
    result = ais_bench.run_perf(om_dynamic, batch=4, loop=3, warmup=0, device=0)
    assert result["batch"] == 4
    assert result["command"][result["command"].index("--dymBatch") + 1] == "4"
    assert result["sentences_per_s"] == pytest.approx(4000.0 / result["latency_ms"]["mean"])


def test_run_perf_without_warmup_count(doubles, om_static):
    _use_doubles(doubles, ais="ais_infer-2022-09")
    # Enough iterations that the subtracted warm-up run's total is small beside the timed run's:
    # the tiny model's 0.01 ms calls are within the CPU's noise otherwise.
    result = ais_bench.run_perf(om_static, batch=1, loop=200, warmup=1, device=0)
    assert all("--warmup_count" not in command for command in result["commands"])
    assert "no --warmup_count" in result["warmup_method"] and result["sentences_per_s"] > 0


def test_run_perf_batch_checks(doubles, om_static, om_dynamic):
    with pytest.raises(StageError, match="built for batch 1, asked to run batch 4"):
        ais_bench.run_perf(om_static, batch=4, loop=1, warmup=0, device=0)
    with pytest.raises(StageError, match="gears are 1,4,8, not 2"):
        ais_bench.run_perf(om_dynamic, batch=2, loop=1, warmup=0, device=0)
    with pytest.raises(StageError, match="NPU device 1 does not exist"):
        ais_bench.run_perf(om_static, batch=1, loop=1, warmup=0, device=1)
