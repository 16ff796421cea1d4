#!/usr/bin/env bash
# The body of `make test-docker` (see docker/docker.mk): build the images,
# run the CPU pipeline stage by stage with RUNNER=docker and with
# RUNNER=host into an emptied folder, compare the two runs, check that every
# file the containers wrote belongs to the caller, and print the wall time
# of every step. Each step's output goes to TEST_DIR/logs/; a failing step
# shows its log's tail.
#
#   MAKE_CMD='make -f Makefile' PYTHON_HOST=.venv/bin/python TEST_DIR=/abs/dir \
#   MIN_TOKEN_COS=0.9999 bash docker/test-docker.sh [VAR=VALUE...]
#
# VAR=VALUE arguments are passed to every pipeline make call.
set -uo pipefail

die() { echo "test-docker: error: $*" >&2; exit 2; }
[ -n "${MAKE_CMD:-}" ] && [ -n "${PYTHON_HOST:-}" ] && [ -n "${TEST_DIR:-}" ] \
    || die "MAKE_CMD, PYTHON_HOST and TEST_DIR must be set (run it as make test-docker)"
MIN_TOKEN_COS=${MIN_TOKEN_COS:-0.9999}
repo=$(cd "$(dirname "$0")/.." && pwd)
case $TEST_DIR in
    /*) ;;
    *) die "TEST_DIR=$TEST_DIR must be absolute" ;;
esac
# It is emptied below: never a folder that holds anything but this test.
for guard in / "$repo" "$repo/data" "${HOME:-/}"; do
    [ "$(readlink -f "$TEST_DIR")" != "$(readlink -f "$guard")" ] || die "refusing to empty TEST_DIR=$TEST_DIR"
done

read -r -a make_cmd <<< "$MAKE_CMD"
vars=("$@")
steps=(weights data export simplify om infer accuracy)
logs=$TEST_DIR/logs
declare -A seconds
order=()
started_all=$(date +%s.%N)

elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }

report_timings() {
    echo
    echo "test-docker: wall time per step (s)"
    printf '  %-10s %10s %10s\n' step docker host
    local step
    for step in "${order[@]}"; do
        if [ -n "${seconds[$step]:-}" ]; then  # a step run once, not per runner
            printf '  %-10s %10s (once)\n' "$step" "${seconds[$step]}"
        else
            printf '  %-10s %10s %10s\n' "$step" "${seconds[docker:$step]:--}" "${seconds[host:$step]:--}"
        fi
    done
    echo "  total: $(elapsed "$started_all" "$(date +%s.%N)") s"
}

# timed KEY LABEL COMMAND...: runs COMMAND with its output in logs/, records its time.
timed() {
    local key=$1 label=$2 log start rc
    shift 2
    log=$logs/${key//:/-}.log
    start=$(date +%s.%N)
    "$@" > "$log" 2>&1
    rc=$?
    seconds[$key]=$(elapsed "$start" "$(date +%s.%N)")
    if [ "$rc" != 0 ]; then
        echo "test-docker: $label FAILED after ${seconds[$key]} s (exit $rc); last lines of $log:" >&2
        tail -n 40 "$log" >&2
        report_timings
        exit 1
    fi
    echo "test-docker: $label: ${seconds[$key]} s"
}

rm -rf "$TEST_DIR"
mkdir -p "$logs" || die "cannot create $logs"
echo "test-docker: in $TEST_DIR (${vars[*]}); step logs in $logs"

order+=(images)
timed images "images (base, export)" "${make_cmd[@]}" base-image image-export

for runner in docker host; do
    for step in "${steps[@]}"; do
        [ "$runner" = host ] || order+=("$step")
        timed "$runner:$step" "RUNNER=$runner make $step" \
            "${make_cmd[@]}" "$step" RUNNER="$runner" ARTIFACTS="$TEST_DIR/$runner" "${vars[@]}"
    done
    grep -h '^accuracy: ' "$logs/$runner-accuracy.log" | tail -n 1 | sed "s/^/test-docker: $runner /"
done

# The data folder's path is the pipeline's own (it encodes the settings).
data_of() { "${make_cmd[@]}" -s docker-print-DATA_DIR ARTIFACTS="$1" "${vars[@]}"; }
data_docker=$(data_of "$TEST_DIR/docker") && data_host=$(data_of "$TEST_DIR/host") \
    || die "cannot ask make for DATA_DIR"
order+=(compare)
# The module's own entry point: it works whether or not the stage registry
# (stages/__main__.py) lists compare-runs.
echo "test-docker: comparing the two runs (every token cosine >= $MIN_TOKEN_COS)"
timed compare "compare-runs" "$PYTHON_HOST" -m stages.reports.compare_runs --a "$TEST_DIR/docker" --b "$TEST_DIR/host" \
    --data "$data_host" --data-b "$data_docker" --min-token-cos "$MIN_TOKEN_COS" --out "$TEST_DIR/compare.json"
sed 's/^/  /' "$logs/compare.log"

# Containers run as -u uid:gid: nothing they wrote may belong to anyone else.
foreign=$(find "$TEST_DIR" \( ! -uid "$(id -u)" -o ! -gid "$(id -g)" \) -print | head -n 5)
if [ -n "$foreign" ]; then
    echo "test-docker: files not owned by $(id -u):$(id -g), e.g.:" >&2
    echo "$foreign" >&2
    report_timings
    exit 1
fi
echo "test-docker: every file under $TEST_DIR belongs to $(id -u):$(id -g)"
report_timings
echo "test-docker: PASSED"
