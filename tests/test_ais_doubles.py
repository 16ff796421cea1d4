"""The ais_infer / ais_bench test doubles themselves (tests/doubles/ais_bench), one per real release.

Each double must run a (fake) .om over a folder of .bin inputs the way its release does, and
refuse what its release refuses. They are run as a host runs them: ``launcher(release)`` under
``env_for(release, env)``, with the project's venv python first on PATH.
"""
from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

HERE = Path(__file__).resolve().parent
DOUBLES = HERE / "doubles"


def _load(name, path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


releases = _load("ais_doubles_releases", DOUBLES / "ais_bench" / "releases.py")
fake_om = _load("ais_doubles_fake_om", DOUBLES / "pylib" / "fake_om.py")

ALL = releases.RELEASES
SCRIPT = ["ais_infer-2022-06", "ais_infer-2022-09"]
MODULE = ["ais_bench-2022-11", "msit-2024-06", "ais_bench-2025-master"]
CHECKING = ["msit-2024-06", "ais_bench-2025-master"]
UNCHECKING = ["ais_infer-2022-06", "ais_infer-2022-09", "ais_bench-2022-11"]
MODEL_FLAG = {r: "--om" if r in UNCHECKING else "-m" for r in ALL}
WORDS, CHARS = 8, 50
SAMPLE_BYTES = WORDS * CHARS * 4


def _onnx_bytes(batch) -> bytes:
    """input int32 [batch, 8, 50] -> output float32 [batch, 8, 1], the sum of each word's ids."""
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Cast", ["input"], ["as_float"], to=TensorProto.FLOAT),
         helper.make_node("ReduceSum", ["as_float", "axes"], ["output"], keepdims=1)],
        "tiny",
        [helper.make_tensor_value_info("input", TensorProto.INT32, [batch, WORDS, CHARS])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, [batch, WORDS, 1])],
        initializer=[helper.make_tensor("axes", TensorProto.INT64, [1], [2])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


@pytest.fixture(scope="module")
def oms(tmp_path_factory):
    """A static (batch 1) and a dynamic-batch (gears 1,2,4) fake .om, as the atc doubles (tests/doubles/cann) write them."""
    folder = tmp_path_factory.mktemp("oms")
    made = {}
    for name, dims, gears in (("static", [1, WORDS, CHARS], []), ("dynamic", [-1, WORDS, CHARS], [1, 2, 4])):
        path = folder / f"{name}.om"
        meta = {"test_double": True, "soc_version": "Ascend310P3", "input_name": "input", "input_shape": dims,
                "dynamic_batch_size": gears, "precision_mode": None, "outputs": ["output"]}
        fake_om.write(str(path), meta, _onnx_bytes(-1 if gears else 1))
        made[name] = path
    return made


def prepare(tmp_path, oms):
    """A call prepared as the strictest release wants it: om 0o640, an input folder 0o750 of hard
    links to 0o644/0o640 files, an output folder 0o750 -- and no characters outside A-Za-z0-9_-/."""
    tmp_path.mkdir(exist_ok=True)
    os.chmod(tmp_path, 0o750)
    source = tmp_path / "data"
    source.mkdir()
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    for i in range(3):
        data = source / f"{i}.bin"
        np.full((1, WORDS, CHARS), i, dtype=np.int32).tofile(data)
        os.chmod(data, 0o644 if i % 2 == 0 else 0o640)
        os.link(data, inputs / f"{i}.bin")
    os.chmod(inputs, 0o750)
    om = tmp_path / "model.om"
    om.write_bytes(oms["static"].read_bytes())
    os.chmod(om, 0o640)
    dyn = tmp_path / "dynamic.om"
    dyn.write_bytes(oms["dynamic"].read_bytes())
    os.chmod(dyn, 0o640)
    out = tmp_path / "out"
    out.mkdir()
    os.chmod(out, 0o750)
    return tmp_path


@pytest.fixture
def work(tmp_path, oms):
    return prepare(tmp_path, oms)


@pytest.fixture
def works(tmp_path, oms):
    """One prepared folder per release."""
    return {release: prepare(tmp_path / release.replace(".", "_"), oms) for release in ALL}


def _env(release, **extra):
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env.update(extra)
    return releases.env_for(release, env)


def start(release, *args, cwd=None, env=None, argv=None):
    argv = releases.launcher(release) + [str(a) for a in args] if argv is None else argv
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=cwd,
                            env=env or _env(release))


def finish(process):
    stdout, stderr = process.communicate(timeout=60)
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


def run(release, *args, cwd=None, env=None, argv=None):
    done = finish(start(release, *args, cwd=cwd, env=env, argv=argv))
    done.text = done.stdout + done.stderr
    return done


def run_each(calls):
    """Calls run side by side (each double is a process of its own): {key: result}.

    ``calls`` maps a key to (args, cwd), the key being the release, or to (release, args, cwd, env)."""
    started = {}
    for key, call in calls.items():
        release, args, cwd, env = (key, *call, None) if len(call) == 2 else call
        started[key] = start(release, *args, cwd=cwd, env=env)
    results = {}
    for key, process in started.items():
        done = finish(process)
        done.text = done.stdout + done.stderr
        results[key] = done
    return results


def infer_args(release, work, **more):
    args = [MODEL_FLAG[release], work / "model.om", "--input", work / "inputs", "--output", work / "out"]
    if release != "ais_infer-2022-06":
        args += ["--output_dirname", more.pop("dirname", "run")]
    for key, value in more.items():
        args += [f"--{key}", value]
    return args


def summary_of(release, work, dirname="run"):
    if release in SCRIPT:
        folder = _only_folder(work / "out") if release == "ais_infer-2022-06" else work / "out" / dirname
        return folder, json.loads((folder / "sumary.json").read_text())
    folder = work / "out" / dirname
    return folder, json.loads((work / "out" / f"{dirname}_summary.json").read_text())


def _only_folder(parent):
    folders = [p for p in parent.iterdir() if p.is_dir()]
    assert len(folders) == 1, folders
    assert re.fullmatch(r"\d{4}_\d{2}_\d{2}-\d{2}_\d{2}_\d{2}", folders[0].name)
    return folders[0]


# ---- how each release is found ----------------------------------------------------------

def test_release_ids_oldest_first():
    assert releases.RELEASES == ["ais_infer-2022-06", "ais_infer-2022-09", "ais_bench-2022-11", "msit-2024-06",
                                 "ais_bench-2025-master"]
    with pytest.raises(ValueError, match="unknown ais_bench release"):
        releases.launcher("ais_bench-1999")


def test_env_for_module_releases():
    base = {"AIS_BENCH": "python3 -m ais_bench", "AIS_INFER_DIR": "/x", "PATH": "/bin",
            "PYTHONPATH": os.pathsep.join([str(DOUBLES / "pylib"), "/elsewhere"])}
    for release in MODULE:
        env = releases.env_for(release, base)
        path = env["PYTHONPATH"].split(os.pathsep)
        assert path[:2] == [str(releases.release_dir(release)), str(DOUBLES / "pylib")]
        assert "/elsewhere" in path and "AIS_BENCH" not in env and "AIS_INFER_DIR" not in env
        assert releases.launcher(release) == ["python3", "-m", "ais_bench"]
    assert base["AIS_BENCH"] == "python3 -m ais_bench"  # a copy, not the caller's dict


def test_env_for_script_releases():
    base = {"AIS_BENCH": "x", "PYTHONPATH": os.pathsep.join([str(DOUBLES / "pylib"), "/elsewhere"])}
    for release in SCRIPT:
        env = releases.env_for(release, base)
        assert env["AIS_INFER_DIR"] == str(releases.release_dir(release))
        # No folder left on PYTHONPATH holds an ais_bench package: `python3 -m ais_bench` must fail.
        assert not any((Path(p) / "ais_bench").is_dir() for p in env["PYTHONPATH"].split(os.pathsep))
        assert "AIS_BENCH" not in env
        assert releases.launcher(release) == ["python3", str(releases.release_dir(release) / "ais_infer.py")]


@pytest.mark.parametrize("release", SCRIPT)
def test_script_releases_have_no_ais_bench_module(release, tmp_path):
    done = run(release, argv=["python3", "-m", "ais_bench", "--help"], cwd=tmp_path)
    assert done.returncode == 1 and "No module named ais_bench" in done.text


def test_help_lists_the_release_flags(tmp_path):
    for release, done in run_each({r: (["--help"], tmp_path) for r in ALL}).items():
        _check_help(release, done)


def _check_help(release, done):
    assert done.returncode == 0, (release, done.text)
    prog = "ais_infer.py" if release in SCRIPT else "__main__.py"
    assert done.stdout.startswith(f"usage: {prog} [-h] --model MODEL")
    flags = set(re.findall(r"(?<![\w-])(--[A-Za-z][\w-]*)", done.stdout))
    assert {"--model", "--input", "--output", "--outfmt", "--loop", "--device", "--dymBatch", "--batchsize"} <= flags
    assert ("--output_dirname" in flags) == (release != "ais_infer-2022-06")
    assert ("--warmup_count" in flags) == (release in MODULE)
    assert ("--display_all_summary" in flags) == (release in MODULE)
    assert ("--warmup-count" in flags) == (release == "msit-2024-06")
    assert ("--device_id" in flags) == (release == "ais_infer-2022-06")
    assert ("--om" in flags) == (release in UNCHECKING)


def test_model_is_required(tmp_path):
    for release, done in run_each({r: (["--loop", "2"], tmp_path) for r in (ALL[0], ALL[-1])}).items():
        names = "--model/--om" if release in UNCHECKING else "--model/-m"
        assert done.returncode == 2, release
        assert f"error: the following arguments are required: {names}" in done.stderr, release


# ---- a run over a folder of inputs --------------------------------------------------------

def test_runs_the_fake_om_over_a_folder(works):
    os.chmod(works["msit-2024-06"] / "out", 0o755)  # msit accepts it, then makes it 0o750
    calls = {}
    for release, work in works.items():
        extra = {"warmup_count": 2} if release in MODULE else {}
        calls[release] = (infer_args(release, work, loop=2, **extra), work)
    for release, done in run_each(calls).items():
        _check_run(release, works[release], done)


def _check_run(release, work, done):
    assert done.returncode == 0, (release, done.text)
    folder, summary = summary_of(release, work)
    names = sorted(p.name for p in folder.iterdir() if p.name != "sumary.json")
    if release == "ais_infer-2022-06":
        assert names == ["sample_id_0_output_0.bin", "sample_id_1_output_0.bin", "sample_id_2_output_0.bin"]
    else:
        assert names == ["0_0.bin", "1_0.bin", "2_0.bin"]
    for i, name in enumerate(names):  # really computed: the sum of 50 ids of value i
        assert np.allclose(np.fromfile(folder / name, dtype=np.float32), 50.0 * i)
    assert list(summary)[:6] == ["filesinfo", "args", "NPU_compute_time", "H2D_latency", "D2H_latency",
                                 "throughput"]
    assert summary["filesinfo"]["0"]["infiles"] == [str(work / "inputs" / "0.bin")]
    npu = summary["NPU_compute_time"]
    assert 0 < npu["min"] <= npu["median"] <= npu["max"] and npu["percentile(99%)"] <= npu["max"]
    assert summary["throughput"] == pytest.approx(1000 / npu["mean"])
    if release in SCRIPT:
        assert "count" not in npu and "npu_compute_time_list" not in summary and "pid" not in summary
        assert not (work / "out" / "run_summary.json").exists()
    else:
        assert npu["count"] == 6 and len(summary["npu_compute_time_list"]) == 6  # 3 batches x --loop 2
        assert summary["npu_compute_time_list"] != [summary["npu_compute_time_list"][0]] * 6
        assert summary["H2D_latency"]["count"] == 3 and isinstance(summary["pid"], int)
        assert not (folder / "sumary.json").exists()
    line = {"ais_infer-2022-06": "[INFO] throughput (1000*batchsize/NPU_compute_time): ",
            "ais_infer-2022-09": "[INFO] throughput 1000*batchsize(1)/NPU_compute_time.mean(",
            "ais_bench-2022-11": "[INFO] throughput 1000*batchsize(1)/NPU_compute_time.mean(",
            "msit-2024-06": "[INFO] throughput 1000*batchsize.mean(1)/NPU_compute_time.mean(",
            "ais_bench-2025-master": "[INFO] throughput 1000*batchsize.mean(1)/NPU_compute_time.mean("}[release]
    assert line in done.stdout and "Performance Summary" in done.stdout
    assert ("[INFO] H2D_latency (ms)" in done.stdout) == (release in SCRIPT)
    warm = {"ais_infer-2022-06": None, "ais_infer-2022-09": "[INFO] warm up 1 times done"}.get(
        release, "[INFO] warm up 2 done")
    assert warm is None or warm in done.stdout
    if release in CHECKING:
        assert oct(os.stat(work / "out").st_mode & 0o777) == oct(0o750)
        assert oct(os.stat(folder / "0_0.bin").st_mode & 0o777) == oct(0o640)


def test_pure_inference(works):
    calls = {}
    for release in ("ais_infer-2022-06", "ais_infer-2022-09", "ais_bench-2025-master"):
        work = works[release]
        args = [MODEL_FLAG[release], work / "model.om", "--output", work / "out", "--loop", 3]
        if release != "ais_infer-2022-06":
            args += ["--output_dirname", "run"]
        calls[release] = (args, work)
    for release, done in run_each(calls).items():
        _check_pure(release, works[release], done)


def _check_pure(release, work, done):
    assert done.returncode == 0, (release, done.text)
    folder, summary = summary_of(release, work)
    name = "sample_id_0_output_0.bin" if release == "ais_infer-2022-06" else "pure_infer_data_0.bin"
    assert (folder / name).is_file()
    assert summary["filesinfo"]["0"]["infiles"] == ["pure_infer_data"]
    if release in MODULE:
        assert summary["NPU_compute_time"]["count"] == 3  # --loop 3; the warm-up is not counted


# ---- what the releases refuse ---------------------------------------------------------------

def test_2022_09_has_no_warmup_count(work):
    done = run("ais_infer-2022-09", *infer_args("ais_infer-2022-09", work, warmup_count=1), cwd=work)
    assert done.returncode == 2
    assert "ais_infer.py: error: unrecognized arguments: --warmup_count 1" in done.stderr


def test_2022_06_has_no_output_dirname(work):
    done = run("ais_infer-2022-06", *infer_args("ais_infer-2022-06", work), "--output_dirname", "run", cwd=work)
    assert done.returncode == 2
    assert "ais_infer.py: error: unrecognized arguments: --output_dirname run" in done.stderr


def test_2025_refuses_a_0o755_output_folder(work):
    os.chmod(work / "out", 0o755)
    done = run("ais_bench-2025-master", *infer_args("ais_bench-2025-master", work), cwd=work)
    assert done.returncode == 2
    assert f"__main__.py: error: argument --output/-o: output path:{work / 'out'} is illegal. Please check." \
        in done.stderr
    assert "permission should not be over 0o750(rwxr-x---)" in done.stdout


@pytest.mark.parametrize("release", CHECKING)
@pytest.mark.parametrize("what", ["input", "om"])
def test_group_writable_files_are_refused(release, what, work):
    target = work / "inputs" / "1.bin" if what == "input" else work / "model.om"
    os.chmod(target, 0o664)
    args = infer_args(release, work)
    if what == "input":
        args[args.index("--input") + 1] = target
    done = run(release, *args, cwd=work)
    flag, kind = ("--input/-i", "input") if what == "input" else ("--model/-m", "om")
    assert done.returncode == 2
    assert f"error: argument {flag}: {kind} path:{target} is illegal. Please check." in done.stderr
    assert "is group writable, or is others writable, as import file(or directory)" in done.stdout


@pytest.mark.parametrize("release", CHECKING)
def test_group_writable_file_in_the_input_folder_is_refused(release, work):
    os.chmod(work / "inputs" / "2.bin", 0o664)
    done = run(release, *infer_args(release, work), cwd=work)
    assert done.returncode == 1
    assert f"RuntimeError: input data:{work / 'inputs' / '2.bin'} is illegal" in done.stderr


@pytest.mark.parametrize("release", CHECKING)
def test_symlinked_inputs_are_refused(release, work):
    link = work / "link.bin"
    link.symlink_to(work / "data" / "0.bin")
    args = infer_args(release, work)
    args[args.index("--input") + 1] = link
    (work / "inputs" / "3.bin").symlink_to(work / "data" / "0.bin")
    given, listed = run_each({"given": (release, args, work, None),
                              "listed": (release, infer_args(release, work), work, None)}).values()
    assert given.returncode == 2
    assert f"error: argument --input/-i: input path:{link} is illegal. Please check." in given.stderr
    assert "is a soft link, not supported" in given.stdout
    assert listed.returncode == 1 and f"input data:{work / 'inputs' / '3.bin'} is illegal" in listed.stderr


@pytest.mark.parametrize("release", CHECKING)
@pytest.mark.parametrize("char", [" ", "+"])
def test_paths_with_other_characters_are_refused(release, char, work):
    odd = work / f"in{char}puts"
    (work / "inputs").rename(odd)
    args = infer_args(release, work)
    args[args.index("--input") + 1] = odd
    done = run(release, *args, cwd=work)
    assert done.returncode == 2
    said = (f"input path:{odd} is illegal. Please check." if release == "msit-2024-06"
            else "input path string is illegal. Please check.")
    assert f"error: argument --input/-i: {said}" in done.stderr
    assert "legal chars include A-Z a-z 0-9 _ - / ." in done.stdout


def test_2025_checks_relative_paths_from_the_cwd_and_msit_as_given(work):
    cwd = work / "wd+1"
    cwd.mkdir()
    (cwd / "in").mkdir(mode=0o750)
    refused = run("ais_bench-2025-master", "-m", work / "model.om", "--input", "in", "--bogus", cwd=cwd)
    assert refused.returncode == 2 and "argument --input/-i: input path string is illegal" in refused.stderr
    passed = run("msit-2024-06", "-m", work / "model.om", "--input", "in", "--bogus", cwd=cwd)
    assert passed.returncode == 2 and "error: unrecognized arguments: --bogus" in passed.stderr


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give a file to another user")
@pytest.mark.parametrize("release", CHECKING)
def test_files_of_another_user_are_refused(release, work):
    os.chown(work / "model.om", 65534, 65534)
    done = run(release, *infer_args(release, work), cwd=work)
    assert done.returncode == 2 and "isn't path" in done.stdout and "owner or ownergroup" in done.stdout
    assert f"argument --model/-m: om path:{work / 'model.om'} is illegal. Please check." in done.stderr


def test_older_releases_check_no_path(work):
    odd = work / "in puts+"
    (work / "inputs").rename(odd)
    (odd / "3.bin").symlink_to(work / "data" / "0.bin")
    os.chmod(work / "model.om", 0o666)
    os.chmod(work / "out", 0o777)
    done = run("ais_bench-2022-11", "--model", work / "model.om", "--input", odd, "--output", work / "out",
               "--output_dirname", "run", cwd=work)
    assert done.returncode == 0, done.text
    assert sorted(p.name for p in (work / "out" / "run").iterdir()) == ["0_0.bin", "1_0.bin", "2_0.bin", "3_0.bin"]


@pytest.mark.parametrize("release", CHECKING)
def test_output_dirname_rules(release, work):
    absolute = run(release, *infer_args(release, work, dirname=str(work / "abs")), cwd=work)
    assert absolute.returncode == 1 and "ValueError: --output_dirname do not support abs path!" in absolute.stderr
    alone = run(release, "-m", work / "model.om", "--output_dirname", "x", cwd=work)
    assert alone.returncode == 1 and "parameter --output_dirname cann't be used alone" in alone.stdout


def test_2022_09_output_folder_must_be_new_and_its_parent_exist(work):
    (work / "out" / "run").mkdir()
    release = "ais_infer-2022-09"
    args = infer_args(release, work)
    args[args.index("--output") + 1] = work / "missing"
    exists, missing = run_each({"exists": (release, infer_args(release, work), work, None),
                                "missing": (release, args, work, None)}).values()
    assert exists.returncode == 1 and "FileExistsError" in exists.stderr
    assert missing.returncode == 1 and "FileNotFoundError" in missing.stderr


def test_2025_existing_output_subfolder_must_pass_the_read_check(work):
    (work / "out" / "run").mkdir(mode=0o750)
    os.chmod(work / "out" / "run", 0o770)
    done = run("ais_bench-2025-master", *infer_args("ais_bench-2025-master", work), cwd=work)
    assert done.returncode == 1
    assert f"ValueError: The path:{work / 'out' / 'run'} is illegal. Please check the error log" in done.stderr


# ---- batch sizes, devices, knobs ------------------------------------------------------------

def test_dynamic_batch(work):
    args = infer_args("ais_bench-2022-11", work, dymBatch=2)
    args[1] = work / "dynamic.om"
    dyn = work / "dynamic.om"
    done, missing, zero, wrong = run_each({
        "done": ("ais_bench-2022-11", args, work, None),
        "missing": ("msit-2024-06", ["-m", dyn, "--input", work / "inputs"], work, None),
        "zero": ("ais_bench-2025-master", ["-m", dyn, "--dymBatch", "0"], work, None),
        "wrong": ("ais_infer-2022-09", ["--model", dyn, "--dymBatch", "3"], work, None),
    }).values()
    assert done.returncode == 0, done.text
    assert "filesperbatch:2 runcount:2" in done.stdout  # two 1-sentence files per batch, the last padded
    assert sorted(p.name for p in (work / "out" / "run").iterdir()) == ["0_0.bin", "1_0.bin", "2_0.bin"]
    assert missing.returncode == 1
    assert "dynamic batch om model detected, but dymbatch, dymdims or dymshape not set!" in missing.stderr
    assert zero.returncode == 2 and "argument --dymBatch: 0 is an invalid positive int value" in zero.stderr
    assert wrong.returncode == 1 and "[ERROR] the dymBatch parameter is not correct" in wrong.stdout


def test_missing_device_and_dropped_output(work):
    release = "ais_bench-2025-master"
    args = infer_args(release, work) + ["--device", "1"]
    env = _env(release, FAKE_NPU_COUNT="2", FAKE_AIS_DROP_OUTPUT="1")
    absent, done = run_each({"absent": (release, args, work, None), "done": (release, args, work, env)}
                            ).values()
    assert absent.returncode == 1 and "[ERROR] acl open device 1 failed" in absent.stdout
    assert done.returncode == 0, done.text
    assert sorted(p.name for p in (work / "out" / "run").iterdir()) == ["0_0.bin", "2_0.bin"]
