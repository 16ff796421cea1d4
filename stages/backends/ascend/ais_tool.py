"""Which ais_bench this host has, and what it accepts.

ais_bench changed its launcher, flags, output names and path checks from
release to release (docs/ascend-releases.md). Rather than guess a release from
a version table, the tool is asked once for its own ``--help`` and every
command is built from the flags it lists.

Where the launcher comes from, first match wins:

1. ``AIS_BENCH``: the command, e.g. ``python3 -m ais_bench`` or
   ``python3 /opt/tools/ais_infer/ais_infer.py``;
2. ``python3 -m ais_bench`` when ``python3`` can import ``ais_bench`` (2022-11 on);
3. ``ais_infer.py`` (2022 releases, run from the tool folder) in ``AIS_INFER_DIR``
   or one of ``DEFAULT_INFER_DIRS``.
"""
from __future__ import annotations

import functools
import os
import re
import shlex
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import FrozenSet, Optional, Tuple

from stages.common.errors import StageError

INSTALL_HINT = (
    "install the aclruntime and ais_bench wheels "
    "(https://gitee.com/ascend/tools/tree/master/ais-bench_workload/tool/ais_bench), "
    "or set AIS_BENCH to the command that runs it, or AIS_INFER_DIR to the folder holding ais_infer.py"
)
# Where the seed guide's users have the 2022 tool: a clone of ascend/tools.
DEFAULT_INFER_DIRS = (
    "~/tools/ais-bench_workload/tool/ais_infer",
    "~/ais-bench_workload/tool/ais_infer",
    "/opt/tools/ais-bench_workload/tool/ais_infer",
    "/usr/local/Ascend/tools/ais-bench_workload/tool/ais_infer",
)
# Flags every run of this pipeline needs; a tool without one cannot be driven.
REQUIRED_FLAGS = ("--model", "--input", "--output", "--outfmt", "--device", "--loop", "--output_dirname")
_FLAG = re.compile(r"(?<![\w-])(--[A-Za-z][A-Za-z0-9_]*(?:-[A-Za-z0-9_]+)*)")
TIMEOUT_S = 120


@dataclass(frozen=True)
class AisTool:
    launcher: Tuple[str, ...]
    found_by: str
    flags: FrozenSet[str]
    version: Optional[str]

    def has(self, flag: str) -> bool:
        return flag in self.flags

    @property
    def release(self) -> str:
        """The release family the flags point to (a description, not a check)."""
        script = any(part.endswith("ais_infer.py") for part in self.launcher)
        if not self.has("--output_dirname"):
            return "ais_infer before 2022-09 (no --output_dirname)"
        if not self.has("--warmup_count"):
            return "ais_infer 2022-09 (no --warmup_count)" if script else "ais_infer 2022-09 era (no --warmup_count)"
        if self.has("--warmup-count"):
            return "msit benchmark's ais_bench (2024 era: dash aliases)"
        if self.has("--energy_consumption") or self.has("--threads"):
            return "ais_bench 2023-06 or later"
        return "ais_bench 2022-11 era"

    def record(self) -> dict:
        return {
            "launcher": list(self.launcher),
            "found_by": self.found_by,
            "version": self.version,
            "release": self.release,
            "flags": sorted(self.flags),
        }


def _python_has_module(python: str, module: str) -> bool:
    probe = "import importlib.util, sys; sys.exit(importlib.util.find_spec(sys.argv[1]) is None)"
    try:
        return subprocess.run([python, "-c", probe, module], timeout=TIMEOUT_S,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def _infer_dirs():
    given = os.environ.get("AIS_INFER_DIR", "").strip()
    if given:
        yield "AIS_INFER_DIR", Path(given).expanduser()
        return
    for place in DEFAULT_INFER_DIRS:
        yield place, Path(place).expanduser()


def find_launcher() -> Tuple[Tuple[str, ...], str]:
    """(argv prefix, how it was found); ``StageError`` when there is none."""
    text = os.environ.get("AIS_BENCH", "").strip()
    if text:
        argv = shlex.split(text)
        exe = shutil.which(argv[0])
        if exe is None:
            raise StageError(f"AIS_BENCH={text!r}: {argv[0]} is not on PATH; {INSTALL_HINT}")
        if len(argv) >= 3 and argv[1] == "-m" and not _python_has_module(exe, argv[2]):
            raise StageError(f"AIS_BENCH={text!r}: {exe} has no module {argv[2]}; {INSTALL_HINT}")
        if len(argv) >= 2 and argv[1].endswith(".py") and not Path(argv[1]).is_file():
            raise StageError(f"AIS_BENCH={text!r}: {argv[1]} does not exist; {INSTALL_HINT}")
        return tuple(argv), "AIS_BENCH"
    python = shutil.which("python3")
    if python is None:
        raise StageError(f"ais_bench not found: no python3 on PATH; {INSTALL_HINT}")
    if _python_has_module(python, "ais_bench"):
        return ("python3", "-m", "ais_bench"), "python3 -m ais_bench"
    tried = []
    for label, folder in _infer_dirs():
        script = folder / "ais_infer.py"
        if script.is_file():
            return ("python3", str(script.resolve())), label
        tried.append(str(script))
    if os.environ.get("AIS_INFER_DIR", "").strip():
        raise StageError(f"AIS_INFER_DIR={os.environ['AIS_INFER_DIR']!r}: no ais_infer.py there; {INSTALL_HINT}")
    raise StageError(f"ais_bench not found: python3 has no ais_bench module and there is no "
                     f"{' or '.join(tried)}; {INSTALL_HINT}")


def parse_help(text: str) -> FrozenSet[str]:
    """Long flags named in an argparse ``--help`` text."""
    return frozenset(_FLAG.findall(text))


def _version(launcher: Tuple[str, ...]) -> Optional[str]:
    """The installed wheel's version, or the git commit of a tool folder; None where neither shows."""
    if len(launcher) >= 3 and launcher[1] == "-m":
        probe = ("import importlib.metadata as m, sys\n"
                 "try: print(m.version(sys.argv[1]))\nexcept Exception: pass")
        try:
            done = subprocess.run([launcher[0], "-c", probe, launcher[2]], capture_output=True, text=True,
                                  timeout=TIMEOUT_S)
            return done.stdout.strip() or None
        except (OSError, subprocess.TimeoutExpired):
            return None
    script = next((Path(p) for p in launcher if p.endswith(".py")), None)
    if script is None or not shutil.which("git"):
        return None
    try:
        # Only a clone of Ascend/tools counts: the tool folder sits at ais-bench_workload/tool/ in it.
        top = subprocess.run(["git", "-C", str(script.parent), "rev-parse", "--show-prefix"],
                             capture_output=True, text=True, timeout=TIMEOUT_S)
        if top.returncode != 0 or not top.stdout.strip().startswith("ais-bench_workload/"):
            return None
        done = subprocess.run(["git", "-C", str(script.parent), "log", "-1", "--format=%h %cs"],
                              capture_output=True, text=True, timeout=TIMEOUT_S)
        return "commit " + done.stdout.strip() if done.returncode == 0 and done.stdout.strip() else None
    except (OSError, subprocess.TimeoutExpired):
        return None


def read_tool(launcher: Tuple[str, ...], found_by: str) -> AisTool:
    shown = " ".join(launcher)
    try:
        done = subprocess.run(list(launcher) + ["--help"], capture_output=True, text=True, timeout=TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise StageError(f"could not run `{shown} --help` ({exc}); {INSTALL_HINT}")
    flags = parse_help(done.stdout)
    if done.returncode != 0 or "--model" not in flags:
        last = [ln.strip() for ln in (done.stdout + done.stderr).splitlines() if ln.strip()]
        why = last[-1] if last else f"exit status {done.returncode}"
        raise StageError(f"`{shown} --help` did not list ais_bench's flags ({why}); {INSTALL_HINT}")
    return AisTool(tuple(launcher), found_by, flags, _version(launcher))


@functools.lru_cache(maxsize=None)
def _cached(launcher: Tuple[str, ...], found_by: str, path: str, pythonpath: str) -> AisTool:
    return read_tool(launcher, found_by)


def discover() -> AisTool:
    """The host's ais_bench with its flags, read once per process, launcher and search path."""
    launcher, found_by = find_launcher()
    return _cached(launcher, found_by, os.environ.get("PATH", ""), os.environ.get("PYTHONPATH", ""))


def check_drivable(tool: AisTool) -> None:
    """``StageError`` naming the first flag this pipeline needs and the tool lacks."""
    for flag in REQUIRED_FLAGS:
        if not tool.has(flag):
            extra = (" (releases before 2022-09 write into a timestamped folder and name outputs "
                     "sample_id_<n>_output_<i>.bin, which cannot be matched to inputs reliably)"
                     if flag == "--output_dirname" else "")
            raise StageError(
                f"`{' '.join(tool.launcher)}` has no {flag}{extra}; this pipeline needs ais_infer 2022-09 "
                f"(Ascend/tools 63a74de) or later: update the tool, or set AIS_BENCH to a newer one"
            )
