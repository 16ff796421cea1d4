# TEST DOUBLE engine for CANN's atc, one behaviour per CANN release (no CANN involved).
#
# Each tests/doubles/cann/<release>/ascend-toolkit/latest/bin/atc calls main(<release>, argv).
# The front end follows what the real atc does, as read from public sources (see README.md
# beside this file for each fact and where it comes from):
#
# * atc is a gflags program (GE's ge/offline/main.cc). main() first prints
#   "ATC start working now, please wait for a moment.", then gflags parses the flags:
#   an unknown flag -> "ERROR: unknown command line flag 'x'" on stderr, exit 1;
#   --flag=value, --flag value, -flag=value are all accepted; a non-boolean flag with
#   nothing after it -> "ERROR: flag '--x' is missing its argument; ...", exit 1.
# * --help / --h / -h: GE turns them into gflags' --helpshort, which prints
#   "atc.bin: <usage text>" and, since no flags are defined in a file named after the
#   binary, "  No modules matched: use -help", then exits 1 (gflags' exit for help).
# * --version: gflags' built-in flag; with no version string set, it prints only the
#   program's short name ("atc.bin") and exits 0. There is no version number to read.
# * --log outside debug|info|warning|error|null -> "E10010: invalid value for --log:..." then
#   the "ATC run failed" line, exit 255 (main returns -1).
# * Parameter checks report E-coded lines after "ATC run failed, Please check the detail
#   log, Try 'atc --help' for more information"; the run exits non-zero and writes no .om.
#
# Knobs: FAKE_ATC_FAIL=1 fails like a graph-build failure (E19010 ...);
# FAKE_ATC_SO_IN_OM=0|1 overrides whether the .om gets the _<os>_<cpu> suffix (real atc
# adds it only when the model carries operator .so files; on by default for 7.0 and 8.0).
from __future__ import annotations

import json
import os
import platform
import re
import sys
from dataclasses import dataclass
from typing import Dict, FrozenSet, List, Optional, Tuple

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "pylib"))

import fake_om  # noqa: E402

START = "ATC start working now, please wait for a moment."
FAILED = "ATC run failed, Please check the detail log, Try 'atc --help' for more information"
SUCCESS = "ATC run success, welcome to the next use."
PROGRAM = "atc.bin"  # the real bin/atc is a shell script that execs .../atc.bin
LOG_LEVELS = ("debug", "info", "warning", "error", "null")
IMPLMODES = ("high_precision", "high_performance", "high_precision_for_all", "high_performance_for_all")
IMPLMODE_REASON = "only support high_performance, high_precision, high_precision_for_all, high_performance_for_all"
MIXLIST_REASON_51 = ("modify_mixlist is assigned, please ensure that precision_mode is assigned to "
                     "'allow_mix_precision'")
PATH_REASON = "The path can only contain 'a-z' 'A-Z' '0-9' '-' '.' '_' and chinese character"
PATH_OK = re.compile(r"^[\u4e00-\u9fa5A-Za-z0-9./_-]+$")
ONNX_FORMATS = ("NCHW", "ND", "NCDHW")
BF16_SOCS = ("Ascend910B", "Ascend910_93")  # Atlas A2/A3: the only products the docs give bf16 to

MODES_51 = ("force_fp16", "force_fp32", "allow_mix_precision", "allow_fp32_to_fp16", "must_keep_origin_dtype")
MODES_70 = ("force_fp16", "force_fp32", "cube_fp16in_fp32out", "allow_mix_precision", "allow_fp32_to_fp16",
            "must_keep_origin_dtype", "allow_mix_precision_fp16", "allow_mix_precision_bf16",
            "allow_fp32_to_bf16")
MODES_V2_80 = ("fp16", "origin", "cube_fp16in_fp32out", "mixed_float16", "mixed_bfloat16")
BF16_MODES = ("allow_mix_precision_bf16", "allow_fp32_to_bf16", "mixed_bfloat16")

# gflags' own flags (gflags_reporting.cc / gflags.cc) and atc's -h.
GFLAGS_BUILTIN = {"help", "helpfull", "helpshort", "helpmatch", "helpon", "helppackage", "helpxml", "version",
                  "flagfile", "fromenv", "tryfromenv", "undefok", "tab_completion_columns",
                  "tab_completion_word", "h"}
BOOL_FLAGS = {"help", "helpfull", "helpshort", "helppackage", "helpxml", "version", "h"}
HELP_FLAGS = {"help", "helpfull", "helpshort", "h"}
# DEFINE_* of ge/offline/main.cc in the 2022 GE sources (mindspore-ai/graphengine 12e7b59b).
FLAGS_51 = {
    "model", "output", "framework", "weight", "input_shape", "input_shape_range", "cal_conf", "insert_op_conf",
    "op_name_map", "target", "om", "json", "mode", "out_nodes", "op_precision_mode", "precision_mode",
    "modify_mixlist", "keep_dtype", "input_format", "check_report", "input_fp16_nodes",
    "is_output_adjust_hw_layout", "is_input_adjust_hw_layout", "output_type", "op_select_implmode",
    "optypelist_for_implmode", "singleop", "disable_reuse_memory", "auto_tune_mode", "soc_version", "core_type",
    "aicore_num", "buffer_optimize", "fusion_switch_file", "save_original_model", "dynamic_batch_size",
    "dynamic_image_size", "dynamic_dims", "enable_small_channel", "enable_compress_weight",
    "compress_weight_conf", "enable_single_stream", "log", "dump_mode", "op_debug_level",
    "enable_scope_fusion_passes", "debug_dir", "op_compiler_cache_dir", "op_compiler_cache_mode",
    "mdl_bank_path", "op_bank_path", "display_model_info", "device_id",
}
# Added by the 7.x atc (its help as listed in Huawei's 2024 tooling; the 7.0 docs).
FLAGS_70 = FLAGS_51 | {
    "virtual_type", "compression_optimize_conf", "sparsity", "customize_dtypes", "status_check",
    "external_weight", "shape_generalized_build_mode", "op_debug_config", "atomic_clean_policy", "deterministic",
    "host_env_os", "host_env_cpu",
}
# Added by 8.0 (docs 8.0.RC1 on: --precision_mode_v2, --allow_hf32; --jit_compile).
FLAGS_80 = FLAGS_70 | {"precision_mode_v2", "allow_hf32", "jit_compile"}
INT_FLAGS = {"framework", "mode", "disable_reuse_memory", "op_debug_level", "virtual_type", "sparsity"}


@dataclass(frozen=True)
class Release:
    id: str
    label: str
    precision_modes: Tuple[str, ...]
    precision_modes_v2: Tuple[str, ...]
    flags: FrozenSet[str]
    so_in_om_suffix: bool  # writes <output>_<os>_<cpu>.om
    mixlist_modes: Tuple[str, ...]
    help_text: str
    precision_reason: str = ""


def _usage(framework_line, input_shape_lines, output_line, target_extra, operator_tuning, debug_extra):
    return "\n".join([
        "usage: ./atc <args>",
        "generate offline model example:",
        "./atc --model=./alexnet.prototxt --weight=./alexnet.caffemodel ",
        "--framework=0 --output=./domi ",
        "generate offline model for single op example:",
        "./atc --singleop=./op_list.json --output=./op_model ",
        "===== Basic Functionality =====",
        "[General]",
        "  --h/help            Show this help message",
        "  --mode              Run mode. 0(default): generate offline model; 1: convert model to JSON format; "
        "3: only pre-check; 5: convert ge dump txt file to JSON format; 6: display model info",
        "",
        "[Input]",
        "  --model             Model file",
        "  --weight            Weight file. Required when framework is Caffe",
        "  --om                The model file to be converted to json",
        framework_line,
        "  --input_format      Format of input data. E.g.: \"NCHW\"",
        *input_shape_lines,
        "  --dynamic_batch_size Set dynamic batch size. E.g.: \"batchsize1,batchsize2,batchsize3\"",
        "  --dynamic_image_size Set dynamic image size. Separate multiple nodes with semicolons (;). "
        "Use double quotation marks (\") to enclose each argument.",
        "                       E.g.: \"imagesize1_height,imagesize1_width;imagesize2_height,imagesize2_width\"",
        "  --dynamic_dims      Set dynamic dims. Separate multiple nodes with semicolons (;). "
        "Use double quotation marks (\") to enclose each argument.",
        "                      E.g.: \"dims1_n1,dims1_n2;dims2_n1,dims2_n2\"",
        "  --singleop          Single op definition file. atc will generate offline model(s) for single op "
        "if --singleop is set.",
        "",
        "[Output]",
        output_line,
        "                      If --singleop is set, this arg specifies the directory to which the single op "
        "offline model will be generated",
        "  --output_type       Set net output type. Support FP32, FP16, UINT8. E.g.: FP16, indicates that all out "
        "nodes are set to FP16.",
        "                      \"node1:0:FP16;node2:1:FP32\", indicates setting the datatype of multiple out nodes.",
        "  --check_report      The pre-checking report file. Default value is: \"check_result.json\"",
        "  --json              The output json file path&name which is converted from a model",
        "",
        "[Target]",
        "  --soc_version       The soc version.",
        *target_extra,
        "  --core_type         Set core type AiCore or VectorCore. VectorCore: use vector core. "
        "Default value is: AiCore",
        "  --aicore_num        Set aicore num",
        "===== Advanced Functionality =====",
        "[Feature]",
        "  --out_nodes         Output nodes designated by users. Separate multiple nodes with semicolons (;)."
        "Use double quotation marks (\") to enclose each argument.",
        "                      E.g.: \"node_name1:0;node_name1:1;node_name2:0\"",
        "  --input_fp16_nodes  Input node datatype is fp16. Separate multiple nodes with semicolons (;). "
        "Use double quotation marks (\") to enclose each argument. E.g.: \"node_name1;node_name2\"",
        "  --insert_op_conf    Config file to insert new op",
        "  --op_name_map       Custom op name mapping file",
        "",
        "[Model Tuning]",
        "  --disable_reuse_memory    The switch of reuse memory. Default value is : 0. 0 means reuse memory, "
        "1 means do not reuse memory.",
        "  --fusion_switch_file      Set fusion switch file path",
        "  --enable_single_stream    Enable single stream. true: enable; false(default): disable",
        "  --enable_small_channel    Set enable small channel. 0(default): disable; 1: enable",
        "  --buffer_optimize         Set buffer optimize. Support \"l2_optimize\" (default), \"l1_optimize\", "
        "\"off_optimize\"",
        "  --mdl_bank_path           Set the path of the custom repository generated after model tuning.",
        "",
        "[Operator Tuning]",
        *operator_tuning,
        "  --op_select_implmode    Set op select implmode. Support high_precision, high_performance, "
        "high_precision_for_all, high_performance_for_all. default: high_performance",
        "  --optypelist_for_implmode    Appoint which op to select implmode, cooperated with op_select_implmode.",
        "                               Separate multiple nodes with commas (,). Use double quotation marks (\") "
        "to enclose each argument. E.g.: \"node_name1,node_name2\"",
        "  --op_debug_level        Debug enable for TBE operator building.",
        "                          0 (default): Disable debug; 1: Enable TBE pipe_all, and generate the operator "
        "CCE file and Python-CCE mapping file (.json);",
        "",
        "[Debug]",
        "  --save_original_model   Control whether to output original model. E.g.: true: output original model",
        "  --log                   Generate log with level. Support debug, info, warning, error, null",
        "  --dump_mode             The switch of dump json with shape, to be used with mode 1. 0(default): disable; "
        "1: enable.",
        "  --debug_dir                Set the save path of operator compilation intermediate files.",
        "Default value: ./kernel_meta",
        "  --op_compiler_cache_dir    Set the save path of operator compilation cache files.",
        "Default value: $HOME/atc_data",
        "  --op_compiler_cache_mode   Set the operator compilation cache mode.Options are disable(default), enable "
        "and force(force to refresh the cache)",
        *debug_extra,
        "  --display_model_info     enable for display model info; 0(default): close display, 1: open display.",
    ])


_FRAMEWORK = "  --framework         Framework type. 0:Caffe; 1:MindSpore; 3:Tensorflow; 5:Onnx"
_SHAPE_51 = [
    "  --input_shape       Shape of input data. Separate multiple nodes with semicolons (;). Use double quotation "
    "marks (\") to enclose each argument.",
    "                      E.g.: \"input_name1:n1,c1,h1,w1;input_name2:n2,c2,h2,w2\"",
    "  --input_shape_range Shape range of input data. Separate multiple nodes with semicolons (;).Use double "
    "quotation marks (\") to enclose each argument.",
    "                      E.g.: \"input_name1:[n1~n2,c1,h1,w1];input_name2:[n2,c2~c3,h2,w2]\"",
]
_SHAPE_70 = [
    "  --input_shape       Shape of static input data or shape range of dynamic input. Separate multiple nodes "
    "with semicolons (;). Use double quotation marks (\") to enclose each argument.",
    "                      E.g.: \"input_name1:n1,c1,h1,w1;input_name2:n2,c2,h2,w2\"",
    "                      \"input_name1:n1~n2,c1,h1,w1;input_name2:n3~n4,c2,h2,w2\"",
    "  --input_shape_range This option is deprecated and will be removed in future version, please use "
    "input_shape instead.",
]
_OUTPUT = ("  --output            Output file path&name(needn't suffix, will add .om automatically). ")
_HOST_ENV = [
    "  --host_env_os       OS type of the target execution environment. ",
    "                      The parameters that support setting are the OS types of the opp package",
    "                      Supported host env os as list:linux. default: linux",
    "  --host_env_cpu      CPU type of the target execution environment.",
    "                      The parameters that support setting are the CPU types of the opp package",
    "                      Supported host env cpu as list:",
    "                      support cpu: aarch64 x86_64 , respond to os: linux",
]
_TUNING_51 = [
    "  --op_precision_mode     Set the path of operator precision mode configuration file (.ini)",
    "  --precision_mode        precision mode, support force_fp16(default), force_fp32, allow_mix_precision, "
    "allow_fp32_to_fp16, must_keep_origin_dtype.",
    "  --modify_mixlist        Set the path of operator mixed precision configuration file.",
    "  --keep_dtype            Retains the precision of certain operators in inference scenarios by using a "
    "configuration file.",
    "  --auto_tune_mode        Set tune mode. E.g.: \"GA,RL\", support configure multiple, spit by ,",
    "  --op_bank_path          Set the path of the custom repository generated after operator tuning with Auto Tune.",
]
_PRECISION_70 = ("  --precision_mode        precision mode, support force_fp16(default), force_fp32, "
                 "cube_fp16in_fp32out, allow_mix_precision, allow_fp32_to_fp16, must_keep_origin_dtype, "
                 "allow_mix_precision_fp16, allow_mix_precision_bf16, allow_fp32_to_bf16.")
_TUNING_70 = [
    "  --op_precision_mode     Set the path of operator precision mode configuration file (.ini)",
    _PRECISION_70,
    "  --modify_mixlist        Set the path of operator mixed precision configuration file.",
    "  --keep_dtype            Retains the precision of certain operators in inference scenarios by using a "
    "configuration file.",
    "  --customize_dtypes      Set the path of custom dtypes configuration file.",
    "  --op_bank_path          Set the path of the custom repository generated after operator tuning with AutoTune.",
]
_TUNING_80 = [
    "  --op_precision_mode     Set the path of operator precision mode configuration file (.ini)",
    "  --allow_hf32            enable hf32. false: disable; true: enable. (not support, reserved)",
    _PRECISION_70,
    "  --precision_mode_v2     precision mode v2, support fp16(default), origin, cube_fp16in_fp32out, "
    "mixed_float16, mixed_bfloat16.",
    "  --modify_mixlist        Set the path of operator mixed precision configuration file.",
    "  --keep_dtype            Retains the precision of certain operators in inference scenarios by using a "
    "configuration file.",
    "  --customize_dtypes      Set the path of custom dtypes configuration file.",
    "  --op_bank_path          Set the path of the custom repository generated after operator tuning with AutoTune.",
]
_DEBUG_70 = [
    "  --status_check          switch for op status check such as overflow.0: disable; 1: enable.",
    "  --external_weight       Convert const to file constant, and save weight in file. 0 (default): save weight "
    "in om.  1: save weight in file.",
    "  --deterministic         For deterministic calculation. 0 (default): deterministic off. 1: deterministic on.",
]

HELP_51 = _usage(_FRAMEWORK, _SHAPE_51, _OUTPUT, [], _TUNING_51, [])
HELP_70 = _usage(_FRAMEWORK, _SHAPE_70, _OUTPUT, _HOST_ENV, _TUNING_70, _DEBUG_70)
HELP_80 = _usage(_FRAMEWORK, _SHAPE_70, _OUTPUT, _HOST_ENV, _TUNING_80, _DEBUG_70)

# For 8.0 the reason is GE's own ("The current value is not within the valid range. Valid values
# are: ..."); earlier releases checked it in closed-source code, so that reason is our wording.
RELEASES: Dict[str, Release] = {
    "cann-5.1.RC2": Release("cann-5.1.RC2", "CANN 5.1.RC2", MODES_51, (), frozenset(FLAGS_51), False,
                            ("allow_mix_precision",), HELP_51),
    "cann-6.0.1": Release("cann-6.0.1", "CANN 6.0.1", MODES_51, (), frozenset(FLAGS_51), False,
                          ("allow_mix_precision",), HELP_51),
    "cann-7.0": Release("cann-7.0", "CANN 7.0.0", MODES_70, (), frozenset(FLAGS_70), True,
                        ("allow_mix_precision", "allow_mix_precision_fp16", "allow_mix_precision_bf16"), HELP_70),
    "cann-8.0": Release("cann-8.0", "CANN 8.0.0", MODES_70, MODES_V2_80, frozenset(FLAGS_80), True,
                        ("allow_mix_precision", "allow_mix_precision_fp16", "allow_mix_precision_bf16",
                         "mixed_float16", "mixed_bfloat16"), HELP_80,
                        precision_reason="The current value is not within the valid range. Valid values are: "),
}


class GflagsExit(Exception):
    def __init__(self, code: int):
        super().__init__(code)
        self.code = code


def om_name(release_id: str, output: str, flags: Optional[Dict[str, str]] = None) -> str:
    """The file a release's atc writes for --output=<output>."""
    rel = RELEASES[release_id]
    override = os.environ.get("FAKE_ATC_SO_IN_OM")
    suffix = rel.so_in_om_suffix if override not in ("0", "1") else override == "1"
    if not suffix:
        return output + ".om"
    flags = flags or {}
    host_os = flags.get("host_env_os") or "linux"
    host_cpu = flags.get("host_env_cpu") or platform.machine()
    return f"{output}_{host_os}_{host_cpu}.om"


def parse_gflags(rel: Release, argv: List[str]) -> Dict[str, str]:
    """gflags-style parsing; unknown or malformed flags print gflags' ERROR line and exit 1."""
    known = rel.flags | GFLAGS_BUILTIN
    flags: Dict[str, str] = {}
    index = 0
    while index < len(argv):
        arg = argv[index]
        index += 1
        if arg == "--":
            break
        if not arg.startswith("-") or arg == "-":
            continue  # gflags leaves non-flag arguments alone; atc ignores them
        body = arg.lstrip("-")
        name, has_value, value = body.partition("=")
        if name not in known:
            if name.startswith("no") and name[2:] in BOOL_FLAGS and not has_value:
                flags[name[2:]] = "false"
                continue
            print(f"ERROR: unknown command line flag '{name}'", file=sys.stderr)
            raise GflagsExit(1)
        if not has_value:
            if name in BOOL_FLAGS:
                value = "true"
            elif index < len(argv):
                value = argv[index]
                index += 1
            else:
                print(f"ERROR: flag '{arg}' is missing its argument", file=sys.stderr)
                raise GflagsExit(1)
        if name in INT_FLAGS:
            try:
                int(value)
            except ValueError:
                print(f"ERROR: illegal value '{value}' specified for int32 flag '{name}'", file=sys.stderr)
                raise GflagsExit(1)
        if name in BOOL_FLAGS and value.lower() not in ("true", "false", "1", "0", "yes", "no", "t", "f", "y", "n"):
            print(f"ERROR: illegal value '{value}' specified for bool flag '{name}'", file=sys.stderr)
            raise GflagsExit(1)
        flags[name] = value
    return flags


def _truthy(value: Optional[str]) -> bool:
    return (value or "").lower() in ("true", "1", "yes", "t", "y")


class Failure(Exception):
    def __init__(self, *messages: str):
        super().__init__(messages)
        self.messages = messages


def e10001(param: str, value: str, reason: str) -> str:
    return f"E10001: Value [{value}] for parameter [{param}] is invalid. Reason: {reason}"


def _input_path_error(param: str, path: str) -> Optional[str]:
    if not path:
        return f"E10004: Value for [{param}] is empty."
    real = os.path.realpath(path)
    if not os.path.exists(path):
        return e10001(param, path, "realpath error, errmsg:No such file or directory")
    if not PATH_OK.match(real):
        return e10001(param, path, PATH_REASON)
    if not os.access(real, os.R_OK):
        return e10001(param, path, "cat not access, errmsg:Permission denied")
    return None


def check_flags(rel: Release, flags: Dict[str, str]) -> List[str]:
    """The parameter checks of GE's CheckInputFormat/CheckFlags and the precision checks; all errors found."""
    errors: List[str] = []
    framework = flags.get("framework", "-1")
    if framework == "5" and flags.get("input_format") and flags["input_format"] not in ONNX_FORMATS:
        errors.append(e10001("--input_format", flags["input_format"], "only support NCHW, ND, NCDHW in ONNX model"))
        return errors  # CheckInputFormat fails before CheckFlags runs
    if not flags.get("model"):
        errors.append("E10004: Value for [--model] is empty.")
    implmode = flags.get("op_select_implmode")
    if implmode and implmode not in IMPLMODES:
        errors.append(e10001("--op_select_implmode", implmode, IMPLMODE_REASON))
    if flags.get("optypelist_for_implmode") and not implmode:
        errors.append(e10001("--optypelist_for_implmode", flags["optypelist_for_implmode"],
                             "it must be appointed when appoint parameter[--op_select_implmode]"))
    if flags.get("op_precision_mode") and not os.path.isfile(flags["op_precision_mode"]):
        errors.append(e10001("--op_precision_mode", flags["op_precision_mode"], "path is not found"))
    mixlist = flags.get("modify_mixlist")
    if mixlist:
        mode = flags.get("precision_mode_v2") or flags.get("precision_mode", "")
        if mode not in rel.mixlist_modes:
            reason = (MIXLIST_REASON_51 if rel.mixlist_modes == ("allow_mix_precision",) else
                      "modify_mixlist is assigned, please ensure that precision_mode is assigned to one of "
                      + ", ".join(rel.mixlist_modes))
            errors.append(e10001("--modify_mixlist", mixlist, reason))
        elif not os.path.isfile(mixlist):
            errors.append(e10001("--modify_mixlist", mixlist, "path is not found"))
    if not flags.get("output"):
        errors.append("E10004: Value for [--output] is empty.")
    if framework not in ("0", "1", "3", "5"):
        errors.append("E10007: [--framework] is required. The value must be [0(Caffe) or 1(MindSpore) or "
                      "3(TensorFlow) or 5(Onnx)].")
    elif framework != "5":
        errors.append(e10001("--framework", framework, "(test double) only 5(Onnx) is implemented"))
    dynamic = [k for k in ("dynamic_batch_size", "dynamic_image_size", "dynamic_dims") if flags.get(k)]
    if len(dynamic) > 1:
        errors.append("E10009: [--dynamic_batch_size], [--dynamic_image_size] and [--dynamic_dims] "
                      "can only be set one.")
    if flags.get("model"):
        problem = _input_path_error("--model", flags["model"])
        if problem:
            errors.append(problem)
    if flags.get("keep_dtype") and not os.path.isfile(flags["keep_dtype"]):
        errors.append(e10001("--keep_dtype", flags["keep_dtype"], "file not found"))
    output = flags.get("output")
    if output:
        if not PATH_OK.match(output):
            errors.append(e10001("--output", output, PATH_REASON))
        elif output.endswith("/"):
            errors.append(f"E10022: Path [{output}] for parameter [--output] does not include a file name.")
    soc = flags.get("soc_version", "")
    if not soc.startswith("Ascend"):
        errors.append(e10001("--soc_version", soc, "The soc_version is not supported; use the chip's name "
                                                   "from npu-smi info with an Ascend prefix, e.g. Ascend310P3"))
    errors.extend(check_precision(rel, flags))
    return errors


def check_precision(rel: Release, flags: Dict[str, str]) -> List[str]:
    errors = []
    mode = flags.get("precision_mode")
    mode_v2 = flags.get("precision_mode_v2")
    if mode is not None and mode not in rel.precision_modes:
        reason = (rel.precision_reason + ", ".join(rel.precision_modes) + "."
                  if rel.precision_reason else
                  "precision_mode only support " + ", ".join(rel.precision_modes) + ".")
        errors.append(e10001("--precision_mode", mode, reason))
    if mode_v2 is not None and mode_v2 not in rel.precision_modes_v2:
        errors.append(e10001("--precision_mode_v2", mode_v2, rel.precision_reason
                             + ", ".join(rel.precision_modes_v2) + "."))
    if mode is not None and mode_v2 is not None:
        errors.append(e10001("--precision_mode_v2", mode_v2,
                             "--precision_mode and --precision_mode_v2 cannot be set at the same time."))
    soc = flags.get("soc_version", "")
    for value, param in ((mode, "--precision_mode"), (mode_v2, "--precision_mode_v2")):
        if value in BF16_MODES and not soc.startswith(BF16_SOCS):
            errors.append(e10001(param, value, f"(test double) bfloat16 modes are only supported on Atlas A2/A3 "
                                               f"products, not {soc}"))
    return errors


def onnx_inputs(path: str):
    import onnx

    model = onnx.load(path)
    initializers = {init.name for init in model.graph.initializer}
    return model, [i for i in model.graph.input if i.name not in initializers]


def check_shapes(flags: Dict[str, str], model, inputs) -> Tuple[str, List[int], List[int]]:
    """(input name, dims, batch gears) after the --input_shape / --dynamic_batch_size checks."""
    shape_text = flags.get("input_shape", "")
    if ";" in shape_text:
        raise Failure(e10001("--input_shape", shape_text, "(test double) only one input is implemented"))
    name, _, dims_text = shape_text.rpartition(":")
    if not name:
        raise Failure(e10001("--input_shape", shape_text, "the format is \"input_name1:n1,c1,h1,w1\""))
    known = {i.name: i for i in inputs}
    if name not in known:
        raise Failure(f"E10016: Opname [{name}] specified in [--input_shape] is not found in the model, confirm "
                      f"whether this node name exists (model inputs: {', '.join(known)}).")
    try:
        dims = [int(d) for d in dims_text.split(",")]
    except ValueError:
        raise Failure(e10001("--input_shape", shape_text, "dims must be integers"))
    graph_dims = known[name].type.tensor_type.shape.dim
    if len(dims) != len(graph_dims):
        raise Failure(e10001("--input_shape", shape_text,
                             f"the model input {name} has rank {len(graph_dims)}, not {len(dims)}"))
    for index, (want, have) in enumerate(zip(dims, graph_dims)):
        if index > 0 and have.dim_value and want != -1 and have.dim_value != want:
            raise Failure(e10001("--input_shape", shape_text, f"dim {index} of {name} is {have.dim_value} "
                                                              f"in the model"))
    gears: List[int] = []
    if flags.get("dynamic_batch_size"):
        text = flags["dynamic_batch_size"]
        if any(not (c.isdigit() or c in ", ") for c in text):
            raise Failure(f"E10003: Value [{text}] for parameter [dynamic_batch_size] is invalid. "
                          f"Reason: It can only contains digit, \",\", \" \"")
        gears = [int(b) for b in text.replace(" ", "").strip(",").split(",") if b]
        if dims[0] != -1 or dims.count(-1) != 1:
            raise Failure("E10031: At least one batch n must be equal to -1 when set dynamic_batch_size.")
        if len(gears) < 2 or len(set(gears)) != len(gears) or min(gears) < 1:
            raise Failure(e10001("--dynamic_batch_size", text, "give at least two different sizes >= 1"))
    elif min(dims) < 1:
        raise Failure(e10001("--input_shape", shape_text,
                             "-1 in a dim needs --dynamic_batch_size (or a shape range)"))
    return name, dims, gears


def print_help(rel: Release) -> int:
    print(f"{PROGRAM}: {rel.help_text}")
    print("\n  No modules matched: use -help")
    return 1


def main(release_id: str, argv: List[str]) -> int:
    rel = RELEASES[release_id]
    print(START, flush=True)
    try:
        flags = parse_gflags(rel, argv)
    except GflagsExit as stop:
        return stop.code
    if _truthy(flags.get("version")):
        print(PROGRAM)
        return 0
    if any(_truthy(flags.get(name)) for name in HELP_FLAGS):
        return print_help(rel)
    log = flags.get("log", "null")
    if log not in LOG_LEVELS:
        print(f"E10010: invalid value for --log:{log}, only support debug, info, warning, error, null")
        print(FAILED)
        return 255
    try:
        if flags.get("mode", "0") != "0":
            raise Failure(e10001("--mode", flags["mode"], "(test double) only 0 (generate offline model) is "
                                                         "implemented"))
        if flags.get("singleop"):
            raise Failure(e10001("--singleop", flags["singleop"], "(test double) not implemented"))
        errors = check_flags(rel, flags)
        if errors:
            raise Failure(*errors)
        if os.environ.get("FAKE_ATC_FAIL") == "1":
            raise Failure(
                "E19010: No parser is registered for Op [node_fake, optype [ai.onnx::11::FakeOp]].",
                "        Solution: (test double) FAKE_ATC_FAIL=1 is set.",
                "        TraceBack (most recent call last):",
                "        build graph failed, graph id:0, ret:-1[FUNC:BuildModel][FILE:ge_generator.cc]",
            )
        model, inputs = onnx_inputs(flags["model"])
        name, dims, gears = check_shapes(flags, model, inputs)
    except Failure as failure:
        print(FAILED)
        for message in failure.messages:
            print(message)
        return 255

    output = flags["output"]
    parent = os.path.dirname(output)
    if parent:
        os.makedirs(parent, exist_ok=True)  # GE's CheckOutputPathValid creates the folder
    with open(flags["model"], "rb") as handle:
        onnx_bytes = handle.read()
    meta = {
        "test_double": True,
        "soc_version": flags["soc_version"],
        "input_name": name,
        "input_shape": dims,
        "dynamic_batch_size": gears,
        "precision_mode": flags.get("precision_mode"),
        "outputs": [o.name for o in model.graph.output],
    }
    fake_om.write(om_name(release_id, output, flags), meta, onnx_bytes)
    with open("fusion_result.json", "w") as handle:
        json.dump({"graph_fusion": {}, "ub_fusion": {}, "test_double": True, "release": rel.id}, handle)
    print(SUCCESS)
    return 0
