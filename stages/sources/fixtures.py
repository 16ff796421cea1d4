"""``make fixtures``: the trained bilm-tf test model and bilm-tf's own embeddings of it, the
ground truth several tests compare against, downloaded from allennlp's public test fixtures
(Apache-2.0) and checked against pinned sha256 digests.

CI reads the same files from the workplace's shared folder; a clone elsewhere gets them here.
The digests were computed from the copies the project's tests were written against (allennlp
publishes none); a download that differs is refused, not used.
"""
from __future__ import annotations

from pathlib import Path

from stages.common.errors import StageError
from stages.sources.download import fetch

BASE_URL = "https://raw.githubusercontent.com/allenai/allennlp/v2.10.1/test_fixtures/elmo/"
FILES = {
    "options.json": "117cb6d2fb87b8485aa750ef299fa88cc4881f4bead731ea56aec8e944da580d",
    "lm_weights.hdf5": "dfdfd3001b5965b4b6ef857ac772b6624984f8248eaae08fb9be6d1b51ad8755",
    "lm_embeddings_0.hdf5": "ebeee87fe246cacc2dd4b6b109537cd03bf45c8f5402d3570be7c57ddcb6ea21",
    "sentences.json": "f3103518aaf930b32a08209dded69c76ad41bb8e4d99446701ac87e47d76aa1d",
    "vocab_test.txt": "7ee65e48076b2fa974278512c5e144d623ffa993d9d33f1a1fdd28c31ee8de05",
}
DEFAULT_DEST = Path("data") / "fixtures" / "elmo-bilm-tf"


def fetch_fixtures(dest=DEFAULT_DEST, base_url: str = BASE_URL) -> Path:
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    for name, digest in FILES.items():
        fetch(base_url + name, dest / name, digest)
    return dest


COMMAND = "fixtures"
COMMAND_HELP = dict(help="download the bilm-tf test fixture (allennlp's test_fixtures/elmo), sha256-checked")


def add_arguments(parser) -> None:
    parser.add_argument("--dest", default=str(DEFAULT_DEST))
    parser.add_argument("--base-url", default=BASE_URL)


def run(args) -> int:
    try:
        dest = fetch_fixtures(args.dest, args.base_url)
    except OSError as exc:
        raise StageError(f"could not download the bilm-tf fixture from {args.base_url} ({exc}); the tests that "
                         f"need it skip, or set ELMO_FIXTURE_DIR to a folder holding {', '.join(FILES)}")
    print(f"fixtures: bilm-tf test model and embeddings in {dest}")
    return 0
