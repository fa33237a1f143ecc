#!/usr/bin/env bash
# Install the Debian packages that the test suite uses, when they are missing:
#   PostgreSQL          server binaries for the PostgreSQL source's tests
#   openssl             certificates for the e2e control plane
#   containerd, runc, containernetworking-plugins, iptables, conntrack
#                       the e2e node: a kubelet's own container runtime and pod network
#   docker.io, debootstrap, gcc, libc6-dev
#                       `make image`: the Docker engine, the local base image where the
#                       public one cannot be pulled, the pod sandbox ("pause") binary
# As root with apt-get it installs them; otherwise it says what is missing and the tests
# that need it skip (or use the controlplane provider) with a one-line reason.
# It installs; it starts no service (the tests start what they need and stop it).
set -euo pipefail

have_postgres() {
    compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || command -v pg_ctl >/dev/null 2>&1
}

# package:command-or-path it provides
WANTED=(
    openssl:openssl
    containerd:containerd
    runc:runc
    containernetworking-plugins:/usr/lib/cni/bridge
    iptables:iptables
    conntrack:conntrack
    docker.io:dockerd
    debootstrap:debootstrap
    gcc:gcc
    libc6-dev:/usr/include/stdio.h
)

missing=()
have_postgres || missing+=(postgresql)
for entry in "${WANTED[@]}"; do
    package=${entry%%:*}
    thing=${entry#*:}
    if [[ "$thing" == /* ]]; then
        [[ -e "$thing" ]] || missing+=("$package")
    else
        command -v "$thing" >/dev/null 2>&1 || [[ -x "/usr/sbin/$thing" ]] || missing+=("$package")
    fi
done

if [ ${#missing[@]} -eq 0 ]; then
    echo "system-deps: PostgreSQL, openssl, the node's runtime and the image tools are present"
    exit 0
fi
if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "system-deps: installing ${missing[*]} with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
    echo "system-deps: missing ${missing[*]} (install with your package manager);" \
        "the tests that need them will skip or fall back to the controlplane provider" >&2
fi
