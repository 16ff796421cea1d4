"""The per-release atc doubles and fake CANN installs in tests/doubles/cann (no CANN here).

Each release's atc must accept what that release's atc accepts and refuse what it refuses
(precision modes, flags it does not have), name its .om like that release, and leave
fusion_result.json in its working folder. The fake install trees must carry the files a
host would have, in their real formats.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
CANN = HERE / "doubles" / "cann"
sys.path.insert(0, str(CANN))
sys.path.insert(0, str(HERE / "doubles" / "pylib"))

import atc_engine  # noqa: E402
import fake_om  # noqa: E402
from releases import CANN_RELEASES, atc_output_name, atc_path, env_for_cann, set_env_path  # noqa: E402

VENV_BIN = Path(sys.executable).parent
META_KEYS = {"input_name", "input_shape", "dynamic_batch_size", "precision_mode", "outputs", "soc_version",
             "test_double"}
MODES_51 = {"force_fp32", "must_keep_origin_dtype", "allow_fp32_to_fp16", "allow_mix_precision", "force_fp16"}
MODES_70 = MODES_51 | {"cube_fp16in_fp32out", "allow_mix_precision_fp16", "allow_mix_precision_bf16",
                       "allow_fp32_to_bf16"}
EXPECTED_MODES = {"cann-5.1.RC2": MODES_51, "cann-6.0.1": MODES_51, "cann-7.0": MODES_70, "cann-8.0": MODES_70}
FAKE_VARS = ("FAKE_ATC_FAIL", "FAKE_ATC_SO_IN_OM", "ASCEND_HOME_PATH", "ASCEND_TOOLKIT_HOME")


@pytest.fixture(scope="module")
def onnx_model(tmp_path_factory) -> Path:
    """int32 input [N,8,50] -> float32 output (Cast), opset 11."""
    import onnx
    from onnx import TensorProto, helper

    path = tmp_path_factory.mktemp("model") / "elmo.onnx"
    x = helper.make_tensor_value_info("input", TensorProto.INT32, ["N", 8, 50])
    y = helper.make_tensor_value_info("embeddings", TensorProto.FLOAT, ["N", 8, 50])
    graph = helper.make_graph([helper.make_node("Cast", ["input"], ["embeddings"], to=TensorProto.FLOAT)],
                              "tiny", [x], [y])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 11)]), str(path))
    return path


def _env(release, **extra):
    base = {k: v for k, v in os.environ.items() if k not in FAKE_VARS}
    base["PATH"] = os.pathsep.join([str(VENV_BIN), base.get("PATH", "")])
    env = env_for_cann(release, base)
    env.update(extra)
    return env


def run_atc(release, args, cwd, **extra):
    return subprocess.run(["atc", *args], cwd=str(cwd), env=_env(release, **extra), stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, universal_newlines=True, timeout=120)


def guide_args(model, output, *extra, batch="1"):
    args = ["--framework=5", f"--model={model}", f"--output={output}", "--input_format=ND",
            f"--input_shape=input:{batch},8,50", "--log=error", "--soc_version=Ascend310P3"]
    return args + list(extra)


def oms(folder: Path):
    return sorted(p.name for p in folder.rglob("*.om"))


@pytest.mark.parametrize("release", CANN_RELEASES)
def test_compiles_with_the_release_naming(release, onnx_model, tmp_path):
    done = run_atc(release, guide_args(onnx_model, "out/elmo", "--dynamic_batch_size=1,2,4", batch="-1"),
                   tmp_path)
    assert done.returncode == 0, done.stdout
    lines = done.stdout.splitlines()
    assert lines[0] == "ATC start working now, please wait for a moment."
    assert lines[-1] == "ATC run success, welcome to the next use."
    name = atc_output_name(release, "elmo")
    assert oms(tmp_path) == [name]
    if release in ("cann-7.0", "cann-8.0"):
        assert re.fullmatch(r"elmo_linux_(x86_64|aarch64)\.om", name)
    else:
        assert name == "elmo.om"
    assert (tmp_path / "fusion_result.json").is_file()
    meta, onnx_bytes = fake_om.read(tmp_path / "out" / name)
    assert set(meta) == META_KEYS
    assert meta["input_shape"] == [-1, 8, 50] and meta["dynamic_batch_size"] == [1, 2, 4]
    assert meta["outputs"] == ["embeddings"] and onnx_bytes == onnx_model.read_bytes()


@pytest.mark.parametrize("release", CANN_RELEASES)
def test_accepts_every_mode_its_help_lists(release, onnx_model, tmp_path):
    for mode in sorted(EXPECTED_MODES[release] - {"allow_mix_precision_bf16", "allow_fp32_to_bf16"}):
        done = run_atc(release, guide_args(onnx_model, f"o_{mode}", f"--precision_mode={mode}"), tmp_path)
        assert done.returncode == 0, (mode, done.stdout)
    assert len(oms(tmp_path)) == len(EXPECTED_MODES[release]) - (2 if release in ("cann-7.0", "cann-8.0") else 0)


@pytest.mark.parametrize("release,mode", [
    ("cann-5.1.RC2", "cube_fp16in_fp32out"), ("cann-5.1.RC2", "allow_mix_precision_fp16"),
    ("cann-6.0.1", "allow_fp32_to_bf16"), ("cann-6.0.1", "fp16"),
    ("cann-7.0", "mixed_float16"), ("cann-7.0", "keep_origin"),
    ("cann-8.0", "origin"), ("cann-8.0", "allow_mix_precision_int8"),
])
def test_refuses_a_precision_mode_the_release_does_not_know(release, mode, onnx_model, tmp_path):
    done = run_atc(release, guide_args(onnx_model, "elmo", f"--precision_mode={mode}"), tmp_path)
    assert done.returncode != 0
    assert "ATC run failed, Please check the detail log" in done.stdout
    assert f"E10001: Value [{mode}] for parameter [--precision_mode] is invalid." in done.stdout
    assert oms(tmp_path) == [] and not (tmp_path / "fusion_result.json").exists()


def test_bf16_modes_need_an_a2_chip(onnx_model, tmp_path):
    done = run_atc("cann-7.0", guide_args(onnx_model, "elmo", "--precision_mode=allow_mix_precision_bf16"),
                   tmp_path)
    assert done.returncode != 0 and "E10001" in done.stdout and oms(tmp_path) == []
    args = [a.replace("Ascend310P3", "Ascend910B3") for a in
            guide_args(onnx_model, "elmo", "--precision_mode=allow_mix_precision_bf16")]
    assert run_atc("cann-7.0", args, tmp_path).returncode == 0


@pytest.mark.parametrize("release", ["cann-5.1.RC2", "cann-6.0.1", "cann-7.0"])
def test_precision_mode_v2_is_an_unknown_flag_before_8_0(release, onnx_model, tmp_path):
    done = run_atc(release, guide_args(onnx_model, "elmo", "--precision_mode_v2=fp16"), tmp_path)
    assert done.returncode == 1
    assert "ERROR: unknown command line flag 'precision_mode_v2'" in done.stdout
    assert oms(tmp_path) == []


def test_8_0_precision_mode_v2(onnx_model, tmp_path):
    assert run_atc("cann-8.0", guide_args(onnx_model, "a", "--precision_mode_v2=mixed_float16"),
                   tmp_path).returncode == 0
    for extra in (["--precision_mode_v2=mixed_hif8"],
                  ["--precision_mode_v2=fp16", "--precision_mode=force_fp16"]):
        done = run_atc("cann-8.0", guide_args(onnx_model, "b", *extra), tmp_path)
        assert done.returncode != 0 and "[--precision_mode_v2] is invalid" in done.stdout
    assert oms(tmp_path) == [atc_output_name("cann-8.0", "a")]


@pytest.mark.parametrize("release", CANN_RELEASES)
def test_help_prints_the_release_precision_modes(release, tmp_path):
    done = run_atc(release, ["--help"], tmp_path)
    assert done.returncode == 1  # gflags exits 1 after --help(short)
    assert "atc.bin: usage: ./atc <args>" in done.stdout
    lines = [ln for ln in done.stdout.splitlines() if re.match(r"\s*--precision_mode\s", ln)]
    assert len(lines) == 1
    listed = set(re.findall(r"\b([a-z][a-z0-9]*(?:_[a-z0-9]+)+)\b", lines[0].split("support", 1)[1]))
    assert listed == EXPECTED_MODES[release]
    assert set(atc_engine.RELEASES[release].precision_modes) == EXPECTED_MODES[release]
    for flag in ("--op_select_implmode", "--keep_dtype", "--modify_mixlist", "--op_precision_mode",
                 "--dynamic_batch_size", "--input_shape", "--soc_version", "--log"):
        assert re.search(rf"^\s*{flag}\s", done.stdout, re.M), flag
    assert ("--precision_mode_v2" in done.stdout) == (release == "cann-8.0")
    assert run_atc(release, ["-h"], tmp_path).stdout == done.stdout


@pytest.mark.parametrize("release", CANN_RELEASES)
def test_version_prints_no_version_number(release, tmp_path):
    done = run_atc(release, ["--version"], tmp_path)
    assert done.returncode == 0
    assert done.stdout.splitlines() == ["ATC start working now, please wait for a moment.", "atc.bin"]
    assert run_atc(release, ["-v"], tmp_path).returncode == 1  # no such flag


@pytest.mark.parametrize("release", ["cann-5.1.RC2", "cann-8.0"])
def test_front_end_refusals(release, onnx_model, tmp_path):
    cases = [
        (guide_args(onnx_model, "elmo", "--log=verbose"), "E10010: invalid value for --log:verbose"),
        (guide_args(onnx_model, "elmo", "--op_select_implmode=fast"), "[--op_select_implmode] is invalid"),
        (guide_args(onnx_model, "elmo", "--precision_mode=force_fp16", f"--modify_mixlist={onnx_model}"),
         "[--modify_mixlist] is invalid"),
        (guide_args(onnx_model, "elmo", "--keep_dtype=missing.cfg"), "[--keep_dtype] is invalid"),
        (guide_args(onnx_model, "my model"), "[--output] is invalid"),
        (guide_args(onnx_model, "elmo", batch="-1"), "[--input_shape] is invalid"),
        (guide_args(onnx_model, "elmo", "--dynamic_batch_size=1,2"), "E10031"),
        ([a.replace("input:", "x:") for a in guide_args(onnx_model, "elmo")], "E10016"),
        ([a.replace("1,8,50", "1,8") for a in guide_args(onnx_model, "elmo")], "[--input_shape] is invalid"),
        ([a.replace("1,8,50", "1,9,50") for a in guide_args(onnx_model, "elmo")], "[--input_shape] is invalid"),
        ([a.replace("--framework=5", "--framework=9") for a in guide_args(onnx_model, "elmo")], "E10007"),
        ([a.replace("Ascend310P3", "310P3") for a in guide_args(onnx_model, "elmo")], "[--soc_version]"),
        (guide_args(tmp_path / "none.onnx", "elmo"), "realpath error"),
        (guide_args(onnx_model, "elmo", "--input_format=NHWC"), "[--input_format] is invalid"),
    ]
    for args, expected in cases:
        done = run_atc(release, args, tmp_path)
        assert done.returncode == 255, (args, done.stdout)
        assert expected in done.stdout, (args, done.stdout)
    assert oms(tmp_path) == []
    done = run_atc(release, guide_args(onnx_model, "elmo"), tmp_path, FAKE_ATC_FAIL="1")
    assert done.returncode != 0 and "E19010" in done.stdout and oms(tmp_path) == []


def test_gflags_forms_and_so_suffix_override(onnx_model, tmp_path):
    args = ["--framework", "5", "--model", str(onnx_model), "-output=elmo", "--input_shape", "input:1,8,50",
            "--soc_version=Ascend310P3"]
    assert run_atc("cann-5.1.RC2", args, tmp_path).returncode == 0
    assert oms(tmp_path) == ["elmo.om"]
    assert run_atc("cann-8.0", args + ["--host_env_cpu=aarch64"], tmp_path).returncode == 0
    assert "elmo_linux_aarch64.om" in oms(tmp_path)
    assert run_atc("cann-8.0", [a.replace("-output=elmo", "-output=plain") for a in args], tmp_path,
                   FAKE_ATC_SO_IN_OM="0").returncode == 0
    assert "plain.om" in oms(tmp_path)
    done = run_atc("cann-5.1.RC2", args + ["--host_env_cpu=aarch64"], tmp_path)
    assert done.returncode == 1 and "unknown command line flag 'host_env_cpu'" in done.stdout
    done = run_atc("cann-7.0", ["--soc_version"], tmp_path)
    assert done.returncode == 1 and "missing its argument" in done.stdout


def _fields(path: Path) -> dict:
    return dict(ln.split("=", 1) for ln in path.read_text().splitlines() if "=" in ln and not ln.startswith("#"))


@pytest.mark.parametrize("release,cann,component,driver", [
    ("cann-5.1.RC2", "5.1.RC2", "1.82.22.2.220", "22.0.2"),
    ("cann-6.0.1", "6.0.1", "1.84.15.1.310", "22.0.4"),
    ("cann-7.0", "7.0.0", "7.1.0.3.220", "23.0.0"),
    ("cann-8.0", "8.0.0", "7.6.0.1.220", "24.1.rc3"),
])
def test_install_tree(release, cann, component, driver):
    env = env_for_cann(release, {"PATH": "/usr/bin"})
    assert env["PATH"].split(os.pathsep)[0] == str(atc_path(release).parent)
    assert os.access(atc_path(release), os.X_OK)
    home = Path(env["ASCEND_TOOLKIT_HOME"])
    compiler = _fields(home / "compiler" / "version.info")
    assert compiler["Version"] == component
    assert compiler.get("version_dir") == (cann if release in ("cann-7.0", "cann-8.0") else None)
    assert not (home / "version.info").exists()  # latest/ holds version.cfg, not version.info
    cfg = _fields(home / "version.cfg")
    assert cfg["runtime_running_version"] == f"[{component}:{cann}]"
    assert cfg["compiler_running_version"] == f"[{component}:{cann}]"
    drv = _fields(Path(env["ASCEND_DRIVER_HOME"]) / "version.info")
    assert drv["Version"] == driver and drv["ascendhal_version"].startswith("7.35.")
    info = _fields(Path(env["ASCEND_INSTALL_INFO"]))
    assert info["Driver_Install_Path_Param"] == "/usr/local/Ascend"
    assert {"UserName", "UserGroup", "Driver_Install_Type", "Driver_Install_Mode"} <= set(info)


@pytest.mark.parametrize("release", CANN_RELEASES)
def test_set_env_sh(release):
    script = set_env_path(release)
    done = subprocess.run(["bash", "-c", f'source "{script}" && echo "$ASCEND_TOOLKIT_HOME" && '
                                         f'echo "$ASCEND_HOME_PATH" && command -v atc'],
                          stdout=subprocess.PIPE, universal_newlines=True, env={"PATH": "/usr/bin:/bin"})
    home, home_path, atc = done.stdout.splitlines()
    assert Path(home) == atc_path(release).parents[1] and home_path == home
    assert Path(atc) == atc_path(release)
