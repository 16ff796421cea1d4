"""Accuracy at corpus scale (issue 17): the streaming accuracy stage gives the whole-corpus
stage's verdicts and statistics, its references are computed once per model and corpus and
reused by every precision, and ACCURACY_SAMPLE judges the same stratified sample every time."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from stages.__main__ import main
from stages.reports.streaming import HALF_BIN_FACTOR, RunningComparison, RunningCosine, WorstSentences
from tests.conftest import make, tiny_settings


# --- the whole-corpus stage as it was before issue 17: everything in memory, exact -----------

def _old_torch_unpadded(options, weights, sentences, threads):
    from stages.backends.runners import TorchRunner
    from stages.elmo.charids import batch_ids

    runner = TorchRunner.load(options, weights, threads=threads, onednn=True)  # as the stage's reference
    by_length = {}
    for index, tokens in enumerate(sentences):
        by_length.setdefault(len(tokens), []).append(index)
    results = [None] * len(sentences)
    for _, indices in sorted(by_length.items()):
        for start in range(0, len(indices), 32):
            group = indices[start : start + 32]
            out = runner.infer({"input": batch_ids([sentences[i] for i in group])})["output"]
            for row, index in enumerate(group):
                results[index] = out[row]
    return results


def _old_worst(raws, lengths, count=16):
    starts = np.cumsum([0] + list(lengths))[:-1]
    worst = np.full(len(lengths), np.inf)
    against = [""] * len(lengths)
    for name, raw in raws.items():
        per_sentence = np.minimum.reduceat(np.asarray(raw["token_cosine"], dtype=np.float64), starts)
        for index in np.flatnonzero(per_sentence < worst):
            worst[index], against[index] = per_sentence[index], name
    order = np.argsort(worst, kind="stable")[:count]
    return [{"index": int(i), "tokens": int(lengths[i]), "token_cosine_min": float(worst[i]), "reference": against[i]}
            for i in order]


def whole_corpus(data, outputs_dir, onnx, source_json, model, batched, threads=2):
    """Raw per-sentence and per-token values of every comparison, the worst sentences and the
    padding maximum, computed as the stage did before it streamed."""
    from stages.backends.engines import load_offline
    from stages.backends.infer import read_outputs
    from stages.backends.runners import OrtRunner, infer_all
    from stages.reports.metrics import compare
    from stages.sources.data import load_samples, read_bin
    from stages.sources.weights import load_source

    manifest, sentences = load_samples(data)
    word_len = manifest["word_len"]
    stems = [str(i) for i in range(len(sentences))]
    outputs = read_outputs(outputs_dir, stems, word_len)
    ids = np.concatenate([read_bin(Path(data) / "bin" / f"{s}.bin", word_len) for s in stems])
    source = load_source(source_json)
    onnx_out = infer_all(OrtRunner.load(onnx, threads=threads, name="onnxruntime-fp32"), ids)
    torch_out = _old_torch_unpadded(source["options"], source["weights"], sentences, threads)
    lengths = [len(s) for s in sentences]
    real = lambda out: [out[i, :n] for i, n in enumerate(lengths)]  # noqa: E731
    raws = {"onnxruntime-fp32": compare(real(outputs), real(onnx_out)),
            "pytorch-unpadded": compare(real(outputs), torch_out)}
    padding = [outputs]
    if batched:
        # The runtime the model's manifest names for that batch size, as the stage runs it.
        out = infer_all(load_offline(model, threads=threads, first_batch=batched), ids, batch_size=batched)
        raws[f"onnxruntime-fp32 (target batch {batched})"] = compare(real(out), real(onnx_out))
        padding.append(out)
    padding_max = max(float(max((np.abs(o[i, n:]).max() if n < word_len else 0.0) for i, n in enumerate(lengths)))
                      for o in padding)
    return raws, _old_worst(raws, lengths), padding_max


def p1_tolerance(values) -> float:
    """How far the histogram's p1 may be from np.percentile's: half a bin of the larger 1 - cosine of
    the two order statistics it interpolates between (docs/formats.md)."""
    values = np.sort(np.asarray(values, dtype=np.float64))
    rank = (len(values) - 1) * 0.01
    low = int(np.floor(rank))
    high = min(low + 1, len(values) - 1)
    return (HALF_BIN_FACTOR - 1) * max(1 - values[low], 1 - values[high], 0.0) + 1e-15


def assert_same_statistics(report, raws, worst, padding_max, *, exact_worst=True, tol=1e-12):
    gate = report["gate"]
    by_ref = {c["reference"]: c for c in report["comparisons"]}
    assert list(by_ref) == list(raws)
    passed = padding_max == 0.0
    for name, raw in raws.items():
        c = by_ref[name]
        for kind in ("sentence_cosine", "token_cosine"):
            values = np.asarray(raw[kind], dtype=np.float64)
            got = c[kind]
            assert got["count"] == values.size
            assert got["mean"] == pytest.approx(values.mean(), abs=tol), (name, kind)
            assert got["min"] == pytest.approx(values.min(), abs=tol), (name, kind)
            assert abs(got["p1"] - np.percentile(values, 1)) <= p1_tolerance(values) + tol, (name, kind)
        assert c["max_abs_error"] == pytest.approx(raw["max_abs_error"], rel=1e-6, abs=tol * 1e3)
        assert c["mean_abs_error"] == pytest.approx(raw["mean_abs_error"], rel=1e-6, abs=tol * 1e3)
        ok = (np.mean(raw["sentence_cosine"]) >= gate["sentence_cosine_mean_min"]
              and np.min(raw["token_cosine"]) >= gate["token_cosine_min"])
        assert c["passed"] == ok
        passed = passed and ok
    assert report["passed"] == passed and report["padding_max_abs"] == padding_max
    assert len(report["worst_sentences"]) == len(worst)
    if exact_worst:
        assert [(w["index"], w["tokens"], w["reference"]) for w in report["worst_sentences"]] == \
            [(w["index"], w["tokens"], w["reference"]) for w in worst]
    for got, want in zip(report["worst_sentences"], worst):
        assert got["token_cosine_min"] == pytest.approx(want["token_cosine_min"], abs=max(tol, 1e-9))


# --- a tiny pipeline judged at two precisions -----------------------------------------------

@pytest.fixture(scope="module")
def judged(tmp_path_factory):
    folder = tmp_path_factory.mktemp("stream")
    settings = tiny_settings(folder)
    int8 = make("accuracy", "PRECISION=int8", *settings)
    fp32 = make("accuracy", *settings)
    artifacts = folder / "artifacts"
    (data,) = [p.parent for p in artifacts.glob("data/*/manifest.json")]
    (sim,) = artifacts.glob("model/*/*_sim.onnx")
    (source,) = artifacts.glob("weights/*/source.json")
    outputs = {p.parent.name.rsplit("_", 1)[1]: p.parent for p in artifacts.glob("outputs/cpu/*/*/summary.json")}
    models = {p.name.split("_")[-1].split(".")[0]: p for p in artifacts.glob("om/cpu/*/*.ort.onnx")}
    return {"artifacts": artifacts, "settings": settings, "int8": int8, "fp32": fp32, "data": data, "onnx": sim,
            "source": source, "outputs": outputs, "models": models}


def _stage(j, tmp_path, precision="int8", *extra, references=None, data=None, onnx=None):
    report_dir = tmp_path / f"report-{precision}-{len(list(tmp_path.glob('report-*')))}"
    code = main(["accuracy", "--report-only", "--data", str(data or j["data"]), "--outputs",
                 str(j["outputs"][precision]), "--onnx", str(onnx or j["onnx"]), "--weights-source", str(j["source"]),
                 "--report-dir", str(report_dir), "--threads", "2", "--batched", "4",
                 "--references", str(references or tmp_path / "references"), *extra])
    assert code == 0
    return json.loads((report_dir / "accuracy.json").read_text()), report_dir


@pytest.mark.parametrize("precision", ["int8", "fp32"])
def test_same_verdicts_and_statistics_as_the_whole_corpus_stage(judged, precision):
    """The make run's report (one chunk: the sample fits) against the exact whole-corpus computation."""
    j = judged
    report = json.loads((j["artifacts"] / "reports/runs" / f"cpu-{precision}" / "accuracy.json").read_text())
    raws, worst, padding_max = whole_corpus(j["data"], j["outputs"][precision], j["onnx"], j["source"],
                                            j["models"][precision], 4)
    assert_same_statistics(report, raws, worst, padding_max)
    assert report["data"]["samples"] == 199 and report["sample"] is None


def test_many_small_chunks_give_the_same_statistics(judged, tmp_path):
    """Chunks of 32 sentences (7 chunks): the running statistics fold to the same figures; PyTorch's
    equal-length groups differ from a whole-corpus run, so values may move by float rounding."""
    j = judged
    report, _ = _stage(j, tmp_path, "int8", "--chunk", "32")
    assert report["references"]["chunks"] == 7 and report["references"]["chunk_sentences"] == 32
    raws, worst, padding_max = whole_corpus(j["data"], j["outputs"]["int8"], j["onnx"], j["source"],
                                            j["models"]["int8"], 4)
    assert_same_statistics(report, raws, worst, padding_max, exact_worst=False, tol=1e-7)


def test_a_second_precision_reuses_the_references(judged):
    j = judged
    # The first flavour judged computed them; the second read them back.
    assert "accuracy: reference 1 of 2" in j["int8"].stderr and "references computed" in j["int8"].stdout
    assert "accuracy: reference 1 of 2" not in j["fp32"].stderr and "accuracy: reference 2 of 2" not in j["fp32"].stderr
    assert "references reused from" in j["fp32"].stdout
    (manifest_path,) = j["artifacts"].glob("references/*/manifest.json")
    manifest = json.loads(manifest_path.read_text())
    assert manifest["hits"] == 1 and manifest["sentences"] == 199 and manifest["chunks"] == 1
    for precision, reused in (("int8", False), ("fp32", True)):
        report = json.loads((j["artifacts"] / "reports/runs" / f"cpu-{precision}" / "accuracy.json").read_text())
        assert report["references"]["reused"] is reused and report["references"]["key"] == manifest["key"]
        passes = {p["name"]: p for p in report["passes"]}
        assert list(passes) == ["reference onnxruntime-fp32", "reference pytorch-unpadded", "judge"]
        assert {passes[n]["status"] for n in list(passes)[:2]} == {"reused" if reused else "computed"}
        assert all(p["peak_rss_mb"] > 0 and p["seconds"] >= 0 for p in passes.values())
        assert passes["judge"]["target_batched_seconds"] > 0
        assert report["batched_sample"]["sentences"] == 199  # the default sample holds the whole corpus
    assert "references" in (j["artifacts"] / "reports/runs/cpu-fp32/accuracy.md").read_text()


def test_a_changed_corpus_or_model_makes_new_references(judged, tmp_path, capsys):
    import onnx

    j = judged
    references = tmp_path / "references"
    first, _ = _stage(j, tmp_path, references=references)
    again, _ = _stage(j, tmp_path, "fp32", references=references)
    assert again["references"]["reused"] and again["references"]["key"] == first["references"]["key"]
    # Another corpus: same sentences, but the data manifest differs.
    data = tmp_path / "data"
    shutil.copytree(j["data"], data)
    manifest = json.loads((data / "manifest.json").read_text())
    manifest["source_label"] += " (copy)"
    (data / "manifest.json").write_text(json.dumps(manifest))
    capsys.readouterr()
    corpus, _ = _stage(j, tmp_path, references=references, data=data)
    assert "references computed" in capsys.readouterr().out and not corpus["references"]["reused"]
    # Another model: the same graph saved with another doc string.
    model = onnx.load(str(j["onnx"]))
    model.doc_string = "changed"
    changed = tmp_path / "changed_sim.onnx"
    onnx.save(model, str(changed))
    other, _ = _stage(j, tmp_path, references=references, onnx=changed)
    assert "references computed" in capsys.readouterr().out and not other["references"]["reused"]
    keys = {r["references"]["key"] for r in (first, corpus, other)}
    assert len(keys) == 3 and len(list(references.glob("*/manifest.json"))) == 3
    assert other["comparisons"] == first["comparisons"]  # same function: same figures


def test_the_references_are_keyed_by_the_code_that_computes_them(monkeypatch):
    """A change in how the references are computed (the model, the runners, reference_runs) keys new
    ones; a change in the judge or its reports (accuracy.py) reads the kept ones back."""
    from stages.reports import references as refs

    inputs = lambda: refs.key_inputs("onnx", {}, "data", 8, 1, None)  # noqa: E731
    before = refs.key_of(inputs())
    assert "reports/reference_runs.py" in refs.MODEL_CODE and "reports/accuracy.py" not in refs.MODEL_CODE
    original = refs.sha256_file
    for edited, changes in (("accuracy.py", False), ("reference_runs.py", True), ("model.py", True)):
        monkeypatch.setattr(refs, "sha256_file", lambda path, edited=edited: (
            "edited" if Path(path).name == edited else original(path)))
        assert (refs.key_of(inputs()) != before) is changes, edited


def test_sample_is_stratified_and_the_same_every_time(judged, tmp_path):
    from stages.reports.accuracy import stratified_sample
    from stages.sources.data import sample_lengths

    j = judged
    manifest, lengths = sample_lengths(j["data"])
    seed = "ab" * 32
    picked = stratified_sample(lengths, 20, seed)
    assert len(picked) == 20 and np.array_equal(picked, stratified_sample(lengths, 20, seed))
    assert set(lengths[picked]) == set(lengths)  # every length represented
    assert not np.array_equal(picked, stratified_sample(lengths, 20, "cd" * 32))
    assert len(stratified_sample(lengths, 3, seed)) == len(set(lengths))  # fewer than lengths: one of each
    assert np.array_equal(stratified_sample(lengths, 10 ** 6, seed), np.arange(len(lengths)))
    first, first_dir = _stage(j, tmp_path, "int8", "--sample", "20")
    second, _ = _stage(j, tmp_path, "int8", "--sample", "20")
    assert first["sample"]["sentences"] == 20 and first["sample"]["of_sentences"] == 199
    assert first["sample"]["lengths"] == len(set(lengths)) and first["data"]["samples"] == 20
    assert first["comparisons"] == second["comparisons"] and first["worst_sentences"] == second["worst_sentences"]
    assert second["references"]["reused"]
    assert {w["index"] for w in first["worst_sentences"]} <= set(int(i) for i in stratified_sample(
        lengths, 20, first["data"]["manifest_sha256"]))
    assert all(c["sentence_cosine"]["count"] == 20 for c in first["comparisons"])
    assert "SAMPLE (ACCURACY_SAMPLE=20): 20 of 199 sentences" in (first_dir / "accuracy.md").read_text()
    # The bucket summary says so too.
    bucket = tmp_path / "reports" / "buckets" / "w1-8"
    bucket.mkdir(parents=True)
    shutil.copy(first_dir / "accuracy.json", bucket / "accuracy.json")
    assert main(["buckets-report", "--kind", "accuracy", "--reports", str(tmp_path / "reports"),
                 "--bucket", str(bucket)]) == 0
    summary = json.loads((tmp_path / "reports" / "accuracy-buckets.json").read_text())
    assert summary["overall"]["sampled"] and summary["buckets"][0]["sample"]["per_bucket"] == 20
    assert "SAMPLE (ACCURACY_SAMPLE=20)" in (tmp_path / "reports" / "accuracy-buckets.md").read_text()


def test_the_batched_check_runs_on_a_stratified_sample(judged, tmp_path):
    """--batched-sample N: the target at the largest batch runs on N of the judged sentences (every
    length), with the whole-corpus figures for exactly those sentences; the references' rows are
    judged in full, and a sentence outside the sample is never ranked by the batched row."""
    from stages.backends.engines import load_offline
    from stages.backends.infer import read_outputs
    from stages.backends.runners import OrtRunner, infer_all
    from stages.reports.accuracy import stratified_sample
    from stages.reports.metrics import compare
    from stages.sources.data import read_bin, sample_lengths

    j = judged
    manifest, lengths = sample_lengths(j["data"])
    report, report_dir = _stage(j, tmp_path, "int8", "--batched-sample", "24", "--chunk", "32")
    picked = stratified_sample(lengths, 24, report["data"]["manifest_sha256"])
    assert report["batched_sample"]["sentences"] == len(picked) == 24
    assert report["batched_sample"]["of_sentences"] == 199 and report["batched_sample"]["per_bucket"] == 24
    assert report["batched_sample"]["tokens"] == int(lengths[picked].sum())
    by_ref = {c["reference"]: c for c in report["comparisons"]}
    batched = by_ref["onnxruntime-fp32 (target batch 4)"]
    assert batched["sentence_cosine"]["count"] == 24 and batched["token_cosine"]["count"] == int(lengths[picked].sum())
    assert by_ref["onnxruntime-fp32"]["sentence_cosine"]["count"] == 199
    assert "on a stratified sample of 24 of the 199 sentences" in batched["description"]
    assert "ran on a stratified sample of 24 of the 199 judged sentences" in (report_dir / "accuracy.md").read_text()
    ids = np.concatenate([read_bin(j["data"] / "bin" / f"{i}.bin", manifest["word_len"]) for i in picked])
    # Batches form within each chunk of 32 (dynamic int8 scales each batch by its own range,
    # so the batch mates matter).
    target = load_offline(j["models"]["int8"], threads=2, first_batch=4)  # the runtimes its manifest names
    out = np.concatenate([infer_all(target, ids[(picked >= start) & (picked < start + 32)], batch_size=4)
                          for start in range(0, 199, 32) if ((picked >= start) & (picked < start + 32)).any()])
    ref = infer_all(OrtRunner.load(j["onnx"], threads=2), ids, batch_size=64)
    real = lambda o: [o[k, :n] for k, n in enumerate(lengths[picked])]  # noqa: E731
    raw = compare(real(out), real(ref))
    assert batched["token_cosine"]["min"] == pytest.approx(float(np.min(raw["token_cosine"])), abs=1e-9)
    assert batched["max_abs_error"] == pytest.approx(raw["max_abs_error"], rel=1e-5, abs=1e-9)
    assert {w["index"] for w in report["worst_sentences"] if w["reference"].endswith("batch 4)")} <= set(picked.tolist())
    every, _ = _stage(j, tmp_path, "int8", "--batched-sample", "0")
    assert every["batched_sample"]["sentences"] == 199 and every["batched_sample"]["per_bucket"] is None


def test_accuracy_sample_through_make_rejudges_and_labels(judged):
    j = judged
    done = make("accuracy", *j["settings"], "ACCURACY_SAMPLE=25")
    assert "stages accuracy --report-only" in done.stdout and "--sample 25" in done.stdout
    assert "on a SAMPLE of 25 of 199 sentences" in done.stdout
    report = json.loads((j["artifacts"] / "reports" / "accuracy.json").read_text())
    assert report["sample"]["per_bucket"] == 25 and report["data"]["samples"] == 25
    assert "SAMPLE (ACCURACY_SAMPLE=25)" in (j["artifacts"] / "reports" / "accuracy.md").read_text()
    again = make("accuracy", *j["settings"], "ACCURACY_SAMPLE=25")
    assert "stages accuracy --report-only" not in again.stdout  # same settings: nothing rejudged
    back = make("accuracy", *j["settings"])  # empty again: every sentence, references reused
    assert "--sample" not in back.stdout and "references reused from" in back.stdout
    assert json.loads((j["artifacts"] / "reports" / "accuracy.json").read_text())["sample"] is None
    assert "ACCURACY_SAMPLE" in make("help").stdout


# --- the running statistics on their own ------------------------------------------------------

def test_running_cosine_matches_numpy_within_a_bin():
    rng = np.random.default_rng(0)
    values = np.concatenate([1 - 10 ** rng.uniform(-9, -1, 5000), np.ones(300), [-0.5, 0.2],
                             1 - 10 ** rng.uniform(-4, -3, 200)])
    rng.shuffle(values)
    running = RunningCosine()
    for chunk in np.array_split(values, 13):
        running.add(chunk)
    summary = running.summary()
    assert summary["count"] == values.size and summary["min"] == values.min()
    assert summary["mean"] == pytest.approx(values.mean(), abs=1e-14)
    for q in (0.5, 1, 50, 99):
        assert abs(running.percentile(q) - np.percentile(values, q)) <= 10 * p1_tolerance(values) + 1e-15
    assert abs(summary["p1"] - np.percentile(values, 1)) <= p1_tolerance(values)


def test_worst_sentences_and_running_comparison_match_the_whole_corpus():
    rng = np.random.default_rng(1)
    lengths = rng.integers(1, 9, 300)
    a = rng.normal(size=(int(lengths.sum()), 6)).astype(np.float32)
    refs = {"x": a + rng.normal(scale=1e-3, size=a.shape).astype(np.float32),
            "y": a + rng.normal(scale=1e-2, size=a.shape).astype(np.float32)}
    refs["y"][:5] = a[:5]  # a tie: exact on both
    from stages.reports.metrics import compare

    starts = np.concatenate([[0], np.cumsum(lengths)])
    split = lambda arr: [arr[starts[i]:starts[i + 1]] for i in range(len(lengths))]  # noqa: E731
    raws = {name: compare(split(a), split(ref)) for name, ref in refs.items()}
    running = {name: RunningComparison() for name in refs}
    worst = WorstSentences(16)
    for chunk in np.array_split(np.arange(len(lengths)), 7):
        lo, hi = starts[chunk[0]], starts[chunk[-1] + 1]
        per_ref = {name: running[name].add(a[lo:hi], ref[lo:hi], lengths[chunk]) for name, ref in refs.items()}
        worst.add(chunk, lengths[chunk], per_ref)
    assert worst.result() == _old_worst(raws, lengths)
    for name, raw in raws.items():
        got = running[name].raw()
        assert got["max_abs_error"] == raw["max_abs_error"]
        assert got["mean_abs_error"] == pytest.approx(raw["mean_abs_error"], rel=1e-12)
        assert got["sentence_cosine"]["mean"] == pytest.approx(raw["sentence_cosine"].mean(), abs=1e-14)
        assert got["token_cosine"]["min"] == raw["token_cosine"].min()


def test_reference_b_in_windows_of_chunks_is_each_chunk_alone(bilm_fixture, fixture_sentences):
    """Reference (b) runs several chunks at once (fuller equal-length groups) and hands each chunk
    back as if it had run alone; a chunk asked for out of order is refused, not mixed up."""
    from stages.backends.runners import TorchRunner
    from stages.elmo.charids import batch_ids
    from stages.reports.reference_runs import ChunkWindows, torch_unpadded

    sentences = [tokens[:8] for row in fixture_sentences for tokens in row]
    ids, lengths = batch_ids(sentences, 8), np.array([len(s) for s in sentences])
    runner = TorchRunner.load(bilm_fixture / "options.json", bilm_fixture / "lm_weights.hdf5", onednn=True)
    order = np.random.default_rng(0).permutation(len(sentences))  # a stratified sample's order
    chunks = [order[start : start + 3] for start in range(0, len(order), 3)]
    assert len(chunks) > 4  # more than one window

    def compute(indices):
        return torch_unpadded(runner, ids[indices], lengths[indices])

    windows = ChunkWindows(compute, chunks, lengths, window=4)
    for chunk in chunks:
        alone = compute(chunk)
        got = windows(chunk)
        assert got.shape == alone.shape == (lengths[chunk].sum(), alone.shape[1])
        np.testing.assert_allclose(got, alone, rtol=0, atol=1e-6)
    with pytest.raises(RuntimeError, match="order"):
        ChunkWindows(compute, chunks, lengths)(chunks[1])
