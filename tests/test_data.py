from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from stages import __main__ as cli
from stages.elmo import charids
from stages.sources import data, dataset_source
from stages.common.errors import StageError

REPO_ROOT = Path(__file__).resolve().parents[1]
SAMPLE_DIR = REPO_ROOT / "data" / "sample" / "heldout-monolingual.tokenized.shuffled"


@pytest.fixture(autouse=True)
def only_these_stages(monkeypatch):
    # Only the commands under test: the others' imports (torch, onnx) are not needed here.
    monkeypatch.setattr(cli, "COMMANDS", ("stages.sources.data", "stages.sources.dataset_source"))


def write_heldout(folder: Path, index: int, payload: bytes) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / data.FILE_TEMPLATE.format(index)
    path.write_bytes(payload)
    return path


def run_data(dataset_dir, out, word_len=4, file_num=3, extra=()):
    argv = ["data", "--dataset-dir", str(dataset_dir), "--file-num", str(file_num),
            "--word-len", str(word_len), "--out", str(out), "--no-progress", *extra]
    return cli.main(argv)


def assert_one_line_error(capsys, *needles):
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    for needle in needles:
        assert needle in err, (needle, err)
    return err


@pytest.fixture
def corpus(tmp_path):
    folder = tmp_path / "heldout-monolingual.tokenized.shuffled"
    write_heldout(
        folder,
        0,
        b"The cat sat .\n"
        b"\n"
        b"   \n"
        b"one two three four five\n"
        b"bad \xff\xfe byte\n"
        b"tabs\tand  double   spaces\n"
        b"Yes",  # last line without a newline still counts
    )
    write_heldout(folder, 1, "caf\u00e9 in Z\u00fcrich\n".encode("utf-8"))
    return folder


def test_filters_counts_and_manifest(corpus, tmp_path, capsys):
    out = tmp_path / "out"
    assert run_data(corpus, out, extra=("--source-label", "tiny test corpus")) == 0
    assert "1 of 3 held-out files missing" in capsys.readouterr().err

    sentences = (out / "sentences.txt").read_bytes().decode("utf-8")
    assert sentences == "The cat sat .\ntabs and double spaces\nYes\ncaf\u00e9 in Z\u00fcrich\n"

    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["schema"] == "elmo-data-manifest/1"
    assert manifest["word_len"] == 4 and manifest["file_num"] == 3
    assert manifest["dataset_dir"] == str(corpus)
    assert manifest["source_label"] == "tiny test corpus"
    assert manifest["counts"] == {
        "lines": 8,
        "kept": 4,
        "skipped": {"empty": 2, "too_long": 1, "in_smaller_bucket": 0, "not_utf8": 1},
    }
    assert manifest["length_histogram"] == {"1": 1, "3": 1, "4": 2}
    assert manifest["samples"] == 4
    assert manifest["sentences"] == "sentences.txt" and manifest["bin_dir"] == "bin"
    assert manifest["input_shape"] == [1, 4, 50] and manifest["dtype"] == "int32"
    assert manifest["missing_files"] == [str(corpus / "news.en.heldout-00002-of-00050")]
    files = manifest["files"]
    assert [(f["lines"], f["kept"]) for f in files] == [(7, 3), (1, 1)]
    for entry in files:
        expected = hashlib.sha256(Path(entry["path"]).read_bytes()).hexdigest()
        assert entry["sha256"] == expected


def test_bin_files_are_char_ids_with_zero_padding(corpus, tmp_path):
    out = tmp_path / "out"
    assert run_data(corpus, out) == 0
    manifest, sentences = data.load_samples(out)
    assert sentences[0] == ["The", "cat", "sat", "."]
    assert sorted(p.name for p in (out / "bin").iterdir()) == ["0.bin", "1.bin", "2.bin", "3.bin"]
    for index, tokens in enumerate(sentences):
        path = data.bin_path(out, manifest, index)
        assert path.stat().st_size == 4 * 50 * 4
        raw = np.frombuffer(path.read_bytes(), dtype="<i4").reshape(1, 4, 50)
        np.testing.assert_array_equal(raw[0], charids.sentence_ids(tokens, 4))
        assert not raw[0, len(tokens):].any(), "padding rows must be all zero"
        assert raw[0, : len(tokens)].all(axis=-1).all(), "real tokens have no zero id"
        np.testing.assert_array_equal(data.read_bin(path, 4), raw)
    # Multi-byte UTF-8 reaches the ids byte by byte.
    cafe = data.read_bin(out / "bin" / "3.bin", 4)[0, 0]
    assert list(cafe[1:6]) == [b + 1 for b in "caf\u00e9".encode("utf-8")]


def test_read_bin_wrong_size_names_the_file(tmp_path):
    path = tmp_path / "7.bin"
    path.write_bytes(b"\0" * (4 * 50 * 4 - 4))
    with pytest.raises(StageError, match="7.bin") as info:
        data.read_bin(path, 4)
    assert "\n" not in str(info.value)
    with pytest.raises(StageError, match="missing"):
        data.read_bin(tmp_path / "8.bin", 4)


def test_missing_folder(tmp_path, capsys):
    missing = tmp_path / "nowhere"
    assert run_data(missing, tmp_path / "out") == 2
    assert_one_line_error(capsys, str(missing), "make dataset", "DATASET=sample", "DATASET_DIR=")
    assert not (tmp_path / "out").exists()


def test_folder_without_heldout_files(tmp_path, capsys):
    folder = tmp_path / "empty"
    folder.mkdir()
    (folder / "news.en.heldout-00007-of-00050").write_text("beyond file_num\n")
    assert run_data(folder, tmp_path / "out", file_num=2) == 2
    assert_one_line_error(capsys, str(folder), "make dataset")


def test_no_short_sentence(tmp_path, capsys):
    folder = tmp_path / "corpus"
    write_heldout(folder, 0, b"far too many tokens here .\n\n")
    out = tmp_path / "out"
    assert run_data(folder, out, word_len=3, file_num=1) == 2
    assert_one_line_error(capsys, "no sentence of at most 3 tokens", "raise WORD_LEN")
    assert not out.exists()
    assert list(tmp_path.iterdir()) == [folder]


def test_bad_arguments(corpus, tmp_path, capsys):
    assert run_data(corpus, tmp_path / "a", word_len=0) == 2
    assert_one_line_error(capsys, "--word-len")
    assert run_data(corpus, tmp_path / "b", file_num=51) == 2
    assert_one_line_error(capsys, "--file-num")


def test_rerun_replaces_earlier_output(tmp_path):
    folder = tmp_path / "corpus"
    write_heldout(folder, 0, b"a b\nc d e\nf\n")
    out = tmp_path / "out"
    assert run_data(folder, out, file_num=1) == 0
    assert len(list((out / "bin").iterdir())) == 3

    write_heldout(folder, 0, b"only one\n")
    assert run_data(folder, out, file_num=1) == 0
    manifest, sentences = data.load_samples(out)
    assert manifest["samples"] == 1 and sentences == [["only", "one"]]
    assert [p.name for p in (out / "bin").iterdir()] == ["0.bin"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["corpus", "out"]


def test_refuses_to_replace_an_unrelated_folder(corpus, tmp_path, capsys):
    out = tmp_path / "precious"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    assert run_data(corpus, out) == 2
    assert_one_line_error(capsys, str(out), "manifest.json")
    assert (out / "notes.txt").read_text() == "keep me"


def test_killed_run_leaves_nothing_that_looks_done(corpus, tmp_path, monkeypatch):
    out = tmp_path / "out"
    real_write_bin = data.write_bin
    written = []

    def dying_write_bin(path, tokens, word_len):
        if len(written) == 2:
            raise KeyboardInterrupt
        real_write_bin(path, tokens, word_len)
        written.append(path)

    monkeypatch.setattr(data, "write_bin", dying_write_bin)
    with pytest.raises(KeyboardInterrupt):
        data.build(corpus, 3, 4, out, progress=False)
    assert len(written) == 2
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == [corpus.name]

    # An interrupted rerun keeps the earlier, complete output as it was.
    monkeypatch.setattr(data, "write_bin", real_write_bin)
    data.build(corpus, 3, 4, out, progress=False)
    before = (out / "manifest.json").read_bytes()
    written.clear()
    monkeypatch.setattr(data, "write_bin", dying_write_bin)
    with pytest.raises(KeyboardInterrupt):
        data.build(corpus, 3, 4, out, progress=False)
    assert (out / "manifest.json").read_bytes() == before
    assert len(list((out / "bin").iterdir())) == 4


def test_load_samples_validates(corpus, tmp_path):
    out = tmp_path / "out"
    assert run_data(corpus, out) == 0
    with pytest.raises(StageError, match="manifest.json"):
        data.load_samples(tmp_path / "elsewhere")

    (out / "bin" / "3.bin").unlink()
    with pytest.raises(StageError, match="bin"):
        data.load_samples(out)

    assert run_data(corpus, out) == 0
    with (out / "sentences.txt").open("a", encoding="utf-8") as handle:
        handle.write("extra line\n")
    with pytest.raises(StageError, match="5 lines, manifest says 4"):
        data.load_samples(out)

    assert run_data(corpus, out) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["schema"] = "something-else/9"
    (out / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(StageError, match="schema"):
        data.load_samples(out)


def test_iter_sentences_reasons(corpus):
    files = [corpus / data.FILE_TEMPLATE.format(i) for i in range(2)]
    reasons = [reason for _, reason in data.iter_sentences(files, word_len=4)]
    assert reasons == [None, "empty", "empty", "too_long", "not_utf8", None, None, None]
    unlimited = [reason for _, reason in data.iter_sentences(files)]
    assert unlimited.count("too_long") == 0 and unlimited.count(None) == 5


# --- the shipped sample -------------------------------------------------------


def sample_lines():
    files = sorted(SAMPLE_DIR.glob("news.en.heldout-*"))
    assert [p.name for p in files] == [
        "news.en.heldout-00000-of-00050",
        "news.en.heldout-00001-of-00050",
    ]
    lines = []
    for path in files:
        raw = path.read_bytes()
        assert raw.endswith(b"\n")
        for line in raw[:-1].split(b"\n"):
            lines.append(line.decode("utf-8"))  # raises on invalid UTF-8
    return lines


def test_shipped_sample_format_and_lengths():
    lines = sample_lines()
    assert 350 <= len(lines) <= 450
    for line in lines:
        assert line, "no empty lines"
        assert line == line.strip() and "  " not in line, repr(line)
        assert line.split(" ") == line.split(), repr(line)
        assert max(len(t.encode("utf-8")) for t in line.split()) <= charids.MAX_CHARS - 2
    lengths = [len(line.split()) for line in lines]
    assert sum(n <= 8 for n in lengths) >= 150
    assert set(range(1, 9)) <= set(lengths)
    assert max(lengths) <= 40
    assert any(not line.isascii() for line in lines)


def test_data_stage_on_shipped_sample(tmp_path):
    manifest = data.build(SAMPLE_DIR, 50, 8, tmp_path / "out", source_label="sample", progress=False)
    assert len(manifest["files"]) == 2 and len(manifest["missing_files"]) == 48
    assert manifest["samples"] >= 150
    assert sorted(int(n) for n in manifest["length_histogram"]) == list(range(1, 9))
    assert manifest["counts"]["skipped"]["not_utf8"] == 0
    _, sentences = data.load_samples(tmp_path / "out")
    assert len(sentences) == manifest["samples"]


# --- dataset source -------------------------------------------------------------


@pytest.fixture
def fake_repo(tmp_path):
    root = tmp_path / "repo"
    write_heldout(root / dataset_source.SAMPLE_REL, 0, b"No .\nThank you .\n")
    write_heldout(root / dataset_source.SAMPLE_REL, 1, b"It worked .\n")
    return root


def add_heldout(root: Path, count: int = 50) -> Path:
    folder = root / dataset_source.HELDOUT_REL
    for index in range(count):
        write_heldout(folder, index, b"a b c .\n")
    return folder


def test_auto_falls_back_to_sample_and_says_why(fake_repo):
    source = dataset_source.resolve_dataset("auto", None, fake_repo)
    assert source.kind == "sample"
    assert source.path == fake_repo / dataset_source.SAMPLE_REL
    assert "3 sentences" in source.label
    assert "held-out set not found at" in source.reason
    assert "using the shipped sample (3 sentences)" in source.reason
    assert "not comparable to the benchmark" in source.reason


def test_auto_prefers_heldout(fake_repo):
    folder = add_heldout(fake_repo)
    source = dataset_source.resolve_dataset("auto", None, fake_repo)
    assert (source.kind, source.path) == ("heldout", folder)
    assert "held-out" in source.label and "50 news.en.heldout files" in source.label


def test_partial_heldout_is_labelled(fake_repo):
    add_heldout(fake_repo, 3)
    source = dataset_source.resolve_dataset("heldout", None, fake_repo)
    assert "only 3 of 50 files" in source.label


def test_heldout_missing_is_an_error(fake_repo):
    with pytest.raises(StageError, match=r"run `make dataset` to download it \(or DATASET=sample\)"):
        dataset_source.resolve_dataset("heldout", None, fake_repo)


def test_sample_even_when_heldout_exists(fake_repo):
    add_heldout(fake_repo)
    source = dataset_source.resolve_dataset("sample", None, fake_repo)
    assert source.kind == "sample" and "not comparable" in source.reason


def test_explicit_folder_wins(fake_repo, tmp_path):
    folder = tmp_path / "mine"
    write_heldout(folder, 4, b"x .\n")
    source = dataset_source.resolve_dataset("sample", str(folder), fake_repo)
    assert (source.kind, source.path) == ("heldout", folder)
    assert "user folder" in source.label and "DATASET_DIR" in source.reason

    same_as_sample = dataset_source.resolve_dataset("auto", str(fake_repo / dataset_source.SAMPLE_REL), fake_repo)
    assert same_as_sample.kind == "sample"


def test_explicit_folder_errors(fake_repo, tmp_path):
    with pytest.raises(StageError, match="no such folder"):
        dataset_source.resolve_dataset("auto", str(tmp_path / "nope"), fake_repo)
    (tmp_path / "empty").mkdir()
    with pytest.raises(StageError, match="no news.en.heldout"):
        dataset_source.resolve_dataset("auto", str(tmp_path / "empty"), fake_repo)


def test_dataset_source_cli(fake_repo, tmp_path, capsys):
    out = tmp_path / "source.json"
    argv = ["dataset-source", "--dataset", "auto", "--dataset-dir", "", "--repo-root", str(fake_repo), "--out", str(out)]
    assert cli.main(argv) == 0
    written = json.loads(out.read_text(encoding="utf-8"))
    assert set(written) == {"kind", "path", "label", "reason"}
    assert written["kind"] == "sample" and written["path"] == str(fake_repo / dataset_source.SAMPLE_REL)
    console = capsys.readouterr().out
    assert console.count("\n") == 1 and written["label"] in console and written["reason"] in console

    argv = ["dataset-source", "--dataset", "heldout", "--repo-root", str(fake_repo)]
    assert cli.main(argv) == 2
    assert_one_line_error(capsys, "make dataset")


def test_shipped_sample_resolves_in_this_repo():
    source = dataset_source.resolve_dataset("sample", None, REPO_ROOT)
    assert source.path == SAMPLE_DIR
    assert f"({len(sample_lines())} sentences" in source.label
