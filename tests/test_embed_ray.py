"""`make embed RAY_ADDRESS=…`: the windows computed by Ray Data's actor pool on a local cluster.

A local cluster on loopback (its own temp dir, a free port, no dashboard, no usage stats): a head,
then one worker node with a custom ``NPU`` resource and the Ascend doubles in its environment. The
runs go through make on the trained bilm-tf fixture for TARGET=cpu and TARGET=ascend (the doubles)
and must write exactly the single-host file, also when an actor's process is SIGKILLed while it
holds windows (Ray restarts it and runs the blocks it held again). Every process of the cluster is
stopped at the end, by pid (its command line names the cluster's temp dir), never by a name
machine-wide.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from tests.conftest import REPO, make
from tests.test_ascend_pipeline import PAIRS, npu_host_env

pytest.importorskip("ray")

RAY = REPO / ".venv" / "bin" / "ray"
RELEASE = "ais_bench-2025-master"
LINES = 160
WINDOW = 4  # 40 windows: the kill below lands while most are still to do


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _cluster_pids(temp_dir: Path) -> set:
    """The cluster's processes: those whose command line names ``temp_dir``, and their descendants."""
    parents, roots = {}, set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        parents[int(entry.name)] = ppid
        if str(temp_dir) in cmdline:
            roots.add(int(entry.name))
    found = set(roots)
    grew = True
    while grew:
        grew = False
        for pid, ppid in parents.items():
            if ppid in found and pid not in found:
                found.add(pid)
                grew = True
    found.discard(os.getpid())
    return found


def _stop(temp_dir: Path) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        pids = _cluster_pids(temp_dir)
        for pid in pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.time() + 10
        while pids and time.time() < deadline and _cluster_pids(temp_dir):
            time.sleep(0.2)


def _ray_start(args, env, temp_dir):
    done = subprocess.run([str(RAY), "start", "--node-ip-address=127.0.0.1", "--disable-usage-stats", *args],
                          capture_output=True, text=True, env=env, timeout=180)
    if done.returncode != 0:
        _stop(temp_dir)
        raise AssertionError(f"ray start failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return tmp_path_factory.mktemp("embed-ray")


@pytest.fixture(scope="module")
def head(folder):
    """A head alone (1 CPU, no NPU): ``host:port``. Stopped, with the worker, when the module ends."""
    temp_dir = Path(f"/tmp/ray-{os.getpid()}-{folder.name}")  # Ray's socket paths must stay short
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    _ray_start(["--head", f"--port={port}", f"--temp-dir={temp_dir}", "--num-cpus=1", "--num-gpus=0",
                "--include-dashboard=false"], env, temp_dir)
    try:
        yield f"127.0.0.1:{port}", temp_dir
    finally:
        _stop(temp_dir)
        left = _cluster_pids(temp_dir)
        shutil.rmtree(temp_dir, ignore_errors=True)
        assert not left, f"cluster processes left behind: {left}"


@pytest.fixture(scope="module")
def cluster(head, folder):
    """The head plus one worker node (1 CPU, a custom ``NPU`` resource, the Ascend doubles)."""
    address, temp_dir = head
    env = npu_host_env(folder, RELEASE, PAIRS[RELEASE], npus=1)
    env = {k: v for k, v in env.items() if not k.startswith("RAY_")}
    _ray_start([f"--address={address}", "--num-cpus=1", "--num-gpus=0", '--resources={"NPU": 1}'], env, temp_dir)
    return address, temp_dir


@pytest.fixture(scope="module")
def corpus(folder, bilm_fixture):
    words = [w for w in (bilm_fixture / "vocab_test.txt").read_text().split() if not w.startswith("<")]
    rng = np.random.default_rng(7)
    lengths = [int(n) for n in rng.integers(0, 17, size=LINES)]  # buckets 8 and 16, some empty lines
    text = folder / "in.txt"
    text.write_text("\n".join(" ".join(rng.choice(words, size=n)) for n in lengths) + "\n", encoding="utf-8")
    return text


def _embed(folder, bilm_fixture, corpus, target, name, *extra, env=None):
    env = dict(env if env is not None else os.environ)
    env.pop("RAY_ADDRESS", None)
    if target == "ascend" and "FAKE_NPU_COUNT" not in env:
        env.update(npu_host_env(folder, RELEASE, PAIRS[RELEASE], npus=1))
    out = folder / f"{name}.hdf5"
    settings = [f"TARGET={target}", f"INPUT={corpus}", f"OUTPUT={out}", "WORD_LEN=8 16", f"EMBED_WINDOW={WINDOW}",
                f"ARTIFACTS={folder / 'artifacts'}", f"ELMO_OPTIONS={bilm_fixture / 'options.json'}",
                f"ELMO_WEIGHTS={bilm_fixture / 'lm_weights.hdf5'}", "THREADS=1"]
    if target == "ascend":
        settings += ["BATCH=1 4", "PRECISION_MODE=force_fp32"]
    started = time.perf_counter()
    done = make("embed", *settings, *extra, env=env, check=False)
    return done, out, time.perf_counter() - started


def _same_file(got: Path, want: Path) -> None:
    with h5py.File(got, "r") as a, h5py.File(want, "r") as b:
        assert sorted(a) == sorted(b)
        for name in a:
            assert a[name].shape == b[name].shape and np.array_equal(a[name][...], b[name][...]), name
        assert dict(a.attrs) == dict(b.attrs)


def _one_line(done) -> str:
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    lines = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, done.stderr[-3000:]
    return lines[0]


@pytest.fixture(scope="module")
def single_host(folder, bilm_fixture, corpus):
    """The single-host files the cluster runs must reproduce (the first builds each target's models)."""
    files = {}
    for target in ("cpu", "ascend"):
        done, out, _ = _embed(folder, bilm_fixture, corpus, target, f"single-{target}")
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        files[target] = out
    return files


# ---- without a cluster ---------------------------------------------------------------------------

def test_an_actor_names_a_missing_or_different_file(tmp_path, bilm_fixture):
    """Checked on arrival, before any model opens: one line naming the node and the file."""
    from stages.common.hashing import sha256_file
    from stages.tools.embed_ray import EmbedActor

    options = bilm_fixture / "options.json"
    good = (str(options), sha256_file(options))
    weights = (str(bilm_fixture / "lm_weights.hdf5"), sha256_file(bilm_fixture / "lm_weights.hdf5"))
    missing = EmbedActor("cpu", {8: (str(tmp_path / "gone.onnx"), "0" * 64)}, good, weights, 4, "torch", 1, "all")
    assert "gone.onnx is missing; EMBED_SHARED_DIR must be a folder every node reaches" in missing.ping()["error"]
    other = EmbedActor("cpu", {}, (str(options), "f" * 64), weights, 4, "torch", 1, "all")
    assert "options.json differs from the driver's file (sha256" in other.ping()["error"]
    assert other.embed(str(tmp_path), 0, 4, [["a"]]) == {"error": other.ping()["error"]}
    # as Ray Data's callable class: one status row per window, the error in it (the driver's one line)
    as_udf = EmbedActor("cpu", {}, (str(options), "f" * 64), weights, 4, "torch", 1, "all", str(tmp_path), 4)
    row = as_udf({"start": np.array([8]), "lines": np.array([1]), "text": np.array([b"a b\n"], dtype=object)})
    assert list(row["start"]) == [8] and list(row["lines"]) == [1] and list(row["stats"]) == [""]
    assert list(row["error"]) == [other.ping()["error"]]


def test_an_ascend_actor_checks_the_chip_of_its_own_node(tmp_path, bilm_fixture, monkeypatch):
    """The .om was built for the driver's chip; a node with another chip refuses it in one line,
    before any model opens."""
    from stages.backends.ascend.om_manifest import SCHEMA, manifest_path
    from stages.common.hashing import sha256_file
    from stages.tools.embed_ray import EmbedActor

    om = tmp_path / "elmo_w8.om"
    om.write_bytes(b"an offline model")
    manifest_path(om).write_text(json.dumps({
        "schema": SCHEMA, "command": ["atc"], "soc_version": "Ascend310P3", "input_shape": [1, 8, 50],
        "batch_sizes": [1], "onnx": "elmo_w8.onnx", "onnx_sha256": "0" * 64, "om_size": om.stat().st_size}))
    for name, value in npu_host_env(tmp_path, RELEASE, PAIRS[RELEASE], npus=1).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("FAKE_NPU_NAME", "910B3")
    files = [(str(path), sha256_file(path)) for path in (bilm_fixture / "options.json", bilm_fixture / "lm_weights.hdf5")]
    actor = EmbedActor("ascend", {8: (str(om), sha256_file(om))}, *files, 4, "torch", 1, "all")
    error = actor.ping()["error"]
    assert error.startswith(f"node {actor.node}: ") and "elmo_w8.om was built for Ascend310P3 but this host has " \
        "Ascend910B3; rerun make om" in error
    assert actor.embed(str(tmp_path), 0, 4, [["a"]]) == {"error": error}


def test_the_windows_are_located_as_the_single_host_run_reads_them(tmp_path):
    """The driver sends byte ranges; the actor's token lists are embed._windows' own."""
    from stages.tools.embed import _windows
    from stages.tools.embed_ray import window_ranges, window_sentences

    text = tmp_path / "in.txt"
    for body in (b"a b\n\n c\td \n\xc3\xa9t\xc3\xa9\r\nx", b"one\ntwo\nthree\n", b""):
        text.write_bytes(body)
        data = text.read_bytes()
        for size in (1, 2, 3, 4):
            got = [(start, window_sentences(data[offset:offset + length]))
                   for start, lines, offset, length in window_ranges(text, size)]
            assert got == list(_windows(text, size))
            assert all(lines == len(s) for (_, lines, _, _), (_, s) in zip(window_ranges(text, size), got))


def test_the_images_carry_the_same_ray():
    """Every node of a cluster of containers runs one Ray: the export and runtime images pin the same."""
    import re

    files = [(REPO / "docker" / name).read_text()
             for name in ("export/requirements.txt", "export/constraints.txt", "runtime/requirements.txt")]
    for package in (r"ray(?:\[data\])?", "pandas", "pyarrow", "fsspec"):  # Ray Data imports the last three
        pins = [re.search(rf"^{package}==(\S+)$", text, re.M) for text in files]
        assert all(pins) and len({m.group(1) for m in pins}) == 1, package
    assert "ray[data]==" in files[0] and "ray[data]==" in files[2]
    assert re.search(r"^ray\[data\]==", (REPO / "requirements.txt").read_text(), re.M)


# ---- refusals: before the worker joins, the head alone has no NPU ---------------------------------

def test_an_unreachable_address_is_one_line_and_fast(folder, bilm_fixture, corpus):
    done, out, seconds = _embed(folder, bilm_fixture, corpus, "cpu", "unreachable", f"RAY_ADDRESS=127.0.0.1:{_free_port()}")
    assert done.returncode != 0 and not out.exists()
    assert "no Ray head answers there" in _one_line(done)
    assert seconds < 60


def test_a_cluster_without_npu_is_one_line(head, folder, bilm_fixture, corpus):
    done, out, _ = _embed(folder, bilm_fixture, corpus, "ascend", "no-npu", f"RAY_ADDRESS={head[0]}")
    assert done.returncode != 0 and not out.exists()
    assert "the cluster has no NPU resource" in _one_line(done)


# ---- through the cluster -------------------------------------------------------------------------

@pytest.mark.parametrize("target", ["cpu", "ascend"])
def test_the_cluster_writes_the_single_host_file(cluster, folder, bilm_fixture, corpus, single_host, target):
    done, out, _ = _embed(folder, bilm_fixture, corpus, target, f"ray-{target}", f"RAY_ADDRESS={cluster[0]}")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    _same_file(out, single_host[target])
    manifest = json.loads(out.with_name(out.name + ".json").read_text())
    single = json.loads(single_host[target].with_name(single_host[target].name + ".json").read_text())
    assert manifest["counts"] == single["counts"] and manifest["resumed_sentences"] == 0
    assert not (folder / f".{out.name}.parts").exists()


def _kill_an_actor_once_it_has_written(temp_dir: Path, parts: Path, killed: list) -> None:
    """SIGKILL one process of this cluster's EmbedActor pool as soon as the first shard exists."""
    deadline = time.time() + 150
    while time.time() < deadline:
        if parts.is_dir() and list(parts.glob("shard-*.h5")):
            for pid in _cluster_pids(temp_dir):
                try:
                    title = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode(errors="replace")
                except OSError:
                    continue
                if title.startswith("ray::") and "EmbedActor" in title:  # Ray Data's MapWorker(MapBatches(EmbedActor))
                    done_before = len(list(parts.glob("shard-*.h5")))
                    os.kill(pid, signal.SIGKILL)
                    killed.append((pid, done_before))
                    return
        time.sleep(0.02)


@pytest.mark.parametrize("target", ["cpu", "ascend"])
def test_a_killed_actor_s_windows_are_redone(cluster, folder, bilm_fixture, corpus, single_host, target):
    name = f"killed-{target}"
    killed: list = []
    killer = threading.Thread(target=_kill_an_actor_once_it_has_written,
                              args=(cluster[1], folder / f".{name}.hdf5.parts", killed), daemon=True)
    killer.start()
    done, out, _ = _embed(folder, bilm_fixture, corpus, target, name, f"RAY_ADDRESS={cluster[0]}")
    killer.join(timeout=5)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert killed and killed[0][1] < LINES // WINDOW, killed  # it died with windows still to do
    _same_file(out, single_host[target])


def test_a_killed_driver_resumes_from_the_shards(cluster, folder, bilm_fixture, corpus, single_host):
    """make (and the driver under it) SIGKILLed mid-run: the rerun keeps the shards written and ends with the same file."""
    name = "driver-killed"
    parts = folder / f".{name}.hdf5.parts"
    env = {k: v for k, v in os.environ.items() if k not in ("MAKELEVEL", "MAKEFLAGS", "MFLAGS", "MAKEOVERRIDES")}
    out = folder / f"{name}.hdf5"
    settings = ["embed", "TARGET=cpu", f"INPUT={corpus}", f"OUTPUT={out}", "WORD_LEN=8 16", f"EMBED_WINDOW={WINDOW}",
                f"ARTIFACTS={folder / 'artifacts'}", f"ELMO_OPTIONS={bilm_fixture / 'options.json'}",
                f"ELMO_WEIGHTS={bilm_fixture / 'lm_weights.hdf5'}", "THREADS=1", f"RAY_ADDRESS={cluster[0]}"]
    run = subprocess.Popen(["make", "--no-print-directory", "-C", str(REPO), *settings], env=env,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 120
    while time.time() < deadline and run.poll() is None and len(list(parts.glob("shard-*.h5"))) < 3:
        time.sleep(0.02)
    assert run.poll() is None, "the run ended before it could be killed"
    os.killpg(run.pid, signal.SIGKILL)
    run.wait(timeout=30)
    kept = len(list(parts.glob("shard-*.h5")))
    assert 3 <= kept < LINES // WINDOW and not out.exists()
    done, out, _ = _embed(folder, bilm_fixture, corpus, "cpu", name, f"RAY_ADDRESS={cluster[0]}")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    _same_file(out, single_host["cpu"])
    manifest = json.loads(out.with_name(out.name + ".json").read_text())
    assert manifest["resumed_sentences"] >= kept * WINDOW - WINDOW  # the first shard may have been its last
