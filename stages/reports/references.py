"""The accuracy stage's two references, computed once per (model, corpus, bucket, sample) and kept.

``$(ARTIFACTS)/references/<key>/`` holds, per reference, one ``.npy`` per chunk of sentences
(``<reference>/<chunk>.npy``: float32 ``[real tokens of the chunk's sentences, D]``, sentences
in sample order, padding rows left out) and ``manifest.json`` (schema ``elmo-references/1``,
docs/formats.md). The key is the sha256 of what shapes the outputs: the simplified ONNX's and
the weights' (and options') sha256, the data manifest's sha256 (which holds WORD_LEN and the
bucket), the sample, the code of the PyTorch module and the runtimes' versions. A changed model
or corpus therefore makes a new folder; every precision and target judged against the same one
reads it back instead of recomputing it.

The folder is built under a temporary name and renamed when both references and the manifest
are written, so a killed computation leaves only a temporary that the next run removes; a lock
beside it makes two judges started together (``make -j``) compute it once.
"""
from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import sys
import time
from pathlib import Path
from typing import Callable, Dict, Iterator, Optional, Sequence

import numpy as np

from stages.common.atomic import atomic_path, write_json
from stages.common.hashing import sha256_file
from stages.common.memory import peak_rss_mb, rss_mb
from stages.common.progress import step

SCHEMA = "elmo-references/1"
MANIFEST = "manifest.json"
ONNX_REF = "onnxruntime-fp32"
TORCH_REF = "pytorch-unpadded"
REFERENCES = (ONNX_REF, TORCH_REF)
# The code that computes the references (the model, the runners, how sentences are batched and
# run unpadded): a change there must not reuse old outputs. The judge's own code is not in it,
# so a change in how they are judged or reported reads the kept ones back.
MODEL_CODE = ("elmo/model.py", "elmo/charids.py", "elmo/hdf5_weights.py", "elmo/elmo_options.py",
              "backends/runners.py", "reports/reference_runs.py")


class PassMeter:
    """Time and memory of one pass: wall seconds, the process's peak RSS at its end, and the
    largest RSS sampled after each of its chunks (the pass's own)."""

    def __init__(self, name: str, what: str, sentences: int):
        self.record = {"name": name, "what": what, "status": "computed", "sentences": sentences}
        self._started = time.perf_counter()
        self._rss = rss_mb()

    def sample(self) -> None:
        self._rss = max(self._rss, rss_mb())

    def done(self, **extra) -> dict:
        self.sample()
        self.record.update(seconds=round(time.perf_counter() - self._started, 3),
                           peak_rss_mb=round(peak_rss_mb(), 1), rss_mb_max=round(self._rss, 1), **extra)
        return self.record


def _versions() -> dict:
    found = {}
    for name in ("onnxruntime", "torch"):
        try:
            found[name] = __import__(name).__version__
        except ImportError:
            found[name] = None
    return found


def key_inputs(onnx_sha256: str, source: dict, data_manifest_sha256: str, word_len: int, min_len: int,
               sample: Optional[int]) -> dict:
    """Everything the reference outputs depend on (its sha256 is the folder's key)."""
    stages = Path(__file__).resolve().parents[1]
    return {
        "onnx_sha256": onnx_sha256,
        "weights_sha256": source.get("weights_sha256"),
        "options_sha256": source.get("options_sha256"),
        "data_manifest_sha256": data_manifest_sha256,
        "word_len": word_len,
        "min_len": min_len,
        "sample_per_bucket": sample,
        "model_code_sha256": hashlib.sha256("".join(sha256_file(stages / f) for f in MODEL_CODE).encode()).hexdigest(),
        "versions": _versions(),
    }


def key_of(inputs: dict) -> str:
    return hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()[:20]


def chunk_path(folder: Path, reference: str, chunk: int) -> Path:
    return Path(folder) / reference / f"{chunk}.npy"


def lock_path(root: Path, key: str) -> Path:
    """The lock a judge holds while it reuses or computes ``key``'s folder."""
    return Path(root) / f".{key}.lock"


@contextlib.contextmanager
def _locked(root: Path, key: str):
    root.mkdir(parents=True, exist_ok=True)
    with open(lock_path(root, key), "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def load_manifest(folder: Path) -> Optional[dict]:
    try:
        manifest = json.loads((Path(folder) / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return manifest if isinstance(manifest, dict) and manifest.get("schema") == SCHEMA else None


def _complete(folder: Path, manifest: Optional[dict]) -> bool:
    if not manifest:
        return False
    return all(chunk_path(folder, ref, k).is_file() for ref in REFERENCES for k in range(manifest["chunks"]))


def finished(folder) -> Optional[dict]:
    """The manifest of a references folder this module finished writing, else None."""
    manifest = load_manifest(Path(folder))
    return manifest if _complete(Path(folder), manifest) else None


def ensure(root, inputs: dict, *, chunks: Sequence[np.ndarray], lengths: np.ndarray, chunk_sentences: int,
           compute: Dict[str, Callable[[np.ndarray], Iterator[np.ndarray]]], labels: Dict[str, str],
           progress: bool = True) -> tuple:
    """The references folder for ``inputs``: reused when a finished one exists, else computed.

    ``chunks``: the sample numbers of each chunk; ``compute[name](indices)`` returns the
    reference's ``[tokens, D]`` real-token outputs for those sentences. Returns
    ``(folder, manifest, passes, reused)``, ``passes`` the time and memory of each reference pass.
    """
    root = Path(root)
    key = key_of(inputs)
    folder = root / key
    with _locked(root, key):
        manifest = load_manifest(folder)
        if _complete(folder, manifest):
            manifest["hits"] = int(manifest.get("hits", 0)) + 1
            manifest["last_used"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
            write_json(folder / MANIFEST, manifest)
            passes = [{"name": f"reference {name}", "what": labels[name], "status": "reused",
                       "sentences": int(len(lengths)), "seconds": 0.0, "peak_rss_mb": round(peak_rss_mb(), 1),
                       "rss_mb_max": round(rss_mb(), 1), "computed_seconds": manifest["references"][name]["seconds"]}
                      for name in REFERENCES]
            print(f"accuracy: references reused from {folder} (computed once in "
                  f"{sum(manifest['references'][n]['seconds'] for n in REFERENCES):.1f} s; use {manifest['hits'] + 1})")
            return folder, manifest, passes, True
        passes = []
        records = {}
        with atomic_path(folder) as tmp:
            tmp.mkdir(parents=True)
            total = len(REFERENCES)
            for number, name in enumerate(REFERENCES, 1):
                (tmp / name).mkdir()
                meter = PassMeter(f"reference {name}", labels[name], int(len(lengths)))
                with step(f"accuracy: reference {number} of {total}, {labels[name]}"):
                    dim = None
                    for k, indices in enumerate(_bar(chunks, f"reference {number}/{total}", lengths, progress)):
                        out = np.ascontiguousarray(compute[name](indices), dtype=np.float32)
                        dim = out.shape[1]
                        np.save(chunk_path(tmp, name, k), out)
                        meter.sample()
                passes.append(meter.done())
                records[name] = {"what": labels[name], "seconds": meter.record["seconds"],
                                 "peak_rss_mb": meter.record["peak_rss_mb"], "rss_mb_max": meter.record["rss_mb_max"],
                                 "dim": dim}
            manifest = {
                "schema": SCHEMA,
                "key": key,
                "inputs": inputs,
                "sentences": int(len(lengths)),
                "tokens": int(np.sum(lengths)),
                "chunks": len(chunks),
                "chunk_sentences": chunk_sentences,
                "references": records,
                "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                "hits": 0,
                "last_used": None,
            }
            write_json(tmp / MANIFEST, manifest)
        print(f"accuracy: references computed in {sum(p['seconds'] for p in passes):.1f} s, kept in {folder}")
        return folder, manifest, passes, False


def _bar(chunks, desc: str, lengths, progress: bool):
    """Chunks with a tqdm bar counting sentences (rate and ETA); quiet when stderr is not a terminal."""
    from tqdm import tqdm

    with tqdm(total=int(len(lengths)), unit="sent", desc=desc, disable=None if progress else True,
              file=sys.stderr, leave=False) as bar:
        for indices in chunks:
            yield indices
            bar.update(len(indices))


def read_chunk(folder, reference: str, chunk: int) -> np.ndarray:
    return np.load(chunk_path(folder, reference, chunk))
