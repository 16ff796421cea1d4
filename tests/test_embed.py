"""`python -m stages embed`: allennlp's elmo command on the project's model."""
from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import onnx
import pytest

from stages.__main__ import main


@pytest.fixture()
def fixture_args(bilm_fixture):
    return ["--options", str(bilm_fixture / "options.json"), "--weights", str(bilm_fixture / "lm_weights.hdf5")]


def test_layouts_and_empty_line(tmp_path, fixture_args):
    text = tmp_path / "in.txt"
    text.write_text("The cat sat .\n\nA " + "x" * 70 + " token\n", encoding="utf-8")
    shapes = {}
    for mode, expected in (("all", (3, 4, 32)), ("top", (4, 32)), ("average", (4, 32)), ("mix", (4, 32))):
        out = tmp_path / f"{mode}.hdf5"
        assert main(["embed", str(text), str(out), f"--{mode}", *fixture_args]) == 0
        with h5py.File(out, "r") as handle:
            shapes[mode] = handle["0"].shape
            assert handle["1"].shape[-2] == 0  # the empty line keeps its index
            assert handle["2"].shape[-2] == 3  # the 72-byte token is one token, cut inside
            index = json.loads(handle["sentence_to_index"][0])
            assert index["The cat sat ."] == 0
        assert shapes[mode] == expected
    with h5py.File(tmp_path / "all.hdf5", "r") as every, h5py.File(tmp_path / "average.hdf5", "r") as mean:
        assert np.allclose(every["0"][...].mean(axis=0), mean["0"][...], atol=1e-6)


def test_stateful_reproduces_bilm_tf_stream(tmp_path, fixture_args, bilm_fixture, fixture_sentences):
    text = tmp_path / "in.txt"
    # Row k of batch i is line 3i + k, so batches of 3 replay bilm-tf's run.
    lines = [" ".join(fixture_sentences[k][i]) for i in range(10) for k in range(3)]
    text.write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = tmp_path / "top.hdf5"
    assert main(["embed", str(text), str(out), "--top", "--stateful", "--batch-size", "3", *fixture_args]) == 0
    with h5py.File(out, "r") as got, h5py.File(bilm_fixture / "lm_embeddings_0.hdf5", "r") as ref:
        for i in range(10):
            expected = np.concatenate([ref[str(i)][0], ref[str(i)][1]], axis=-1)
            assert np.abs(got[str(3 * i)][...] - expected).max() < 1e-5


def test_missing_input_and_bad_utf8(tmp_path, fixture_args, capsys):
    assert main(["embed", str(tmp_path / "nope.txt"), str(tmp_path / "o.hdf5"), *fixture_args]) == 2
    assert "nope.txt: no such file" in capsys.readouterr().err
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"caf\xe9\n")
    assert main(["embed", str(bad), str(tmp_path / "o.hdf5"), *fixture_args]) == 2
    assert "not UTF-8" in capsys.readouterr().err
    assert not (tmp_path / "o.hdf5").exists()


# --- streaming through bucket offline models ---------------------------------------------------

def _corpus(path, vocab, lengths, seed=0):
    rng = np.random.default_rng(seed)
    lines = [" ".join(rng.choice(vocab, size=n)) if n else "" for n in lengths]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return lines


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """One cache of bucket models for the module: each is built once, as a user's second run finds them."""
    return tmp_path_factory.mktemp("embed-models")


@pytest.fixture(scope="module")
def vocab(bilm_fixture):
    words = [w for w in (bilm_fixture / "vocab_test.txt").read_text().split() if not w.startswith("<")]
    return np.array(words)


def _token_cosines(a, b):
    from stages.reports.metrics import cosine

    return cosine(a, b, axis=-1).reshape(-1)


def test_buckets_match_pytorch_on_every_length(tmp_path, fixture_args, vocab, models):
    """Every length 1..120 through buckets 8/16/32/64 (longer: the PyTorch module), all three layers."""
    text = tmp_path / "in.txt"
    lengths = list(range(1, 121)) + [0]
    _corpus(text, vocab, lengths)
    ours, reference = tmp_path / "buckets.hdf5", tmp_path / "torch.hdf5"
    assert main(["embed", str(text), str(ours), *fixture_args, "--models-dir", str(models),
                 "--buckets", "8 16 32 64", "--batch-size", "8"]) == 0
    assert main(["embed", str(text), str(reference), *fixture_args]) == 0
    manifest = json.loads((tmp_path / "buckets.hdf5.json").read_text())
    assert manifest["counts"] == {"8": 8, "16": 8, "32": 16, "64": 32, "long": 56, "empty": 1}
    with h5py.File(ours, "r") as a, h5py.File(reference, "r") as b:
        assert sorted(a.keys()) == sorted(b.keys())
        for i, n in enumerate(lengths):
            x, y = a[str(i)][...], b[str(i)][...]
            assert x.shape == y.shape == (3, n, 32)
            if n:
                assert _token_cosines(x, y).min() >= 0.99999, (i, n)
        assert a.attrs["layers"] == "all" and len(a.attrs["weights_sha256"]) == 64


def test_int8_buckets_pass_the_gate(tmp_path, fixture_args, vocab, models):
    text = tmp_path / "in.txt"
    _corpus(text, vocab, [3, 7, 12, 16, 20] * 4)
    ours, reference = tmp_path / "int8.hdf5", tmp_path / "torch.hdf5"
    assert main(["embed", str(text), str(ours), *fixture_args, "--models-dir", str(models),
                 "--buckets", "8 16", "--precision", "int8", "--batch-size", "4", "--top"]) == 0
    assert main(["embed", str(text), str(reference), *fixture_args, "--top"]) == 0
    with h5py.File(ours, "r") as a, h5py.File(reference, "r") as b:
        worst = min(_token_cosines(a[k][...], b[k][...]).min() for k in a if k != "sentence_to_index")
    assert worst >= 0.99


def test_bad_input_lines_are_named(tmp_path, fixture_args, capsys):
    text = tmp_path / "in.txt"
    text.write_bytes(b"fine line\ncaf\xe9 latin1\nok\n\xff\n")
    out = tmp_path / "o.hdf5"
    assert main(["embed", str(text), str(out), *fixture_args, "--models-dir", str(tmp_path / "m")]) == 2
    err = capsys.readouterr().err
    assert "2 line(s) are not UTF-8 (line 2, 4)" in err and "iconv" in err and not out.exists()


def test_long_fail_refuses_a_sentence_longer_than_every_bucket(tmp_path, fixture_args, vocab, capsys):
    text = tmp_path / "in.txt"
    _corpus(text, vocab, [3, 12])
    out = tmp_path / "o.hdf5"
    assert main(["embed", str(text), str(out), *fixture_args, "--models-dir", str(tmp_path / "m"),
                 "--buckets", "8", "--long", "fail"]) == 2
    assert "line 2: 12 tokens, more than the largest bucket (8)" in capsys.readouterr().err
    assert not out.exists()


def test_killed_embed_resumes_to_the_same_file(tmp_path, fixture_args, vocab, models):
    import signal
    import subprocess
    import sys
    import time

    text = tmp_path / "in.txt"
    rng = np.random.default_rng(5)
    _corpus(text, vocab, list(rng.integers(0, 40, size=250)))
    args = [*fixture_args, "--models-dir", str(models), "--buckets", "8 16 32", "--batch-size", "4", "--window", "25"]
    clean = tmp_path / "clean.hdf5"
    assert main(["embed", str(text), str(clean), *args]) == 0
    out = tmp_path / "resumed.hdf5"
    parts = tmp_path / ".resumed.hdf5.parts"
    command = [sys.executable, "-m", "stages", "embed", str(text), str(out), *args]
    for kill in range(3):
        proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 60
        wanted = 1 + kill * 3 + int(rng.integers(0, 3))
        while time.time() < deadline and proc.poll() is None and len(list(parts.glob("shard-*.h5"))) < wanted:
            time.sleep(0.01)
        time.sleep(float(rng.uniform(0, 0.2)))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert main(["embed", str(text), str(out), *args]) == 0
    manifest = json.loads((tmp_path / "resumed.hdf5.json").read_text())
    assert manifest["resumed_sentences"] > 0
    with h5py.File(clean, "r") as a, h5py.File(out, "r") as b:
        assert sorted(a.keys()) == sorted(b.keys())
        for key in a:
            assert np.array_equal(a[key][...], b[key][...]), key
    assert not parts.exists() and not list(tmp_path.glob(".resumed.hdf5.tmp-*"))


def test_embed_manifest_keys_are_documented(tmp_path, fixture_args, vocab, models):
    from tests.test_formats import documented_keys

    text = tmp_path / "in.txt"
    _corpus(text, vocab, [2, 5, 0])
    out = tmp_path / "o.hdf5"
    assert main(["embed", str(text), str(out), *fixture_args, "--models-dir", str(models), "--buckets", "8"]) == 0
    written = json.loads((tmp_path / "o.hdf5.json").read_text())
    assert set(written) == documented_keys("elmo-embed-manifest/1") and written["schema"] == "elmo-embed-manifest/1"


def test_make_embed(tmp_path):
    from tests.conftest import make, tiny_settings

    settings = [s for s in tiny_settings(tmp_path) if not s.startswith(("WORD_LEN=", "DATASET=", "PERF_SECONDS="))]
    text = tmp_path / "in.txt"
    text.write_text("the cat sat\n\n" + " ".join(["word"] * 20) + "\n", encoding="utf-8")
    out = tmp_path / "vectors.hdf5"
    done = make("embed", f"INPUT={text}", f"OUTPUT={out}", "LAYERS=top", *settings)
    assert "buckets 8 16 24" in done.stdout  # covering the 20-token line
    with h5py.File(out, "r") as handle:
        assert handle["0"].shape == (3, 16) and handle["1"].shape == (0, 16) and handle["2"].shape == (20, 16)
    bad = make("embed", f"INPUT={tmp_path / 'nope.txt'}", f"OUTPUT={out}", *settings, check=False)
    assert bad.returncode != 0 and "INPUT=" in bad.stderr and "no such file" in bad.stderr
    bad = make("embed", f"INPUT={text}", f"OUTPUT={out}", "LAYERS=mix", *settings, check=False)
    assert bad.returncode != 0 and 'LAYERS="mix": use all, top or average' in bad.stderr


# --- opening bucket models: lazily, in the background, the int8 batched form ----------------------

class _FakeRunner:
    """Deterministic stand-in for a bucket model: ``[B, 3, W, 4]`` from the char ids."""

    def __init__(self, word_len):
        self.word_len = word_len

    def infer(self, inputs):
        ids = inputs["input"]
        assert ids.shape[1] == self.word_len
        base = ids.astype(np.float32).sum(-1)[:, None, :, None]  # [B, 1, W, 1]
        return {"output": base + np.arange(3, dtype=np.float32)[None, :, None, None]
                + np.arange(4, dtype=np.float32)[None, None, None, :] / 8}


def _fake_embed(text, out, buckets, opened, **kwargs):
    import threading

    from stages.tools.embed import embed_offline

    def load_runners(subset):
        opened.extend((b, threading.current_thread().name) for b in subset)
        return {b: _FakeRunner(b) for b in subset}

    models = {b: text.with_name(f"model-{b}") for b in buckets}
    described = {str(b): {"path": str(p), "sha256": f"sha-{b}"} for b, p in models.items()}
    return embed_offline(text, out, options=None, weights=None, models=models, long="fail", progress=False,
                         weights_sha256="w" * 64, load_runners=load_runners, described=described, **kwargs)


def test_a_bucket_no_sentence_needs_never_opens(tmp_path, vocab):
    text = tmp_path / "in.txt"
    _corpus(text, vocab, [3, 0, 20, 5, 7, 18], seed=1)
    opened = []
    manifest = _fake_embed(text, tmp_path / "o.hdf5", [8, 16, 24, 32], opened, batch=2)
    assert sorted(b for b, _ in opened) == [8, 24]  # each once; 16 and 32 hold no sentence
    assert sorted(manifest["seconds"]["models_opened"]) == ["24", "8"]
    assert manifest["counts"] == {"8": 3, "16": 0, "24": 2, "32": 0, "long": 0, "empty": 1}
    assert all(name == "MainThread" for _, name in opened)
    with h5py.File(tmp_path / "o.hdf5", "r") as handle:
        assert handle["2"].shape == (3, 20, 4) and handle["1"].shape == (3, 0, 4)


def test_a_failed_model_load_leaves_no_output(tmp_path, vocab):
    from stages.common.errors import StageError
    from stages.tools.embed import embed_offline

    text = tmp_path / "in.txt"
    rng = np.random.default_rng(3)
    _corpus(text, vocab, list(rng.integers(0, 30, size=60)), seed=3)

    def broken(subset):
        if 16 in subset:
            raise StageError("bucket 16: cannot load it")
        return {b: _FakeRunner(b) for b in subset}

    models = {b: tmp_path / f"model-{b}" for b in (8, 16, 32)}
    with pytest.raises(StageError, match="bucket 16: cannot load it"):
        embed_offline(text, tmp_path / "broken.hdf5", options=None, weights=None, models=models, long="fail",
                      progress=False, weights_sha256="w" * 64, load_runners=broken,
                      described={str(b): {"sha256": str(b)} for b in models})
    assert not (tmp_path / "broken.hdf5").exists()


def test_killed_while_assembling_resumes_to_the_same_file(tmp_path, vocab, monkeypatch):
    """The first shard becomes the output: a run killed after that recomputes its window."""
    import h5py as h5

    text = tmp_path / "in.txt"
    rng = np.random.default_rng(7)
    _corpus(text, vocab, list(rng.integers(0, 30, size=50)), seed=7)
    _fake_embed(text, tmp_path / "clean.hdf5", [8, 16, 32], [], batch=4, window=16)

    real_copy = h5.Group.copy

    def dies(self, *args, **kwargs):
        raise KeyboardInterrupt  # as a kill would stop it, mid-assembly

    monkeypatch.setattr(h5.Group, "copy", dies)
    with pytest.raises(KeyboardInterrupt):
        _fake_embed(text, tmp_path / "out.hdf5", [8, 16, 32], [], batch=4, window=16)
    monkeypatch.setattr(h5.Group, "copy", real_copy)
    parts = tmp_path / ".out.hdf5.parts"
    assert not (parts / "shard-000000.h5").exists() and (parts / "shard-000001.h5").exists()
    manifest = _fake_embed(text, tmp_path / "out.hdf5", [8, 16, 32], [], batch=4, window=16)
    assert manifest["resumed_sentences"] == 50 - 16
    with h5py.File(tmp_path / "clean.hdf5", "r") as a, h5py.File(tmp_path / "out.hdf5", "r") as b:
        assert sorted(a.keys()) == sorted(b.keys())
        for key in a:
            assert np.array_equal(a[key][...], b[key][...]), key
        assert json.loads(a["sentence_to_index"][0]) == json.loads(b["sentence_to_index"][0])
    assert not parts.exists()


def test_int8_batched_form_is_the_judged_models_batched_branch(tmp_path, fixture_args, bilm_fixture, vocab, models):
    """embed loads the int8 model's batched branch alone: same outputs as the full model at batch > 1."""
    import onnxruntime as ort

    from stages.common.hashing import sha256_file
    from stages.elmo.charids import batch_ids
    from stages.tools.embed_models import bucket_models

    options, weights = bilm_fixture / "options.json", bilm_fixture / "lm_weights.hdf5"
    (batched,) = bucket_models(options, weights, [8], models, "int8").values()
    full = batched.with_name("elmo_w8_layers_int8.ort.onnx")
    assert batched.name == "elmo_w8_layers_int8_batched.ort.onnx" and full.is_file()
    record = json.loads(Path(str(batched) + ".json").read_text())
    assert record["derived_from_sha256"] == sha256_file(full) and record["sha256"] == sha256_file(batched)
    sentences = [list(vocab[:n]) for n in (3, 8, 5)]
    ids = batch_ids(sentences, word_len=8)
    options_ = ort.SessionOptions()
    options_.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    outputs = [ort.InferenceSession(str(p), options_, providers=["CPUExecutionProvider"]).run(None, {"input": ids})[0]
               for p in (full, batched)]
    assert np.array_equal(outputs[0], outputs[1])
    # The weights sit in the full model's outer graph; the cut takes the batched branch's and no others.
    kept = {t.name for t in onnx.load(str(batched)).graph.initializer}
    assert kept and all(name.startswith("batchN/") for name in kept)
    assert bucket_models(options, weights, [8], models, "int8")[8] == batched  # cached: not cut again


def test_bad_ascend_settings_are_one_line_before_the_input_is_read(tmp_path, fixture_args, capsys):
    text = tmp_path / "in.txt"
    text.write_text("a b\n", encoding="utf-8")
    out = tmp_path / "o.hdf5"
    base = ["embed", str(text), str(out), *fixture_args, "--models-dir", str(tmp_path / "m"), "--target", "ascend"]
    assert main([*base, "--devices", "0,a"]) == 2
    assert "DEVICES='0,a': give NPU ids like 0 or 0,1" in capsys.readouterr().err
    assert main([*base, "--om-batch", "1 x"]) == 2
    assert "BATCH='1 x': give whole numbers" in capsys.readouterr().err
    assert not out.exists() and not (tmp_path / "m").exists()


# --- pre-packing: only where enough batches repay the slower opening ------------------------------

def test_planned_calls_bound_every_bucket_s_runs():
    from collections import Counter

    from stages.tools.embed_models import planned_calls

    lengths = Counter({0: 5, 3: 70, 8: 30, 9: 1, 20: 3, 99: 2})  # empty and too-long lines run nowhere
    assert planned_calls(lengths, [8, 16, 24], batch=32, windows=1) == {8: 4, 16: 1, 24: 1}
    # each window may cut a bucket's batch short, but never more runs than sentences
    assert planned_calls(lengths, [8, 16, 24], batch=32, windows=10) == {8: 13, 16: 1, 24: 3}


def test_prepack_plan_packs_where_calls_repay_it():
    from stages.common.errors import StageError
    from stages.tools.embed_models import PREPACK_FROM_CALLS, prepack_plan

    calls = {8: PREPACK_FROM_CALLS["fp32"], 16: PREPACK_FROM_CALLS["fp32"] - 1, 32: 0}
    assert prepack_plan(calls, "fp32") == {8: True, 16: False, 32: False}
    assert prepack_plan(calls, "int8") == {8: True, 16: True, 32: False}
    assert prepack_plan(calls, "fp32", "on") == {8: True, 16: True, 32: True}
    assert prepack_plan(calls, "int8", "off") == {8: False, 16: False, 32: False}
    with pytest.raises(StageError, match="EMBED_PREPACK=maybe: use auto, on or off"):
        prepack_plan(calls, "fp32", "maybe")


def test_unpacked_buckets_give_the_packed_vectors(tmp_path, fixture_args, vocab, models):
    """ONNX Runtime opened with and without pre-packing: same vectors; the manifest says which."""
    text = tmp_path / "in.txt"
    _corpus(text, vocab, [3, 7, 12, 16, 5, 2], seed=4)
    files = {}
    for asked in ("on", "auto"):
        files[asked] = tmp_path / f"{asked}.hdf5"
        assert main(["embed", str(text), str(files[asked]), *fixture_args, "--models-dir", str(models),
                     "--buckets", "8 16", "--batch-size", "2", "--prepack", asked]) == 0
    plans = {k: json.loads(Path(f"{v}.json").read_text())["open_plan"] for k, v in files.items()}
    assert plans["on"] == {"asked": "on", "planned_calls": {"8": 2, "16": 1}, "prepacked": {"8": True, "16": True}}
    assert plans["auto"]["prepacked"] == {"8": False, "16": False}  # one or two calls repay no packing
    with h5py.File(files["on"], "r") as a, h5py.File(files["auto"], "r") as b:
        for k in map(str, range(6)):
            np.testing.assert_allclose(a[k][...], b[k][...], rtol=0, atol=1e-5)


def test_make_embed_refuses_a_bad_prepack(tmp_path):
    from tests.conftest import make

    text = tmp_path / "in.txt"
    text.write_text("a b\n", encoding="utf-8")
    bad = make("embed", f"INPUT={text}", f"OUTPUT={tmp_path / 'o.hdf5'}", "EMBED_PREPACK=yes", check=False)
    assert bad.returncode != 0 and 'EMBED_PREPACK="yes": use auto, on or off' in bad.stderr


def test_a_changed_prepack_plan_starts_afresh(tmp_path, vocab):
    """Shards from packed sessions are not mixed with unpacked ones (the last bit may differ); the
    same plan resumes."""
    from stages.common.errors import StageError
    from stages.tools.embed import embed_offline

    text = tmp_path / "in.txt"
    _corpus(text, vocab, [3, 12] * 10, seed=6)
    out = tmp_path / "o.hdf5"
    models = {b: tmp_path / f"model-{b}" for b in (8, 16)}
    packed = {"asked": "on", "planned_calls": {"8": 5, "16": 5}, "prepacked": {"8": True, "16": True}}
    unpacked = dict(packed, asked="off", prepacked={"8": False, "16": False})

    class Dies(_FakeRunner):
        calls = 0

        def infer(self, inputs):
            Dies.calls += 1
            if Dies.calls > 4:  # two windows of four lines done, then the run is "killed"
                raise StageError("killed")
            return super().infer(inputs)

    def run(plan, runner):
        Dies.calls = 0
        return embed_offline(text, out, options=None, weights=None, models=models, long="fail", progress=False,
                             weights_sha256="w" * 64, batch=4, window=4, open_plan=plan,
                             load_runners=lambda subset: {b: runner(b) for b in subset},
                             described={str(b): {"sha256": str(b)} for b in models})

    with pytest.raises(StageError, match="killed"):
        run(packed, Dies)
    assert len(list((tmp_path / ".o.hdf5.parts").glob("shard-*.h5"))) == 2
    assert run(unpacked, _FakeRunner)["resumed_sentences"] == 0
    with pytest.raises(StageError, match="killed"):
        run(packed, Dies)
    assert run(packed, _FakeRunner)["resumed_sentences"] == 8
