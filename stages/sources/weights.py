"""Choose the model weights once, and label them everywhere.

``--source``:

* ``official``  the published Original model, downloaded with sha256
  verification and resume into the cache (``data/cache/`` by default);
* ``synthetic`` deterministic random weights with the Original's exact shapes
  (or another options file's) in the official HDF5 layout: the same speed as
  the real model on hosts that cannot download it, and never passed off as it;
* ``auto``      explicit paths if given, else the official model if cached or
  downloadable, else synthetic, saying why.

Writes ``source.json`` (schema ``elmo-weights-source/1``, see docs/formats.md),
which every later stage and report reads.
"""
from __future__ import annotations

import json
import sys
import urllib.parse
from pathlib import Path

from stages.common.atomic import atomic_path, write_json
from stages.elmo.elmo_options import ORIGINAL_OPTIONS, ElmoOptions, load_options
from stages.common.errors import StageError
from stages.common.hashing import sha256_file
from stages.elmo.hdf5_weights import read_weights, synthetic_weights, write_weights
from stages.common.records import read_record

SCHEMA = "elmo-weights-source/1"
SYNTHETIC_SEED = 20181  # fixed: the same synthetic model on every host


def _official_cached(cache: Path):
    from stages.sources.official import OFFICIAL_ELMO

    paths = {kind: cache / Path(urllib.parse.urlparse(url).path).name for kind, (url, _, _) in OFFICIAL_ELMO.items()}
    return paths, all(path.is_file() for path in paths.values())


def fetch_official(cache: Path) -> dict:
    from stages.sources.download import fetch
    from stages.sources.official import OFFICIAL_ELMO

    paths, _ = _official_cached(cache)
    for kind, (url, sha256, _) in OFFICIAL_ELMO.items():
        fetch(url, paths[kind], sha256)
    return {
        "kind": "official",
        "label": "official ELMo Original (2x4096_512_2048cnn_2xhighway)",
        "options": str(paths["options"]),
        "weights": str(paths["weights"]),
    }


def make_synthetic(out_dir: Path, template: dict, seed: int = SYNTHETIC_SEED) -> dict:
    options = ElmoOptions.from_dict(template, source="synthetic template")
    out_dir.mkdir(parents=True, exist_ok=True)
    options_path = out_dir / "synthetic_options.json"
    weights_path = out_dir / "synthetic_weights.hdf5"
    stamp_path = out_dir / "synthetic.json"
    stamp = {"seed": seed, "options": template}
    if not (weights_path.is_file() and stamp_path.is_file() and json.loads(stamp_path.read_text()) == stamp):
        with atomic_path(weights_path) as tmp:
            write_weights(tmp, synthetic_weights(options, seed))
        with atomic_path(options_path) as tmp:
            tmp.write_text(json.dumps(template, indent=2) + "\n")
        write_json(stamp_path, stamp)
    return {
        "kind": "synthetic",
        "label": f"SYNTHETIC random weights (seed {seed}, {options.cell_dim}-cell shapes): "
        "speed is real, accuracy is only self-consistency",
        "options": str(options_path),
        "weights": str(weights_path),
    }


def resolve(source: str, *, options=None, weights=None, out_dir: Path, cache: Path, template=None) -> dict:
    if bool(options) != bool(weights):
        raise StageError("give both ELMO_OPTIONS and ELMO_WEIGHTS, or neither")
    template = template or ORIGINAL_OPTIONS
    reason = ""
    if options:
        if source == "synthetic":
            raise StageError("WEIGHTS=synthetic ignores explicit ELMO_OPTIONS/ELMO_WEIGHTS; unset them or pick WEIGHTS=auto")
        chosen = {"kind": "user", "label": f"user-supplied weights {weights}",
                  "options": str(Path(options).resolve()), "weights": str(Path(weights).resolve())}
    elif source == "official":
        chosen = fetch_official(cache)
    elif source == "synthetic":
        chosen = make_synthetic(out_dir, template)
        reason = "WEIGHTS=synthetic was asked for"
    elif source == "auto":
        from stages.sources.download import reachable
        from stages.sources.official import OFFICIAL_ELMO

        _, cached = _official_cached(cache)
        if cached or reachable(OFFICIAL_ELMO["weights"][0]):
            chosen = fetch_official(cache)
            reason = "official model found in the cache" if cached else "official model downloaded"
        else:
            chosen = make_synthetic(out_dir, template)
            reason = ("official model not cached and its server is unreachable; "
                      "using synthetic weights of the same shapes")
    else:
        raise StageError(f"WEIGHTS={source!r} is not one of auto, official, synthetic")
    # Validate now so a bad file fails here, naming itself, not three stages later.
    read_weights(chosen["weights"], load_options(chosen["options"]))
    chosen.update(
        schema=SCHEMA,
        requested=source,
        reason=reason,
        synthetic=chosen["kind"] == "synthetic",
        options_sha256=sha256_file(chosen["options"]),
        weights_sha256=sha256_file(chosen["weights"]),
    )
    return chosen


def load_source(path) -> dict:
    """The recorded source, its file paths made usable from here (see ``_portable``)."""
    source = read_record(path, schema=SCHEMA, missing="run `make weights` (delete the file if it is stale)")
    folder = Path(path).parent
    for key in ("options", "weights"):
        beside = folder / source[key]
        if not Path(source[key]).is_absolute() and beside.exists():
            source[key] = str(beside)
    return source


def _portable(path: str, folder: Path) -> str:
    """Files next to source.json are recorded by name, so the record stays valid
    wherever the artifacts folder is mounted (on the host or at /artifacts in a
    container); the download cache stays relative to the project root."""
    try:
        return str(Path(path).resolve().relative_to(folder.resolve()))
    except ValueError:
        return path


COMMAND = "weights"
COMMAND_HELP = dict(help="choose and prepare the ELMo weights (auto|official|synthetic)")


def add_arguments(parser) -> None:
    parser.add_argument("--source", default="auto", choices=("auto", "official", "synthetic"))
    parser.add_argument("--options", default="", help="explicit options.json (with --weights)")
    parser.add_argument("--weights", default="", help="explicit weights.hdf5 (with --options)")
    parser.add_argument("--synthetic-like", default="",
                        help="options.json whose shapes synthetic weights copy (default: the Original model)")
    parser.add_argument("--out", required=True, help="source.json to write; synthetic weights go beside it")
    parser.add_argument("--cache", default="data/cache", help="download cache for the official model")


def run(args) -> int:
    out = Path(args.out)
    template = None
    if args.synthetic_like:
        template = json.loads(Path(args.synthetic_like).read_text(encoding="utf-8"))
    chosen = resolve(args.source, options=args.options or None, weights=args.weights or None,
                     out_dir=out.parent, cache=Path(args.cache), template=template)
    write_json(out, dict(chosen, options=_portable(chosen["options"], out.parent),
                         weights=_portable(chosen["weights"], out.parent)))
    print(f"weights: {chosen['label']}" + (f" ({chosen['reason']})" if chosen["reason"] else ""), file=sys.stderr)
    return 0
