"""The CANN release doubles: ids, the environment that points at one, and what its atc writes.

TEST DOUBLES only (see README.md here). Each release folder holds what a host with that CANN
has: ``ascend-toolkit/`` (``set_env.sh``, ``latest/bin/atc``, ``latest/version.cfg``,
``latest/{compiler,runtime}/version.info``), ``driver/version.info`` and ``ascend_install.info``.
"""
from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Mapping, Optional

HERE = Path(__file__).resolve().parent

# Oldest first. cann-5.1.RC2 is the seed guide's release.
CANN_RELEASES = ("cann-5.1.RC2", "cann-6.0.1", "cann-7.0", "cann-8.0")
# Releases whose atc writes <output>_linux_<arch>.om (see README.md: "Output names").
_OS_CPU_SUFFIX = {"cann-7.0", "cann-8.0"}


def _check(release: str) -> str:
    if release not in CANN_RELEASES:
        raise ValueError(f"unknown CANN release double {release!r}; known: {', '.join(CANN_RELEASES)}")
    return release


def release_dir(release: str) -> Path:
    return HERE / _check(release)


def toolkit_home(release: str) -> Path:
    """What ASCEND_TOOLKIT_HOME is on such a host (ascend-toolkit/latest)."""
    return release_dir(release) / "ascend-toolkit" / "latest"


def atc_path(release: str) -> Path:
    return toolkit_home(release) / "bin" / "atc"


def set_env_path(release: str) -> Path:
    return release_dir(release) / "ascend-toolkit" / "set_env.sh"


def env_for_cann(release: str, env: Optional[Mapping[str, str]] = None) -> dict:
    """A copy of ``env`` (default os.environ) with that release's atc first on PATH and
    ASCEND_TOOLKIT_HOME / ASCEND_DRIVER_HOME / ASCEND_INSTALL_INFO pointing at its fake install.

    The atc double is a ``#!/usr/bin/env python3`` script needing onnx: keep a Python that has
    it (the project's .venv/bin) on the rest of PATH."""
    out = dict(os.environ if env is None else env)
    bin_dir = str(atc_path(release).parent)
    rest = out.get("PATH", "")
    out["PATH"] = bin_dir + (os.pathsep + rest if rest else "")
    out["ASCEND_TOOLKIT_HOME"] = str(toolkit_home(release))
    out["ASCEND_DRIVER_HOME"] = str(release_dir(release) / "driver")
    out["ASCEND_INSTALL_INFO"] = str(release_dir(release) / "ascend_install.info")
    return out


def atc_output_name(release: str, stem: str) -> str:
    """The file name that release's atc writes for ``--output=<stem>`` (default behaviour;
    FAKE_ATC_SO_IN_OM=0|1 in the atc's environment overrides the suffix)."""
    if _check(release) in _OS_CPU_SUFFIX:
        return f"{stem}_linux_{platform.machine()}.om"
    return f"{stem}.om"
