#!/usr/bin/env bash
# Build the agent image (the repository's Dockerfile) and the pod sandbox ("pause") image,
# with no container registry needed, and save both as image archives for the node cluster.
#
#   tools/build-image.sh            # build what is out of date, print the archives' paths
#   tools/build-image.sh --print    # only print where the archives are (or would be)
#   tools/build-image.sh --base-layer-digest   # build the local base's tree, print its digest
#
# The Docker engine: the one $DOCKER_HOST (or the default socket) answers, else a private
# dockerd started for the build and stopped afterwards (root only; its own socket, data root
# under the cache, no bridge, no iptables rules, so it leaves nothing behind).
#
# The base image: $PYTHON_IMAGE when set; otherwise the public python:3.11-slim-bookworm when
# the engine has it or can pull it; otherwise a local base built once by debootstrap from this
# machine's own apt sources (Debian bookworm, Python 3.11 from Debian), reproducible: a fixed
# package list, files in name order with one timestamp, so the same packages give the same
# layer digest.  The machine's extra CA certificates go into that base (pip inside the build
# must trust what the machine trusts).
#
# The pause image is built from k8s.io/kubernetes' own build/pause/linux/pause.c (the pinned
# KUBERNETES_VERSION of tools/versions.env) with gcc -static.
#
# Outputs, cached by content under ${PULLING_AGENT_IMAGE_CACHE:-~/.cache/pulling-agent/images}:
#   pulling-agent_<version>-<context hash>.tar   docker save of $IMAGE (pulling-agent:<version>)
#   pause-<version>.tar                           docker save of local/pause:<version>
# A warm run with an unchanged build context starts no engine at all.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=/dev/null  # KEY=value pins only
source "$ROOT/tools/versions.env"

CACHE_ROOT=${XDG_CACHE_HOME:-$HOME/.cache}/pulling-agent
IMAGES=${PULLING_AGENT_IMAGE_CACHE:-$CACHE_ROOT/images}
VERSION=$(sed -n 's/^version = "\(.*\)"/\1/p' "$ROOT/pyproject.toml")
IMAGE=${IMAGE:-pulling-agent:$VERSION}
PUBLIC_BASE=python:3.11-slim-bookworm
PAUSE_TAG=3.10
PAUSE_IMAGE=local/pause:$PAUSE_TAG
# The local base: bump BASE_RECIPE when the recipe below changes.
BASE_RECIPE=3
BASE_SUITE=bookworm
BASE_PACKAGES=python3,python3-pip,python3-venv,ca-certificates,procps
BASE_IMAGE=local/python:3.11-$BASE_SUITE-r$BASE_RECIPE

PRIVATE_RUN=/run/pulling-agent-docker
DOCKER=()

log() { printf '[build-image %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { printf '[build-image] ERROR: %s\n' "$*" >&2; exit 1; }

# The image's build context: what .dockerignore lets in, plus the Dockerfile.
context_hash() {
    (
        cd "$ROOT"
        {
            printf '%s\n' Dockerfile .dockerignore pyproject.toml README.md
            find pulling_agent -type f ! -name '*.pyc' ! -path '*/__pycache__/*'
        } | LC_ALL=C sort | while read -r f; do
            printf '%s  ' "$f"
            sha256sum <"$f"
        done
    ) | sha256sum | cut -c1-12
}

agent_archive() { printf '%s/%s-%s.tar\n' "$IMAGES" "${IMAGE//[:\/]/_}" "$(context_hash)"; }
pause_archive() { printf '%s/pause-%s.tar\n' "$IMAGES" "$PAUSE_TAG"; }

# A docker client that can drive BuildKit (RUN --mount) without a buildx plugin: Docker 23+
# clients need buildx for BuildKit; Debian's docker.io 20.10 client does it natively.
pick_client() {
    local c
    for c in $(command -v -a docker 2>/dev/null) /usr/bin/docker; do
        [[ -x "$c" ]] || continue
        if "$c" buildx version >/dev/null 2>&1; then
            DOCKER=("$c")
            BUILD=("$c" buildx build --load)
            return
        fi
        case "$("$c" version --format '{{.Client.Version}}' 2>/dev/null)" in
            1[89].* | 2[0-2].*)
                DOCKER=("$c")
                BUILD=(env DOCKER_BUILDKIT=1 "$c" build)
                return
                ;;
        esac
    done
    die "no docker client that can build with BuildKit: install docker.io (Debian) or docker buildx"
}

STARTED_DOCKERD=""
stop_private_engine() {
    [[ -n "$STARTED_DOCKERD" ]] || return 0
    local pid
    pid=$(cat "$PRIVATE_RUN/docker.pid" 2>/dev/null || true)
    if [[ -n "$pid" ]] && kill "$pid" 2>/dev/null; then
        for _ in $(seq 1 100); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.2
        done
    fi
    # dockerd unmounts its own; a killed one may leave these behind.
    if [[ -r /proc/mounts ]]; then
        awk -v r="$PRIVATE_RUN" -v d="$CACHE_ROOT/docker" \
            'index($2, r) == 1 || index($2, d) == 1 {print $2}' /proc/mounts |
            sort -r | while read -r m; do umount -l "$m" 2>/dev/null || true; done
    fi
    rm -rf "$PRIVATE_RUN"
    STARTED_DOCKERD=""
    log "stopped the private Docker engine"
}

ensure_engine() {
    pick_client
    if "${DOCKER[@]}" info >/dev/null 2>&1; then
        log "using the Docker engine at ${DOCKER_HOST:-the default socket}"
        return
    fi
    [[ "$(id -u)" -eq 0 ]] || die "no Docker engine answers and starting one needs root (or set DOCKER_HOST)"
    command -v dockerd >/dev/null 2>&1 || die "no Docker engine answers and dockerd is not installed (apt-get install docker.io)"
    export DOCKER_HOST="unix://$PRIVATE_RUN/docker.sock"
    STARTED_DOCKERD=1
    trap stop_private_engine EXIT
    # Under the lock no other build runs: an engine left here is a killed build's.
    if [[ -f "$PRIVATE_RUN/docker.pid" ]]; then
        log "stopping the private Docker engine a killed build left running"
        stop_private_engine
        STARTED_DOCKERD=1
    fi
    mkdir -p "$PRIVATE_RUN" "$CACHE_ROOT/docker"
    log "starting a private Docker engine ($DOCKER_HOST, data root $CACHE_ROOT/docker)"
    dockerd --host "$DOCKER_HOST" --data-root "$CACHE_ROOT/docker" --exec-root "$PRIVATE_RUN/exec" \
        --pidfile "$PRIVATE_RUN/docker.pid" --bridge=none --iptables=false --ip6tables=false \
        --ip-masq=false --ip-forward=false >"$PRIVATE_RUN/dockerd.log" 2>&1 &
    for _ in $(seq 1 150); do
        "${DOCKER[@]}" info >/dev/null 2>&1 && return
        sleep 0.2
    done
    tail -n 20 "$PRIVATE_RUN/dockerd.log" >&2 || true
    die "the private dockerd did not answer within 30 s (log above)"
}

have_image() { "${DOCKER[@]}" image inspect "$1" >/dev/null 2>&1; }

apt_mirror() {
    local m=""
    if [[ -f /etc/apt/sources.list.d/debian.sources ]]; then
        m=$(awk '/^URIs:/ && $2 !~ /security/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources)
    fi
    if [[ -z "$m" && -f /etc/apt/sources.list ]]; then
        m=$(awk '$1 == "deb" && $3 !~ /security/ {print $2; exit}' /etc/apt/sources.list)
    fi
    printf '%s\n' "${m:-http://deb.debian.org/debian}"
}

# base_rootfs DIR: the local base's file tree, normalised (what varies between two runs of
# the same recipe and is not part of the system is removed).
base_rootfs() {
    local rootfs=$1 mirror
    command -v debootstrap >/dev/null 2>&1 || die "debootstrap is missing (apt-get install debootstrap)"
    mirror=$(apt_mirror)
    log "base: debootstrap $BASE_SUITE from $mirror into $rootfs"
    if ! SOURCE_DATE_EPOCH=0 debootstrap --variant=minbase --include="$BASE_PACKAGES" \
        "$BASE_SUITE" "$rootfs" "$mirror" >"$rootfs.log" 2>&1; then
        tail -n 20 "$rootfs.log" >&2
        die "debootstrap $BASE_SUITE from $mirror failed (log above)"
    fi
    rm -f "$rootfs.log"
    # As in the official image: `python` is python3 and pip may install into it.
    ln -sf python3 "$rootfs/usr/bin/python"
    rm -f "$rootfs"/usr/lib/python3*/EXTERNALLY-MANAGED
    if compgen -G '/usr/local/share/ca-certificates/*.crt' >/dev/null; then
        cp /usr/local/share/ca-certificates/*.crt "$rootfs/usr/local/share/ca-certificates/"
        chroot "$rootfs" update-ca-certificates >/dev/null 2>&1
    fi
    chroot "$rootfs" apt-get clean
    rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin "$rootfs"/var/log/* \
        "$rootfs"/var/cache/ldconfig/aux-cache "$rootfs"/tmp/* "$rootfs"/root/.cache \
        "$rootfs"/debootstrap "$rootfs"/var/cache/debconf/*-old "$rootfs"/var/lib/dpkg/*-old
    # As the slim images: no documentation (but the copyright files), manual pages or
    # translations; dpkg keeps them out of later installs too.
    find "$rootfs"/usr/share/doc \( -type f -o -type l \) ! -name copyright -delete
    rm -rf "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/* "$rootfs"/usr/share/locale/* \
        "$rootfs"/usr/share/lintian
    printf '%s\n' 'path-exclude /usr/share/doc/*' 'path-include /usr/share/doc/*/copyright' \
        'path-exclude /usr/share/man/*' 'path-exclude /usr/share/info/*' \
        'path-exclude /usr/share/locale/*' >"$rootfs/etc/dpkg/dpkg.cfg.d/slim"
    : >"$rootfs/etc/machine-id"
    find "$rootfs" -name '__pycache__' -type d -prune -exec rm -rf {} +
}

# base_tar DIR: the layer, as a tar stream: name order, one timestamp, numeric owners, and
# no access or change times in the pax headers that --xattrs brings.
base_tar() {
    tar -C "$1" --sort=name --mtime=@0 --numeric-owner --xattrs \
        --pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime -c .
}

build_local_base() {
    have_image "$BASE_IMAGE" && { log "base $BASE_IMAGE: present"; return; }
    local rootfs start=$SECONDS
    rootfs=$(mktemp -d "${TMPDIR:-/tmp}/pulling-agent-base.XXXXXX")
    base_rootfs "$rootfs"
    base_tar "$rootfs" |
        "${DOCKER[@]}" import \
            -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
            -c 'ENV LANG=C.UTF-8' -c 'CMD ["python3"]' \
            -m "debootstrap $BASE_SUITE minbase + $BASE_PACKAGES (tools/build-image.sh r$BASE_RECIPE)" \
            - "$BASE_IMAGE" >/dev/null
    rm -rf "$rootfs"
    log "base $BASE_IMAGE: built in $((SECONDS - start))s, layer $("${DOCKER[@]}" image inspect -f '{{index .RootFS.Layers 0}}' "$BASE_IMAGE")"
}

choose_base() {
    if [[ -n "${PYTHON_IMAGE:-}" ]]; then
        printf '%s\n' "$PYTHON_IMAGE"
        return
    fi
    if have_image "$PUBLIC_BASE"; then
        printf '%s\n' "$PUBLIC_BASE"
        return
    fi
    if "${DOCKER[@]}" pull -q "$PUBLIC_BASE" >/dev/null 2>&1; then
        log "base: pulled $PUBLIC_BASE"
        printf '%s\n' "$PUBLIC_BASE"
        return
    fi
    log "base: $PUBLIC_BASE cannot be pulled here; using the local debootstrap base"
    build_local_base
    printf '%s\n' "$BASE_IMAGE"
}

build_agent() {
    local archive=$1 base start=$SECONDS
    base=$(choose_base)
    log "$IMAGE: docker build (base $base)"
    # Host network for the build's own RUN steps (apt-get, pip); the engine has no bridge.
    "${BUILD[@]}" --network host --build-arg "PYTHON_IMAGE=$base" --build-arg "VERSION=$VERSION" \
        -t "$IMAGE" "$ROOT" >&2
    # The image runs as non-root and its CLI works.
    local user uid
    user=$("${DOCKER[@]}" image inspect -f '{{.Config.User}}' "$IMAGE")
    uid=$("${DOCKER[@]}" run --rm --network none --entrypoint id "$IMAGE" -u)
    [[ "$uid" != 0 && -n "$user" ]] || die "$IMAGE runs as root (USER '$user', id -u $uid)"
    "${DOCKER[@]}" run --rm --network none "$IMAGE" --help >/dev/null ||
        die "'pulling-agent --help' fails in $IMAGE"
    mkdir -p "$IMAGES"
    "${DOCKER[@]}" save "$IMAGE" -o "$archive.new"
    mv -f "$archive.new" "$archive"
    find "$IMAGES" -name "${IMAGE//[:\/]/_}-*.tar" ! -path "$archive" -delete
    # Earlier builds of the same tag, now untagged, would pile up in the engine.
    "${DOCKER[@]}" image prune -f >/dev/null
    log "$IMAGE: built in $((SECONDS - start))s, runs as $user (uid $uid), size $("${DOCKER[@]}" image inspect -f '{{.Size}}' "$IMAGE" | awk '{printf "%.1f MB", $1/1e6}')"
}

build_pause() {
    local archive=$1 src dir
    command -v gcc >/dev/null 2>&1 || die "gcc is missing (apt-get install gcc libc6-dev): it builds the pause image"
    command -v go >/dev/null 2>&1 || PATH="/usr/local/go/bin:$PATH"
    src=$(cd "$ROOT" && GOFLAGS=-mod=mod GOTOOLCHAIN=local go mod download -json "k8s.io/kubernetes@$KUBERNETES_VERSION" |
        sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
    [[ -f "$src/build/pause/linux/pause.c" ]] || die "k8s.io/kubernetes@$KUBERNETES_VERSION has no build/pause/linux/pause.c"
    dir=$(mktemp -d)
    gcc -static -O2 -DVERSION="$KUBERNETES_VERSION-local" -o "$dir/pause" "$src/build/pause/linux/pause.c"
    strip "$dir/pause" 2>/dev/null || true
    base_tar "$dir" |
        "${DOCKER[@]}" import -c 'ENTRYPOINT ["/pause"]' -c 'USER 65535:65535' - "$PAUSE_IMAGE" >/dev/null
    rm -rf "$dir"
    mkdir -p "$IMAGES"
    "${DOCKER[@]}" save "$PAUSE_IMAGE" -o "$archive.new"
    mv -f "$archive.new" "$archive"
    log "$PAUSE_IMAGE: built from pause.c of $KUBERNETES_VERSION"
}

main() {
    local agent pause
    agent=$(agent_archive)
    pause=$(pause_archive)
    if [[ "${1:-}" == "--base-layer-digest" ]]; then
        # Build the local base's tree in a temporary directory and print its layer's digest
        # (the sha256 of the tar stream, as docker import records it): two runs of the same
        # recipe on the same day's packages print the same digest.
        local rootfs
        rootfs=$(mktemp -d "${TMPDIR:-/tmp}/pulling-agent-base.XXXXXX")
        base_rootfs "$rootfs"
        printf 'sha256:%s\n' "$(base_tar "$rootfs" | sha256sum | cut -d' ' -f1)"
        rm -rf "$rootfs"
        return
    fi
    if [[ "${1:-}" == "--print" ]]; then
        printf 'IMAGE=%s\nIMAGE_ARCHIVE=%s\nPAUSE_IMAGE=%s\nPAUSE_ARCHIVE=%s\n' "$IMAGE" "$agent" "$PAUSE_IMAGE" "$pause"
        return
    fi
    mkdir -p "$IMAGES"
    # One build at a time on this machine (they share the private engine and its data root).
    exec 9>"$IMAGES/.lock"
    if ! flock -n 9; then
        log "waiting for another build-image.sh"
        flock 9
    fi
    if [[ -f "$agent" && -f "$pause" && -z "${FORCE:-}" ]]; then
        log "$IMAGE and $PAUSE_IMAGE: up to date ($IMAGES)"
    else
        ensure_engine
        [[ -f "$pause" ]] || build_pause "$pause"
        [[ -f "$agent" && -z "${FORCE:-}" ]] || build_agent "$agent"
    fi
    printf 'IMAGE=%s\nIMAGE_ARCHIVE=%s\nPAUSE_IMAGE=%s\nPAUSE_ARCHIVE=%s\n' "$IMAGE" "$agent" "$PAUSE_IMAGE" "$pause"
    printf '%s: %s (archive %s)\n' "$IMAGE" "$(du -h "$agent" | cut -f1)" "$agent" >&2
}

main "$@"
