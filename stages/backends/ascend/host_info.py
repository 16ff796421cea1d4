"""What an NPU host has installed, read from the files CANN and the driver write.

Paths are Huawei's defaults; the environment variables let a container or a
test point elsewhere:

- ``ASCEND_TOOLKIT_HOME`` (set by CANN's ``set_env.sh``; else ``ASCEND_HOME_PATH``), default
  ``/usr/local/Ascend/ascend-toolkit/latest``: ``version.info`` (and
  ``compiler/version.info``);
- ``ASCEND_DRIVER_HOME``, default ``/usr/local/Ascend/driver``: ``version.info``;
- ``ASCEND_INSTALL_INFO``, default ``/etc/ascend_install.info``;
- ``ASCEND_DEV_DIR``, default ``/dev``: the device nodes (``davinci<N>``,
  ``davinci_manager``, ``devmm_svm``, ``hisi_hdc``).
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Dict, List, Optional, Tuple


DEFAULT_TOOLKIT = "/usr/local/Ascend/ascend-toolkit/latest"
DEFAULT_DRIVER = "/usr/local/Ascend/driver"
DEFAULT_INSTALL_INFO = "/etc/ascend_install.info"
CONTROL_NODES = ("davinci_manager", "devmm_svm", "hisi_hdc")


def read_key_values(path: Path) -> Dict[str, str]:
    """``key=value`` lines of an Ascend ``*.info`` file; empty when it cannot be read."""
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return {}
    return {k.strip(): v.strip() for k, _, v in (ln.partition("=") for ln in lines) if _ and k.strip()}


def _version(fields: Dict[str, str]) -> Optional[str]:
    # CANN 7.0 on writes version_dir=8.0.0 beside Version=7.6.x (the component's own number).
    return fields.get("version_dir") or fields.get("Version") or fields.get("version")


_CFG_LINE = re.compile(r"^(toolkit|compiler|runtime)_running_version=\[[^:\]]*:([^\]]+)\]", re.M)


def toolkit_home() -> Path:
    # The runtime image has nnrt, not the toolkit: its set_env gives ASCEND_HOME_PATH only.
    return Path(os.environ.get("ASCEND_TOOLKIT_HOME") or os.environ.get("ASCEND_HOME_PATH") or DEFAULT_TOOLKIT)


def release_at(root: Path) -> Tuple[Optional[str], Optional[Path]]:
    """(CANN release, the file it came from) for a toolkit folder (``.../ascend-toolkit/latest``).

    ``version.cfg`` names the release after the component number
    (``toolkit_running_version=[1.82.22.2.220:5.1.RC2]``); ``compiler/version.info``
    has it as ``version_dir`` from 7.0 on, and only the component number before.
    """
    cfg = root / "version.cfg"
    try:
        found = _CFG_LINE.search(cfg.read_text(encoding="utf-8", errors="replace"))
    except OSError:
        found = None
    if found:
        return found.group(2).strip(), cfg
    for path in (root / "version.info", root / "compiler" / "version.info"):
        version = _version(read_key_values(path))
        if version:
            return version, path
    return None, None


def cann_version() -> Tuple[Optional[str], Optional[Path]]:
    """(CANN release, the file it came from) of the toolkit in ``ASCEND_TOOLKIT_HOME``."""
    return release_at(toolkit_home())


def driver_version() -> Tuple[Optional[str], Path]:
    path = Path(os.environ.get("ASCEND_DRIVER_HOME") or DEFAULT_DRIVER) / "version.info"
    return _version(read_key_values(path)), path


def install_info() -> Tuple[Dict[str, str], Path]:
    path = Path(os.environ.get("ASCEND_INSTALL_INFO") or DEFAULT_INSTALL_INFO)
    return read_key_values(path), path


def dev_dir() -> Path:
    return Path(os.environ.get("ASCEND_DEV_DIR") or "/dev")


def device_nodes(devices: List[int]) -> Dict[str, str]:
    """``{node: "ok" | "missing" | "no access"}`` for the control nodes and ``davinci<id>`` of each device."""
    root = dev_dir()
    names = list(CONTROL_NODES) + [f"davinci{d}" for d in devices]
    states = {}
    for name in names:
        path = root / name
        if not path.exists():
            states[name] = "missing"
        elif not os.access(path, os.R_OK | os.W_OK):
            states[name] = "no access"
        else:
            states[name] = "ok"
    return states


def all_davinci_nodes() -> List[str]:
    root = dev_dir()
    try:
        return sorted((p.name for p in root.iterdir() if re.fullmatch(r"davinci\d+", p.name)),
                      key=lambda n: int(n[7:]))
    except OSError:
        return []


def current_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask
