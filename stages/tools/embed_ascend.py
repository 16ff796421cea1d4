"""The .om files ``embed --target ascend`` streams a corpus through: one per length bucket.

Each bucket is the all-layers graph (``[B, layers, W, D]``) at a fixed WORD_LEN, exported with a
dynamic batch (a static batch of 1 when that is all the om serves: atc wants static shapes then),
simplified, and compiled the way ``make om`` compiles (``target.compile_ascend``: the om's batch
sizes as ``--dynamic_batch_size``, the soc version from npu-smi unless given, the precision mode).
They are cached under ``<models dir>/<weights sha256[:12]>/``, each .om beside its
``elmo-om-manifest/1`` record plus its own ``sha256``; a later run reuses an .om built for the same
chip, batch sizes and precision mode.

The .om files run here, on DEVICES, through ais_bench's Python API or its CLI
(``backends.ascend.session``); each bucket's record says which way and which release.
"""
from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace
from typing import Dict, List, Optional

from stages.common.errors import StageError
from stages.common.hashing import sha256_file


def _cached(om: Path, soc: str, batches: List[int], precision_mode: Optional[str]) -> Optional[dict]:
    """The manifest of an .om built for these settings, or None when it must be built (again)."""
    from stages.backends.ascend.om_manifest import manifest_path, read_manifest
    from stages.common.atomic import write_json

    if not om.is_file():
        return None
    try:
        manifest = read_manifest(om)
    except StageError:  # no or stale manifest (a run killed mid-compile): build again
        return None
    if (manifest["soc_version"] != soc or [int(b) for b in manifest["batch_sizes"]] != batches
            or manifest.get("precision_mode") != precision_mode):
        return None
    if "sha256" not in manifest:  # killed between compile and the hash: hash once, keep it
        manifest = dict(manifest, sha256=sha256_file(om))
        write_json(manifest_path(om), manifest)
    return manifest


def _bucket_om(options, weights, folder: Path, word_len: int, batches: List[int], soc: str,
               precision_mode: Optional[str]):
    """(.om, its manifest) for one bucket, built unless cached."""
    from stages.backends.ascend.om_manifest import manifest_path
    from stages.backends.ascend.target import compile_ascend
    from stages.common.atomic import write_json
    from stages.tools.embed_models import layers_graph

    tag = "b" + "-".join(map(str, batches)) + (f"_{precision_mode}" if precision_mode else "")
    om = folder / f"elmo_w{word_len}_layers_{tag}.om"
    manifest = _cached(om, soc, batches, precision_mode)
    if manifest is not None:
        return om, manifest
    # atc wants static shapes where batch 1 is all the om serves.
    sim = layers_graph(options, weights, folder, word_len, dynamic_batch=batches != [1])
    manifest = compile_ascend(SimpleNamespace(model=str(sim), out=str(om), batch=" ".join(map(str, batches)),
                                              word_len=word_len, soc_version=soc, precision_mode=precision_mode))
    manifest = dict(manifest, sha256=sha256_file(om))
    write_json(manifest_path(om), manifest)
    return om, manifest


def _host_soc(devices: List[int], soc_version: str):
    """(checked device ids, the soc version to build for): the host's chip, which SOC_VERSION may
    only name again, since the .om files run on this host."""
    from stages.backends.ascend.npu_smi import check_devices, detect_chips, soc_version as soc_of

    chips = detect_chips()
    devices = check_devices(chips, devices)
    host = soc_of(chips)
    given = soc_version or os.environ.get("SOC_VERSION") or None
    if given and soc_of(chips, given) != host:
        raise StageError(f"SOC_VERSION={given}: this host's NPUs are {host}, and make embed runs the .om here; "
                         f"leave SOC_VERSION empty or set it to {host}")
    return devices, host


def ascend_bucket_models(options, weights, buckets: List[int], models_dir, *, weights_sha256: str,
                         om_batches: List[int], devices: List[int], soc_version: str, precision_mode: str):
    """``(models {word_len: .om}, described {str(word_len): record}, load_runners)`` for ``embed``.

    ``load_runners(subset)`` opens the runners of those buckets (each once: later calls reuse them).
    Devices, chip and the way to run (API or CLI) are settled before anything is built, so a host
    that cannot run the .om files fails before minutes of export and compile."""
    from stages.backends.ascend.session import find_runtime
    from stages.backends.ascend.target import parse_batches

    batches = parse_batches(" ".join(map(str, om_batches)))
    devices, soc = _host_soc(list(devices), soc_version)
    runtime = find_runtime()
    folder = Path(models_dir) / weights_sha256[:12]
    models: Dict[int, Path] = {}
    described = {}
    for word_len in buckets:
        om, manifest = _bucket_om(options, weights, folder, int(word_len), batches, soc, precision_mode or None)
        models[word_len] = om
        described[str(word_len)] = {
            "path": str(om), "sha256": manifest["sha256"], "soc_version": manifest["soc_version"],
            "batch_sizes": manifest["batch_sizes"], "precision_mode": manifest.get("precision_mode"),
            "atc_version": manifest.get("atc_version"), **runtime.record(), "devices": devices,
        }
    return models, described, om_loader(options, devices, runtime)


def om_loader(options, devices: List[int], runtime=None):
    """``load_runners(subset) -> {word_len: runner}`` over these .om files on ``devices``: each bucket
    opened once (later calls reuse it). ``runtime``: ``session.find_runtime()`` unless given."""
    from stages.backends.ascend.om_manifest import read_manifest
    from stages.backends.ascend.session import DeviceWorkers, find_runtime, open_runner
    from stages.elmo.elmo_options import load_options

    runtime = runtime or find_runtime()
    elmo = load_options(options)
    layers, dim = elmo.n_layers + 1, elmo.output_dim
    runners: dict = {}
    workers: List[DeviceWorkers] = []  # made on first use: the CLI needs no threads

    def load_runners(subset: Dict[int, Path]) -> dict:
        for word_len, om in subset.items():
            if word_len not in runners:
                if runtime.way == "api" and not workers:
                    workers.append(DeviceWorkers(devices))
                runners[word_len] = open_runner(runtime, Path(om), read_manifest(om), devices=devices,
                                                out_shape=(layers, int(word_len), dim), name=f"bucket {word_len}",
                                                workers=workers[0] if workers else None)
        return {word_len: runners[word_len] for word_len in subset}

    return load_runners
