"""``make doctor``: before a long run, what the Ascend path will use on this
host and whether each part will work, in one table.

Parts: the driver and ``npu-smi``, the chips and their soc_version, CANN's
and the driver's versions, atc (found, version, precision modes it accepts),
ais_bench (launcher, flags, release), the device nodes, the umask and the
artifacts folder (path characters, owner, hard links), and Ray's view of
NPUs where Ray is installed.

``--gate om|all`` is how ``make om`` (atc only) and ``make accuracy/perf``
(everything) call it first with ``TARGET=ascend``: quiet when every part they
need works, one ``error:`` line per part that will fail otherwise (exit 2).
"""
from __future__ import annotations

import os
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import List

from stages.common.errors import StageError

OK, WARN, FAIL, INFO = "ok", "warn", "FAIL", "-"


@dataclass
class Check:
    part: str
    state: str
    found: str
    fix: str = ""
    needed_for: tuple = ("om", "run")


def _npu_checks(args, checks: List[Check]) -> None:
    from stages.backends.ascend import host_info
    from stages.backends.ascend.npu_smi import check_devices, detect_chips, device_ids, soc_version

    try:
        chips = detect_chips()
    except StageError as exc:
        # A build host may compile for a named chip without having one.
        om_needs = ("run",) if args.soc_version else ("om", "run")
        checks.append(Check("driver, npu-smi", FAIL, str(exc), "", om_needs))
        return
    names = ", ".join(f"{c.name} (device {d}, {c.health})" for c, d in zip(chips, device_ids(chips)))
    checks.append(Check("driver, npu-smi", OK, f"{len(chips)} chip(s): {names}"))
    try:
        soc = soc_version(chips, args.soc_version or None)
        checks.append(Check("soc_version", OK, soc + (" (SOC_VERSION)" if args.soc_version else " (npu-smi)")))
    except StageError as exc:
        checks.append(Check("soc_version", FAIL, str(exc), "set SOC_VERSION", ("om",)))
    try:
        check_devices(chips, args.devices)
        checks.append(Check("DEVICES", OK, ",".join(map(str, args.devices)), needed_for=("run",)))
    except StageError as exc:
        checks.append(Check("DEVICES", FAIL, str(exc), "set DEVICES to ids npu-smi lists", ("run",)))
    version, path = host_info.driver_version()
    checks.append(Check("driver version", OK if version else WARN,
                        f"{version} ({path})" if version else f"unknown: no {path}"))


def _device_node_checks(args, checks: List[Check]) -> None:
    from stages.backends.ascend import host_info

    states = host_info.device_nodes(args.devices)
    control = {n: s for n, s in states.items() if not n.startswith("davinci") or n == "davinci_manager"}
    bad = [f"{n} {s}" for n, s in control.items() if s != "ok"]
    where = host_info.dev_dir()
    if bad:
        checks.append(Check("device nodes", FAIL, f"{where}: " + ", ".join(bad),
                            "load the driver; in a container pass --device for each node (docker/README.md)",
                            ("run",)))
    else:
        chips = [n for n, s in states.items() if n.startswith("davinci") and n != "davinci_manager"]
        missing = [n for n in chips if states[n] != "ok"]
        present = host_info.all_davinci_nodes()
        checks.append(Check(
            "device nodes", WARN if missing else OK,
            f"{where}: control nodes ok; " + (f"{', '.join(missing)} not usable (present: "
                                              f"{', '.join(present) or 'none'})" if missing else
                                              ", ".join(chips) + " read/write"),
            "check DEVICES against npu-smi's Device column" if missing else "", ("run",)))


def _cann_checks(args, checks: List[Check]) -> None:
    from stages.backends.ascend import host_info
    from stages.backends.ascend.atc import atc_version, check_precision_mode, find_atc, precision_modes

    version, path = host_info.cann_version()
    checks.append(Check("CANN", OK if version else WARN,
                        f"{version} ({path})" if version else f"version unknown: no version.info under "
                                                              f"{host_info.toolkit_home()}",
                        "" if version else "set ASCEND_TOOLKIT_HOME (source CANN's set_env.sh)"))
    info, info_path = host_info.install_info()
    checks.append(Check("ascend_install.info", OK if info else WARN,
                        f"{info_path}: " + ", ".join(f"{k}={v}" for k, v in info.items()) if info
                        else f"{info_path} not found"))
    if args.skip_atc:
        checks.append(Check("atc", INFO, "not checked here (RUNNER=docker: the toolkit image runs it)"))
        return
    try:
        tool = find_atc()
    except StageError as exc:
        checks.append(Check("atc", FAIL, str(exc), "", ("om",)))
        return
    modes, source = precision_modes(tool)
    checks.append(Check("atc", OK, f"{tool.path}, version {atc_version(tool)}", needed_for=("om",)))
    try:
        check_precision_mode(args.precision_mode or None, modes, source)
        state, fix = OK, ""
    except StageError as exc:
        state, fix = FAIL, str(exc)
    checks.append(Check("atc precision modes", state,
                        f"{', '.join(modes)} ({source})"
                        + (f"; PRECISION_MODE={args.precision_mode}" if args.precision_mode else ""),
                        fix, ("om",)))


def _ais_checks(checks: List[Check]) -> None:
    from stages.backends.ascend.ais_tool import check_drivable, discover

    try:
        tool = discover()
        check_drivable(tool)
    except StageError as exc:
        checks.append(Check("ais_bench", FAIL, str(exc), "releases it can drive: docs/ascend-releases.md", ("run",)))
        return
    has = lambda flag: "yes" if tool.has(flag) else "no"  # noqa: E731
    checks.append(Check(
        "ais_bench", OK,
        f"{' '.join(tool.launcher)} (found by {tool.found_by}); {tool.release}; version "
        f"{tool.version or 'not printed'}; --warmup_count {has('--warmup_count')}, --dymBatch {has('--dymBatch')}",
        needed_for=("run",)))


def _artifacts_checks(args, checks: List[Check]) -> None:
    from stages.backends.ascend import host_info
    from stages.backends.ascend.tool_paths import check_safe

    mask = host_info.current_umask()
    checks.append(Check("umask", OK, f"{mask:04o}; folders and files for ais_bench get explicit modes "
                                     f"(output 0750, inputs and .om without group/other write)"))
    try:
        folder = check_safe(args.artifacts, "ARTIFACTS")
    except StageError as exc:
        checks.append(Check("artifacts folder", FAIL, str(exc), "", ("run",)))
        return
    existing = next((p for p in [folder, *folder.parents] if p.exists()), None)
    if existing is None or not os.access(existing, os.W_OK):
        checks.append(Check("artifacts folder", FAIL, f"{folder}: {existing} is not writable",
                            "set ARTIFACTS to a folder you can write"))
        return
    st = existing.stat()
    owner = "yours" if st.st_uid == os.getuid() else f"owned by uid {st.st_uid}"
    links = _hard_links_work(existing)
    checks.append(Check(
        "artifacts folder", OK if st.st_uid == os.getuid() or existing != folder else WARN,
        f"{folder} ({'exists' if existing == folder else 'to be made under ' + str(existing)}, "
        f"mode {st.st_mode & 0o777:04o}, {owner}); hard links {'work' if links else 'fail: inputs will be copied'}",
        "" if st.st_uid == os.getuid() or existing != folder else "ais_bench wants paths you own: choose another ARTIFACTS"))


def _hard_links_work(folder: Path) -> bool:
    from stages.common.atomic import remove_orphans, temporary

    probe = folder / "hard-link-probe"
    remove_orphans(probe)
    source, link = temporary(probe, "a"), temporary(probe, "b")
    try:
        source.write_bytes(b"")
        os.link(str(source), str(link))
        return True
    except OSError:
        return False
    finally:
        for path in (source, link):
            if path.exists():
                path.unlink()


def _ray_checks(checks: List[Check]) -> None:
    try:
        import ray
    except ImportError:
        checks.append(Check("Ray", INFO, "not installed (only needed past one host)"))
        return
    try:
        from ray._private.accelerators import get_accelerator_manager_for_resource

        count = get_accelerator_manager_for_resource("NPU").get_current_node_num_accelerators()
        found = f"ray {ray.__version__}: {count} NPU(s) on this node"
    except Exception as exc:  # Ray's accelerator API is internal and moves between releases.
        found = f"ray {ray.__version__}: could not ask it for NPUs ({type(exc).__name__})"
    checks.append(Check("Ray", INFO, found))


def run_checks(args) -> List[Check]:
    from stages.common.machine import cpu_model

    checks: List[Check] = [Check("host", INFO, f"CPU {cpu_model()}; TARGET={args.target}")]
    if args.target == "cpu":
        from shutil import which

        where = which("npu-smi")
        checks.append(Check("NPU", INFO, f"npu-smi at {where}; TARGET=ascend would use it" if where
                            else "no NPU on this host (npu-smi not on PATH): TARGET=cpu is the right target"))
        _ray_checks(checks)
        return checks
    _npu_checks(args, checks)
    _cann_checks(args, checks)
    _ais_checks(checks)
    _device_node_checks(args, checks)
    _artifacts_checks(args, checks)
    _ray_checks(checks)
    return checks


def render(checks: List[Check], width: int = 76) -> str:
    """One row per part; long findings wrap under their column, the fix follows on its own line."""
    part_w = max(len(c.part) for c in checks + [Check("part", "", "")])
    pad = " " * (part_w + 9)
    lines = [f"{'part'.ljust(part_w)}  state  found", f"{'-' * part_w}  -----  {'-' * width}"]
    for c in checks:
        found = textwrap.wrap(c.found, width, break_on_hyphens=False, break_long_words=False) or [""]
        lines.append(f"{c.part.ljust(part_w)}  {c.state.ljust(5)}  {found[0]}")
        lines += [pad + more for more in found[1:]]
        if c.fix:
            lines += [pad + text for text in textwrap.wrap("fix: " + c.fix, width, break_on_hyphens=False, break_long_words=False)]
    return "\n".join(lines)


COMMAND = "doctor"
COMMAND_HELP = dict(help="check what the Ascend path will use on this host")


def add_arguments(parser) -> None:
    parser.add_argument("--target", choices=("cpu", "ascend"), default="ascend")
    parser.add_argument("--artifacts", default="artifacts")
    parser.add_argument("--devices", default="0")
    parser.add_argument("--soc-version", default="")
    parser.add_argument("--precision-mode", default="")
    parser.add_argument("--skip-atc", action="store_true", help="atc runs elsewhere (the toolkit image)")
    parser.add_argument("--gate", choices=("om", "all"), default=None,
                        help="print only what will fail: for building the om, or for everything")


def run(args) -> int:
    try:
        args.devices = [int(d) for d in str(args.devices).split(",") if d.strip()]
    except ValueError:
        raise StageError(f"DEVICES={args.devices!r}: give NPU ids like 0 or 0,1") from None
    checks = run_checks(args)
    if args.gate:
        failing = [c for c in checks if c.state == FAIL and (args.gate == "all" or "om" in c.needed_for)]
        for check in failing:
            print(f"error: {check.part}: {check.found}" + (f"; {check.fix}" if check.fix else ""), file=sys.stderr)
        return 2 if failing else 0
    print(render(checks))
    failing = [c for c in checks if c.state == FAIL]
    if failing:
        print(f"doctor: {len(failing)} part(s) will fail: " + "; ".join(c.part for c in failing), file=sys.stderr)
        return 2
    print("doctor: " + ("the Ascend path is ready" if args.target == "ascend" else "nothing to check for TARGET=cpu"))
    return 0
