# TEST DOUBLE of `python3 -m ais_bench`, release "ais_bench-2022-11" -- NOT the real tool (no CANN,
# no NPU: the fake .om runs on onnxruntime, see ../../_engine). Found with PYTHONPATH=<release folder>
# (tests/doubles/ais_bench/releases.py: env_for); no path security checks in this release.
#
# Source of each behaviour: Ascend/tools@4ce01e3 (2022-11-29), ais-bench_workload/tool/ais_infer/
#   ais_bench/__main__.py          runs infer/__main__.py (so argparse's prog is "__main__.py")
#   ais_bench/infer/__main__.py    flags (get_args: --warmup_count, --display_all_summary, --run_mode,
#                                  --output_batchsize_axis, --batchsize positive, "--device" twice with a
#                                  range check that never fires); profiler rules; output folder
#                                  os.makedirs(<output>/<output_dirname or %Y_%m_%d-%H_%M_%S>, 0o755) unless it
#                                  exists (parents made, an existing folder reused); inputs read, then warmup():
#                                  --warmup_count runs (default 1) on the first batch with loop 1, not counted,
#                                  "warm up {n} done"; then each batch --loop times
#   ais_bench/infer/io_oprations.py  check_input_parameter, runcount ceil with padding, outputs
#                                  {input stem}_{i}.{fmt} split along --output_batchsize_axis, pure_infer_data_{i}
#   ais_bench/infer/summary.py     <output>/<dirname>_summary.json BESIDE the folder, each stats block with
#                                  "count", plus npu_compute_time_list and pid; H2D/D2H lines only with
#                                  --display_all_summary; "throughput 1000*batchsize({})/NPU_compute_time.mean({}): {}"
#   setup.py                       distribution ais_bench 0.0.2 (../ais_bench-0.0.2.dist-info)
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.realpath(__file__)))))  # _engine

from _engine import Release, flags as F, run  # noqa: E402

RELEASE = Release(
    id="ais_bench-2022-11",
    title="python3 -m ais_bench, Ascend/tools@4ce01e3 (2022-11-29)",
    launcher="module",
    flags=(F.MODEL_OM, F.INPUT, F.OUTPUT, F.OUTPUT_DIRNAME, F.OUTFMT, F.LOOP_R, F.DEBUG, F.DEVICE_TWICE_CHECKED,
           F.DYMBATCH_INT, F.DYMHW, F.DYMDIMS, F.DYMSHAPE, F.OUTPUTSIZE, F.AUTO_DYMSHAPE, F.AUTO_DYMDIMS,
           F.BATCHSIZE, F.PURE_DATA_TYPE, F.PROFILER, F.DUMP, F.ACL_JSON_PATH, F.OUTPUT_BATCHSIZE_AXIS,
           F.RUN_MODE, F.DISPLAY_ALL_SUMMARY, F.WARMUP_COUNT, F.DYMSHAPE_RANGE),
    rules=("profiler-dump", "profiler-needs-output", "profiler-no-warmup"),
    output_dir="makedirs",
    naming="stem",
    summary="beside",
    summary_extras=True,
    warmup=("flag",),
    compute_time="per_execute",
    d2h="per_output",
    throughput_line="throughput 1000*batchsize({batch})/NPU_compute_time.mean({mean}): {value}",
    all_latency=False,
    sort="natural",
    runcount="ceil",
    input_check="2022",
    host_size_check=False,
    progress="{mode}",
    txt_append=True,
)

if __name__ == "__main__":
    sys.exit(run(RELEASE))
