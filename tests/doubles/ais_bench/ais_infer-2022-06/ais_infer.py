#!/usr/bin/env python3
# TEST DOUBLE of ais_infer.py, release "ais_infer-2022-06" -- NOT the real tool (no CANN, no NPU:
# the fake .om runs on onnxruntime, see ../_engine). Run as `python3 <this folder>/ais_infer.py ...`,
# as the real script was run from its tool folder; there is no `python3 -m ais_bench` in this release.
#
# Source of each behaviour: Ascend/tools@256ed1f (2022-06-30), ais-bench_workload/tool/ais_infer/
#   ais_infer.py            flags (get_args); order: session, output folder, warm-up, inputs;
#                           output folder os.mkdir(<output>/<%Y_%m_%d-%H_%M_%S>, 0o755) (parent must
#                           exist, no --output_dirname); warmup(): 5 runs on --pure_data_type data, logged
#                           at debug; run_inference(): one time per batch = time of run_execute(loop) / loop
#   frontend/io_oprations.py  files per batch from the first file's size, runcount floor (a short last
#                           batch is dropped), folder files sorted plainly; outputs
#                           sample_id_{n}_output_{i}.{bin|npy}; D2H timed only when outputs are saved;
#                           'ndata size:{} not match {}'
#   frontend/summary.py     sumary.json (sic) inside the output folder: filesinfo, args,
#                           NPU_compute_time/H2D_latency/D2H_latency {min,max,mean,median,percentile(99%)},
#                           throughput -- no count, no npu_compute_time_list, no pid; log line
#                           "throughput (1000*batchsize/NPU_compute_time): {}"
#   frontend/utils.py       logging '[%(levelname)s] %(message)s' to stdout; .npy/.NPY/.bin/.BIN inputs
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.realpath(__file__))))  # the _engine package

from _engine import Release, flags as F, run  # noqa: E402

RELEASE = Release(
    id="ais_infer-2022-06",
    title="ais_infer.py, Ascend/tools@256ed1f (2022-06-30)",
    launcher="script",
    flags=(F.MODEL_OM, F.INPUT, F.OUTPUT_2022_06, F.OUTFMT_NPY_BIN, F.LOOP_R_INT, F.DEBUG_SWITCH, F.DEVICE_ID,
           F.DYMBATCH_INT, F.DYMHW, F.DYMDIMS, F.DYMSHAPE, F.OUTPUTSIZE, F.ACL_JSON_PATH, F.BATCHSIZE_INT,
           F.PURE_DATA_TYPE),
    output_dir="mkdir",
    naming="sample_id",
    summary="inside",
    summary_extras=False,
    warmup=("pure", 5, "debug"),
    compute_time="per_call",
    d2h="per_output_saved",
    throughput_line="throughput (1000*batchsize/NPU_compute_time): {value}",
    all_latency=True,
    sort="plain",
    runcount="floor",
    input_check=None,
    host_size_check=True,
    progress="Inference Processing task",
)

if __name__ == "__main__":
    sys.exit(run(RELEASE))
