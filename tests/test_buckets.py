"""Length buckets for make om/accuracy/perf: `WORD_LEN="16 32 64"` runs each bucket on the
sentences no smaller bucket holds, and one table covers them all."""
from __future__ import annotations

import json

import pytest

from stages.__main__ import main
from stages.sources.data import load_samples
from tests.conftest import make, tiny_settings
from tests.test_formats import documented_keys

BUCKETS = "16 32 64"
RANGES = ("w1-16", "w17-32", "w33-64")


@pytest.fixture(scope="module")
def bucketed(tmp_path_factory, bilm_fixture):
    """make accuracy then make perf with three buckets on the trained bilm-tf fixture and the sample."""
    artifacts = tmp_path_factory.mktemp("buckets") / "artifacts"
    settings = [f"ARTIFACTS={artifacts}", f"ELMO_OPTIONS={bilm_fixture / 'options.json'}",
                f"ELMO_WEIGHTS={bilm_fixture / 'lm_weights.hdf5'}", "DATASET=sample", "BATCH=1 4", "THREADS=2",
                f"WORD_LEN={BUCKETS}", "PERF_SECONDS=0.1", "PERF_TORCH=0", "CPU_VARIANTS=fp32"]
    accuracy = make("accuracy", *settings)
    perf = make("perf", *settings)
    return artifacts, settings, accuracy, perf


def test_every_bucket_passes_and_every_sentence_is_judged_once(bucketed):
    artifacts, _, accuracy, _ = bucketed
    assert "accuracy: PASSED over 3 buckets" in accuracy.stdout
    summary = json.loads((artifacts / "reports/accuracy-buckets.json").read_text())
    assert summary["passed"] and [b["bucket"] for b in summary["buckets"]] == ["1..16", "17..32", "33..64"]
    seen = []
    for name, row in zip(RANGES, summary["buckets"]):
        report = json.loads((artifacts / "reports/buckets" / name / "accuracy.json").read_text())
        assert report["passed"] and report["data"]["samples"] == row["samples"]
        lo, hi = map(int, name[1:].split("-"))
        assert (report["data"]["min_len"], report["data"]["word_len"]) == (lo, hi)
        _, sentences = load_samples(report["data"]["dir"])
        assert all(lo <= len(s) <= hi for s in sentences)
        seen += [" ".join(s) for s in sentences]
        for comparison in report["comparisons"]:
            assert comparison["token_cosine"]["min"] >= 0.99999, (name, comparison["reference"])
    # The sample's 411 sentences all fit 64 tokens: each is in exactly one bucket.
    assert len(seen) == summary["overall"]["samples"] == 411 and len(set(seen)) == len(seen)
    table = (artifacts / "reports/accuracy-buckets.md").read_text()
    assert "| **overall** | **PASSED** | 411 |" in table and "(buckets/w17-32/accuracy.md)" in table


def test_bucket_summaries_are_documented(bucketed):
    artifacts = bucketed[0]
    for schema, name in (("elmo-accuracy-buckets/1", "accuracy-buckets.json"), ("elmo-perf-buckets/1", "perf-buckets.json")):
        written = json.loads((artifacts / "reports" / name).read_text())
        assert set(written) == documented_keys(schema) and written["schema"] == schema
    data = json.loads(next(artifacts.glob("data/*-w32-from17/manifest.json")).read_text())
    assert data["min_len"] == 17 and data["counts"]["skipped"]["in_smaller_bucket"] > 0


def test_overall_speed_weighs_each_bucket_by_its_sentences(bucketed):
    artifacts = bucketed[0]
    summary = json.loads((artifacts / "reports/perf-buckets.json").read_text())
    per_bucket = [json.loads((artifacts / "reports/buckets" / name / "perf.json").read_text()) for name in RANGES]
    for point in summary["overall"]:
        rates = [next(r["sentences_per_s"] for r in p["results"]
                      if r["variant"] == point["variant"] and r["batch"] == point["batch"]) for p in per_bucket]
        counts = [p["data"]["samples"] for p in per_bucket]
        assert point["complete"]
        assert point["sentences_per_s"] == pytest.approx(sum(counts) / sum(n / r for n, r in zip(counts, rates)))
    table = (artifacts / "reports/perf-buckets.md").read_text()
    assert "1..16 (" in table and "33..64 (" in table and "CPU: " in table


def test_a_rerun_only_rewrites_the_tables(bucketed):
    _, settings, _, _ = bucketed
    again = make("accuracy", "perf", *settings)
    for stage in ("stages export", "stages infer", "stages accuracy --report-only", "stages perf"):
        assert stage not in again.stdout


def test_a_bucket_not_judged_is_never_filled_from_an_earlier_run(tmp_path, bucketed, capsys):
    artifacts = bucketed[0]
    folders = [str(artifacts / "reports/buckets" / name) for name in RANGES]
    broken = tmp_path / "buckets" / "w17-32"
    broken.mkdir(parents=True)
    # Its run failed before the gate: make removed the published report first, so none is there.
    code = main(["buckets-report", "--kind", "accuracy", "--reports", str(tmp_path), "--bucket", folders[0],
                 "--bucket", str(broken), "--bucket", folders[2], "--failed", "w17-32"])
    assert code == 1
    assert "accuracy: FAILED over 3 buckets (2 judged" in capsys.readouterr().err
    summary = json.loads((tmp_path / "accuracy-buckets.json").read_text())
    assert summary["buckets"][1]["report"] is None and not summary["passed"]
    # A failed perf run keeps its old perf.json on disk; the table must not show it.
    code = main(["buckets-report", "--kind", "perf", "--reports", str(tmp_path), *sum((["--bucket", f] for f in folders), []),
                 "--failed", "w33-64"])
    assert code == 1
    summary = json.loads((tmp_path / "perf-buckets.json").read_text())
    assert summary["buckets"][2]["report"] is None
    assert all(not p["complete"] for p in summary["overall"])
    assert "not timed: its make perf failed" in (tmp_path / "perf-buckets.md").read_text()


def test_stages_that_take_one_word_len_refuse_a_list(tmp_path):
    settings = [s for s in tiny_settings(tmp_path) if not s.startswith("WORD_LEN=")]
    done = make("data", "WORD_LEN=8 16", *settings, check=False)
    assert done.returncode != 0 and 'WORD_LEN="8 16": a list of buckets is for make om' in done.stderr
    assert "data takes one WORD_LEN" in done.stderr
    done = make("accuracy", "WORD_LEN=16", "MIN_LEN=17", *settings, check=False)
    assert done.returncode != 0 and "MIN_LEN=17 is above WORD_LEN=16" in done.stderr


def test_ascend_builds_one_om_per_bucket(tmp_path):
    from tests.test_ascend_pipeline import npu_host_env

    settings = [s for s in tiny_settings(tmp_path, "PERF_TORCH=0") if not s.startswith(("WORD_LEN=", "BATCH="))]
    env = npu_host_env(tmp_path, "ais_bench-2025-master", "cann-8.0")
    make("om", "TARGET=ascend", "WORD_LEN=8 16", "BATCH=1 4", *settings, env=env)
    oms = sorted(p.name for p in (tmp_path / "artifacts").glob("om/ascend/*/*.om"))
    assert oms == ["elmo_w16_b1-4.om", "elmo_w8_b1-4.om"]
    for om in (tmp_path / "artifacts").glob("om/ascend/*/*.om"):
        manifest = json.loads(om.with_name(om.name + ".json").read_text())
        word_len = 16 if "w16" in om.name else 8
        assert f"--input_shape=input:-1,{word_len},50" in manifest["command"]
        assert "--dynamic_batch_size=1,4" in manifest["command"]
