#!/usr/bin/env bash
# Build the pinned development and test tools from the Go module proxy into
# ./bin of this repository (no release downloads, no Docker).
#
#   tools/build-tools.sh                 # every tool
#   tools/build-tools.sh helm ct         # a subset
#
# Tools: helm ct helm-docs kind kubectl kube-apiserver kube-controller-manager
#        kube-scheduler kube-proxy kubelet etcd prometheus promtool
# Versions: tools/versions.env (the only place they are pinned).
#
# Built binaries are cached per version outside the clone, under
#   ${PULLING_AGENT_TOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/pulling-agent/tools}/<tool>-<version>/
# so that re-runs and fresh clones on the same machine do not rebuild;
# ./bin/<tool> is a symlink into that cache.  The script is idempotent.
#
# k8s.io/kubernetes cannot be `go install`ed (its go.mod replaces the k8s.io/*
# staging modules with ./staging directories), so it is built from a small
# generated wrapper module, kept in the cache, that requires
# k8s.io/kubernetes and replaces every staging module named in that version's
# go.mod with its published v0.Y.Z.  etcd is built from a generated wrapper
# main that calls go.etcd.io/etcd/server/v3/etcdmain.Main.  prometheus and
# promtool come from one wrapper module requiring the Prometheus module the
# chart's PromQL check pins (tests/chart/promql/go.mod; a chart test keeps
# the two pins equal).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=/dev/null  # KEY=value pins only
source "$ROOT/tools/versions.env"

CACHE=${PULLING_AGENT_TOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/pulling-agent/tools}
BIN="$ROOT/bin"
# 2 shared cores: at most two compile jobs at a time, one build at a time.
GO_PARALLEL=${GO_PARALLEL:-2}
ALL_TOOLS=(helm ct helm-docs kind kubectl kube-apiserver kube-controller-manager kube-scheduler kube-proxy kubelet etcd prometheus promtool)

log() { printf '[build-tools %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { printf '[build-tools] ERROR: %s\n' "$*" >&2; exit 1; }

require_go() {
    if ! command -v go >/dev/null 2>&1 && [[ -x /usr/local/go/bin/go ]]; then
        log "go is not on PATH; using /usr/local/go/bin/go"
        PATH="/usr/local/go/bin:$PATH"
    fi
    if ! command -v go >/dev/null 2>&1; then
        die "'go' is not on PATH. Install Go >= 1.26 (https://go.dev/doc/install, or your distribution's golang package) and re-run 'make tools'."
    fi
    local v
    v=$(go env GOVERSION)
    case "$v" in
        go1.2[6-9]* | go1.[3-9][0-9]* | go[2-9]*) ;;
        *) die "Go $v is too old: these pins need go >= 1.26 (found $(command -v go))." ;;
    esac
    # Never download a different toolchain behind the user's back.
    export GOTOOLCHAIN=${GOTOOLCHAIN:-local}
    export CGO_ENABLED=${CGO_ENABLED:-0}
    export GOFLAGS="${GOFLAGS:-} -buildvcs=false"
}

# The published version of the k8s.io/* staging modules: v1.37.2 -> v0.37.2.
staging_version() { printf 'v0.%s\n' "${KUBERNETES_VERSION#v1.}"; }

# link_tool NAME CACHED_BINARY: make ./bin/NAME point at the cached binary.
link_tool() {
    mkdir -p "$BIN"
    ln -sfn "$2" "$BIN/$1"
}

# cached_dir NAME VERSION -> the per-version cache directory.
cached_dir() { printf '%s/%s-%s\n' "$CACHE" "$1" "$2"; }

# use_cached NAME VERSION: link ./bin/NAME to the cached build, if there is one.
use_cached() {
    local bin
    bin="$(cached_dir "$1" "$2")/$1"
    [[ -x "$bin" ]] || return 1
    log "$1 $2: cached ($bin)"
    link_tool "$1" "$bin"
}

# compile NAME VERSION WORKDIR PACKAGE LDFLAGS [TAGS]
# PACKAGE@VERSION is built with `go install` (WORKDIR unused), anything else
# with `go build` inside the module at WORKDIR.  The result goes to the cache
# (atomically: a half-built binary is never taken for a cached one).
compile() {
    local name=$1 version=$2 workdir=$3 pkg=$4 ldflags=$5 tags=${6:-}
    local dir tmp start=$SECONDS
    dir=$(cached_dir "$name" "$version")
    tmp=$(mktemp -d "$CACHE/.tmp.$name.XXXXXX")
    if [[ "$pkg" == *@* ]]; then
        log "$name $version: go install $pkg"
        if ! GOBIN="$tmp" go install -p "$GO_PARALLEL" -trimpath -tags "$tags" -ldflags "$ldflags" "$pkg"; then
            rm -rf "$tmp"
            die "building $name $version failed: 'go install $pkg' (see the go output above)"
        fi
        local built
        built=$(basename "${pkg%@*}")
        [[ "$built" == "$name" ]] || mv -f "$tmp/$built" "$tmp/$name"
    else
        log "$name $version: go build $pkg in $workdir"
        if ! (cd "$workdir" && go build -p "$GO_PARALLEL" -trimpath -tags "$tags" -ldflags "$ldflags" -o "$tmp/$name" "$pkg"); then
            rm -rf "$tmp"
            die "building $name $version failed: 'go build $pkg' in $workdir (see the go output above)"
        fi
    fi
    [[ -x "$tmp/$name" ]] || die "$name $version: the build produced no $tmp/$name"
    mkdir -p "$dir"
    mv -f "$tmp/$name" "$dir/$name.new"
    mv -f "$dir/$name.new" "$dir/$name"
    rm -rf "$tmp"
    log "$name $version: built in $((SECONDS - start))s -> $dir/$name"
    link_tool "$name" "$dir/$name"
}

build_helm() {
    use_cached helm "$HELM_VERSION" && return
    local gomod minor ldflags
    ldflags="-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
    # helm's Makefile derives the Kubernetes version it lints against from the
    # client-go it requires; do the same from helm's own go.mod.
    gomod=$(go mod download -json "helm.sh/helm/v3@$HELM_VERSION" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",$/\1/p')
    [[ -n "$gomod" && -f "$gomod" ]] || die "could not download helm.sh/helm/v3@$HELM_VERSION from the Go module proxy"
    minor=$(sed -n 's/^[[:space:]]*k8s\.io\/client-go v0\.\([0-9]*\)\..*/\1/p' "$gomod" | head -n1)
    if [[ -n "$minor" ]]; then
        ldflags+=" -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor=$minor"
        ldflags+=" -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=$minor"
    fi
    compile helm "$HELM_VERSION" "" "helm.sh/helm/v3/cmd/helm@$HELM_VERSION" "$ldflags"
}

build_ct() {
    # Not `go install ...@version`: the proxy refuses the version list of
    # github.com/helm/chart-testing/v3 (403), which `go install` reads to check
    # for deprecation.  A wrapper module requiring the exact version builds the
    # same binary from the same go.mod.
    wrapper_build ct "$CT_VERSION" github.com/helm/chart-testing/v3 github.com/helm/chart-testing/v3/ct \
        "-s -w -X github.com/helm/chart-testing/v3/ct/cmd.Version=$CT_VERSION"
    # ct needs chart_schema.yaml and lintconf.yaml (from the same module):
    # ./bin/ct-config/, use it with CT_CONFIG_DIR=bin/ct-config.
    local dir src
    dir=$(cached_dir ct "$CT_VERSION")
    if [[ ! -f "$dir/etc/chart_schema.yaml" || ! -f "$dir/etc/lintconf.yaml" ]]; then
        src=$(go mod download -json "github.com/helm/chart-testing/v3@$CT_VERSION" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
        [[ -n "$src" && -d "$src/etc" ]] || die "ct $CT_VERSION: module source has no etc/ directory"
        mkdir -p "$dir/etc"
        cp -f "$src/etc/chart_schema.yaml" "$src/etc/lintconf.yaml" "$dir/etc/"
        chmod u+w "$dir/etc/"*
    fi
    ln -sfn "$dir/etc" "$BIN/ct-config"
}

build_helm_docs() {
    use_cached helm-docs "$HELM_DOCS_VERSION" && return
    compile helm-docs "$HELM_DOCS_VERSION" "" \
        "github.com/norwoodj/helm-docs/cmd/helm-docs@$HELM_DOCS_VERSION" "-s -w"
}

build_kind() {
    use_cached kind "$KIND_VERSION" && return
    compile kind "$KIND_VERSION" "" "sigs.k8s.io/kind@$KIND_VERSION" "-s -w"
}

# kube_wrapper: generate (once) the wrapper module for k8s.io/kubernetes and
# print its directory.
kube_wrapper() {
    local dir="$CACHE/src/kubernetes-$KUBERNETES_VERSION" gomod staging goline
    if [[ -f "$dir/.ready" ]]; then
        printf '%s\n' "$dir"
        return
    fi
    log "kubernetes $KUBERNETES_VERSION: downloading k8s.io/kubernetes (large module, once)"
    gomod=$(go mod download -json "k8s.io/kubernetes@$KUBERNETES_VERSION" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",$/\1/p')
    [[ -n "$gomod" && -f "$gomod" ]] || die "could not download k8s.io/kubernetes@$KUBERNETES_VERSION from the Go module proxy"
    staging=$(staging_version)
    goline=$(grep -m1 '^go ' "$gomod" || true)
    rm -rf "$dir"
    mkdir -p "$dir"
    {
        printf '// Generated by tools/build-tools.sh: builds k8s.io/kubernetes %s binaries.\n' "$KUBERNETES_VERSION"
        printf 'module pulling-agent.invalid/kubernetes-tools\n\n%s\n\n' "${goline:-go 1.26}"
        printf 'require k8s.io/kubernetes %s\n\n' "$KUBERNETES_VERSION"
        printf 'replace (\n'
        # Every "k8s.io/x => ./staging/src/k8s.io/x" replace of that go.mod,
        # whether in a replace block or a one-line replace directive.
        sed -n 's#^[[:space:]]*\(replace[[:space:]]\{1,\}\)\{0,1\}\(k8s\.io/[^[:space:]]*\)[[:space:]]*=>[[:space:]]*\./staging/.*#\2#p' "$gomod" |
            sort -u | while read -r mod; do
                printf '\t%s => %s %s\n' "$mod" "$mod" "$staging"
            done
        printf ')\n'
    } >"$dir/go.mod"
    local n
    n=$(grep -c '=> k8s.io/' "$dir/go.mod" || true)
    [[ "$n" -gt 10 ]] || die "kubernetes $KUBERNETES_VERSION: found only $n staging replaces in $gomod; its go.mod format changed?"
    log "kubernetes $KUBERNETES_VERSION: wrapper module with $n staging modules replaced by $staging"
    cat >"$dir/tools.go" <<'GO'
//go:build tools

// Package tools makes `go mod tidy` keep the dependencies of the binaries.
package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-proxy"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubectl"
	_ "k8s.io/kubernetes/cmd/kubelet"
)
GO
    (cd "$dir" && go mod tidy) || die "kubernetes $KUBERNETES_VERSION: 'go mod tidy' in the wrapper module $dir failed"
    touch "$dir/.ready"
    printf '%s\n' "$dir"
}

build_kube() {
    local name=$1 version=$KUBERNETES_VERSION wrapper minor x="" pkgpath
    use_cached "$name" "$version" && return
    wrapper=$(kube_wrapper)
    minor=${version#v1.}
    minor=${minor%%.*}
    # What hack/lib/version.sh sets, or version checks see v0.0.0-master.
    for pkgpath in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
        x+=" -X $pkgpath.gitVersion=$version -X $pkgpath.gitMajor=1 -X $pkgpath.gitMinor=$minor"
        x+=" -X $pkgpath.gitTreeState=clean -X $pkgpath.buildDate=1970-01-01T00:00:00Z"
    done
    log "$name $version: several minutes on 2 cores"
    compile "$name" "$version" "$wrapper" "k8s.io/kubernetes/cmd/$name" "-s -w$x"
}

build_etcd() {
    # etcd's own main package lives in the root module go.etcd.io/etcd/v3,
    # whose go.mod replaces its sub-modules with local directories; a wrapper
    # main calling etcdmain.Main (what that main does) builds the same server.
    wrapper_build etcd "$ETCD_VERSION" go.etcd.io/etcd/server/v3 . "-s -w" <<'GO'
// Command etcd is the etcd server, as etcd's own main package builds it.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
GO
}

# wrapper_build NAME VERSION MODULE PACKAGE LDFLAGS [< main.go]
# Build PACKAGE from a generated module (in the cache) that requires
# MODULE@VERSION.  PACKAGE "." means: the main.go given on stdin.
wrapper_build() {
    local name=$1 version=$2 module=$3 pkg=$4 ldflags=$5 wrapper
    use_cached "$name" "$version" && return
    wrapper=$(wrapper_module "$name" "$version" "$module" "$pkg")
    compile "$name" "$version" "$wrapper" "$pkg" "$ldflags"
}

# wrapper_module NAME VERSION MODULE PACKAGE... [< main.go]
# Generate (once) the module $CACHE/src/NAME-VERSION that requires
# MODULE@VERSION and keeps the dependencies of every PACKAGE; print its
# directory.  A PACKAGE "." means: the main.go given on stdin.
wrapper_module() {
    local name=$1 version=$2 module=$3 wrapper pkg
    shift 3
    wrapper="$CACHE/src/$name-$version"
    if [[ ! -f "$wrapper/.ready" ]]; then
        rm -rf "$wrapper"
        mkdir -p "$wrapper"
        printf '// Generated by tools/build-tools.sh: builds %s %s.\nmodule pulling-agent.invalid/%s\n\ngo 1.26\n\nrequire %s %s\n' \
            "$name" "$version" "$name" "$module" "$version" >"$wrapper/go.mod"
        if [[ "$1" == "." ]]; then
            cat >"$wrapper/main.go"
        else
            {
                printf '//go:build tools\n\n// Package tools keeps the dependencies of %s.\npackage tools\n\nimport (\n' "$*"
                for pkg in "$@"; do printf '\t_ "%s"\n' "$pkg"; done
                printf ')\n'
            } >"$wrapper/tools.go"
        fi
        (cd "$wrapper" && go mod tidy >&2) || die "$name $version: 'go mod tidy' in the wrapper module $wrapper failed"
        touch "$wrapper/.ready"
    fi
    printf '%s\n' "$wrapper"
}

# build_prometheus prometheus|promtool: the server and its rule tester, from
# one wrapper module.  Build tags as Prometheus's .promu.yml sets them
# (netgo), minus every service discovery but kubernetes (the e2e tier
# discovers the chart's pods that way; the others pull in every cloud SDK),
# and without builtinassets (the web UI needs a Node build; the tests use the
# HTTP API only).
build_prometheus() {
    local name=$1 version=$PROMETHEUS_VERSION wrapper pkg kv semver x=""
    use_cached "$name" "$version" && return
    pkg=github.com/prometheus/prometheus/cmd
    wrapper=$(wrapper_module prometheus "$version" github.com/prometheus/prometheus "$pkg/prometheus" "$pkg/promtool")
    # Module v0.316.0 is Prometheus 3.16.0 (the module drops the major's dot).
    semver=${version#v0.}
    semver="${semver:0:1}.${semver:1}"
    for kv in "Version=$semver" "Revision=$version" "Branch=$version" \
        "BuildUser=build-tools.sh" "BuildDate=19700101-00:00:00"; do
        x+=" -X github.com/prometheus/common/version.$kv"
    done
    compile "$name" "$version" "$wrapper" "$pkg/$name" "-s -w$x" netgo,remove_all_sd,enable_kubernetes_sd
}

main() {
    local tools=("$@") t
    [[ ${#tools[@]} -gt 0 ]] || tools=("${ALL_TOOLS[@]}")
    for t in "${tools[@]}"; do
        case " ${ALL_TOOLS[*]} " in
            *" $t "*) ;;
            *) die "unknown tool '$t' (known: ${ALL_TOOLS[*]})" ;;
        esac
    done
    require_go
    mkdir -p "$CACHE" "$BIN"
    # One build at a time per cache (another clone or CI run may be building too).
    if command -v flock >/dev/null 2>&1; then
        exec 9>"$CACHE/.lock"
        if ! flock -n 9; then
            log "waiting for another build-tools.sh using $CACHE"
            flock 9
        fi
    fi
    local start=$SECONDS
    log "building ${tools[*]} into $BIN (cache: $CACHE, $(go env GOVERSION))"
    for t in "${tools[@]}"; do
        case "$t" in
            helm) build_helm ;;
            ct) build_ct ;;
            helm-docs) build_helm_docs ;;
            kind) build_kind ;;
            etcd) build_etcd ;;
            prometheus | promtool) build_prometheus "$t" ;;
            kubectl | kube-apiserver | kube-controller-manager | kube-scheduler | kube-proxy | kubelet) build_kube "$t" ;;
        esac
    done
    log "done in $((SECONDS - start))s: ${tools[*]} in $BIN"
}

main "$@"
