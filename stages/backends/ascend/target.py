"""The ascend target behind the shared verbs: ``compile``, ``infer`` and
``perf`` hand over to atc and ais_bench here (the modules beside this one)."""
from __future__ import annotations

import os

from stages.common.errors import StageError


def parse_batches(text) -> list:
    try:
        sizes = sorted({int(b) for b in str(text).replace(",", " ").split()})
    except ValueError:
        raise StageError(f"BATCH={text!r}: give whole numbers, e.g. BATCH='1 4 8'") from None
    if not sizes or sizes[0] < 1:
        raise StageError(f"BATCH={text!r}: batch sizes must be at least 1")
    return sizes


def parse_devices(text) -> list:
    try:
        return [int(d) for d in str(text).split(",") if d.strip()]
    except ValueError:
        raise StageError(f"DEVICES={text!r}: give NPU ids like 0 or 0,1") from None


def compile_ascend(args) -> dict:
    from stages.backends.ascend.atc import compile_om, find_atc
    from stages.backends.ascend.npu_smi import detect_chips, soc_version

    override = args.soc_version or os.environ.get("SOC_VERSION") or None
    chips = [] if override else detect_chips()
    return compile_om(args.model, args.out, batch_sizes=parse_batches(args.batch), word_len=args.word_len,
                      soc_version=soc_version(chips, override), precision_mode=args.precision_mode or None,
                      atc=find_atc())


def infer_ascend(args) -> dict:
    from stages.backends.ascend.ais_bench import run_inference

    summary = run_inference(args.model, args.input, args.output, devices=parse_devices(args.devices))
    summary["output_dir"] = str(args.output)
    return summary


def perf_entries(args, batches) -> list:
    """ais_bench pure-inference timings, in the perf report's result layout."""
    from stages.backends.ascend.ais_bench import run_perf
    from stages.backends.ascend.om_manifest import read_manifest

    manifest = read_manifest(args.model)
    device = parse_devices(args.devices)[0]
    entries = []
    for batch in batches:
        result = run_perf(args.model, batch=batch, loop=args.loop, warmup=args.warmup, device=device)
        entries.append({
            "variant": f"target: ascend om ({manifest.get('soc_version')}, "
                       f"{manifest.get('precision_mode') or 'atc default precision'})",
            "kind": "target",
            "precision": manifest.get("precision_mode") or "atc default (force_fp16)",
            "batch": batch,
            "iterations": result["iterations"],
            "sentences_per_s": result["sentences_per_s"],
            "latency_ms": {**result["latency_ms"], "min": None},
            "h2d_ms": result["h2d_ms"],
            "d2h_ms": result["d2h_ms"],
            "measured_by": "ais_bench NPU compute time (1000 x batch / mean ms)",
            "warmup_method": result["warmup_method"],
            "tool": result["tool_record"],
            "command": result["command"],
            "commands": result["commands"],
        })
    return entries


def open_om_runner(om, devices, out_shape, name: str):
    """A runner (``infer({"input": ids}) -> {"output": ...}``) for one .om on this host's DEVICES,
    through ais_bench's Python API or its CLI, as ``embed`` runs its .om files; the .om's chip is
    checked against the host's first, as ``make accuracy`` does."""
    from pathlib import Path

    from stages.backends.ascend.ais_bench import check_host
    from stages.backends.ascend.om_manifest import read_manifest
    from stages.backends.ascend.session import DeviceWorkers, find_runtime, open_runner

    om = Path(om)
    manifest = read_manifest(om)
    checked = check_host(manifest, om, parse_devices(devices))
    runtime = find_runtime()
    workers = DeviceWorkers(checked) if runtime.way == "api" else None
    runner = open_runner(runtime, om, manifest, devices=checked, out_shape=tuple(out_shape), name=name,
                         workers=workers)
    return runner, runtime.record()
