"""make prune-references: the kept accuracy references no report names go; the rest stays."""
from __future__ import annotations

import fcntl
import json

import numpy as np
import pytest

from stages.__main__ import main
from stages.reports import references
from stages.reports.prune_references import prune
from tests.conftest import make


def _kept_references(root, tag: int):
    """A references folder written by the accuracy stage's own code, for inputs ``{"tag": tag}``."""
    lengths = np.array([2, 3])
    compute = {name: (lambda indices: np.ones((int(lengths[indices].sum()), 4), dtype=np.float32))
               for name in references.REFERENCES}
    folder, manifest, _, reused = references.ensure(
        root, {"tag": tag}, chunks=[np.arange(2)], lengths=lengths, chunk_sentences=2, compute=compute,
        labels={name: name for name in references.REFERENCES}, progress=False)
    assert not reused and manifest["key"] == folder.name
    return folder


def _report(path, key, where="/artifacts/references"):
    path.parent.mkdir(parents=True, exist_ok=True)
    # Only the key counts: a report written in a container names the folder by its mounted path.
    path.write_text(json.dumps({"passed": True, "references": {"dir": f"{where}/{key}", "key": key}}))


@pytest.fixture()
def artifacts(tmp_path):
    root = tmp_path / "artifacts"
    (root / "reports").mkdir(parents=True)
    (root / ".elmo-artifacts").write_text("")
    return root


def test_make_prune_references_removes_only_what_no_report_names(artifacts):
    refs = artifacts / "references"
    named = _kept_references(refs, 1)
    bucket_named = _kept_references(refs, 2)
    stale = _kept_references(refs, 3)
    _report(artifacts / "reports" / "accuracy.json", named.name)
    _report(artifacts / "reports" / "buckets" / "w1-8" / "accuracy.json", bucket_named.name)
    unfinished = refs / "not-a-finished-folder"  # e.g. a temporary of a run in progress
    unfinished.mkdir()
    (unfinished / "0.npy").write_bytes(b"partial")

    done = make("prune-references", f"ARTIFACTS={artifacts}")
    assert f"removed {stale}" in done.stdout and "removed 1 folder(s)" in done.stdout and "kept 2" in done.stdout
    assert not stale.exists() and not (refs / f".{stale.name}.lock").exists()
    assert named.is_dir() and bucket_named.is_dir() and unfinished.is_dir()
    again = make("prune-references", f"ARTIFACTS={artifacts}")
    assert "removed 0 folder(s), 0.0 MB" in again.stdout


def test_dry_run_lists_and_keeps(artifacts, capsys):
    refs = artifacts / "references"
    stale = _kept_references(refs, 7)
    assert main(["prune-references", "--references", str(refs), "--reports", str(artifacts / "reports"),
                 "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert f"would remove {stale}" in out and stale.is_dir()


def test_an_unreadable_report_stops_it_before_anything_goes(artifacts, capsys):
    refs = artifacts / "references"
    stale = _kept_references(refs, 4)
    broken = artifacts / "reports" / "runs" / "cpu-int8" / "accuracy.json"
    broken.parent.mkdir(parents=True)
    broken.write_text("{ half written")
    capsys.readouterr()
    assert main(["prune-references", "--references", str(refs), "--reports", str(artifacts / "reports")]) == 2
    err = capsys.readouterr().err
    assert str(broken) in err and "nothing was removed" in err and len(err.strip().splitlines()) == 1
    assert stale.is_dir()


def test_a_folder_a_judge_holds_is_kept(artifacts):
    refs = artifacts / "references"
    held = _kept_references(refs, 5)
    with open(refs / f".{held.name}.lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)  # as references.ensure holds it while it reuses or computes
        removed, kept = prune(refs, artifacts / "reports")
    assert removed == [] and kept == [held] and held.is_dir()
    removed, _ = prune(refs, artifacts / "reports")
    assert [folder for folder, _ in removed] == [held] and not held.exists()


def test_no_references_folder_is_nothing_to_do(artifacts):
    assert prune(artifacts / "references", artifacts / "reports") == ([], [])
