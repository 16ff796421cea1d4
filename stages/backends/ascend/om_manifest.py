"""The sidecar ``<model>.om.json`` written next to every .om.

An .om cannot be inspected without CANN, so the manifest is how later stages
learn the input shape, the batch gears and the chip it was built for, and
check them before handing inputs to ais_bench.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

from stages.common.errors import StageError

SCHEMA = "elmo-om-manifest/1"
REQUIRED = ("command", "soc_version", "input_shape", "batch_sizes", "onnx", "onnx_sha256")


def manifest_path(om_path) -> Path:
    return Path(str(om_path) + ".json")


def build_manifest(*, command: List[str], atc_version: str, soc_version: str, atc_wrote: Optional[str] = None, batch_sizes: List[int],
                   word_len: int, precision_mode: Optional[str], onnx: str, onnx_sha256: str,
                   om_size: int, input_name: str) -> dict:
    dynamic = len(batch_sizes) > 1
    return {
        "schema": SCHEMA,
        "target": "ascend",
        "command": list(command),
        "atc_version": atc_version,
        # The name atc gave the .om (CANN 7.0 on may add _linux_<arch>) before it was renamed.
        "atc_wrote": atc_wrote,
        "soc_version": soc_version,
        "input_name": input_name,
        "input_shape": [-1 if dynamic else batch_sizes[0], word_len, 50],
        "batch_sizes": list(batch_sizes),
        "precision_mode": precision_mode,
        "onnx": onnx,
        "onnx_sha256": onnx_sha256,
        # Lets a reader notice an .om replaced by hand without hashing it.
        "om_size": om_size,
    }


def read_manifest(om_path) -> dict:
    """The manifest of ``om_path``; ``StageError`` if it is missing or not for this file."""
    om_path = Path(om_path)
    path = manifest_path(om_path)
    if not om_path.is_file():
        raise StageError(f"{om_path}: no such .om; run make om first")
    if not path.is_file():
        raise StageError(f"{path}: missing (it records how {om_path.name} was built); rerun make om")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise StageError(f"{path}: unreadable ({exc}); rerun make om")
    if not isinstance(data, dict) or data.get("schema") != SCHEMA:
        raise StageError(f"{path}: not an {SCHEMA} manifest; rerun make om")
    missing = [key for key in REQUIRED if key not in data]
    if missing:
        raise StageError(f"{path}: lacks {', '.join(missing)}; rerun make om")
    size = data.get("om_size")
    if size is not None and size != om_path.stat().st_size:
        raise StageError(f"{path}: describes a different {om_path.name} (size differs); rerun make om")
    return data


def word_len(manifest: dict) -> int:
    return int(manifest["input_shape"][1])


def is_dynamic(manifest: dict) -> bool:
    return int(manifest["input_shape"][0]) == -1


def pick_batch(manifest: dict, batch: int, dym_batch: Optional[int], om_path) -> Optional[int]:
    """The ``--dymBatch`` value for running ``batch`` rows, or None for a static .om."""
    gears = [int(b) for b in manifest["batch_sizes"]]
    if dym_batch is not None and int(dym_batch) != batch:
        raise StageError(f"dym_batch={dym_batch} differs from batch {batch}; give one batch size")
    if not is_dynamic(manifest):
        built = int(manifest["input_shape"][0])
        if built != batch:
            raise StageError(
                f"{om_path}: built for batch {built}, asked to run batch {batch}; "
                f"rebuild with that batch (or several, for a dynamic-batch .om)"
            )
        return None
    if batch not in gears:
        raise StageError(
            f"{om_path}: dynamic batch gears are {','.join(map(str, gears))}, not {batch}; "
            f"rebuild with {batch} among the batch sizes"
        )
    return batch
