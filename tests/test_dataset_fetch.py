from __future__ import annotations

import hashlib
import io
import tarfile

import pytest

from http_server import FileServer
from stages.sources.dataset_fetch import ARCHIVE_ROOT, MARKER, DatasetError, fetch_dataset
from stages.sources.download import DownloadError

HELDOUT = "heldout-monolingual.tokenized.shuffled"
TRAINING = "training-monolingual.tokenized.shuffled"
TARBALL = "1-billion-word-language-modeling-benchmark-r13output.tar.gz"
SENTENCES = {
    "news.en.heldout-00000-of-00050": b"The cat sat on the mat .\nIt rained .\n",
    "news.en.heldout-00001-of-00050": b"Stocks fell sharply on Monday .\n",
}


def _tarball(*extra) -> bytes:
    """The benchmark's member layout in miniature, plus ``extra`` members
    given as (name, bytes) files or (name, None) links to /etc/passwd."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:

        def add(name, data=b"", kind=tarfile.REGTYPE):
            info = tarfile.TarInfo(name)
            info.type = kind
            if kind == tarfile.SYMTYPE:
                info.linkname = "/etc/passwd"
            info.size = len(data) if kind == tarfile.REGTYPE else 0
            tar.addfile(info, io.BytesIO(data) if kind == tarfile.REGTYPE else None)

        add(f"{ARCHIVE_ROOT}/", kind=tarfile.DIRTYPE)
        add(f"{ARCHIVE_ROOT}/README", b"benchmark notes\n")
        add(f"{ARCHIVE_ROOT}/{TRAINING}/", kind=tarfile.DIRTYPE)
        add(f"{ARCHIVE_ROOT}/{TRAINING}/news.en-00001-of-00100", b"training text\n")
        add("../x", b"escaped\n")
        add(f"{ARCHIVE_ROOT}/{HELDOUT}/", kind=tarfile.DIRTYPE)
        for name, data in SENTENCES.items():
            add(f"{ARCHIVE_ROOT}/{HELDOUT}/{name}", data)
        for name, data in extra:
            add(name, data or b"", tarfile.REGTYPE if data is not None else tarfile.SYMTYPE)
    return buf.getvalue()


@pytest.fixture
def server():
    srv = FileServer().start()
    yield srv
    srv.stop()


def _serve(server, body):
    server.files[TARBALL] = body
    return server.url(TARBALL), hashlib.sha256(body).hexdigest()


def _fetch(url, digest, tmp_path, **kwargs):
    return fetch_dataset(tmp_path / "data", url, digest, cache_dir=tmp_path / "cache", progress=False, **kwargs)


def test_unpacks_only_the_heldout_files(server, tmp_path):
    url, digest = _serve(server, _tarball())
    folder = _fetch(url, digest, tmp_path)
    assert folder == tmp_path / "data" / HELDOUT
    assert sorted(p.name for p in folder.iterdir()) == sorted([MARKER, *SENTENCES])
    for name, data in SENTENCES.items():
        assert (folder / name).read_bytes() == data
    # No training files, no README, no escaped ../x, no temp folder.
    assert [p.name for p in (tmp_path / "data").iterdir()] == [HELDOUT]
    assert not (tmp_path / "x").exists()
    assert [p.name for p in (tmp_path / "cache").iterdir()] == [TARBALL]


def test_second_call_is_a_no_op_even_without_the_tarball(server, tmp_path):
    url, digest = _serve(server, _tarball())
    folder = _fetch(url, digest, tmp_path)
    stamp = (folder / MARKER).stat().st_mtime_ns
    (tmp_path / "cache" / TARBALL).unlink()
    requests = len(server.requests)
    assert _fetch(url, digest, tmp_path) == folder
    assert len(server.requests) == requests
    assert (folder / MARKER).stat().st_mtime_ns == stamp


def test_bad_checksum_leaves_nothing_behind(server, tmp_path):
    url, _ = _serve(server, _tarball())
    with pytest.raises(DownloadError, match="mismatch"):
        _fetch(url, "f" * 64, tmp_path)
    assert not (tmp_path / "data" / HELDOUT).exists()
    assert list((tmp_path / "cache").iterdir()) == []


@pytest.mark.parametrize(
    "member",
    [
        (f"{ARCHIVE_ROOT}/{HELDOUT}/../../../escaped", b"escaped\n"),
        (f"{ARCHIVE_ROOT}/{HELDOUT}/news.en.heldout-00002-of-00050", None),  # a symlink
    ],
)
def test_unsafe_member_in_the_wanted_folder_is_rejected(server, tmp_path, member):
    url, digest = _serve(server, _tarball(member))
    with pytest.raises(DatasetError, match="unsafe member"):
        _fetch(url, digest, tmp_path)
    assert list((tmp_path / "data").iterdir()) == []  # no folder, no temp folder
    assert not (tmp_path / "escaped").exists()


def test_half_finished_unpack_is_redone(server, tmp_path):
    url, digest = _serve(server, _tarball())
    partial = tmp_path / "data" / HELDOUT
    partial.mkdir(parents=True)
    (partial / "news.en.heldout-00000-of-00050").write_bytes(b"truncat")
    folder = _fetch(url, digest, tmp_path)
    assert (folder / "news.en.heldout-00000-of-00050").read_bytes() == SENTENCES["news.en.heldout-00000-of-00050"]
    assert (folder / MARKER).read_text().strip() == digest


def test_unpack_from_another_tarball_is_replaced(server, tmp_path):
    url, digest = _serve(server, _tarball())
    folder = _fetch(url, digest, tmp_path)
    (folder / MARKER).write_text("0" * 64 + "\n")
    (folder / "leftover").write_bytes(b"from the old tarball")
    _fetch(url, digest, tmp_path)
    assert not (folder / "leftover").exists()
    assert (folder / MARKER).read_text().strip() == digest


def test_archive_without_the_folder_is_an_error(server, tmp_path):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        info = tarfile.TarInfo("something-else/file.txt")
        tar.addfile(info, io.BytesIO(b""))
    url, digest = _serve(server, buf.getvalue())
    with pytest.raises(DatasetError, match="benchmark tarball"):
        _fetch(url, digest, tmp_path)
    assert list((tmp_path / "data").iterdir()) == []


def test_unknown_member_set_is_refused(tmp_path):
    with pytest.raises(DatasetError, match="heldout"):
        fetch_dataset(tmp_path, members="everything", cache_dir=tmp_path / "cache")


def test_make_dataset_path_downloads_and_auto_then_uses_it(server, tmp_path, monkeypatch, capsys):
    """What `make dataset` and DATASET=auto run: the real download against a local server."""
    import json

    import stages.sources.official
    from stages.__main__ import main

    body = _tarball()
    server.files[TARBALL] = body
    monkeypatch.setattr(stages.sources.official, "LM1B_TARBALL",
                        (server.url(TARBALL), hashlib.sha256(body).hexdigest(), len(body)))
    (tmp_path / "data" / "sample" / HELDOUT).mkdir(parents=True)
    (tmp_path / "data" / "sample" / HELDOUT / "news.en.heldout-00000-of-00050").write_text("Hi .\n")
    out = tmp_path / "source.json"
    assert main(["dataset-source", "--dataset", "auto", "--fetch", "--repo-root", str(tmp_path),
                 "--out", str(out)]) == 0
    source = json.loads(out.read_text())
    assert source["kind"] == "heldout" and "downloaded" in source["reason"]
    assert sorted(p.name for p in (tmp_path / "data" / ARCHIVE_ROOT / HELDOUT).glob("news.en.*")) == sorted(SENTENCES)

    monkeypatch.setattr(stages.sources.official, "LM1B_TARBALL", (server.url(TARBALL), "0" * 64, len(body)))
    other = tmp_path / "other"
    (other / "data").mkdir(parents=True)
    assert main(["dataset-source", "--dataset", "heldout", "--fetch", "--repo-root", str(other)]) == 2
    assert "sha256 mismatch" in capsys.readouterr().err
    assert not list(other.glob(f"data/*/{HELDOUT}"))
