from __future__ import annotations

import hashlib
import os

import pytest

from http_server import FileServer
from stages.sources.download import DownloadError, fetch, fetch_info
from stages.common.errors import StageError

BODY = os.urandom(5000)
DIGEST = hashlib.sha256(BODY).hexdigest()


@pytest.fixture
def server():
    srv = FileServer().start()
    srv.files["weights.bin"] = BODY
    yield srv
    srv.stop()


def _part(dest):
    return dest.with_name(dest.name + ".part")


def test_good_checksum_gives_the_file_and_no_part(server, tmp_path):
    dest = tmp_path / "cache" / "weights.bin"
    got = fetch_info(server.url("weights.bin"), dest, DIGEST, progress=True)
    assert got.path == dest and dest.read_bytes() == BODY
    assert got.sha256 == DIGEST and not got.cached and got.resumed_from == 0
    assert not _part(dest).exists()
    assert [r.range for r in server.requests] == [None]


def test_digest_is_compared_case_insensitively(server, tmp_path):
    dest = tmp_path / "weights.bin"
    assert fetch(server.url("weights.bin"), dest, DIGEST.upper(), progress=False) == dest


def test_bad_checksum_leaves_neither_file_nor_part(server, tmp_path):
    dest = tmp_path / "weights.bin"
    wrong = "0" * 64
    with pytest.raises(DownloadError) as err:
        fetch(server.url("weights.bin"), dest, wrong, progress=False)
    message = str(err.value)
    assert "\n" not in message
    for needle in (server.url("weights.bin"), str(dest), wrong, DIGEST, "rerun"):
        assert needle in message
    assert isinstance(err.value, StageError)
    assert list(tmp_path.iterdir()) == []


def test_interrupted_transfer_keeps_part_and_resumes(server, tmp_path):
    dest = tmp_path / "weights.bin"
    url = server.url("weights.bin")
    server.cut_after = 1200
    with pytest.raises(DownloadError) as err:
        fetch(url, dest, DIGEST, progress=False, chunk=256)
    assert url in str(err.value) and "resume" in str(err.value)
    assert _part(dest).read_bytes() == BODY[:1200]
    assert not dest.exists()

    got = fetch_info(url, dest, DIGEST, progress=False, chunk=256)
    assert got.resumed_from == 1200
    last = server.requests[-1]
    assert (last.range, last.status, last.sent) == ("bytes=1200-", 206, len(BODY) - 1200)
    assert dest.read_bytes() == BODY and not _part(dest).exists()


def test_cache_hit_makes_no_request(server, tmp_path):
    dest = tmp_path / "weights.bin"
    fetch(server.url("weights.bin"), dest, DIGEST, progress=False)
    seen = len(server.requests)
    got = fetch_info(server.url("weights.bin"), dest, DIGEST, progress=False)
    assert got.cached and got.path == dest
    assert len(server.requests) == seen


def test_corrupt_cached_file_is_replaced(server, tmp_path):
    dest = tmp_path / "weights.bin"
    dest.write_bytes(b"stale bytes")
    got = fetch_info(server.url("weights.bin"), dest, DIGEST, progress=False)
    assert not got.cached and dest.read_bytes() == BODY


def test_server_ignoring_range_restarts_from_zero(server, tmp_path):
    dest = tmp_path / "weights.bin"
    _part(dest).write_bytes(b"x" * 700)  # bytes the full answer must overwrite, not follow
    server.ignore_range = True
    got = fetch_info(server.url("weights.bin"), dest, DIGEST, progress=False)
    assert got.resumed_from == 0
    last = server.requests[-1]
    assert (last.range, last.status) == ("bytes=700-", 200)
    assert dest.read_bytes() == BODY and not _part(dest).exists()


def test_complete_part_answered_416_is_verified_and_kept(server, tmp_path):
    dest = tmp_path / "weights.bin"
    _part(dest).write_bytes(BODY)
    got = fetch_info(server.url("weights.bin"), dest, DIGEST, progress=False)
    assert got.resumed_from == len(BODY)
    assert [(r.range, r.status) for r in server.requests] == [(f"bytes={len(BODY)}-", 416)]
    assert dest.read_bytes() == BODY and not _part(dest).exists()


def test_oversized_part_is_discarded(server, tmp_path):
    dest = tmp_path / "weights.bin"
    _part(dest).write_bytes(BODY + b"trailing junk")
    got = fetch_info(server.url("weights.bin"), dest, DIGEST, progress=False)
    assert got.resumed_from == 0
    assert [r.status for r in server.requests] == [416, 200]
    assert dest.read_bytes() == BODY


def test_complete_but_corrupt_part_is_deleted(server, tmp_path):
    dest = tmp_path / "weights.bin"
    _part(dest).write_bytes(b"y" * len(BODY))
    with pytest.raises(DownloadError, match="mismatch"):
        fetch(server.url("weights.bin"), dest, DIGEST, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_404_is_a_clear_error(server, tmp_path):
    url = server.url("missing.bin")
    with pytest.raises(DownloadError) as err:
        fetch(url, tmp_path / "missing.bin", DIGEST, progress=False)
    message = str(err.value)
    assert url in message and "404" in message and "check the URL" in message
    assert list(tmp_path.iterdir()) == []


def test_unreachable_server_names_url_and_resume(tmp_path):
    srv = FileServer().start()
    url = srv.url("weights.bin")
    srv.stop()  # the port is now closed: connection refused
    with pytest.raises(DownloadError) as err:
        fetch(url, tmp_path / "weights.bin", DIGEST, progress=False, timeout=5)
    assert url in str(err.value) and "resume" in str(err.value)


def test_missing_digest_is_refused_without_a_request(server, tmp_path):
    with pytest.raises(DownloadError, match="allow_unverified"):
        fetch(server.url("weights.bin"), tmp_path / "weights.bin", None, progress=False)
    assert server.requests == [] and list(tmp_path.iterdir()) == []


def test_unverified_download_reports_the_digest_it_saw(server, tmp_path, caplog):
    dest = tmp_path / "weights.bin"
    got = fetch_info(server.url("weights.bin"), dest, None, allow_unverified=True, progress=False)
    assert got.sha256 == DIGEST and dest.read_bytes() == BODY
    assert DIGEST in caplog.text


def test_malformed_digest_is_refused(server, tmp_path):
    with pytest.raises(DownloadError, match="64 hex"):
        fetch(server.url("weights.bin"), tmp_path / "weights.bin", "md5:abc", progress=False)
    assert server.requests == []


# --- make fixtures: allennlp's bilm-tf test fixture, sha256-pinned ------------------------------

def test_fixtures_download_checks_every_digest(server, tmp_path, bilm_fixture):
    from stages.sources import fixtures

    for name in fixtures.FILES:
        server.files[f"elmo/{name}"] = (bilm_fixture / name).read_bytes()
    dest = fixtures.fetch_fixtures(tmp_path / "fx", base_url=server.url("elmo/"))
    assert sorted(p.name for p in dest.iterdir()) == sorted(fixtures.FILES)
    assert (dest / "lm_weights.hdf5").read_bytes() == (bilm_fixture / "lm_weights.hdf5").read_bytes()

    server.files["elmo/options.json"] = b'{"tampered": true}'
    with pytest.raises(Exception, match="sha256"):
        fixtures.fetch_fixtures(tmp_path / "fx2", base_url=server.url("elmo/"))
    assert not (tmp_path / "fx2" / "options.json").exists()
