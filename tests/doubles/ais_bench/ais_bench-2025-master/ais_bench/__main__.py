# TEST DOUBLE of `python3 -m ais_bench`, release "ais_bench-2025-master" -- NOT the real tool (no CANN,
# no NPU: the fake .om runs on onnxruntime, see ../../_engine). Found with PYTHONPATH=<release folder>
# (tests/doubles/ais_bench/releases.py: env_for).
#
# Source of each behaviour: Ascend/tools master@8da7f645 (gitee, 2025-12-18; its history is carried by
# github Yanguan619/aclruntime), ais-bench_workload/tool/ais_bench/ais_bench/
#   __main__.py                 get_args + check_int_args_max_limit (--threads <= 64, --warmup_count <= 10000,
#                      --batchsize/--dymBatch <= 4096, --output_batchsize_axis <= 8: ValueError, exit 1)
#   infer/utils.py              flags: msit's set without the --dym-shape and --warmup-count aliases;
#                      --loop/-l check_loop_size (1..100000); integers must be plain digits
#   infer/args_check.py         check_om_path_legality ("om path string is illegal. Please check." for a refused
#                      string, else "om path:{} is illegal. Please check.": read check, .om suffix, 10 GB);
#                      check_input_path_legality (at most 1024 comma-separated paths -- beyond, argparse's
#                      "invalid check_input_path_legality value"; "input path string is illegal. Please check." /
#                      "input path:{} is illegal. Please check."); check_output_path_legality for --output and
#                      --output_dirname ("output path string is illegal. Please check." / "output path is not a
#                      directory" / "output path:{} is illegal. Please check.")
#   infer/common/path_security_check.py  FileStat on the ABSOLUTE path: chars A-Za-z0-9_-/. only (the cwd
#                      counts for relative paths), no symlink, owner or group member; read: no group/other
#                      write; write (if it exists): no group write and no other r/w/x -- 0o750 at most, so a
#                      0o755 --output folder is refused; ms_open writes files 0o640
#   infer/common/utils.py       each entry of an input folder checked ('input data:{} is illegal'), <= 100000 files
#   infer/infer_process.py      args_rules as msit; an existing <output>/<dirname> must pass the read check
#                      (check_output_dir_legality), a missing one is made part by part with 0o750
#                      (makedirs_safe); no chmod of --output; warm-up, batches and summary as msit
#   infer/summary.py            <output>/<dirname>_summary.json beside the folder (count, npu_compute_time_list,
#                      pid); "throughput 1000*batchsize.mean({})/NPU_compute_time.mean({}): {}"
#   setup.py                    distribution ais_bench 0.0.2 (../ais_bench-0.0.2.dist-info)
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.realpath(__file__)))))  # _engine

from _engine import Release, flags as F, run  # noqa: E402

RELEASE = Release(
    id="ais_bench-2025-master",
    title="python3 -m ais_bench, Ascend/tools master@8da7f645 (2025-12-18)",
    launcher="module",
    flags=tuple(F.MASTER_2025.values()),
    checks="master-2025",
    rules=("int-limits-2025", "profiler-dump", "dirname-not-abs", "profiler-needs-output", "profiler-no-warmup",
           "dirname-needs-output", "threads-need-pipeline"),
    output_dir="makedirs-safe",
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
