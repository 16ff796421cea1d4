# TEST DOUBLE support: the path security checks of the recent ais_bench releases.
#
# Two generations, written here from their documented behaviour:
#   "msit-2024-06": Ascend/msit@42a9c807, ait/components/benchmark/ais_bench/infer/
#                   path_security_check.py + args_check.py. The path is checked as given
#                   (relative paths against the cwd); a folder written to may be 0o755.
#   "master-2025":  Ascend/tools master@8da7f645 (gitee, 2025-12-18; the history is carried by
#                   github Yanguan619/aclruntime), ais-bench_workload/tool/ais_bench/ais_bench/infer/
#                   common/path_security_check.py + args_check.py. The path is made absolute
#                   first; a folder written to may be 0o750 at most (no other-r/w/x either).
# Both: only A-Z a-z 0-9 _ - / . in the path; at most 4096 characters, 255 per part; the path
# itself must not be a symlink; the running user owns it or is in its group (os.getgroups());
# read: no group/other write bit and readable; write (when it exists): the write mask above and
# writable. A failed check logs why ([ERROR] + [SOLUTION]) and the argparse type function then
# raises, so argparse exits 2 with "argument --x/-y: <message>".
from __future__ import annotations

import argparse
import logging
import os
import re
import stat
import sys

logger = logging.getLogger("ais_bench")

SOLUTION_LEVEL = 35
logging.addLevelName(SOLUTION_LEVEL, "SOLUTION")

WHITE_LIST = re.compile(r"[^_A-Za-z0-9/.-]")
READ_MASK = stat.S_IWGRP | stat.S_IWOTH
OM_MAX = 10 * 1024 * 1024 * 1024
ACL_JSON_MAX = 8 * 1024
AIPP_MAX = 12.5 * 1024
NORMAL_FILE_MAX = 4 * 1024 * 1024 * 1024


class Rules:
    def __init__(self, name, absolute, write_mask, write_limit, solution_base, chapters,
                 illegal_char, too_long, part_too_long, string_error, input_limit=None, output_is_dir=False):
        self.name = name
        self.absolute = absolute
        self.input_limit = input_limit        # most comma-separated --input paths (None: no limit)
        self.output_is_dir = output_is_dir    # an existing --output must be a folder
        self.write_mask = write_mask
        self.write_limit = write_limit
        self.solution_base = solution_base
        self.chapters = chapters
        self.illegal_char = illegal_char
        self.too_long = too_long
        self.part_too_long = part_too_long
        # what a type function says when the path string itself is refused: {what} {path}
        self.string_error = string_error


GENERATIONS = {
    "msit-2024-06": Rules(
        "msit-2024-06", absolute=False, write_mask=stat.S_IWGRP | stat.S_IWOTH, write_limit="0o755(rwxr-xr-x)",
        solution_base='"gitee repo: Ascend/ait, wikis: ait_security_error_log_solution, chapter:',
        chapters={"link": 'soft_link_error_log_solution"', "length": 'path_length_overflow_error_log_solution"',
                  "owner": 'owner_or_ownergroup_error_log_solution"', "perm": 'path_permission_error_log_solution"',
                  "char": 'path_contain_illegal_char_error_log_solution"'},
        illegal_char="path:{path} contains illegal char, legal chars include A-Z a-z 0-9 _ - / .",
        too_long="file total path{path} length out of range (4096), please check the file(or directory) path",
        part_too_long="file name{part} length out of range (255), please check the file(or directory) path",
        # msit's output check says "weight path" here (sic)
        string_error={"om": "om path:{path} is illegal. Please check.",
                      "input": "input path:{path} is illegal. Please check.",
                      "output": "weight path:{path} is illegal. Please check.",
                      "acl json": "acl json path:{path} is illegal. Please check.",
                      "aipp config": "aipp config path:{path} is illegal. Please check."}),
    "master-2025": Rules(
        "master-2025", absolute=True,
        write_mask=stat.S_IWGRP | stat.S_IWOTH | stat.S_IROTH | stat.S_IXOTH, write_limit="0o750(rwxr-x---)",
        solution_base='"gitee repo: Ascend/tools, path:tools/ais_bench-workload/tool/ais_bench/README.md, chapter:',
        chapters={"link": ' FAQ/security_error/soft_link_error_log_solution"',
                  "length": ' FAQ/security_error/path_length_overflow_error_log_solution"',
                  "owner": ' FAQ/security_error/owner_or_ownergroup_error_log_solution"',
                  "perm": ' FAQ/security_error/path_permission_error_log_solution"',
                  "char": ' FAQ/security_error/path_contain_illegal_char_error_log_solution"'},
        illegal_char="path contains illegal char, legal chars include A-Z a-z 0-9 _ - / .",
        too_long="file total path's length out of range (4096), please check the file(or directory) path",
        part_too_long="file base name length out of range (255), please check the file(or directory) path",
        string_error={"om": "om path string is illegal. Please check.",
                      "input": "input path string is illegal. Please check.",
                      "output": "output path string is illegal. Please check.",
                      "acl json": "acl json path string is illegal. Please check.",
                      "aipp config": "aipp config path string is illegal. Please check."},
        input_limit=1024, output_is_dir=True),
}


class PathError(Exception):
    """The path string itself is refused (the real tools' OpenException)."""


def _solution(rules, chapter):
    logger.log(SOLUTION_LEVEL, f"visit {rules.solution_base}{rules.chapters[chapter]} for detailed solution")


class FileStat:
    def __init__(self, rules: Rules, path: str):
        self.rules = rules
        self.file = os.path.abspath(path) if rules.absolute else path
        if len(self.file) > 4096:
            logger.error(rules.too_long.format(path=self.file))
            _solution(rules, "length")
            raise PathError("create FileStat failed")
        for part in self.file.split("/"):
            if len(part) > 255:
                logger.error(rules.part_too_long.format(part=part))
                _solution(rules, "length")
                raise PathError("create FileStat failed")
        if WHITE_LIST.search(self.file):
            logger.error(rules.illegal_char.format(path=self.file))
            _solution(rules, "char")
            raise PathError("create FileStat failed")
        self.exists = os.path.exists(self.file)
        self.st = os.stat(self.file) if self.exists else None

    @property
    def is_link(self):
        return os.path.islink(self.file) if self.st else False

    @property
    def is_file(self):
        return bool(self.st) and stat.S_ISREG(self.st.st_mode)

    @property
    def is_dir(self):
        return bool(self.st) and stat.S_ISDIR(self.st.st_mode)

    @property
    def mode(self):
        return stat.S_IMODE(self.st.st_mode) if self.st else 0o777

    @property
    def is_owner(self):
        return bool(self.st) and self.st.st_uid == os.geteuid()

    def legal(self, perm="none") -> bool:
        rules, file = self.rules, self.file
        if not self.exists and perm != "write":
            logger.error(f"path: {file} not exist, please check if file or dir is exist")
            return False
        if self.is_link:
            logger.error(f"path :{file} is a soft link, not supported, please import file(or directory) directly")
            _solution(rules, "link")
            return False
        if self.exists and not (self.is_owner or self.st.st_gid in os.getgroups()):
            logger.error(f"current user isn't path:{file}'s owner or ownergroup, make sure current user belong to "
                         f"file(or directory)'s owner or ownergroup")
            _solution(rules, "owner")
            return False
        if perm == "read":
            if self.mode & READ_MASK:
                logger.error(f"The file {file} is group writable, or is others writable, as import file(or "
                             f"directory), permission should not be over 0o755(rwxr-xr-x)")
                _solution(rules, "perm")
                return False
            if not os.access(os.path.realpath(file), os.R_OK) or not self.mode & stat.S_IRUSR:
                logger.error(f"Current user doesn't have read permission to the file {file}, as import file(or "
                             f"directory), permission should be at least 0o400(r--------) ")
                _solution(rules, "perm")
                return False
        elif perm == "write" and self.exists:
            if self.mode & rules.write_mask:
                logger.error(f"The file {file} is group writable, or is others writable, as export file(or "
                             f"directory), permission should not be over {rules.write_limit}")
                _solution(rules, "perm")
                return False
            if not os.access(os.path.realpath(file), os.W_OK):
                logger.error(f"Current user doesn't have write permission to the file {file}, as export file(or "
                             f"directory), permission should be at least 0o200(-w-------) ")
                _solution(rules, "perm")
                return False
        return True

    def legal_type(self, suffixes) -> bool:
        if not self.is_file and self.exists:
            logger.error(f"path: {self.file} is not a file")
            return False
        if os.path.splitext(self.file)[1] in [f".{s}" for s in suffixes]:
            return True
        logger.error(f"path:{self.file}, file type not in {list(suffixes)}")
        return False

    def legal_size(self, limit) -> bool:
        if not self.is_file:
            logger.error(f"path: {self.file} is not a file")
            return False
        if self.st.st_size > limit:
            logger.error(f"file_size:{self.st.st_size} byte out of max limit {limit} byte")
            return False
        return True


# ---- argparse type functions (named as the releases name theirs: argparse shows the name
# ---- when one fails with TypeError/ValueError instead of ArgumentTypeError)

def _file_checker(rules, what, name, suffix, limit):
    def check(value):
        if not value:
            return value
        try:
            fs = FileStat(rules, value)
        except PathError as err:
            raise argparse.ArgumentTypeError(rules.string_error[what].format(path=value)) from err
        if not fs.legal("read") or not fs.legal_type([suffix]) or not fs.legal_size(limit):
            raise argparse.ArgumentTypeError(f"{what} path:{value} is illegal. Please check.")
        return value
    check.__name__ = check.__qualname__ = name
    return check


def type_functions(generation: str) -> dict:
    rules = GENERATIONS[generation]

    def check_input_path_legality(value):
        if not value:
            return value
        paths = value.split(",")
        if rules.input_limit is not None and len(paths) > rules.input_limit:
            # master-2025 raises argparse.ArgumentError with one argument here, a TypeError:
            # argparse then reports "invalid check_input_path_legality value: ..."
            raise TypeError(f"input list:{paths} has too many input. Please check.")
        for path in paths:
            try:
                fs = FileStat(rules, path)
            except PathError as err:
                raise argparse.ArgumentTypeError(rules.string_error["input"].format(path=path)) from err
            if not fs.legal("read"):
                raise argparse.ArgumentTypeError(f"input path:{path} is illegal. Please check.")
        return value

    def check_output_path_legality(value):
        if not value:
            return value
        try:
            fs = FileStat(rules, value)
        except PathError as err:
            raise argparse.ArgumentTypeError(rules.string_error["output"].format(path=value)) from err
        if rules.output_is_dir and fs.exists and not fs.is_dir:
            raise argparse.ArgumentTypeError("output path is not a directory")
        if not fs.legal("write"):
            raise argparse.ArgumentTypeError(f"output path:{value} is illegal. Please check.")
        return value

    return {
        "om_path": _file_checker(rules, "om", "check_om_path_legality", "om", OM_MAX),
        "input_path": check_input_path_legality,
        "output_path": check_output_path_legality,
        "acl_json_path": _file_checker(rules, "acl json", "check_acl_json_path_legality", "json", ACL_JSON_MAX),
        "aipp_config_path": _file_checker(rules, "aipp config", "check_aipp_config_path_legality", "config",
                                          AIPP_MAX),
    }


# ---- checks the releases make after parsing

def check_dir_entry(generation: str, path: str) -> bool:
    """A folder's entry as get_fileslist_from_dir checks it; raises like the release does."""
    fs = FileStat(GENERATIONS[generation], path)  # PathError propagates (a traceback in the real tool too)
    if not fs.legal("read"):
        raise RuntimeError(f"input data:{path} is illegal")
    return fs.is_dir


def check_path_legality(generation: str, path: str, perm="write", max_size=10 * 1024 * 1024, is_file=True,
                        suffix=None) -> None:
    """master-2025's check_path_legality: ValueError naming what is wrong."""
    try:
        fs = FileStat(GENERATIONS[generation], path)
    except PathError as err:
        raise ValueError("The path string is illegal. Please check.") from err
    if is_file != fs.is_file:
        raise ValueError(f"The path:{path} is not a file." if is_file else f"The path:{path} is not a directory.")
    if not fs.legal(perm):
        raise ValueError(f"The path:{path} is illegal. Please check the error log for more detail.")
    if suffix and fs.is_file and not fs.legal_type(suffix):
        raise ValueError(f"The suffix of path:{path} not in {suffix}. Please check.")
    if fs.is_file and not fs.legal_size(max_size):
        raise ValueError(f"The file:{path} size is larger than {max_size}. Please check.")


def check_existing_output_dir(generation: str, path: str) -> None:
    """master-2025's check_output_dir_legality of an <output>/<dirname> that already exists."""
    check_path_legality(generation, path, perm="read", is_file=False)


def checked_open(generation: str, path: str, mode: str, max_size=None):
    """ms_open: the releases' guarded open (reads need a size limit; writes are 0o640, owner only)."""
    fs = FileStat(GENERATIONS[generation], path)
    if fs.exists and fs.is_dir:
        raise PathError(f"Expecting a file, but it's a folder. {path}")
    if fs.is_link:
        raise PathError(f"Softlink is not allowed to be opened. {path}")
    if "r" in mode:
        if not fs.exists:
            raise PathError(f"No such file or directory {path}")
        if max_size is None:
            raise PathError(f"Reading files must have a size limit control. {path}")
        if max_size < fs.st.st_size:
            raise PathError(f"The file size has exceeded the specifications and cannot be read. {path}")
        return open(path, mode)
    if fs.exists and not fs.is_owner:
        raise PathError(f"The file owner is inconsistent with the current process user and is not allowed to write. "
                        f"{path}")
    if fs.exists:
        os.remove(path)
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
    return os.fdopen(os.open(path, flags, 0o640), mode)


def makedirs_safe(path: str, mode: int = 0o750) -> None:
    """master-2025: every missing part of the path made with ``mode``."""
    current = ""
    for part in os.path.abspath(path).split("/"):
        if not part:
            continue
        current += "/" + part
        if os.path.exists(current):
            continue
        try:
            os.mkdir(current, mode)
        except Exception as err:
            raise RuntimeError(f"can not make dir: {current}") from err


if sys.platform.startswith("win"):  # pragma: no cover - the doubles are Linux-only, as the checks are
    raise ImportError("the ais_bench path-check doubles follow the Linux branch only")
