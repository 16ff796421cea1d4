"""The ais_infer / ais_bench TEST DOUBLES, one per real release, and how a host finds each.

They are not the real tools (no CANN, no NPU); see README.md here for what each one checks
and the source of every fact. Stdlib only, so any test can load this file by path.

    env = env_for("ais_bench-2025-master", os.environ)
    subprocess.run(launcher("ais_bench-2025-master") + ["--model", om, ...], env=env)

``launcher`` names ``python3``, so PATH must lead to a python3 with numpy, onnx and
onnxruntime (the project's .venv/bin first), as for the other doubles.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Dict, List, Mapping

HERE = Path(__file__).resolve().parent
PYLIB = HERE.parent / "pylib"  # fake_om.py

# oldest first
RELEASES: List[str] = [
    "ais_infer-2022-06",      # Ascend/tools@256ed1f  python3 ais_infer.py
    "ais_infer-2022-09",      # Ascend/tools@63a74de  python3 ais_infer.py
    "ais_bench-2022-11",      # Ascend/tools@4ce01e3  python3 -m ais_bench
    "msit-2024-06",           # Ascend/msit@42a9c807  python3 -m ais_bench
    "ais_bench-2025-master",  # Ascend/tools master@8da7f645 (gitee, 2025-12-18)  python3 -m ais_bench
]
SCRIPT_RELEASES = frozenset({"ais_infer-2022-06", "ais_infer-2022-09"})


def _check(release: str) -> None:
    if release not in RELEASES:
        raise ValueError(f"unknown ais_bench release {release!r}; known: {', '.join(RELEASES)}")


def release_dir(release: str) -> Path:
    """The release's folder: holds ais_infer.py (script releases) or the ais_bench package."""
    _check(release)
    return HERE / release


def is_script(release: str) -> bool:
    _check(release)
    return release in SCRIPT_RELEASES


def launcher(release: str) -> List[str]:
    """The argv prefix a user runs the release with."""
    if is_script(release):
        return ["python3", str(release_dir(release) / "ais_infer.py")]
    return ["python3", "-m", "ais_bench"]


def _holds_ais_bench(entry: str) -> bool:
    folder = Path(entry or ".")
    return (folder / "ais_bench").is_dir() or (folder / "ais_bench.py").is_file()


def env_for(release: str, env: Mapping[str, str]) -> Dict[str, str]:
    """A copy of ``env`` set up as a host with this release installed.

    Module releases: PYTHONPATH = <release folder>:tests/doubles/pylib[:the rest]. Script releases:
    AIS_INFER_DIR = <release folder> and no ais_bench module importable. Either way AIS_BENCH is
    removed, and PYTHONPATH entries that hold another ais_bench are dropped.
    """
    out = dict(env)
    out.pop("AIS_BENCH", None)
    kept = [p for p in out.get("PYTHONPATH", "").split(os.pathsep) if p and not _holds_ais_bench(p)]
    if is_script(release):
        out["AIS_INFER_DIR"] = str(release_dir(release))
        path = kept
    else:
        out.pop("AIS_INFER_DIR", None)
        path = [str(release_dir(release)), str(PYLIB)] + [p for p in kept if p != str(PYLIB)]
    if path:
        out["PYTHONPATH"] = os.pathsep.join(path)
    else:
        out.pop("PYTHONPATH", None)
    return out
