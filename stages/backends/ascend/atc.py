"""ONNX -> .om with CANN's atc, the way the model's guide runs it::

    atc --framework=5 --model=elmo.onnx --output=elmo --input_format=ND \
        --input_shape="input:1,8,50" --log=error --soc_version=Ascend310P3

atc writes ``<output>.om`` (CANN 7.0 on may write ``<output>_linux_<arch>.om``)
and also drops ``fusion_result.json`` (and on some versions ``kernel_meta/``)
into its working folder, so it runs in a private temporary folder next to the
target and only the .om is kept, under one canonical name; the manifest
records what atc wrote.

``--precision_mode`` values are checked against the list the installed atc
prints in its ``--help``; where it prints none, against CANN 5.1's.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

from stages.common.atomic import remove_orphans, temporary, write_json
from stages.elmo.charids import MAX_CHARS
from stages.common.errors import StageError
from stages.common.hashing import sha256_file
from stages.backends.ascend.host_info import release_at
from stages.backends.ascend.om_manifest import build_manifest, manifest_path

DEFAULT_SET_ENV = "/usr/local/Ascend/ascend-toolkit/set_env.sh"
# CANN 5.1/6.0's atc (the seed guide's era): the fallback when --help lists none.
CANN51_PRECISION_MODES = (
    "force_fp32", "force_fp16", "allow_fp32_to_fp16", "must_keep_origin_dtype", "allow_mix_precision",
)
_MODE_WORD = re.compile(r"\b([a-z][a-z0-9]*(?:_[a-z0-9]+)+)\b")
_OPTION_LINE = re.compile(r"^\s*--[A-Za-z]")
LOG_LEVELS = ("debug", "info", "warning", "error", "null")
TAIL_LINES = 20


@dataclass(frozen=True)
class AtcTool:
    path: str
    env: Optional[Dict[str, str]] = None  # the environment set_env.sh made, if atc came from there


def _batch_list(batch_sizes: Sequence[int]) -> List[int]:
    try:
        sizes = sorted({int(b) for b in batch_sizes})
    except (TypeError, ValueError):
        raise StageError(f"batch sizes must be whole numbers, got {batch_sizes!r}")
    if not sizes or sizes[0] < 1:
        raise StageError(f"batch sizes must be one or more numbers >= 1, got {list(batch_sizes)!r}")
    return sizes


def precision_modes_from_help(text: str) -> Tuple[str, ...]:
    """The values atc's ``--help`` lists under ``--precision_mode`` (not ``--precision_mode_v2``)."""
    lines = text.splitlines()
    for index, line in enumerate(lines):
        if not re.match(r"^\s*--precision_mode\b(?!_)", line):
            continue
        block = [line.split("--precision_mode", 1)[1]]
        for more in lines[index + 1:]:
            if _OPTION_LINE.match(more) or not more.strip():
                break
            block.append(more)
        words = _MODE_WORD.findall(" ".join(block))
        modes = [w for w in words if w != "precision_mode" and ("fp" in w or "dtype" in w or "precision" in w)]
        return tuple(dict.fromkeys(modes))
    return ()


def atc_help(atc: Union["AtcTool", str, None] = None) -> str:
    tool = _as_tool(atc)
    try:
        done = subprocess.run([tool.path, "--help"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              universal_newlines=True, env=tool.env, timeout=120)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return done.stdout


def precision_modes(atc: Union["AtcTool", str, None] = None, help_text: Optional[str] = None
                    ) -> Tuple[Tuple[str, ...], str]:
    """(accepted ``--precision_mode`` values, where that list came from); ``help_text`` spares a
    caller who already ran ``atc --help`` a second run."""
    listed = precision_modes_from_help(atc_help(atc) if help_text is None else help_text)
    if listed:
        return listed, "atc --help"
    return CANN51_PRECISION_MODES, "CANN 5.1 list (atc --help lists none)"


def check_precision_mode(mode: Optional[str], accepted: Sequence[str], source: str) -> None:
    if mode is not None and mode not in accepted:
        raise StageError(
            f"PRECISION_MODE={mode}: the installed atc does not accept it ({source}: {', '.join(accepted)}); "
            f"pick one of those, or leave PRECISION_MODE empty for atc's default"
        )


def atc_command(model, output_stem, *, batch_sizes: Sequence[int], word_len: int, soc_version: str,
                precision_mode: Optional[str] = None, log: str = "error", atc: str = "atc",
                input_name: str = "input", accepted_modes: Sequence[str] = CANN51_PRECISION_MODES) -> List[str]:
    """atc's argv; one batch size gives a static .om, several a dynamic-batch one."""
    sizes = _batch_list(batch_sizes)
    if int(word_len) < 1:
        raise StageError(f"word_len must be >= 1, got {word_len}")
    if not soc_version or not soc_version.startswith("Ascend"):
        raise StageError(f"soc_version {soc_version!r} is not atc's form; use e.g. Ascend310P3")
    check_precision_mode(precision_mode, accepted_modes, "accepted")
    if log not in LOG_LEVELS:
        raise StageError(f"atc log level {log!r} is not one of: {', '.join(LOG_LEVELS)}")
    batch = "-1" if len(sizes) > 1 else str(sizes[0])
    argv = [
        atc,
        "--framework=5",
        f"--model={model}",
        f"--output={output_stem}",
        "--input_format=ND",
        f"--input_shape={input_name}:{batch},{int(word_len)},{MAX_CHARS}",
        f"--log={log}",
        f"--soc_version={soc_version}",
    ]
    if len(sizes) > 1:
        argv.append("--dynamic_batch_size=" + ",".join(str(b) for b in sizes))
    if precision_mode is not None:
        argv.append(f"--precision_mode={precision_mode}")
    return argv


def _sourced_env(set_env: Path) -> Dict[str, str]:
    """The environment after ``source set_env.sh``, captured once rather than per call."""
    try:
        done = subprocess.run(
            ["bash", "-c", 'source "$0" >/dev/null 2>&1; env -0', str(set_env)],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, timeout=120,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise StageError(f"could not source {set_env} ({exc}); check the CANN install")
    env = {}
    for item in done.stdout.split(b"\0"):
        key, sep, value = item.decode("utf-8", "replace").partition("=")
        if sep and key:
            env[key] = value
    return env


def find_atc(atc_path=None, set_env=None) -> AtcTool:
    """atc from ``atc_path`` (or ``$ATC``), else PATH, else a CANN ``set_env.sh``
    (``set_env``, ``$CANN_SET_ENV``, or the toolkit's default place)."""
    atc_path = atc_path or os.environ.get("ATC") or None
    set_env = set_env or os.environ.get("CANN_SET_ENV") or None
    if atc_path:
        text = str(atc_path)
        found = shutil.which(text) if os.sep not in text else text
        if not (found and Path(found).is_file() and os.access(found, os.X_OK)):
            raise StageError(f"{atc_path}: not an executable atc; point ATC at CANN's atc")
        return AtcTool(found)
    on_path = shutil.which("atc")
    if on_path:
        return AtcTool(on_path)
    script = Path(set_env) if set_env else Path(DEFAULT_SET_ENV)
    if not script.is_file():
        where = f"{set_env} does not exist" if set_env else f"no CANN toolkit at {DEFAULT_SET_ENV}"
        raise StageError(
            f"atc not found: not on PATH and {where}; install the CANN toolkit, "
            f"or name its set_env.sh (CANN_SET_ENV=...) or atc (ATC=...)"
        )
    env = _sourced_env(script)
    found = shutil.which("atc", path=env.get("PATH", ""))
    if not found:
        raise StageError(f"atc not found on the PATH that {script} sets; check the CANN toolkit install")
    return AtcTool(found, env)


def _as_tool(atc: Union[AtcTool, str, None]) -> AtcTool:
    if isinstance(atc, AtcTool):
        return atc
    return find_atc(atc)


_VERSION = re.compile(r"\b(\d+\.\d+(?:\.[0-9A-Za-z]+)*)\b")


def _version_from_output(text: str) -> Optional[str]:
    # Only a number right after the word "version" counts: atc's help and error
    # text mention --soc_version and carry numbers that are not its version.
    for line in text.splitlines():
        low = line.lower()
        if "version" not in low or "fail" in low or "--" in line or re.match(r"\s*E[0-9A-Z]\d{4}", line):
            continue
        found = _VERSION.search(line.split("ersion", 1)[1])
        if found:
            return found.group(1)
    return None


def _version_from_files(tool: AtcTool) -> Optional[str]:
    env = tool.env or os.environ
    roots = [env.get("ASCEND_TOOLKIT_HOME"), env.get("ASCEND_HOME_PATH")]
    # atc sits at <toolkit>/compiler/bin/atc (older: <toolkit>/atc/bin/atc, or bin/atc), maybe via symlinks.
    for start in (Path(tool.path), Path(tool.path).resolve()):
        roots.extend(str(parent) for parent in list(start.parents)[:3])
    for root in filter(None, roots):
        version, _ = release_at(Path(root))
        if version:
            return version
    return None


def atc_version(atc: Union[AtcTool, str, None] = None) -> str:
    """atc's version from ``atc --version``, else the toolkit's version.info, else "unknown"."""
    try:
        tool = _as_tool(atc)
    except StageError:
        return "unknown"
    try:
        done = subprocess.run(
            [tool.path, "--version"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            universal_newlines=True, env=tool.env, timeout=120,
        )
        found = _version_from_output(done.stdout) if done.returncode == 0 else None
    except (OSError, subprocess.TimeoutExpired):
        found = None
    return found or _version_from_files(tool) or "unknown"


def _tail(text: str, n: int = TAIL_LINES) -> str:
    lines = [ln.rstrip() for ln in text.splitlines() if ln.strip()]
    return "\n".join(lines[-n:]) if lines else "(atc printed nothing)"


def written_om(work: Path, stem: str, log: str) -> Path:
    """The .om atc wrote for ``--output=<work>/<stem>``: ``<stem>.om`` or ``<stem>_linux_<arch>.om``."""
    pattern = re.compile(rf"^{re.escape(stem)}(_linux_[A-Za-z0-9_]+)?\.om$")
    found = sorted(p for p in work.iterdir() if pattern.match(p.name) and p.is_file())
    if len(found) == 1:
        return found[0]
    others = sorted(p.name for p in work.iterdir() if p.name != "fusion_result.json")
    what = ", ".join(others) if others else "nothing besides fusion_result.json"
    if not found:
        raise StageError(f"atc reported success but wrote no {stem}.om or {stem}_linux_<arch>.om (it wrote: "
                         f"{what}); last lines:\n" + _tail(log))
    raise StageError(f"atc wrote several .om files for one model ({what}); cannot tell which to keep")


def compile_om(onnx_path, om_path, *, batch_sizes: Sequence[int], word_len: int, soc_version: str,
               precision_mode: Optional[str] = None, atc: Union[AtcTool, str, None] = None,
               log: str = "error", input_name: str = "input") -> dict:
    """Compile ``onnx_path`` to ``om_path`` and write ``om_path + ".json"``; returns the manifest."""
    onnx_path = Path(onnx_path).resolve()
    om_path = Path(om_path).resolve()
    if not onnx_path.is_file():
        raise StageError(f"{onnx_path}: no such ONNX model; run make onnx first")
    if om_path.suffix != ".om":
        raise StageError(f"{om_path}: the target must end in .om (atc adds that suffix itself)")
    tool = _as_tool(atc)
    accepted, modes_source = precision_modes(tool)
    check_precision_mode(precision_mode, accepted, modes_source)
    om_path.parent.mkdir(parents=True, exist_ok=True)
    remove_orphans(om_path)
    work = temporary(om_path, "atc")
    shutil.rmtree(str(work), ignore_errors=True)
    work.mkdir()
    try:
        stem = work / om_path.stem
        command = atc_command(
            onnx_path, stem, batch_sizes=batch_sizes, word_len=word_len, soc_version=soc_version,
            precision_mode=precision_mode, log=log, atc=tool.path, input_name=input_name,
            accepted_modes=accepted,
        )
        try:
            done = subprocess.run(
                command, cwd=str(work), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                universal_newlines=True, env=tool.env,
            )
        except OSError as exc:
            raise StageError(f"could not run {tool.path} ({exc}); check the CANN install")
        if done.returncode != 0:
            raise StageError(
                f"atc failed (exit status {done.returncode}) compiling {onnx_path.name} for {soc_version}; "
                f"last lines:\n" + _tail(done.stdout)
            )
        built = written_om(work, stem.name, done.stdout)
        manifest = build_manifest(
            command=command, atc_version=atc_version(tool), atc_wrote=built.name, soc_version=soc_version,
            batch_sizes=_batch_list(batch_sizes), word_len=int(word_len), precision_mode=precision_mode,
            onnx=str(onnx_path), onnx_sha256=sha256_file(onnx_path), om_size=built.stat().st_size,
            input_name=input_name,
        )
        # Old manifest first: a crash between the two steps then leaves an .om
        # without a manifest, which readers refuse, never a mismatched pair.
        sidecar = manifest_path(om_path)
        if sidecar.exists():
            sidecar.unlink()
        # ais_bench refuses an .om others can write (umask 002 makes it 0o664).
        os.chmod(built, 0o640)
        os.replace(str(built), str(om_path))
        write_json(sidecar, manifest)
        return manifest
    finally:
        shutil.rmtree(str(work), ignore_errors=True)
