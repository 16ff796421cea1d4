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


def _section(schema: str) -> str:
    return re.search(rf"^## `{re.escape(schema)}`.*?(?=^## |\Z)", DOC, re.S | re.M).group(0)


def test_perf_nested_keys_are_documented(first_run):
    """perf.json's nested records (the machine and its compute ceilings, each result's kernel and roofline,
    the per-model summary) name only keys its section of docs/formats.md names."""
    report = json.loads((first_run[0] / "reports" / "perf.json").read_text())
    mentioned = set(re.findall(r"`([a-z_0-9]+)`", _section("elmo-perf/1")))
    nested = [report["machine"], report["machine"]["isa"], *report["machine"]["ceilings"].values(),
              report["machine"]["ceilings"], *report["summary"]]
    for r in report["results"]:
        nested += [r, r["roofline"] or {}, r["kernel"] or {}, *(r["kernel"] or {}).get("ops", [])]
    for m in report["summary"]:
        nested += m["kernels"]
    undocumented = {key for record in nested for key in record} - mentioned
    assert not undocumented, f"perf.json keys not in docs/formats.md's elmo-perf/1 section: {sorted(undocumented)}"
