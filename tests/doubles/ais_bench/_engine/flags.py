# TEST DOUBLE support: the flags of the ais_infer / ais_bench releases, one definition per
# variant; each release file lists the ones it has, in its own order.
#
# Names, short aliases, types, defaults and choices follow the releases' get_args():
#   2022-06  Ascend/tools@256ed1f  ais-bench_workload/tool/ais_infer/ais_infer.py
#   2022-09  Ascend/tools@63a74de  ais-bench_workload/tool/ais_infer/ais_infer.py
#   2022-11  Ascend/tools@4ce01e3  ais-bench_workload/tool/ais_infer/ais_bench/infer/__main__.py
#   msit     Ascend/msit@42a9c807  ait/components/benchmark/ais_bench/infer/__main__.py
#   2025     Ascend/tools master@8da7f645 (gitee) ais-bench_workload/tool/ais_bench/ais_bench/infer/utils.py
# Help strings are the releases' own, some shortened.
from .release import Flag

# ---- 2022 (ais_infer.py and the first ais_bench package) ---------------------------------
MODEL_OM = Flag(("--model", "--om"), "model", required=True, help="the path of the om model")
INPUT = Flag(("--input", "-i"), "input", help="input file or dir")
OUTPUT_2022_06 = Flag(("--output", "-o"), "output", help="output")
OUTPUT = Flag(("--output", "-o"), "output",
              help="Inference data output path. The inference results are output to the subdirectory named "
                   "current date under given output path")
OUTPUT_DIRNAME = Flag(("--output_dirname",), "output_dirname", type=None,
                      help="actual output directory name. Used with parameter output, cannot be used alone. "
                           "The inference result is output to subdirectory named by output_dirname under output "
                           "path. such as --output_dirname 'tmp', the final inference results are output to the "
                           "folder of {$output}/tmp")
OUTFMT_NPY_BIN = Flag(("--outfmt",), "outfmt", default="BIN", choices=["NPY", "BIN"],
                      help="Output file format (NPY or BIN)")
OUTFMT = Flag(("--outfmt",), "outfmt", default="BIN", choices=["NPY", "BIN", "TXT"],
              help="Output file format (NPY or BIN or TXT)")
LOOP_R_INT = Flag(("--loop", "-r"), "loop", type="int", default=1, help="the round of the PrueInfer.")
LOOP_R = LOOP_R_INT.but(type="positive")
DEBUG_SWITCH = Flag(("--debug",), "debug", action="store_true", help="Debug switch,print model information")
DEBUG = Flag(("--debug",), "debug", type="str2bool", default=False, help="Debug switch,print model information")
DEVICE_ID = Flag(("--device_id", "--device"), "device", type="int", default=0, choices=range(0, 255),
                 help="the NPU device ID to use")
# 63a74de and 4ce01e3 really pass "--device" twice (argparse lists it twice in --help)
DEVICE_TWICE = DEVICE_ID.but(names=("--device", "--device"))
DEVICE_TWICE_CHECKED = Flag(("--device", "--device"), "device", type="device-2022-11", default=0,
                            help="the NPU device ID to use.valid value range is [0, 255]")
DYMBATCH_INT = Flag(("--dymBatch",), "dym_batch", type="int", default=0,
                    help="dynamic batch size param，such as --dymBatch 2")
DYMHW = Flag(("--dymHW",), "dym_hw", help='dynamic image size param, such as --dymHW "300,500"')
DYMDIMS = Flag(("--dymDims",), "dym_dims", help='dynamic dims param, such as --dymDims "data:1,600;img_info:1,600"')
DYMSHAPE = Flag(("--dymShape",), "dym_shape", help='dynamic shape param, such as --dymShape "data:1,600;img_info:1,600"')
OUTPUTSIZE = Flag(("--outputSize",), "output_size", help="output size for dynamic shape mode")
ACL_JSON_PATH = Flag(("--acl_json_path",), "acl_json_path", help="acl json path for profiling or dump")
BATCHSIZE_INT = Flag(("--batchsize",), "batchsize", type="int", default=1, help="batch size of input tensor")
BATCHSIZE = BATCHSIZE_INT.but(type="positive")
PURE_DATA_TYPE = Flag(("--pure_data_type",), "pure_data_type", default="zero", choices=["zero", "random"],
                      help="null data type for pure inference(zero or random)")
PROFILER_SWITCH = Flag(("--profiler",), "profiler", action="store_true", help="profiler switch")
DUMP_SWITCH = Flag(("--dump",), "dump", action="store_true", help="dump switch")
PROFILER = Flag(("--profiler",), "profiler", type="str2bool", default=False, help="profiler switch")
DUMP = Flag(("--dump",), "dump", type="str2bool", default=False, help="dump switch")
INFER_QUEUE_COUNT = Flag(("--infer_queue_count",), "infer_queue_count", type="positive", default=20,
                         help="Maximum number of data in inference queue, such as --maxqueue 15")
AUTO_DYMSHAPE = Flag(("--auto_set_dymshape_mode",), "auto_set_dymshape_mode", type="str2bool", default=False,
                     help="auto_set_dymshape_mode")
AUTO_DYMDIMS = Flag(("--auto_set_dymdims_mode",), "auto_set_dymdims_mode", type="str2bool", default=False,
                    help="auto_set_dymdims_mode")
OUTPUT_BATCHSIZE_AXIS = Flag(("--output_batchsize_axis",), "output_batchsize_axis", type="nonnegative", default=0,
                             help="splitting axis number when outputing tensor results, such as "
                                  "--output_batchsize_axis 12")
RUN_MODE = Flag(("--run_mode",), "run_mode", default="array", choices=["array", "files", "tensor", "full"],
                help="run mode")
DISPLAY_ALL_SUMMARY = Flag(("--display_all_summary",), "display_all_summary", type="str2bool", default=False,
                           help="display all summary include h2d d2h info")
WARMUP_COUNT = Flag(("--warmup_count",), "warmup_count", type="nonnegative", default=1,
                    help="warmup count before inference")
DYMSHAPE_RANGE = Flag(("--dymShape_range",), "dym_shape_range",
                      help='dynamic shape range, such as --dymShape_range "data:1,600~700;img_info:1,600-700"')

# ---- msit benchmark (2024-06): checked paths, dests in snake case ---------------------------
M = "msit-2024-06"
MSIT = dict(
    model=Flag(("--model", "-m"), "model", type=f"om_path@{M}", required=True, help="The path of the om model"),
    input=Flag(("--input", "-i"), "input", type=f"input_path@{M}", help="Input file or dir"),
    output=OUTPUT.but(type=f"output_path@{M}"),
    output_dirname=OUTPUT_DIRNAME.but(type=f"output_path@{M}"),
    outfmt=OUTFMT,
    loop=Flag(("--loop", "-l"), "loop", type="positive", default=1, help="The round of the PureInfer."),
    debug=DEBUG,
    device=Flag(("--device", "-d"), "device", type="device-msit", default=0,
                help="The NPU device ID to use.valid value range is [0, 255]"),
    dym_batch=Flag(("--dymBatch",), "dym_batch", dest="dym_batch", type="positive", default=0,
                   help="Dynamic batch size param，such as --dymBatch 2"),
    dym_hw=DYMHW.but(dest="dym_hw", type="dym-string"),
    dym_dims=DYMDIMS.but(dest="dym_dims", type="dym-string"),
    dym_shape=DYMSHAPE.but(names=("--dymShape", "--dym-shape"), dest="dym_shape", type="dym-string"),
    output_size=OUTPUTSIZE.but(dest="output_size", type="number-list-msit"),
    auto_set_dymshape_mode=AUTO_DYMSHAPE,
    auto_set_dymdims_mode=AUTO_DYMDIMS,
    batchsize=Flag(("--batchsize",), "batchsize", type="batchsize", default=None, help="Batch size of input tensor"),
    pure_data_type=PURE_DATA_TYPE,
    profiler=PROFILER,
    dump=DUMP,
    acl_json_path=ACL_JSON_PATH.but(type=f"acl_json_path@{M}"),
    output_batchsize_axis=OUTPUT_BATCHSIZE_AXIS,
    run_mode=RUN_MODE,
    display_all_summary=DISPLAY_ALL_SUMMARY,
    warmup_count=WARMUP_COUNT.but(names=("--warmup_count", "--warmup-count")),
    dym_shape_range=DYMSHAPE_RANGE.but(dest="dym_shape_range", type="dym-range-msit"),
    aipp_config=Flag(("--aipp_config",), "aipp_config", type=f"aipp_config_path@{M}",
                     help="File type: .config, to set actual aipp params before infer"),
    energy_consumption=Flag(("--energy_consumption",), "energy_consumption", type="str2bool", default=False,
                            help="Obtain power consumption data for model inference"),
    npu_id=Flag(("--npu_id",), "npu_id", type="nonnegative", default=0,
                help="The NPU ID to use.valid value range is [0, 255]"),
    backend=Flag(("--backend",), "backend", choices=["trtexec"], help="Backend trtexec"),
    perf=Flag(("--perf",), "perf", type="str2bool", default=False, help="Perf switch"),
    pipeline=Flag(("--pipeline",), "pipeline", type="str2bool", default=False, help="Pipeline switch"),
    profiler_rename=Flag(("--profiler_rename",), "profiler_rename", type="str2bool", default=True,
                         help="Profiler rename switch"),
    dump_npy=Flag(("--dump_npy",), "dump_npy", type="str2bool", default=False, help="dump data convert to npy"),
    divide_input=Flag(("--divide_input",), "divide_input", type="str2bool", default=False,
                      help="Input datas need to be divided to match multi devices or not, --device should be list"),
    threads=Flag(("--threads",), "threads", dest="threads", type="positive", default=1,
                 help="Number of threads for computing. need to set --pipeline when setting threads number to be "
                      "more than one."),
)

# ---- Ascend/tools master (2025): msit's set, its own checks, fewer aliases ------------------
T = "master-2025"
MASTER_2025 = dict(MSIT)
MASTER_2025.update(
    model=MSIT["model"].but(type=f"om_path@{T}"),
    input=MSIT["input"].but(type=f"input_path@{T}"),
    output=MSIT["output"].but(type=f"output_path@{T}"),
    output_dirname=MSIT["output_dirname"].but(type=f"output_path@{T}"),
    loop=MSIT["loop"].but(type="loop-2025"),
    device=MSIT["device"].but(type="device-2025"),
    dym_batch=MSIT["dym_batch"].but(type="positive-2025"),
    dym_shape=MSIT["dym_shape"].but(names=("--dymShape",)),
    output_size=MSIT["output_size"].but(type="number-list-2025"),
    batchsize=MSIT["batchsize"].but(type="batchsize-2025"),
    acl_json_path=MSIT["acl_json_path"].but(type=f"acl_json_path@{T}"),
    output_batchsize_axis=OUTPUT_BATCHSIZE_AXIS.but(type="nonnegative-2025"),
    warmup_count=WARMUP_COUNT.but(type="nonnegative-2025"),
    dym_shape_range=MSIT["dym_shape_range"].but(type="dym-range-2025"),
    aipp_config=MSIT["aipp_config"].but(type=f"aipp_config_path@{T}"),
    npu_id=MSIT["npu_id"].but(type="device-2025"),
    threads=MSIT["threads"].but(type="positive-2025"),
)
