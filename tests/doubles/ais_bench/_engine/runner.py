# TEST DOUBLE support: the command line of an ais_infer / ais_bench release, as that release
# handles it: its flags (argparse's own exit 2 for anything it refuses, --help generated from
# them), then its post-parse rules, then the run itself (inference.py, imported only then so
# that a refused call answers fast). Sources: each release file and ../README.md.
from __future__ import annotations

import argparse
import logging
import sys
from types import SimpleNamespace

from . import argtypes
from .release import Release

logger = logging.getLogger("ais_bench")

DEFAULTS = dict(
    input=None, output=None, output_dirname=None, outfmt="BIN", loop=1, debug=False, device=0, dym_batch=0,
    dym_hw=None, dym_dims=None, dym_shape=None, output_size=None, acl_json_path=None, batchsize=1,
    pure_data_type="zero", profiler=False, dump=False, auto_set_dymshape_mode=False, auto_set_dymdims_mode=False,
    output_batchsize_axis=0, run_mode="array", display_all_summary=False, warmup_count=1, dym_shape_range=None,
    aipp_config=None, energy_consumption=False, npu_id=0, backend=None, perf=False, pipeline=False,
    profiler_rename=True, dump_npy=False, divide_input=False, threads=1, infer_queue_count=20,
)
# what the doubles do not simulate: asked for, they stop (exit 1) instead of pretending
NOT_SIMULATED = ("dym_hw", "dym_dims", "dym_shape", "output_size", "acl_json_path", "auto_set_dymshape_mode",
                 "auto_set_dymdims_mode", "dym_shape_range", "aipp_config", "energy_consumption", "backend",
                 "perf", "pipeline", "dump_npy", "profiler", "dump")


# ---- command line -----------------------------------------------------------------------

def build_parser(release: Release) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser()
    for flag in release.flags:
        kwargs = {"help": flag.help}
        if flag.action:
            kwargs["action"] = flag.action
            if flag.default is not None:
                kwargs["default"] = flag.default
        else:
            kwargs["default"] = flag.default
            if flag.type is not None:
                kwargs["type"] = argtypes.lookup(flag.type)
            if flag.choices is not None:
                kwargs["choices"] = flag.choices
        if flag.required:
            kwargs["required"] = True
        if flag.dest:
            kwargs["dest"] = flag.dest
        parser.add_argument(*flag.names, **kwargs)
    return parser


def _dest(flag) -> str:
    if flag.dest:
        return flag.dest
    long = next((n for n in flag.names if n.startswith("--")), flag.names[0])
    return long.lstrip("-").replace("-", "_")


def parse(release: Release, argv) -> SimpleNamespace:
    namespace = build_parser(release).parse_args(argv)
    options = dict(DEFAULTS)
    for flag in release.flags:
        options[flag.key] = getattr(namespace, _dest(flag))
    return SimpleNamespace(**options)


# ---- the releases' post-parse rules, by name ----------------------------------------------

def _rule_int_limits_2025(o):
    limits = (("threads", "--threads", 64), ("warmup_count", "--warmup_count", 10000),
              ("batchsize", "--batchsize", 4096), ("dym_batch", "--dymBatch", 4096),
              ("output_batchsize_axis", "--output_batchsize_axis", 8))
    for key, flag, top in limits:
        value = getattr(o, key)
        if value is not None and value > top:
            raise ValueError(f"{flag}: {value} is over {top}")


def _rule_profiler_dump(o):
    if o.profiler and o.dump:
        logger.error("parameter --profiler cannot be true at the same time as parameter --dump, please check them!\n")
        raise RuntimeError("error bad parameters --profiler and --dump")


def _rule_dirname_not_abs(o):
    if o.output_dirname and o.output_dirname[0] == "/":
        raise ValueError("--output_dirname do not support abs path!")


def _rule_profiler_needs_output(o):
    if (o.profiler or o.dump) and o.output is None:
        logger.error("when dump or profiler, miss output path, please check them!")
        raise RuntimeError("miss output parameter!")


def _rule_profiler_no_warmup(o):
    if o.profiler and o.warmup_count != 0 and o.input is not None:
        logger.info("profiler mode with input change warmup_count to 0")
        o.warmup_count = 0


def _rule_dirname_needs_output(o):
    if o.output is None and o.output_dirname is not None:
        logger.error("parameter --output_dirname cann't be used alone. "
                     "Please use it together with the parameter --output!\n")
        raise RuntimeError("error bad parameters --output_dirname")


def _rule_threads_need_pipeline(o):
    if o.threads > 1 and not o.pipeline:
        logger.info("need to set --pipeline when setting threads number to be more than one.")
        o.threads = 1


RULES = {
    "int-limits-2025": _rule_int_limits_2025,
    "profiler-dump": _rule_profiler_dump,
    "dirname-not-abs": _rule_dirname_not_abs,
    "profiler-needs-output": _rule_profiler_needs_output,
    "profiler-no-warmup": _rule_profiler_no_warmup,
    "dirname-needs-output": _rule_dirname_needs_output,
    "threads-need-pipeline": _rule_threads_need_pipeline,
}


def _refuse_unsimulated(release, o):
    for flag in release.flags:
        value = getattr(o, flag.key)
        if flag.key in NOT_SIMULATED and value not in (None, False, DEFAULTS[flag.key]):
            logger.error(f"(test double) {flag.names[0]} is not simulated by this ais_bench test double")
            raise RuntimeError(f"test double: {flag.names[0]} is not simulated")
    if o.loop < 0:
        raise RuntimeError("test double: a negative --loop is not simulated")


def run(release: Release, argv=None) -> int:
    """The release's command line; its exit status (exceptions escape, exit 1, as in the real tools)."""
    logging.basicConfig(stream=sys.stdout, level=logging.INFO, format="[%(levelname)s] %(message)s")
    o = parse(release, sys.argv[1:] if argv is None else list(argv))
    for name in release.rules:
        RULES[name](o)
    _refuse_unsimulated(release, o)
    from . import inference  # numpy, onnxruntime: only for a call that gets this far

    if release.multi_device and isinstance(o.device, list):
        return inference.multidevice(release, o)
    inference.main(release, o)
    return 0
