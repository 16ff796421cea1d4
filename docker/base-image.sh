#!/bin/sh
# Build the Debian base image without a registry: debootstrap a minbase root
# from a Debian mirror, then `docker import` it. Needs root (debootstrap
# chroots) and a running Docker daemon.
#
#   docker/base-image.sh IMAGE [SUITE] [MIRROR]
#   docker/base-image.sh --print-mirror
#
# MIRROR defaults to the first Debian mirror the host's apt uses, so hosts
# that can only reach their own mirror work without configuration.
set -eu

packages=python3,python3-venv,ca-certificates,patch

host_mirror() {
    # deb822 (.sources) files name mirrors on "URIs:" lines; one-line
    # (.list) files on "deb URI suite ..." lines. The -security archive is
    # skipped: debootstrap needs the main archive.
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
        [ -r "$f" ] || continue
        sed -n -e 's/^URIs:[[:space:]]*//p' \
               -e 's/^deb[[:space:]]\{1,\}\(\[[^]]*\][[:space:]]\{1,\}\)\{0,1\}\([^[:space:]]*\).*/\2/p' "$f"
    done | tr ' ' '\n' | grep -E '^https?://[^ ]*/debian/?$' | head -n 1 | sed 's:/$::'
}

default_mirror() {
    m=$(host_mirror || true)
    echo "${m:-http://deb.debian.org/debian}"
}

if [ "${1:-}" = --print-mirror ]; then
    default_mirror
    exit 0
fi
image=${1:?usage: base-image.sh IMAGE [SUITE] [MIRROR]}
suite=${2:-bullseye}
mirror=${3:-$(default_mirror)}
security=${DEBIAN_SECURITY_MIRROR:-${mirror}-security}

if [ "$(id -u)" != 0 ]; then
    echo "error: base-image needs root (debootstrap chroots): run 'sudo make base-image', or set BASE_IMAGE to an image from a registry (e.g. debian:bullseye-slim)" >&2
    exit 1
fi
command -v debootstrap >/dev/null 2>&1 || {
    echo "error: debootstrap not found: apt-get install -y debootstrap" >&2
    exit 1
}

root=$(mktemp -d "${TMPDIR:-/tmp}/elmo-base.XXXXXX")
trap 'rm -rf "$root"' EXIT INT TERM

echo "debootstrap $suite from $mirror into $root"
debootstrap --variant=minbase --include="$packages" "$suite" "$root" "$mirror"

# The image must keep getting security fixes from the same mirror host.
cat > "$root/etc/apt/sources.list" <<SOURCES
deb $mirror $suite main
deb $mirror $suite-updates main
deb $security $suite-security main
SOURCES
# Container images are not booted: stop apt from starting services in
# postinst scripts, and never keep downloaded .debs or docs in layers.
printf '#!/bin/sh\nexit 101\n' > "$root/usr/sbin/policy-rc.d"
chmod 755 "$root/usr/sbin/policy-rc.d"
cat > "$root/etc/apt/apt.conf.d/90container" <<'APTCONF'
APT::Install-Recommends "false";
APT::Install-Suggests "false";
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb || true"; };
APTCONF
cat > "$root/etc/dpkg/dpkg.cfg.d/90container" <<'DPKGCFG'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
DPKGCFG

# Pick up security fixes released after the suite's point release.
cp /etc/resolv.conf "$root/etc/resolv.conf"
chroot "$root" /usr/bin/env DEBIAN_FRONTEND=noninteractive sh -c \
    'apt-get update && apt-get -y upgrade && apt-get clean'
: > "$root/etc/resolv.conf"

rm -rf "$root/var/lib/apt/lists/"* "$root/var/cache/apt/"*.bin "$root/var/log/"*.log \
       "$root/usr/share/doc/"*/[!c]* "$root/usr/share/man/"* "$root/usr/share/info/"* \
       "$root/usr/share/locale/"*

tar -C "$root" --numeric-owner -c . | docker import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change 'CMD ["/bin/bash"]' \
    --message "debootstrap --variant=minbase $suite from $mirror" \
    - "$image"
docker image inspect --format '{{.RepoTags}} {{.Size}} bytes' "$image"
