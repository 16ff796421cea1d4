#!/usr/bin/env bash
# Content-addressed image builds: an image's tag is a short sha256 of every
# input that goes into it, so a changed input gets a new tag (and a build)
# and an unchanged one is found with `docker image inspect` and skipped.
#
#   image.sh tag   NAME DOCKERFILE [INPUT...]
#   image.sh build NAME DOCKERFILE [INPUT...] [-- DOCKER_BUILD_ARG...]
#
# INPUT is a file or folder relative to the repository root (it keeps that
# path in the build context), or SRC=DEST to place SRC (any path) at DEST in
# the context. DOCKERFILE is always an input. The build context holds exactly
# the inputs, so what is hashed is what is built.
#
# Environment: BASE_IMAGE (hashed by name, passed as a build arg), EXTRA_CA
# (a CA bundle placed at extra-ca/ca.pem in the context; not hashed, since it
# only lets pip reach PyPI and changes nothing in the image), DOCKER.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
docker=${DOCKER:-docker}
# Digests of files above this size are cached by (path, size, mtime): CANN
# installers are gigabytes and the tag is computed on every make run.
big=$((64 * 1024 * 1024))
cache_file=${XDG_CACHE_HOME:-${HOME:-/tmp}/.cache}/elmo-docker/digests

die() { echo "error: $*" >&2; exit 1; }

digest() {
    local path=$1 size mtime key hit sum
    size=$(stat -c %s "$path")
    if [ "$size" -lt "$big" ]; then
        sha256sum < "$path" | cut -c1-64
        return
    fi
    mtime=$(stat -c %Y "$path")
    key="$(readlink -f "$path") $size $mtime"
    if [ -r "$cache_file" ]; then
        hit=$(awk -v k="$key" 'substr($0, 1, length(k) + 1) == k " " { d = $NF } END { print d }' "$cache_file")
        if [ -n "$hit" ]; then echo "$hit"; return; fi
    fi
    sum=$(sha256sum < "$path" | cut -c1-64)
    mkdir -p "$(dirname "$cache_file")" 2>/dev/null &&
        echo "$key $sum" >> "$cache_file" 2>/dev/null || true
    echo "$sum"
}

# "DEST<TAB>SRC" for every file of every input, sorted by DEST. Byte-compiled
# files are left out: the host's Python writes them, they are not inputs.
list_inputs() {
    local spec src dest f
    for spec in "$@"; do
        if [[ $spec == *=* ]]; then src=${spec%%=*}; dest=${spec#*=}; else src=$spec; dest=$spec; fi
        dest=${dest%/}
        [[ $src == /* ]] || src=$repo/$src
        [ -e "$src" ] || die "build input $src does not exist"
        if [ -d "$src" ]; then
            (cd "$src" && find . -type f ! -path '*/__pycache__/*' ! -name '*.pyc' | sed 's:^\./::') |
                while IFS= read -r f; do printf '%s\t%s\n' "$dest/$f" "${src%/}/$f"; done
        else
            printf '%s\t%s\n' "$dest" "$src"
        fi
    done | LC_ALL=C sort -u -t "$(printf '\t')" -k1,1
}

compute_tag() {
    local name=$1; shift
    {
        printf 'base\t%s\n' "${BASE_IMAGE:-}"
        list_inputs "$@" | while IFS="$(printf '\t')" read -r dest src; do
            printf '%s\t%s\n' "$dest" "$(digest "$src")"
        done
    } | sha256sum | cut -c1-12 | sed "s|^|$name:|"
}

cmd=${1:-}; name=${2:-}; dockerfile=${3:-}
[ -n "$cmd" ] && [ -n "$name" ] && [ -n "$dockerfile" ] || die "usage: image.sh tag|build NAME DOCKERFILE [INPUT...] [-- BUILD_ARG...]"
shift 3
inputs=("$dockerfile"); build_args=()
while [ $# -gt 0 ]; do
    if [ "$1" = -- ]; then shift; build_args=("$@"); break; fi
    inputs+=("$1"); shift
done

image=$(compute_tag "$name" "${inputs[@]}")
case $cmd in
    tag) echo "$image"; exit 0 ;;
    build) ;;
    *) die "unknown command $cmd (tag or build)" ;;
esac

if "$docker" image inspect "$image" >/dev/null 2>&1; then
    echo "$image is up to date (same inputs); not rebuilding"
    exit 0
fi

ctx=$(mktemp -d "${TMPDIR:-/tmp}/elmo-ctx.XXXXXX")
trap 'rm -rf "$ctx"' EXIT INT TERM
# A tree of symlinks, archived with --dereference: the context is assembled
# without copying gigabyte installers, and holds nothing but the inputs.
list_inputs "${inputs[@]}" | while IFS="$(printf '\t')" read -r dest src; do
    mkdir -p "$ctx/$(dirname "$dest")"
    ln -s "$src" "$ctx/$dest"
done
mkdir -p "$ctx/extra-ca"
if [ -n "${EXTRA_CA:-}" ]; then
    [ -r "$EXTRA_CA" ] || die "EXTRA_CA=$EXTRA_CA is not a readable file"
    cp "$EXTRA_CA" "$ctx/extra-ca/ca.pem"
else
    : > "$ctx/extra-ca/ca.pem"
fi

start=$(date +%s)
[ -z "${BASE_IMAGE:-}" ] || build_args=(--build-arg "BASE_IMAGE=$BASE_IMAGE" ${build_args[@]+"${build_args[@]}"})
tar -C "$ctx" --dereference -cf - . |
    "$docker" build -f "$dockerfile" -t "$image" ${build_args[@]+"${build_args[@]}"} -
size=$("$docker" image inspect --format '{{.Size}}' "$image")
echo "built $image in $(( $(date +%s) - start ))s, $(( size / 1000000 )) MB"
