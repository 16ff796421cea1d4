#!/bin/sh
# Checks made before a containerized build or stage run, so that a missing
# piece is reported as one line naming it and the fix, instead of as a
# docker error several screens up.
#
#   preflight.sh [--image IMAGE --hint TARGET] [--writable DIR]...
#                [--npu DEVICE]... [--ascend-runtime]
#
# Always checks for the docker client and a reachable daemon. Exits 2 on the
# first problem found.
set -eu

docker=${DOCKER:-docker}
image=; hint=; writable=; npu=; ascend_runtime=

fail() {
    echo "error: $*" >&2
    exit 2
}

while [ $# -gt 0 ]; do
    case $1 in
        --image) image=$2; shift 2 ;;
        --hint) hint=$2; shift 2 ;;
        --writable) writable="$writable $2"; shift 2 ;;
        --npu) npu="$npu $2"; shift 2 ;;
        --ascend-runtime) ascend_runtime=1; shift ;;
        *) fail "preflight.sh: unknown argument $1" ;;
    esac
done

command -v "$docker" >/dev/null 2>&1 \
    || fail "docker client '$docker' not found on PATH: install Docker (e.g. apt-get install docker.io), or run the stages with RUNNER=host"

if ! info_err=$("$docker" info 2>&1 >/dev/null); then
    reason=$(printf '%s\n' "$info_err" | grep -v '^[[:space:]]*$' | tail -n 1)
    fail "Docker daemon not reachable ('docker info' failed: ${reason:-no output}): start it (systemctl start docker, or dockerd &) and check that you may use its socket (docker group)"
fi

if [ -n "$image" ] && ! "$docker" image inspect "$image" >/dev/null 2>&1; then
    fail "image $image not found: build it with 'make ${hint:-images}'"
fi

user="$(id -u):$(id -g)"
for dir in $writable; do
    # Created here, as the invoking user: a bind-mount source that does not
    # exist would be created by the daemon, owned by root.
    mkdir -p "$dir" 2>/dev/null && [ -w "$dir" ] && [ -x "$dir" ] \
        || fail "folder $dir is not writable by $user, the user the containers run as: sudo chown -R $user $dir, or point ARTIFACTS (or DOCKER_DATA_DIR) at a folder you own"
done

if [ -n "$ascend_runtime" ]; then
    "$docker" info --format '{{json .Runtimes}}' 2>/dev/null | grep -q '"ascend"' \
        || fail "Docker has no 'ascend' runtime (ASCEND_DOCKER_RUNTIME=1): install Ascend Docker Runtime, or leave ASCEND_DOCKER_RUNTIME unset to mount the NPU devices directly"
fi

if [ -n "$npu" ]; then
    for id in $npu; do
        [ -c "/dev/davinci$id" ] \
            || fail "no NPU device /dev/davinci$id on this host: the runtime stages need an Ascend NPU with its driver loaded (npu-smi info lists the devices; choose them with DEVICES=<n>[,<n>...])"
    done
    # Bind-mount sources that are missing would be created empty by the
    # daemon (as root), and the container would fail later and less clearly.
    for path in /dev/davinci_manager /dev/devmm_svm /dev/hisi_hdc \
                /usr/local/dcmi /usr/local/bin/npu-smi \
                /usr/local/Ascend/driver/lib64 /usr/local/Ascend/driver/version.info \
                /etc/ascend_install.info; do
        [ -e "$path" ] \
            || fail "$path not found: the Ascend driver is not (fully) installed on this host; install the NPU driver and firmware, or use Ascend Docker Runtime (ASCEND_DOCKER_RUNTIME=1)"
    done
fi
exit 0
