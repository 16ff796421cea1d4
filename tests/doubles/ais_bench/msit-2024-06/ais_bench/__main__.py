# TEST DOUBLE of `python3 -m ais_bench` as shipped with msit benchmark, release "msit-2024-06" --
# NOT the real tool (no CANN, no NPU: the fake .om runs on onnxruntime, see ../../_engine). Found with
# PYTHONPATH=<release folder> (tests/doubles/ais_bench/releases.py: env_for).
#
# Source of each behaviour: Ascend/msit@42a9c807 (2024-06-24), ait/components/benchmark/ais_bench/
#   __main__.py, infer/__main__.py  flags (get_args: --model/-m, --loop/-l, --device/-d (a comma list runs
#                      one inference per device), --warmup_count/--warmup-count, --dymShape/--dym-shape,
#                      --dymBatch positive, --batchsize default None = the model's, ...); path arguments
#                      checked by argparse type functions (exit 2)
#   infer/args_check.py         check_om_path_legality ("om path:{} is illegal. Please check.": read check,
#                      .om suffix, 10 GB), check_input_path_legality ("input path:{} is illegal. Please
#                      check." for each comma-separated path), check_output_path_legality (for --output and
#                      --output_dirname: "output path:{} is illegal. Please check."; a refused path string
#                      says "weight path:{} ..." (sic))
#   infer/path_security_check.py  FileStat on the path AS GIVEN: chars A-Za-z0-9_-/. only, no symlink,
#                      owner or group member, read: no group/other write; write (if it exists): no group/other
#                      write (0o755 passes); ms_open writes files 0o640
#   infer/utils.py              every entry of an input folder checked the same way ('input data:{} is illegal')
#   infer/benchmark_process.py  args_rules (profiler/dump, "--output_dirname do not support abs path!",
#                      "--output_dirname cann't be used alone"); batchsize from the model ("try get model
#                      batchsize"), "dynamic batch om model detected, but dymbatch, dymdims or dymshape not set!";
#                      os.makedirs(<output>/<dirname or timestamp>, 0o750) unless it exists, then
#                      os.chmod(<output>, 0o750); warm-up as 2022-11 (--warmup_count on the first batch)
#   infer/summary.py            <output>/<dirname>_summary.json beside the folder with count,
#                      npu_compute_time_list, pid; "throughput 1000*batchsize.mean({})/NPU_compute_time.mean({}): {}"
#   setup.py                    distribution ait-benchmark 7.0.0c2 (so no "ais_bench" distribution version)
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.realpath(__file__)))))  # _engine

from _engine import Release, flags as F, run  # noqa: E402

RELEASE = Release(
    id="msit-2024-06",
    title="python3 -m ais_bench (msit benchmark), Ascend/msit@42a9c807 (2024-06-24)",
    launcher="module",
    flags=tuple(F.MSIT.values()),
    checks="msit-2024-06",
    rules=("profiler-dump", "dirname-not-abs", "profiler-needs-output", "profiler-no-warmup",
           "dirname-needs-output", "threads-need-pipeline"),
    output_dir="makedirs-chmod",
    naming="stem",
    summary="beside",
    summary_extras=True,
    warmup=("flag",),
    compute_time="per_execute",
    d2h="per_output",
    throughput_line="throughput 1000*batchsize.mean({batch})/NPU_compute_time.mean({mean}): {value}",
    all_latency=False,
    sort="natural",
    runcount="ceil",
    input_check="msit",
    host_size_check=False,
    progress="{mode}",
    batch_from_model=True,
    multi_device=True,
)

if __name__ == "__main__":
    sys.exit(run(RELEASE))
