#!/usr/bin/env python3
# TEST DOUBLE of ais_infer.py, release "ais_infer-2022-09" -- NOT the real tool (no CANN, no NPU:
# the fake .om runs on onnxruntime, see ../_engine). Run as `python3 <this folder>/ais_infer.py ...`;
# there is no `python3 -m ais_bench` in this release and no --warmup_count (argparse refuses it, exit 2).
#
# Source of each behaviour: Ascend/tools@63a74de (2022-09-08), ais-bench_workload/tool/ais_infer/
#   ais_infer.py            flags (get_args: --output_dirname added, --loop/-r positive, --debug bool,
#                           "--device" passed twice, --profiler/--dump switches, --infer_queue_count);
#                           profiler+dump and profiler/dump without --output refused after parsing;
#                           --output_dirname without --output is silently ignored; output folder
#                           os.mkdir(<output>/<output_dirname or %Y_%m_%d-%H_%M_%S>, 0o755): the parent must
#                           exist and the folder must not; warmup(): ONE run on --pure_data_type data before
#                           the inputs are read, "warm up 1 times done"; infer_loop_run()
#   backend ModelInferenceProcessor.cpp  options.loop executions per batch, each timed
#                           (exec_time_list -> npu_compute_time_list: batches x loop entries)
#   frontend/io_oprations.py  check_input_parameter; runcount ceil, the short last batch padded with the
#                           first file (no output for padding); outputs {input stem}_{i}.{bin|npy|txt};
#                           no-input runs name theirs pure_infer_data_{i}; D2H one entry per batch
#   frontend/summary.py     sumary.json (sic) inside the output folder, no count, no npu_compute_time_list,
#                           no pid; all three latency lines; "throughput 1000*batchsize({})/NPU_compute_time.mean({}): {}"
#   frontend/utils.py       natural sort of a folder's files; TXT outputs appended
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.realpath(__file__))))  # the _engine package

from _engine import Release, flags as F, run  # noqa: E402

RELEASE = Release(
    id="ais_infer-2022-09",
    title="ais_infer.py, Ascend/tools@63a74de (2022-09-08)",
    launcher="script",
    flags=(F.MODEL_OM, F.INPUT, F.OUTPUT, F.OUTPUT_DIRNAME, F.OUTFMT, F.LOOP_R, F.DEBUG, F.DEVICE_TWICE,
           F.DYMBATCH_INT, F.DYMHW, F.DYMDIMS, F.DYMSHAPE, F.OUTPUTSIZE, F.BATCHSIZE_INT, F.PURE_DATA_TYPE,
           F.PROFILER_SWITCH, F.DUMP_SWITCH, F.ACL_JSON_PATH, F.INFER_QUEUE_COUNT),
    rules=("profiler-dump", "profiler-needs-output"),
    output_dir="mkdir",
    naming="stem",
    summary="inside",
    summary_extras=False,
    warmup=("pure", 1, "info"),
    compute_time="per_execute",
    d2h="per_batch",
    throughput_line="throughput 1000*batchsize({batch})/NPU_compute_time.mean({mean}): {value}",
    all_latency=True,
    sort="natural",
    runcount="ceil",
    input_check="2022",
    host_size_check=True,
    progress="Inference Processing",
    txt_append=True,
)

if __name__ == "__main__":
    sys.exit(run(RELEASE))
