"""How the Ascend stages find ais_bench, read what it accepts, and hand it paths
its strictest releases accept; atc's precision modes and output names."""
from __future__ import annotations

import errno
import os
import stat
import sys
from pathlib import Path

import pytest

from stages.backends.ascend import ais_tool, atc, tool_paths
from stages.common.errors import StageError

VENV_BIN = Path(sys.executable).parent


@pytest.fixture
def umask_002():
    old = os.umask(0o002)
    try:
        yield
    finally:
        os.umask(old)


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


# --- paths --------------------------------------------------------------------------

def test_unsafe_characters_name_the_variable(tmp_path):
    with pytest.raises(StageError, match=r"x y\+z: ais_bench refuses paths holding ' ' '\+' .*set ARTIFACTS"):
        tool_paths.check_safe(tmp_path / "x y+z", "ARTIFACTS")
    assert tool_paths.check_safe(tmp_path / "a_b-c.d", "ARTIFACTS") == (tmp_path / "a_b-c.d").resolve()


def test_private_dir_is_0750_under_any_umask(tmp_path, umask_002):
    assert _mode(tool_paths.private_dir(tmp_path / "out")) == 0o750


def test_shared_inputs_are_hard_links_not_writable_by_others(tmp_path, umask_002):
    src = tmp_path / "data"
    src.mkdir()
    files = []
    for index in range(3):
        path = src / f"{index}.bin"
        path.write_bytes(b"x" * 8)
        files.append(path)
    assert _mode(files[0]) == 0o664  # what umask 002 makes, and what ais_bench refuses
    placed = tool_paths.share_files(files, tmp_path / "in")
    assert placed == {"linked": 3, "copied": 0, "copied_bytes": 0}
    assert _mode(tmp_path / "in") == 0o750
    for path in files:
        linked = tmp_path / "in" / path.name
        assert not linked.is_symlink() and os.stat(linked).st_ino == os.stat(path).st_ino
        assert _mode(linked) & 0o022 == 0


def test_shared_inputs_are_copied_where_hard_links_fail(tmp_path, monkeypatch, umask_002):
    path = tmp_path / "0.bin"
    path.write_bytes(b"y" * 16)

    def no_links(src, dst):
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    monkeypatch.setattr(tool_paths.os, "link", no_links)
    placed = tool_paths.share_files([path], tmp_path / "in")
    assert placed == {"linked": 0, "copied": 1, "copied_bytes": 16}
    copy = tmp_path / "in" / "0.bin"
    assert not copy.is_symlink() and copy.read_bytes() == b"y" * 16 and _mode(copy) & 0o022 == 0


# --- finding ais_bench and reading its flags -------------------------------------------

HELP_2022_09 = """usage: ais_infer.py [-h] --model MODEL [--input INPUT] [--output OUTPUT]
                     [--output_dirname OUTPUT_DIRNAME] [--outfmt {NPY,BIN,TXT}]
                     [--loop LOOP] [--debug DEBUG] [--device {0,1,2,3}]

optional arguments:
  -h, --help            show this help message and exit
  --model MODEL, -m MODEL
                        the path of the om model
  --dymBatch DYMBATCH   dynamic batch size param，such as --dymBatch 2
"""


def test_parse_help_reads_long_flags_only():
    flags = ais_tool.parse_help(HELP_2022_09)
    assert {"--model", "--input", "--output", "--output_dirname", "--outfmt", "--loop", "--device",
            "--dymBatch", "--help", "--debug"} == flags


def _tool(*flags, launcher=("python3", "-m", "ais_bench")):
    return ais_tool.AisTool(tuple(launcher), "test", frozenset(flags), None)


def test_a_tool_without_output_dirname_is_refused_with_the_reason():
    tool = _tool("--model", "--input", "--output", "--outfmt", "--device", "--loop",
                 launcher=("python3", "/t/ais_infer.py"))
    with pytest.raises(StageError, match=r"has no --output_dirname .*sample_id_<n>_output_<i>\.bin.*2022-09"):
        ais_tool.check_drivable(tool)
    assert tool.release == "ais_infer before 2022-09 (no --output_dirname)"


def test_commands_follow_the_flags_the_tool_has():
    from stages.backends.ascend.ais_bench import perf_command

    old = _tool("--model", "--input", "--output", "--output_dirname", "--outfmt", "--device", "--loop",
                "--dymBatch", "--batchsize", launcher=("python3", "/t/ais_infer.py"))
    new = _tool(*old.flags, "--warmup_count")
    argv_old = perf_command(old, "m.om", loop=20, warmup=2, device=0, batch=4, dym_batch=4, output_root="o")
    argv_new = perf_command(new, "m.om", loop=20, warmup=2, device=0, batch=4, dym_batch=4, output_root="o")
    assert "--warmup_count" not in argv_old and argv_old[:2] == ["python3", "/t/ais_infer.py"]
    assert argv_new[argv_new.index("--warmup_count") + 1] == "2"


def test_launcher_order(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", os.pathsep.join([str(VENV_BIN), "/usr/bin", "/bin"]))
    monkeypatch.delenv("PYTHONPATH", raising=False)
    monkeypatch.delenv("AIS_BENCH", raising=False)
    monkeypatch.setenv("AIS_INFER_DIR", str(tmp_path))
    with pytest.raises(StageError, match=r"AIS_INFER_DIR=.*no ais_infer\.py there"):
        ais_tool.find_launcher()
    (tmp_path / "ais_infer.py").write_text("print('hi')\n")
    assert ais_tool.find_launcher() == (("python3", str(tmp_path / "ais_infer.py")), "AIS_INFER_DIR")
    package = tmp_path / "lib" / "ais_bench"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    monkeypatch.setenv("PYTHONPATH", str(tmp_path / "lib"))
    assert ais_tool.find_launcher() == (("python3", "-m", "ais_bench"), "python3 -m ais_bench")
    monkeypatch.setenv("AIS_BENCH", f"python3 {tmp_path / 'ais_infer.py'}")
    assert ais_tool.find_launcher()[1] == "AIS_BENCH"
    monkeypatch.setenv("AIS_BENCH", "no-such-ais-tool --x")
    with pytest.raises(StageError, match="no-such-ais-tool is not on PATH"):
        ais_tool.find_launcher()


def test_help_that_lists_no_flags_is_a_clear_error(tmp_path):
    script = tmp_path / "ais_infer.py"
    script.write_text("import sys; print('Traceback: no module named aclruntime'); sys.exit(1)\n")
    with pytest.raises(StageError, match=r"--help` did not list ais_bench's flags \(Traceback: no module"):
        ais_tool.read_tool(("python3", str(script)), "test")


# --- atc ---------------------------------------------------------------------------------

ATC_HELP = """
  --precision_mode        precision mode, support force_fp16(default), force_fp32, cube_fp16in_fp32out,
                          allow_mix_precision, allow_fp32_to_fp16, must_keep_origin_dtype.
  --precision_mode_v2     precision mode v2, support fp16, origin.
  --op_select_implmode    Set op select implmode. Support high_precision, high_performance.
"""


def test_precision_modes_from_help():
    assert atc.precision_modes_from_help(ATC_HELP) == (
        "force_fp16", "force_fp32", "cube_fp16in_fp32out", "allow_mix_precision", "allow_fp32_to_fp16",
        "must_keep_origin_dtype",
    )
    assert atc.precision_modes_from_help("--log  debug, info") == ()


def test_precision_mode_checked_against_the_installed_list():
    with pytest.raises(StageError, match=r"PRECISION_MODE=allow_fp32_to_bf16: the installed atc does not accept"):
        atc.check_precision_mode("allow_fp32_to_bf16", atc.CANN51_PRECISION_MODES, "CANN 5.1 list")
    atc.check_precision_mode(None, atc.CANN51_PRECISION_MODES, "CANN 5.1 list")


@pytest.mark.parametrize("name", ["elmo.om", "elmo_linux_x86_64.om", "elmo_linux_aarch64.om"])
def test_atc_output_names(tmp_path, name):
    (tmp_path / name).write_bytes(b"om")
    (tmp_path / "fusion_result.json").write_text("{}")
    assert atc.written_om(tmp_path, "elmo", "").name == name


def test_unexpected_atc_output_is_listed(tmp_path):
    (tmp_path / "elmo_b1.om.tmp").write_bytes(b"om")
    with pytest.raises(StageError, match=r"wrote no elmo\.om or elmo_linux_<arch>\.om \(it wrote: elmo_b1\.om\.tmp\)"):
        atc.written_om(tmp_path, "elmo", "")
