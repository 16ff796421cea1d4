# TEST DOUBLE: the container the fake atc writes and the fake ais_bench reads.
# A real .om is a compiled Ascend model; this one is a clearly fake stand-in:
#   MAGIC | 8-byte little-endian JSON length | JSON metadata | the ONNX model bytes
# so that the fake ais_bench can really run the model (with onnxruntime).
from __future__ import annotations

import json
import struct

MAGIC = b"ELMO-TEST-DOUBLE-OM (not a real Ascend .om)\n"


def write(path, meta: dict, onnx_bytes: bytes) -> None:
    blob = json.dumps(meta, sort_keys=True).encode("utf-8")
    with open(path, "wb") as handle:
        handle.write(MAGIC + struct.pack("<Q", len(blob)) + blob + onnx_bytes)


def read(path):
    """(metadata, ONNX bytes); ValueError when the file is not one of ours."""
    with open(path, "rb") as handle:
        data = handle.read()
    if not data.startswith(MAGIC):
        raise ValueError(f"{path} is not a test-double .om")
    start = len(MAGIC) + 8
    (size,) = struct.unpack("<Q", data[len(MAGIC):start])
    meta = json.loads(data[start:start + size].decode("utf-8"))
    return meta, data[start + size:]
