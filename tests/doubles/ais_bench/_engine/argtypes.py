# TEST DOUBLE support: the argparse ``type=`` functions of the ais_infer / ais_bench releases.
#
# Each is named as the release names its own, because argparse prints that name when the
# function fails with ValueError/TypeError ("invalid check_positive_integer value: 'x'").
# Sources (behaviour, not code):
#   "positive", "nonnegative", "str2bool":  Ascend/tools@63a74de ais_infer.py, @4ce01e3
#                                            ais_bench/infer/__main__.py, Ascend/msit@42a9c807 args_check.py
#   "device-2022-11":                        Ascend/tools@4ce01e3 ais_bench/infer/__main__.py (its range test
#                                            is `< 0 and > 255`, never true: any integer passes)
#   "device-msit", "dym-string", "dym-range-msit", "number-list-msit", "batchsize":
#                                            Ascend/msit@42a9c807 ait/components/benchmark/ais_bench/infer/args_check.py
#   "*-2025":                                Ascend/tools master@8da7f645 ais_bench/infer/args_check.py
#   path checkers ("om_path@<generation>" ...): pathcheck.py
from __future__ import annotations

import argparse
import os
import re

from . import pathcheck

CPP_INT_MAX = 2147483647
LOOP_MAX = 100000
DEVICE_COUNT_MAX = 256
NUMBER_LIST_MAX = 50000
INPUT_NAME_MAX = 256
DYM_RANGE_PATTERN = (r"[1-9][0-9]{0,4}([\~\-][1-9][0-9]{0,4}){0,2}"
                     r"(\,[1-9][0-9]{0,4}([\~\-][1-9][0-9]{0,4}){0,2}){0,6}")


def _named(name):
    def wrap(fn):
        fn.__name__ = fn.__qualname__ = name
        return fn
    return wrap


def str2bool(v):
    if isinstance(v, bool):
        return v
    if v.lower() in ("yes", "true", "t", "y", "1"):
        return True
    if v.lower() in ("no", "false", "f", "n", "0"):
        return False
    raise argparse.ArgumentTypeError("Boolean value expected true, 1, false, 0 with case insensitive.")


@_named("check_positive_integer")
def positive(value):
    number = int(value)  # ValueError: argparse's "invalid check_positive_integer value"
    if number <= 0:
        raise argparse.ArgumentTypeError("%s is an invalid positive int value" % value)
    return number


@_named("check_nonnegative_integer")
def nonnegative(value):
    number = int(value)
    if number < 0:
        raise argparse.ArgumentTypeError("%s is an invalid nonnegative int value" % value)
    return number


@_named("check_batchsize_valid")
def batchsize(value):
    return value if value is None else positive(value)


def _digits_2025(value):
    if not value.isdigit():
        raise argparse.ArgumentTypeError("%s contains special characters other than numbers." % value)
    return int(value)


@_named("check_positive_integer")
def positive_2025(value):
    number = _digits_2025(value)
    if number <= 0:
        raise argparse.ArgumentTypeError("%s is an invalid positive int value" % value)
    if number > CPP_INT_MAX:
        # the release raises argparse.ArgumentError with one argument: a TypeError
        raise TypeError("%s is an invalid cpp int value" % value)
    return number


@_named("check_nonnegative_integer")
def nonnegative_2025(value):
    number = _digits_2025(value)
    if number > CPP_INT_MAX:
        raise TypeError("%s is an invalid cpp int value" % value)
    return number


@_named("check_loop_size")
def loop_2025(value):
    number = _digits_2025(value)
    if number <= 0 or number > LOOP_MAX:
        raise argparse.ArgumentTypeError("%s is an invalid loop size value" % value)
    return number


@_named("check_batchsize_valid")
def batchsize_2025(value):
    return value if value is None else positive_2025(value)


@_named("check_device_range_valid")
def device_2022_11(value):
    return int(value)


def _device_list(value, digits_first, count_limit):
    try:
        if "," in value:
            ids = [int(v) for v in value.split(",")]
            if count_limit and len(ids) > DEVICE_COUNT_MAX:
                raise argparse.ArgumentTypeError(
                    f"too much device id in --device, max permitted count is {DEVICE_COUNT_MAX}")
            for number in ids:
                if number < 0 or number > 255:
                    raise argparse.ArgumentTypeError(
                        f"{number} of device:{value} is invalid. valid value range is [0, 255]")
            return ids
        if digits_first and not value.isdigit():
            raise argparse.ArgumentTypeError("%s contains special characters other than numbers." % value)
        number = int(value)
        if number < 0 or number > 255:
            raise argparse.ArgumentTypeError(f"device:{number} is invalid. valid value range is [0, 255]")
        return number
    except ValueError as err:
        raise argparse.ArgumentTypeError(
            f"Argument npu-id invalid input value: {value}. "
            "Please provide a valid integer or a comma-separated list of integers.") from err


@_named("check_device_range_valid")
def device_msit(value):
    return _device_list(value, digits_first=False, count_limit=False)


@_named("check_device_range_valid")
def device_2025(value):
    return _device_list(value, digits_first=True, count_limit=True)


@_named("check_dym_string")
def dym_string(value):
    if value and re.search(r"[^_A-Za-z0-9,;:/.-]", value):
        raise argparse.ArgumentTypeError(f'dym string "{value}" is not a legal string')
    return value


@_named("check_dym_range_string")
def dym_range_msit(value):
    if value and re.search(r"[^_A-Za-z0-9,;:/.\-~]", value):
        raise argparse.ArgumentTypeError(f'dym range string "{value}" is not a legal string')
    return value


def _dym_format_2025(text, pattern):
    items = text.split(";")
    if len(items) > 1024:
        raise ValueError("input count over 1024")
    for item in items:
        parts = item.split(":")
        if len(parts) != 2 or len(parts[0]) > INPUT_NAME_MAX or re.search(r"[^_A-Za-z0-9/.-]", parts[0]) \
                or not re.fullmatch(pattern, parts[1]):
            raise ValueError("dymshape range string's format is illegal!")


@_named("check_dym_range_string")
def dym_range_2025(value):
    if not value:
        return value
    if os.path.exists(value):
        try:
            pathcheck.check_path_legality("master-2025", value, perm="read", suffix=["info"])
        except ValueError as err:
            raise argparse.ArgumentTypeError("file contain dymShape range is not a legal path") from err
    else:
        try:
            _dym_format_2025(value, DYM_RANGE_PATTERN)
        except ValueError:
            raise argparse.ArgumentTypeError("dym range string is not a legal format string")
    return value


@_named("check_number_list")
def number_list_msit(value):
    if value and re.search(r"[^0-9,;]", value):
        raise argparse.ArgumentTypeError(f'number_list "{value}" is not a legal list')
    return value


@_named("check_number_list")
def number_list_2025(value):
    if not value:
        return value
    if re.search(r"[^0-9,]", value):
        raise argparse.ArgumentTypeError("number list is contain illegal char!")
    if len(value) > NUMBER_LIST_MAX:
        raise argparse.ArgumentTypeError(f"number list is over max length: {NUMBER_LIST_MAX}!")
    return value


TYPES = {
    "int": int,
    "str2bool": str2bool,
    "positive": positive,
    "nonnegative": nonnegative,
    "batchsize": batchsize,
    "positive-2025": positive_2025,
    "nonnegative-2025": nonnegative_2025,
    "loop-2025": loop_2025,
    "batchsize-2025": batchsize_2025,
    "device-2022-11": device_2022_11,
    "device-msit": device_msit,
    "device-2025": device_2025,
    "dym-string": dym_string,
    "dym-range-msit": dym_range_msit,
    "dym-range-2025": dym_range_2025,
    "number-list-msit": number_list_msit,
    "number-list-2025": number_list_2025,
}


def lookup(name):
    """A type function by name; path checkers are "<kind>@<generation>" (e.g. "om_path@master-2025")."""
    if name is None:
        return None
    if "@" in name:
        kind, generation = name.split("@", 1)
        return pathcheck.type_functions(generation)[kind]
    return TYPES[name]
