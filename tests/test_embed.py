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
    assert "input file not found" in capsys.readouterr().err
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"caf\xe9\n")
    assert main(["embed", str(bad), str(tmp_path / "o.hdf5"), *fixture_args]) == 2
    assert "not UTF-8" in capsys.readouterr().err
    assert not (tmp_path / "o.hdf5").exists()
