"""`python -m stages embed`: allennlp's elmo command on the project's model."""
from __future__ import annotations

import json

import h5py
import numpy as np
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
    cos = (a * b).sum(-1) / np.linalg.norm(a, axis=-1) / np.linalg.norm(b, axis=-1)
    return cos.reshape(-1)


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
    assert "buckets 8 16 32" in done.stdout  # covering the 20-token line
    with h5py.File(out, "r") as handle:
        assert handle["0"].shape == (3, 16) and handle["1"].shape == (0, 16) and handle["2"].shape == (20, 16)
    bad = make("embed", f"INPUT={tmp_path / 'nope.txt'}", f"OUTPUT={out}", *settings, check=False)
    assert bad.returncode != 0 and "INPUT=" in bad.stderr and "no such file" in bad.stderr
    bad = make("embed", f"INPUT={text}", f"OUTPUT={out}", "LAYERS=mix", *settings, check=False)
    assert bad.returncode != 0 and 'LAYERS="mix": use all, top or average' in bad.stderr
