"""Options/weights loading: bad input names the file and key; sources are labelled."""
from __future__ import annotations

import json

import h5py
import numpy as np
import pytest

from stages.__main__ import main
from stages.elmo.elmo_options import ORIGINAL_OPTIONS, ElmoOptions, load_options
from stages.common.errors import StageError
from stages.elmo.hdf5_weights import expected_shapes, read_weights, synthetic_weights, write_weights
from stages.sources.weights import load_source, resolve


def test_original_shapes_have_published_parameter_count():
    shapes = expected_shapes(ElmoOptions.from_dict(ORIGINAL_OPTIONS))
    total = sum(int(np.prod(s)) for s in shapes.values())
    assert 93.5e6 < total < 93.7e6  # "93.6M parameters"


def test_fixture_file_has_exactly_the_expected_datasets(bilm_fixture):
    options = load_options(bilm_fixture / "options.json")
    arrays = read_weights(bilm_fixture / "lm_weights.hdf5", options)
    assert set(arrays) == set(expected_shapes(options))


def test_missing_weights_file(tmp_path, tiny_model):
    options = load_options(tiny_model[0])
    with pytest.raises(StageError, match="not found"):
        read_weights(tmp_path / "nope.hdf5", options)


def test_truncated_weights_file(tmp_path, tiny_model):
    data = tiny_model[1].read_bytes()
    cut = tmp_path / "cut.hdf5"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(StageError, match=r"cut\.hdf5.*(truncated|not a readable)"):
        read_weights(cut, load_options(tiny_model[0]))


def test_missing_key_is_named(tmp_path, tiny_model):
    options = load_options(tiny_model[0])
    arrays = synthetic_weights(options)
    del arrays["CNN_proj/W_proj"]
    path = tmp_path / "w.hdf5"
    write_weights(path, arrays)
    with pytest.raises(StageError, match=r"w\.hdf5: dataset 'CNN_proj/W_proj' is missing"):
        read_weights(path, options)


def test_shape_mismatch_names_key_and_shapes(tmp_path, tiny_model):
    raw = json.loads(tiny_model[0].read_text())
    raw["lstm"]["dim"] = 32
    other = tmp_path / "options.json"
    other.write_text(json.dumps(raw))
    with pytest.raises(StageError, match=r"W_0' has shape \(16, 64\) but the options file implies \(16, 128\)"):
        read_weights(tiny_model[1], load_options(other))


def test_unknown_activation(tmp_path, tiny_model):
    raw = json.loads(tiny_model[0].read_text())
    raw["char_cnn"]["activation"] = "gelu"
    path = tmp_path / "options.json"
    path.write_text(json.dumps(raw))
    with pytest.raises(StageError, match=r"options\.json: char_cnn\.activation 'gelu'"):
        load_options(path)


def test_options_missing_key_and_bad_json(tmp_path):
    path = tmp_path / "options.json"
    path.write_text('{"lstm": {}}')
    with pytest.raises(StageError, match="missing key 'char_cnn'"):
        load_options(path)
    path.write_text("{not json")
    with pytest.raises(StageError, match="not valid JSON"):
        load_options(path)


def test_synthetic_is_deterministic_and_labelled(tmp_path, tiny_model):
    template = json.loads(tiny_model[0].read_text())
    first = resolve("synthetic", out_dir=tmp_path / "a", cache=tmp_path / "cache", template=template)
    second = resolve("synthetic", out_dir=tmp_path / "b", cache=tmp_path / "cache", template=template)
    assert first["weights_sha256"] == second["weights_sha256"]
    assert first["synthetic"] is True and "SYNTHETIC" in first["label"]
    with h5py.File(first["weights"], "r") as handle:
        assert "RNN_1/RNN/MultiRNNCell/Cell1/LSTMCell/W_P_0" in handle


def test_auto_falls_back_to_synthetic_when_offline(tmp_path, tiny_model, monkeypatch):
    import stages.sources.download

    monkeypatch.setattr(stages.sources.download, "reachable", lambda url, timeout=5.0: False)
    chosen = resolve("auto", out_dir=tmp_path, cache=tmp_path / "cache",
                     template=json.loads(tiny_model[0].read_text()))
    assert chosen["kind"] == "synthetic" and "unreachable" in chosen["reason"]


def test_explicit_paths_win_and_are_hashed(tmp_path, tiny_model):
    out = tmp_path / "source.json"
    assert main(["weights", "--options", str(tiny_model[0]), "--weights", str(tiny_model[1]),
                 "--out", str(out)]) == 0
    source = load_source(out)
    assert source["kind"] == "user" and not source["synthetic"]
    assert len(source["weights_sha256"]) == 64


def test_only_one_explicit_path_is_an_error(tmp_path, tiny_model, capsys):
    assert main(["weights", "--options", str(tiny_model[0]), "--out", str(tmp_path / "s.json")]) == 2
    assert "both ELMO_OPTIONS and ELMO_WEIGHTS" in capsys.readouterr().err
    assert not (tmp_path / "s.json").exists()


def test_official_source_downloads_verified_files(tmp_path, tiny_model, monkeypatch):
    """WEIGHTS=official: the real downloader against a local server holding generated model files."""
    import hashlib

    import stages.sources.official
    from tests.http_server import FileServer

    server = FileServer().start()
    try:
        files = {"options": tiny_model[0].read_bytes(), "weights": tiny_model[1].read_bytes()}
        pinned = {}
        for kind, body in files.items():
            name = f"elmo_{kind}.{'json' if kind == 'options' else 'hdf5'}"
            server.files[name] = body
            pinned[kind] = (server.url(name), hashlib.sha256(body).hexdigest(), len(body))
        monkeypatch.setattr(stages.sources.official, "OFFICIAL_ELMO", pinned)
        chosen = resolve("official", out_dir=tmp_path, cache=tmp_path / "cache")
        assert chosen["kind"] == "official" and not chosen["synthetic"]
        assert chosen["weights_sha256"] == pinned["weights"][1]
        # cached now: a second resolve makes no request, and auto prefers the cached official model
        served = len(server.requests)
        again = resolve("auto", out_dir=tmp_path, cache=tmp_path / "cache")
        assert again["kind"] == "official" and len(server.requests) == served

        bad = dict(pinned, weights=(pinned["weights"][0], "0" * 64, 1))
        monkeypatch.setattr(stages.sources.official, "OFFICIAL_ELMO", bad)
        with pytest.raises(StageError, match="sha256 mismatch"):
            resolve("official", out_dir=tmp_path, cache=tmp_path / "cache2")
        assert not list((tmp_path / "cache2").glob("*.hdf5*"))
    finally:
        server.stop()
