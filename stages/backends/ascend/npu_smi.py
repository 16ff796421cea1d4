"""What ``npu-smi info`` says about this host's Ascend chips.

The table has two rows per chip::

    | NPU     Name      | Health          | Power(W) ...
    | Chip    Device    | Bus-Id          | AICore(%) ...
    | 0       310P3     | OK              | 15.8 ...
    | 0       0         | 0000:82:00.0    | 0 ...

The second header cell is ``Chip Device`` on 310P (Device = the logical id
that ACL and ``ais_bench --device`` take), ``Chip`` alone on 910B, and
``Chip Phy-ID`` on multi-chip 910 boards (a physical id, not an ACL id).
A Duo card (two 310P3 chips on one board) repeats the NPU id with chip ids
0 and 1. A process table may follow the chips and is not read.
"""
from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from typing import Iterable, List, Optional, Sequence

from stages.common.errors import StageError

CPU_HINT = "use TARGET=cpu"


@dataclass(frozen=True)
class NpuChip:
    npu_id: int
    chip_id: int
    device_id: Optional[int]  # None where the table shows no logical id
    name: str  # the Name column, e.g. "310P3"
    health: str
    bus_id: str


def _cells(line: str) -> List[str]:
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


def _ints(text: str) -> Optional[List[int]]:
    parts = text.split()
    if not parts or not all(p.isdigit() for p in parts):
        return None
    return [int(p) for p in parts]


def parse_npu_smi_info(text: str) -> List[NpuChip]:
    """Chips in table order; ``StageError`` when the text holds no chip table."""
    lines = [ln for ln in text.splitlines() if ln.strip().startswith("|")]
    second_header = None
    chips: List[NpuChip] = []
    pending = None  # (npu_id, name, health) of a first row awaiting its second
    for line in lines:
        cells = _cells(line)
        head = cells[0].split()
        if head[:2] == ["NPU", "Name"]:
            continue
        if head[:1] == ["Chip"] and len(cells) > 1 and cells[1].startswith("Bus-Id"):
            second_header = head[1] if len(head) > 1 else ""
            continue
        if "Process id" in line or (head[:2] == ["NPU", "Chip"]):
            break  # the process table: its rows look like chip rows
        if second_header is None or len(cells) < 2:
            continue
        if pending is None:
            if len(head) >= 2 and head[0].isdigit() and not head[1].isdigit():
                pending = (int(head[0]), " ".join(head[1:]), cells[1])
            continue
        ids = _ints(cells[0])
        if ids is None:
            pending = None
            continue
        npu_id, name, health = pending
        device_id = ids[1] if second_header == "Device" and len(ids) > 1 else None
        chips.append(NpuChip(npu_id, ids[0], device_id, name, health, cells[1]))
        pending = None
    if not chips:
        first = next((ln.strip() for ln in text.splitlines() if ln.strip()), "(empty)")
        raise StageError(
            f"could not read any chip from `npu-smi info` output (expected a table with "
            f"'NPU Name | Health' rows; got: {first[:120]!r})"
        )
    return chips


def detect_chips(npu_smi: str = "npu-smi") -> List[NpuChip]:
    """Run ``npu-smi info``; a host without the tool or driver is a ``StageError``."""
    exe = shutil.which(npu_smi)
    if exe is None:
        raise StageError(f"no NPU found ({npu_smi} not on PATH); {CPU_HINT}")
    try:
        done = subprocess.run(
            [exe, "info"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            universal_newlines=True, timeout=120,
        )
    except subprocess.TimeoutExpired:
        raise StageError(f"no NPU found (`{npu_smi} info` did not answer in 120 s); {CPU_HINT}")
    # A host whose driver is not loaded prints e.g. "dcmi module initialize
    # failed. ret is -8005"; do not rely on the exit status alone for that.
    if done.returncode != 0 or "|" not in done.stdout:
        last = [ln.strip() for ln in done.stdout.splitlines() if ln.strip()]
        why = last[-1] if last else f"exit status {done.returncode}"
        raise StageError(f"no NPU found (`{npu_smi} info` failed: {why}); {CPU_HINT}")
    return parse_npu_smi_info(done.stdout)


def soc_version(chips: Sequence[NpuChip], override: Optional[str] = None) -> str:
    """atc's ``--soc_version``: "Ascend" + the Name column; ``override`` wins."""
    if override:
        # atc wants the "Ascend" form; people often copy the bare Name column.
        return override if override.startswith("Ascend") else "Ascend" + override
    names = sorted({chip.name for chip in chips})
    if not names:
        raise StageError("no NPU chip to take soc_version from; set SOC_VERSION (e.g. Ascend310P3)")
    if len(names) > 1:
        raise StageError(
            f"this host has different chips ({', '.join(names)}); set SOC_VERSION to the one to build for"
        )
    name = names[0]
    return name if name.startswith("Ascend") else "Ascend" + name


def device_ids(chips: Sequence[NpuChip]) -> List[int]:
    """The ids ``ais_bench --device`` accepts: the Device column, else table order."""
    return [chip.device_id if chip.device_id is not None else index for index, chip in enumerate(chips)]


def check_devices(chips: Sequence[NpuChip], devices: Iterable[int]) -> List[int]:
    """The requested ids, checked against this host's chips."""
    wanted = [int(d) for d in devices]
    if not wanted:
        raise StageError("no NPU device requested; give at least one id, e.g. DEVICES=0")
    available = device_ids(chips)
    shown = ", ".join(str(d) for d in available) or "none"
    for device in wanted:
        if wanted.count(device) > 1:
            raise StageError(f"NPU device {device} is listed twice; list each device once")
        if device not in available:
            raise StageError(f"NPU device {device} does not exist on this host; its devices are: {shown}")
    return wanted
