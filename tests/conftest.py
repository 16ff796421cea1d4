"""Shared test fixtures: the bilm-tf ground truth and small generated models."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# The bilm-tf fixture: ELMO_FIXTURE_DIR, else what `make fixtures` downloaded, else the workplace's
# shared folder beside the clone (where CI finds it).
FIXTURE_PLACES = [Path(p) for p in [os.environ.get("ELMO_FIXTURE_DIR", "")] if p] + [
    REPO / "data" / "fixtures" / "elmo-bilm-tf", REPO.parent / "shared" / "fixtures" / "elmo-bilm-tf"]
FIXTURE = next((p for p in FIXTURE_PLACES if (p / "lm_weights.hdf5").is_file()), FIXTURE_PLACES[-1])
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


@pytest.fixture(scope="session")
def bilm_fixture() -> Path:
    """The trained bilm-tf test model and its embeddings (../shared/fixtures/elmo-bilm-tf)."""
    if not (FIXTURE / "lm_weights.hdf5").is_file():
        pytest.skip("bilm-tf fixture not found: run `make fixtures` (downloads allennlp's test fixture, "
                    "sha256-pinned) or set ELMO_FIXTURE_DIR")
    return FIXTURE


@pytest.fixture(scope="session")
def fixture_sentences(bilm_fixture) -> list:
    """sentences[k][i]: row k of batch i, as token lists."""
    raw = json.loads((bilm_fixture / "sentences.json").read_text())
    return [[s.split() for s in row] for row in raw]


@pytest.fixture(scope="session")
def bilm_sim_onnx(bilm_fixture, tmp_path_factory) -> Path:
    """The trained bilm-tf model exported (WORD_LEN 8, dynamic batch) and simplified, as make does it:
    read, never written, by the tests that share it."""
    from stages.__main__ import main

    folder = tmp_path_factory.mktemp("bilm-sim")
    raw, sim = folder / "elmo.onnx", folder / "elmo_sim.onnx"
    assert main(["export", "--options", str(bilm_fixture / "options.json"), "--weights",
                 str(bilm_fixture / "lm_weights.hdf5"), "--word-len", "8", "--out", str(raw), "--dynamic-batch"]) == 0
    assert main(["simplify", str(raw), str(sim)]) == 0
    return sim


TINY_OPTIONS = {
    "lstm": {"use_skip_connections": True, "projection_dim": 8, "cell_clip": 3, "proj_clip": 3, "dim": 16,
             "n_layers": 2},
    "char_cnn": {"activation": "tanh", "filters": [[1, 4], [2, 4], [3, 8]], "n_highway": 1,
                 "embedding": {"dim": 4}, "n_characters": 262, "max_characters_per_token": 50},
}


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory):
    """(options.json, weights.hdf5) of a tiny synthetic model in the official layout."""
    from stages.elmo.elmo_options import ElmoOptions
    from stages.elmo.hdf5_weights import synthetic_weights, write_weights

    folder = tmp_path_factory.mktemp("tiny-model")
    options_path = folder / "options.json"
    weights_path = folder / "weights.hdf5"
    options_path.write_text(json.dumps(TINY_OPTIONS))
    write_weights(weights_path, synthetic_weights(ElmoOptions.from_dict(TINY_OPTIONS), seed=3))
    return options_path, weights_path


# Settings for pipeline runs through make: small, quick, on the shipped sample.
PERF = ["BATCH=1 4", "PERF_SECONDS=0.2", "WORD_LEN=8", "DATASET=sample", "THREADS=2"]


def make(*args, check=True, env=None, umask=None):
    """``make -C REPO args``; ``umask`` runs it under that umask (e.g. 0o002, Ubuntu's default for users
    with a private group), as every file the pipeline writes would be on such a host."""
    set_umask = None if umask is None else (lambda: os.umask(umask))
    # As a user types it, whether or not the tests themselves run under `make test`.
    env = {k: v for k, v in (os.environ if env is None else env).items()
           if k not in ("MAKELEVEL", "MAKEFLAGS", "MFLAGS", "MAKEOVERRIDES")}
    done = subprocess.run(["make", "--no-print-directory", "-C", str(REPO), *args], capture_output=True,
                          text=True, env=env, preexec_fn=set_umask)
    if check and done.returncode != 0:
        raise AssertionError(f"make {' '.join(args)} failed ({done.returncode}):\n{done.stdout[-3000:]}\n"
                             f"{done.stderr[-3000:]}")
    return done


def tiny_settings(folder, *extra) -> list:
    """make settings for a run of the tiny synthetic model under ``folder``."""
    like = folder / "tiny_options.json"
    like.write_text(json.dumps(TINY_OPTIONS))
    return [f"ARTIFACTS={folder / 'artifacts'}", "WEIGHTS=synthetic", f"SYNTHETIC_LIKE={like}", *PERF, *extra]


@pytest.fixture(scope="session")
def tiny_synthetic(tmp_path_factory):
    folder = tmp_path_factory.mktemp("pipeline")
    return folder, tiny_settings(folder)


@pytest.fixture(scope="session")
def first_run(tiny_synthetic):
    folder, settings = tiny_synthetic
    done = make("accuracy", "perf", *settings)
    return folder / "artifacts", settings, done
