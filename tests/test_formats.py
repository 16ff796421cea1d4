"""docs/formats.md is the one description of every JSON the pipeline writes:
each documented key table must match what the stages really write."""
from __future__ import annotations

import json
import re

import pytest

from tests.conftest import REPO

DOC = (REPO / "docs" / "formats.md").read_text()


def documented_keys(schema: str) -> set:
    match = re.search(rf"^## `{re.escape(schema)}`.*?(?=^## |\Z)", DOC, re.S | re.M)
    assert match, f"docs/formats.md has no section for {schema}"
    return set(re.findall(r"^\| `([a-z_0-9]+)` \|", match.group(0), re.M))


@pytest.mark.parametrize("schema, pattern", [
    ("elmo-weights-source/1", "weights/*/source.json"),
    ("dataset-source", "data/*.source.json"),
    ("elmo-data-manifest/1", "data/*/manifest.json"),
    ("elmo-infer-summary/1", "outputs/cpu/*/*_fp32/summary.json"),
    ("elmo-accuracy/1", "reports/accuracy.json"),
    ("elmo-references/1", "references/*/manifest.json"),
    ("elmo-perf/1", "reports/perf.json"),
])
def test_documented_keys_are_the_written_keys(first_run, schema, pattern):
    artifacts = first_run[0]
    files = sorted(artifacts.glob(pattern))
    assert files, f"no {pattern} under {artifacts}"
    written = json.loads(files[0].read_text())
    assert set(written) == documented_keys(schema)
    if "schema" in written:
        assert written["schema"] == schema


def test_onnx_info_keys(first_run):
    (info,) = [p for p in first_run[0].glob("model/*/*.onnx.json") if not p.name.endswith("_sim.onnx.json")]
    assert set(json.loads(info.read_text())) == documented_keys("elmo-onnx-info/1")
