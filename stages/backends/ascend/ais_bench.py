"""Run .om models with ais_bench (Huawei's ``ais_infer``, later ``ais_bench``).

Two uses: inference over a folder of ``.bin`` inputs, one ais_bench per NPU
device, and pure-inference timing (no ``--input``: ais_bench feeds its own
data ``--loop`` times). ais_bench names each output after its input file
(``12.bin`` -> ``12_0.bin``) inside ``--output/--output_dirname``.

Every command is built from the flags the installed tool lists in its own
``--help`` (``ais_tool``), and every path it is handed is made in the form the
strictest release accepts (``tool_paths``).
"""
from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from stages.common.atomic import atomic_path
from stages.elmo.charids import MAX_CHARS
from stages.common.errors import StageError
from stages.backends.ascend import om_manifest
from stages.backends.ascend.ais_summary import merge_stats, percentile, read_summary, stats_of
from stages.backends.ascend.ais_tool import AisTool, check_drivable, discover
from stages.backends.ascend.npu_smi import check_devices, detect_chips, soc_version
from stages.backends.ascend.shards import gather_outputs, input_files, round_robin
from stages.backends.ascend.tool_paths import check_safe, not_writable_by_others, private_dir, share_files

__all__ = ["infer_command", "perf_command", "read_summary", "run_inference", "run_perf"]

INFER_SCHEMA = "elmo-infer-summary/1"
TAIL_LINES = 20


def infer_command(tool: AisTool, om, input_dir, output_root, dirname, device, dym_batch=None) -> List[str]:
    argv = list(tool.launcher) + [
        "--model", str(om),
        "--input", str(input_dir),
        "--output", str(output_root),
        "--output_dirname", str(dirname),
        "--outfmt", "BIN",
        "--device", str(int(device)),
    ]
    if dym_batch is not None:
        argv += ["--dymBatch", str(int(dym_batch))]
    return argv


def perf_command(tool: AisTool, om, *, loop: int, warmup: int, device: int, batch: int, dym_batch=None,
                 output_root=None, dirname: str = "perf") -> List[str]:
    """Pure inference: no ``--input``; ``--output`` only so the summary lands somewhere known.

    ``warmup`` is passed as ``--warmup_count`` where the tool has it; callers
    of a tool without it fold the warm-up into ``loop`` (``run_perf``).
    """
    argv = list(tool.launcher) + [
        "--model", str(om),
        "--loop", str(int(loop)),
        "--device", str(int(device)),
    ]
    if tool.has("--warmup_count"):
        argv += ["--warmup_count", str(int(warmup))]
    if tool.has("--batchsize"):
        argv += ["--batchsize", str(int(batch))]
    if dym_batch is not None:
        argv += ["--dymBatch", str(int(dym_batch))]
    if output_root is not None:
        argv += ["--output", str(output_root), "--output_dirname", str(dirname)]
    return argv


def _tail(path: Path, n: int = TAIL_LINES) -> str:
    try:
        lines = [ln.rstrip() for ln in path.read_text(encoding="utf-8", errors="replace").splitlines()]
    except OSError:
        return "(no log)"
    lines = [ln for ln in lines if ln.strip()]
    return "\n".join(lines[-n:]) if lines else "(ais_bench printed nothing)"


def check_host(manifest: dict, om: Path, devices: Sequence[int], chips=None) -> List[int]:
    """The om's chip against this host's, and the device ids against its chips (``chips``: the
    host's ``detect_chips()``, read once by a caller checking several .om files)."""
    chips = detect_chips() if chips is None else chips
    # Deliberately not SOC_VERSION: that names the chip to build for, which
    # may be another host's; what runs here is what npu-smi reports.
    host = soc_version(chips)
    built = manifest["soc_version"]
    if built != host:
        raise StageError(f"{om.name} was built for {built} but this host has {host}; rerun make om")
    return check_devices(chips, devices)


def _check_inputs(files: Sequence[Path], word_len: int, om: Path) -> None:
    need = 1 * word_len * MAX_CHARS * 4
    for path in files:
        size = path.stat().st_size
        if size != need:
            raise StageError(
                f"{path}: {size} bytes, but {om.name} takes one sentence of int32 [1,{word_len},{MAX_CHARS}] "
                f"= {need} bytes; rerun make data with WORD_LEN={word_len} or rebuild the om"
            )


def _prepare_om(om) -> Path:
    """The .om as ais_bench accepts it: absolute, no symlink, not writable by others."""
    om = check_safe(om, "ARTIFACTS")
    if om.suffix != ".om":
        raise StageError(f"{om}: ais_bench only loads files ending in .om")
    not_writable_by_others(om)
    return om


def _run_devices(jobs: Dict[int, List[str]], logs: Dict[int, Path]) -> None:
    """Start every device's ais_bench at once, then wait for all of them."""
    running = {}
    try:
        for device, argv in jobs.items():
            with logs[device].open("wb") as log:
                running[device] = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
        failed = [(d, p.wait()) for d, p in running.items()]
    except OSError as exc:
        raise StageError(f"could not start ais_bench ({exc}); check AIS_BENCH")
    finally:
        for proc in running.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    for device, status in failed:
        if status != 0:
            raise StageError(
                f"ais_bench failed on NPU device {device} (exit status {status}); last lines of its log:\n"
                + _tail(logs[device])
            )


def _combine(parts: Sequence[dict], counts: Sequence[int], batch: int) -> dict:
    """One run's timings from each device's ais_bench summary."""
    lists = [part["npu_compute_time_list"] for part in parts]
    if all(lists):
        latency = stats_of([x for one in lists for x in one])
    else:
        latency = merge_stats([part["npu_compute_ms"] for part in parts], counts)
    rates = [
        part["throughput"] if part["throughput"] is not None else 1000.0 * batch / part["npu_compute_ms"]["mean"]
        for part in parts
    ]
    return {
        "latency_ms": {k: latency[k] for k in ("mean", "median", "min", "max", "p99")},
        # Devices run side by side, so their rates add up.
        "throughput": sum(rates),
        "h2d_ms": merge_stats([part["h2d_ms"] for part in parts], counts),
        "d2h_ms": merge_stats([part["d2h_ms"] for part in parts], counts),
    }


def run_inference(om, input_dir, output_dir, *, devices: Sequence[int] = (0,), batch_size: int = 1,
                  dym_batch: Optional[int] = None, host_checked: bool = False) -> dict:
    """Outputs ``<stem>_0.bin`` for every input ``<stem>.bin``, plus ``summary.json``, in ``output_dir``.

    Returns the summary (schema ``elmo-infer-summary/1``) that it also writes. ``host_checked``: the
    caller ran ``check_host`` for this om and these devices already (a runner calling once per batch).
    ais_bench's logs and summary files are kept in ``output_dir/ais_bench/``
    (``tool.summary_files`` lists them relative to ``output_dir``); the
    commands it records name temporary input folders that no longer exist.
    """
    given = {"model": str(om), "input_dir": str(input_dir), "output_dir": str(output_dir)}
    om = Path(om).resolve()
    output_dir = check_safe(output_dir, "ARTIFACTS")
    manifest = om_manifest.read_manifest(om)
    om = _prepare_om(om)
    if batch_size != 1:
        raise StageError(f"batch_size={batch_size}: inference runs one sentence per .bin file (batch 1)")
    dym = om_manifest.pick_batch(manifest, batch_size, dym_batch, om)
    files = input_files(input_dir)
    _check_inputs(files, om_manifest.word_len(manifest), om)
    devices = list(devices) if host_checked else check_host(manifest, om, devices)
    tool = discover()
    check_drivable(tool)
    if dym is not None and not tool.has("--dymBatch"):
        raise StageError(f"`{' '.join(tool.launcher)}` has no --dymBatch, so it cannot run the dynamic-batch "
                         f"{om.name}; rebuild with BATCH=1 or update ais_bench")
    shares = round_robin(files, devices)

    with atomic_path(output_dir) as tmp:
        tmp.mkdir()
        work = private_dir(tmp / "_work")
        out_root = private_dir(work / "out")
        private_dir(work / "in")
        tool_dir = tmp / "ais_bench"
        tool_dir.mkdir()
        jobs, logs, placed = {}, {}, []
        for device, share in shares.items():
            folder = work / "in" / f"device{device}"
            placed.append(share_files(share, folder))
            jobs[device] = infer_command(tool, om, folder, out_root, f"device{device}", device, dym)
            logs[device] = tool_dir / f"device{device}.log"
        _run_devices(jobs, logs)

        missing, parts, counts, summary_files = [], [], [], []
        for device, share in shares.items():
            part = read_summary(out_root, f"device{device}")
            kept = tool_dir / f"device{device}_summary.json"
            shutil.copyfile(part["summary_file"], str(kept))
            summary_files.append(str(kept.relative_to(tmp)))
            missing += gather_outputs(out_root / f"device{device}", [p.stem for p in share], tmp)
            parts.append(part)
            counts.append(len(share))
        if missing:
            shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
            raise StageError(f"ais_bench wrote no output for {len(missing)} of {len(files)} inputs: {shown}")
        shutil.rmtree(str(work))

        timing = _combine(parts, counts, batch_size)
        summary = {
            "schema": INFER_SCHEMA,
            "target": "ascend",
            "model": given["model"],
            "input_dir": given["input_dir"],
            "output_dir": given["output_dir"],
            "inputs": len(files),
            "outputs": len(files),
            "batch_size": batch_size,
            **timing,
            "devices": list(shares),
            "tool": {
                "name": "ais_bench",
                **tool.record(),
                "commands": [jobs[d] for d in shares],
                "summary_files": summary_files,
                "inputs_placed": {
                    "hard_links": sum(p["linked"] for p in placed),
                    "copies": sum(p["copied"] for p in placed),
                    "copied_bytes": sum(p["copied_bytes"] for p in placed),
                },
            },
        }
        (tmp / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return summary


def _timed_run(tool, om, work: Path, name: str, *, loop, warmup, device, batch, dym) -> tuple:
    out_root = private_dir(work / name)
    command = perf_command(tool, om, loop=loop, warmup=warmup, device=device, batch=batch, dym_batch=dym,
                           output_root=out_root, dirname="perf")
    _run_devices({device: command}, {device: work / f"{name}.log"})
    return read_summary(out_root, "perf"), command


def run_perf(om, *, batch: int, loop: int, warmup: int, device: int, dym_batch: Optional[int] = None) -> dict:
    """Pure-inference timing of ``om`` at ``batch`` on one device, warm-up excluded.

    Releases with ``--warmup_count`` skip the warm-up themselves. Older ones
    run ``warmup + loop`` iterations: where the summary lists every
    iteration's time the first ``warmup`` are discarded; where it does not,
    a second run of ``warmup`` iterations is made and its total subtracted,
    so the warm-up cost (and the first, cold iteration) cancels out.
    """
    om = Path(om).resolve()
    manifest = om_manifest.read_manifest(om)
    om = _prepare_om(om)
    loop, warmup = int(loop), int(warmup)
    if loop < 1 or warmup < 0:
        raise StageError(f"loop must be >= 1 and warmup >= 0, got loop={loop} warmup={warmup}")
    dym = om_manifest.pick_batch(manifest, int(batch), dym_batch, om)
    check_host(manifest, om, [device])
    tool = discover()
    check_drivable(tool)
    if dym is not None and not tool.has("--dymBatch"):
        raise StageError(f"`{' '.join(tool.launcher)}` has no --dymBatch; cannot time {om.name} at batch {batch}")
    work = check_safe(tempfile.mkdtemp(prefix="elmo-perf-"), "TMPDIR")
    try:
        if tool.has("--warmup_count") or warmup == 0:
            result, command = _timed_run(tool, om, work, "timed", loop=loop, warmup=warmup, device=device,
                                         batch=batch, dym=dym)
            commands = [command]
            times = result["npu_compute_time_list"]
            npu = result["npu_compute_ms"]
            how = "ais_bench --warmup_count" if warmup else "none asked"
        else:
            result, command = _timed_run(tool, om, work, "timed", loop=warmup + loop, warmup=0, device=device,
                                         batch=batch, dym=dym)
            commands = [command]
            listed = result["npu_compute_time_list"]
            if listed and len(listed) == warmup + loop:
                times = listed[warmup:]
                npu = stats_of(times)
                how = f"first {warmup} of {warmup + loop} iterations discarded (this ais_bench has no --warmup_count)"
            else:
                short, short_command = _timed_run(tool, om, work, "warmup", loop=warmup, warmup=0, device=device,
                                                  batch=batch, dym=dym)
                commands.append(short_command)
                total = result["npu_compute_ms"]["mean"] * (warmup + loop) - short["npu_compute_ms"]["mean"] * warmup
                times = None
                npu = {"mean": total / loop, "median": None, "p99": None}
                how = (f"a {warmup}-iteration run subtracted from a {warmup + loop}-iteration one (this ais_bench "
                       f"has no --warmup_count and lists no per-iteration times)")
    finally:
        shutil.rmtree(str(work), ignore_errors=True)

    if not npu["mean"] > 0:
        raise StageError(f"ais_bench reported a mean NPU compute time of {npu['mean']} ms; cannot time {om.name}")
    return {
        "batch": int(batch),
        # ais_bench's own definition of throughput.
        "sentences_per_s": 1000.0 * int(batch) / npu["mean"],
        "latency_ms": {
            "mean": npu["mean"],
            "p50": npu["median"],
            "p90": percentile(times, 90) if times else None,
            "p99": npu["p99"],
        },
        "h2d_ms": result["h2d_ms"],
        "d2h_ms": result["d2h_ms"],
        "iterations": loop,
        "warmup": warmup,
        "warmup_method": how,
        "device": int(device),
        "tool": "ais_bench",
        "tool_record": tool.record(),
        "command": commands[0],
        "commands": commands,
    }
