#!/usr/bin/env bash
# control-agent.sh: pause, resume or inspect the pulling agents of a Helm release.
#
#   control/control-agent.sh [options] pause|resume|status|help
#
# pause/resume: 1. set the desired state in the control ConfigMap (it
# survives restarts, and agents watching it react in about a second; a
# missing ConfigMap is created, like the guide's `kubectl apply`);
# 2. signal EVERY pod of the release (SIGUSR1 pause, SIGUSR2 resume, through
# `kubectl exec POD -- kill -USR1 1`), saying so for each pod where exec is
# not possible; 3. unless --no-wait, wait until every running pod reports the
# state: through the agents' reports in the status ConfigMap
# (`<configmap>-status`, read with kubectl: no exec), or, where reports are
# off (no such ConfigMap), each pod's liveness file through exec. A pod that
# has not started (Pending) runs no agent: it is named, not waited for (it
# reads the ConfigMap when it starts), as `pulling-agent ctl pause` does.
# status: per pod RUNNING, PAUSED or UNHEALTHY, its health file, the
# ConfigMap's state and reason, and the recent pause/resume log lines.
#
# Exit status (the same table as `pulling-agent pause` and `pulling-agent ctl
# pause`, pulling_agent/cli/exits.py): 0 done; 1 the cluster or the ConfigMap
# could not be reached, changed or created; 2 usage error; 3 verification
# failed (a pod did not report the state within --timeout, or `status` found
# an UNHEALTHY pod).
set -euo pipefail

readonly POLL_INTERVAL=0.2
PROG=$(basename "$0")
readonly PROG

# BEGIN control vocabulary: the table of pulling_agent/vocabulary.py, which
# tests/unit/test_vocabulary.py checks this against. For each command: the word
# written to the ConfigMap's `state`, the signal, the state every pod reports once
# done (line 1 of its liveness file), and what is printed while and after.
declare -rA WORD=([pause]=pause [resume]=resume)
declare -rA SIGNAL=([pause]=USR1 [resume]=USR2)
declare -rA EXPECTED=([pause]=paused [resume]=running)
declare -rA DOING=([pause]=Pausing [resume]=Resuming)
declare -rA DONE=([pause]=paused [resume]=resumed)
readonly DEFAULT_CONFIGMAP=agent-control
readonly LIVENESS_FILE=/tmp/health/liveness
readonly STATUS_SUFFIX=-status
# The exit codes and the wait of every front end (pulling_agent/cli/exits.py, options.py).
readonly EXIT_FAILURE=1 EXIT_USAGE=2 EXIT_UNVERIFIED=3
readonly DEFAULT_TIMEOUT=60
# END control vocabulary

usage() {
    cat <<EOF
Usage: $PROG [options] pause|resume|status|help

Commands:
  pause     Set state=pause in the ConfigMap (created if missing), send SIGUSR1
            to every agent pod, and wait until every running pod reports 'paused'.
  resume    Set state=resume, send SIGUSR2, wait until every pod reports 'running'.
  status    Each pod's state (RUNNING, PAUSED or UNHEALTHY), its health file,
            the ConfigMap's state and reason, recent pause/resume log lines.
  help      This message.

Options (each also read from the environment variable shown):
  -n, --namespace NS   Namespace of the release    [NAMESPACE; default: kubectl's
                       current namespace, else default]
  --release NAME       Helm release                [RELEASE; default: pulling-agent]
  -l, --selector SEL   Label selector of the agent pods [SELECTOR; default:
                       app.kubernetes.io/instance=<release>,app.kubernetes.io/component=agent]
  --configmap NAME     Control ConfigMap           [CONFIGMAP; default: $DEFAULT_CONFIGMAP
                       for the guide's release; for another, the one the chart
                       made for it (found by the release label)]
  --reason TEXT        Why (written to the ConfigMap, shown in logs and status) [REASON]
  --by WHO             Who asks                    [REQUESTED_BY; default: \$USER]
  --timeout DURATION   How long to wait for every pod to report the state:
                       seconds, or 90s, 2m [TIMEOUT; default: 60]
  --no-wait            Do not wait (or verify) [WAIT=false]; --wait: the default
  --context NAME       kubectl context             [KUBE_CONTEXT]
  -h, --help           This message.
The kubectl binary is \$KUBECTL (default: kubectl); \$KUBECONFIG is honoured.
Colour only on a terminal, never when NO_COLOR is set.

Pods are verified through their reports in the ConfigMap <configmap>-status
(kubectl get: no exec), or through their liveness files (kubectl exec) where
agents do not report (no such ConfigMap).

Exit status: 0 done, 1 cluster or ConfigMap failure, 2 usage error,
3 verification failed (pods named on stderr).
EOF
}

usage_error() {
    printf '%s: %s\n' "$PROG" "$1" >&2
    printf "Run '%s help' for usage.\n" "$PROG" >&2
    exit "$EXIT_USAGE"
}

# ---------------------------------------------------------------- output
if [[ -t 1 && -z "${NO_COLOR:-}" ]]; then
    GREEN=$'\033[32m' RED=$'\033[31m' YELLOW=$'\033[33m' BOLD=$'\033[1m' RESET=$'\033[0m'
else
    GREEN='' RED='' YELLOW='' BOLD='' RESET=''
fi

say() { printf '%s\n' "$*"; }
ok() { printf '%s✓ %s%s\n' "$GREEN" "$*" "$RESET"; }
warn() { printf '%sWarning: %s%s\n' "$YELLOW" "$*" "$RESET" >&2; }
die() {
    printf '%s✗ %s%s\n' "$RED" "$1" "$RESET" >&2
    exit "${2:-$EXIT_FAILURE}"
}
# first_line TEXT: the first non-empty line, for one-line error messages.
first_line() { printf '%s\n' "$1" | sed -n '/[^[:space:]]/{p;q;}'; }

# ---------------------------------------------------------------- options
NAMESPACE=${NAMESPACE:-}
RELEASE=${RELEASE:-pulling-agent}
SELECTOR=${SELECTOR:-}
CONFIGMAP=${CONFIGMAP:-}
REASON=${REASON:-}
REQUESTED_BY=${REQUESTED_BY:-${USER:-$(id -un 2>/dev/null || echo unknown)}}
TIMEOUT=${TIMEOUT:-$DEFAULT_TIMEOUT}
WAIT=${WAIT:-true}
KUBE_CONTEXT=${KUBE_CONTEXT:-}
REQUEST_TIMEOUT=${REQUEST_TIMEOUT:-10s}
COMMAND=""

# need_value OPTION ARGC: an option's value must follow it.
need_value() { [[ $2 -ge 2 ]] || usage_error "option $1 needs a value"; }
# not_empty OPTION VALUE: ...and some options' values must not be empty.
not_empty() { [[ -n "$2" ]] || usage_error "$1 must not be empty"; }

while [[ $# -gt 0 ]]; do
    case "$1" in
        -n | --namespace) need_value "$1" $#; NAMESPACE=$2; shift 2 ;;
        --namespace=*) NAMESPACE=${1#*=}; shift ;;
        --release) need_value "$1" $#; RELEASE=$2; shift 2 ;;
        --release=*) RELEASE=${1#*=}; shift ;;
        -l | --selector) need_value "$1" $#; SELECTOR=$2; shift 2 ;;
        --selector=*) SELECTOR=${1#*=}; shift ;;
        --configmap) need_value "$1" $#; not_empty "$1" "$2"; CONFIGMAP=$2; shift 2 ;;
        --configmap=*) CONFIGMAP=${1#*=}; not_empty --configmap "$CONFIGMAP"; shift ;;
        --reason) need_value "$1" $#; REASON=$2; shift 2 ;;
        --reason=*) REASON=${1#*=}; shift ;;
        --by) need_value "$1" $#; REQUESTED_BY=$2; shift 2 ;;
        --by=*) REQUESTED_BY=${1#*=}; shift ;;
        --timeout) need_value "$1" $#; TIMEOUT=$2; shift 2 ;;
        --timeout=*) TIMEOUT=${1#*=}; shift ;;
        --wait) WAIT=true; shift ;;
        --no-wait) WAIT=false; shift ;;
        --context) need_value "$1" $#; KUBE_CONTEXT=$2; shift 2 ;;
        --context=*) KUBE_CONTEXT=${1#*=}; shift ;;
        -h | --help | help) usage; exit 0 ;;
        -*) usage_error "unknown option: $1" ;;
        pause | resume | status)
            [[ -z "$COMMAND" ]] || usage_error "one command at a time ($COMMAND, $1)"
            COMMAND=$1
            shift
            ;;
        *)
            printf '%s: unknown command: %s\n\n' "$PROG" "$1" >&2
            usage >&2
            exit "$EXIT_USAGE"
            ;;
    esac
done

if [[ -z "$COMMAND" ]]; then
    usage >&2
    exit "$EXIT_USAGE"
fi
# --timeout: whole seconds, or with a unit (90s, 2m, 1h), as the CLI takes them.
if [[ "$TIMEOUT" =~ ^([0-9]+)(s|m|h)?$ ]]; then
    case "${BASH_REMATCH[2]}" in
        m) TIMEOUT=$((BASH_REMATCH[1] * 60)) ;;
        h) TIMEOUT=$((BASH_REMATCH[1] * 3600)) ;;
        *) TIMEOUT=$((10#${BASH_REMATCH[1]})) ;;
    esac
else
    usage_error "--timeout must be whole seconds (or 90s, 2m, 1h), not '$TIMEOUT'"
fi
[[ "$WAIT" == true || "$WAIT" == false ]] || usage_error "WAIT must be true or false, not '$WAIT'"
[[ -n "$RELEASE" ]] || usage_error "--release must not be empty"
# The release's agent pods only. The guide's `app=pulling-agent` also matches
# the agents of every other release of the chart in the namespace, and this
# script sends them signals.
SELECTOR=${SELECTOR:-app.kubernetes.io/instance=$RELEASE,app.kubernetes.io/component=agent}

# ---------------------------------------------------------------- kubectl
read -r -a KUBECTL_CMD <<<"${KUBECTL:-kubectl}"
[[ ${#KUBECTL_CMD[@]} -gt 0 ]] || KUBECTL_CMD=(kubectl)
command -v "${KUBECTL_CMD[0]}" >/dev/null 2>&1 ||
    die "kubectl not found: '${KUBECTL_CMD[0]}' (install it, or set KUBECTL to its path)"
if [[ -n "$KUBE_CONTEXT" ]]; then
    KUBECTL_CMD+=(--context "$KUBE_CONTEXT")
fi

# k ARGS...: kubectl with a bounded wait for every request.
k() { "${KUBECTL_CMD[@]}" --request-timeout="$REQUEST_TIMEOUT" "$@"; }
# kn ARGS...: kubectl in the namespace.
kn() { k -n "$NAMESPACE" "$@"; }

if [[ -z "$NAMESPACE" ]]; then
    NAMESPACE=$(k config view --minify -o 'jsonpath={..namespace}' 2>/dev/null || true)
    NAMESPACE=${NAMESPACE:-default}
fi

# Without --configmap: the control ConfigMap the chart made for the release (it
# labels it with the release: `agent-control` for the guide's install,
# `<fullname>-control` for any other), else the guide's `agent-control` (an
# unreachable cluster is reported by read_configmap below).
if [[ -z "$CONFIGMAP" ]]; then
    CONFIGMAP=$DEFAULT_CONFIGMAP
    if found=$("${KUBECTL_CMD[@]}" --request-timeout=5s -n "$NAMESPACE" get configmaps \
        -l "app.kubernetes.io/instance=$RELEASE,app.kubernetes.io/component=control" \
        -o 'jsonpath={.items[*].metadata.name}' 2>&1); then
        read -r -a FOUND <<<"$found" || true
        [[ ${#FOUND[@]} -le 1 ]] ||
            usage_error "release $RELEASE has several control ConfigMaps (${FOUND[*]}): choose one with --configmap"
        CONFIGMAP=${FOUND[0]:-$DEFAULT_CONFIGMAP}
    elif [[ "$found" == *orbidden* ]]; then
        warn "cannot list ConfigMaps in namespace $NAMESPACE to find release $RELEASE's; using $DEFAULT_CONFIGMAP (set --configmap)"
    fi
fi

CM_STATE="" CM_REASON="" CM_BY="" CM_AT="" CM_EXISTS=false
# read_configmap: the ConfigMap's control keys; fails fast, with kubectl's own
# message, when the cluster cannot be reached (a missing ConfigMap is not an error).
read_configmap() {
    local out
    local template='{.data.state}{"\t"}{.data.reason}{"\t"}{.data.requested-by}{"\t"}{.data.requested-at}'
    # A short timeout: an unreachable cluster fails here, fast.
    if out=$("${KUBECTL_CMD[@]}" --request-timeout=5s -n "$NAMESPACE" \
        get configmap "$CONFIGMAP" -o "jsonpath=$template" 2>&1); then
        CM_EXISTS=true
        IFS=$'\t' read -r CM_STATE CM_REASON CM_BY CM_AT <<<"$out" || true
        return 0
    fi
    if [[ "$out" == *NotFound* || "$out" == *"not found"* ]]; then
        CM_EXISTS=false
        return 0
    fi
    die "cannot reach the cluster or read ConfigMap $CONFIGMAP in namespace $NAMESPACE: $(first_line "$out")"
}

# json_string TEXT: TEXT as a JSON string (quotes and backslashes escaped,
# control characters turned into spaces).
json_string() {
    local s=$1
    s=${s//\\/\\\\}
    s=${s//\"/\\\"}
    s=${s//[$'\t\r\n']/ }
    printf '"%s"' "$s"
}

# update_configmap WORD: set state, reason, requested-by and requested-at.
# A merge patch, not the guide's `kubectl create --dry-run | kubectl apply`:
# apply replaces the data with the keys given (a reason from an earlier
# pause would stay, or be dropped, depending on what was last applied),
# annotates the object with last-applied-configuration, and needs create and
# update rights; the patch changes exactly these four keys and needs only
# `patch` (what the chart's control Role grants on this one ConfigMap).
REQUESTED_AT=""
update_configmap() {
    local word=$1 at out patch
    at=$(date -u +%Y-%m-%dT%H:%M:%SZ)
    REQUESTED_AT=$at
    patch=$(printf '{"data":{"state":%s,"reason":%s,"requested-by":%s,"requested-at":%s}}' \
        "$(json_string "$word")" "$(json_string "$REASON")" \
        "$(json_string "$REQUESTED_BY")" "$(json_string "$at")")
    if [[ "$CM_EXISTS" == true ]]; then
        out=$(kn patch configmap "$CONFIGMAP" --type merge -p "$patch" 2>&1) ||
            die "cannot update ConfigMap $CONFIGMAP in namespace $NAMESPACE: $(first_line "$out")"
    else
        # Not installed by the chart (the guide's plain manifests): create it,
        # as the guide's `kubectl create configmap ... | kubectl apply` would.
        out=$(kn create configmap "$CONFIGMAP" --from-literal=state="$word" \
            --from-literal=reason="$REASON" --from-literal=requested-by="$REQUESTED_BY" \
            --from-literal=requested-at="$at" 2>&1) ||
            die "cannot create ConfigMap $CONFIGMAP in namespace $NAMESPACE: $(first_line "$out")"
        warn "ConfigMap $CONFIGMAP did not exist in namespace $NAMESPACE; created it"
    fi
    say "ConfigMap updated to '$word'"
}

PODS=()
declare -A POD_PHASE=()
# find_pods: the names of the pods matching the selector, into PODS (and
# their phases into POD_PHASE).
find_pods() {
    local pod
    list_phases
    PODS=()
    for pod in "${!POD_PHASE[@]}"; do
        PODS+=("$pod")
    done
    if [[ ${#PODS[@]} -gt 0 ]]; then
        mapfile -t PODS < <(printf '%s\n' "${PODS[@]}" | sort)
    fi
    return 0
}

# list_phases: POD_PHASE[pod] for every pod matching the selector now (a pod
# being deleted is not listed: it is no longer one of the release's agents).
list_phases() {
    local out pod phase deleting
    local template='{range .items[*]}{.metadata.name}{" "}{.status.phase}{" "}{.metadata.deletionTimestamp}{"\n"}{end}'
    out=$(kn get pods -l "$SELECTOR" -o "jsonpath=$template" 2>&1) ||
        die "cannot list pods ($SELECTOR) in namespace $NAMESPACE: $(first_line "$out")"
    POD_PHASE=()
    while read -r pod phase deleting; do
        [[ -n "$pod" && -z "$deleting" ]] || continue
        POD_PHASE[$pod]=${phase:-Unknown}
    done <<<"$out"
    return 0
}

# pod_state POD: line 1 of its liveness file (paused, running, ...); fails
# with the reason on stdout when the file cannot be read.
pod_state() {
    local out
    if out=$(kn exec "$1" -- head -1 "$LIVENESS_FILE" 2>&1); then
        printf '%s' "${out//[[:space:]]/}"
    else
        printf '%s' "$(first_line "$out")"
        return 1
    fi
}

declare -A REPORT=()
REPORTS_ON=false
# read_reports: each agent's report (one line of JSON) from the status
# ConfigMap into REPORT[pod]; REPORTS_ON=false when there is no such
# ConfigMap (agents not reporting). kubectl get: no exec.
read_reports() {
    local out pod json
    # shellcheck disable=SC2016 # a go-template for kubectl, not shell
    local template='{{range $k, $v := .data}}{{$k}}{{"\t"}}{{$v}}{{"\n"}}{{end}}'
    REPORT=()
    if ! out=$(kn get configmap "$CONFIGMAP$STATUS_SUFFIX" -o "go-template=$template" 2>&1); then
        if [[ "$out" == *NotFound* || "$out" == *"not found"* ]]; then
            REPORTS_ON=false
            return 0
        fi
        die "cannot read ConfigMap $CONFIGMAP$STATUS_SUFFIX in namespace $NAMESPACE: $(first_line "$out")"
    fi
    REPORTS_ON=true
    while IFS=$'\t' read -r pod json; do
        [[ -n "$pod" ]] && REPORT[$pod]=$json
    done <<<"$out"
    return 0
}

# report_field POD KEY: a string field of the pod's report ("" if absent).
report_field() {
    local json=${REPORT[$1]:-}
    if [[ "$json" =~ \"$2\":\"([^\"]*)\" ]]; then
        printf '%s' "${BASH_REMATCH[1]}"
    fi
}

# reported_state POD AT: the pod's reported state when its report is for a
# request made at AT (YYYY-MM-DDTHH:MM:SSZ) or later; fails saying what it
# reports instead.
reported_state() {
    local pod=$1 at=${2%Z} state requested
    if [[ -z "${REPORT[$pod]:-}" ]]; then
        printf 'no report'
        return 1
    fi
    state=$(report_field "$pod" state)
    requested=$(report_field "$pod" requested_at)
    # Both UTC: the first 19 characters compare as times.
    if [[ -n "$requested" && ! "${requested:0:19}" < "${at:0:19}" ]]; then
        printf '%s' "$state"
        return 0
    fi
    printf 'reports %s since %s (request of %s)' "$state" \
        "$(report_field "$pod" since)" "${requested:-none}"
    return 1
}

control() {
    local action=$1
    local signal=${SIGNAL[$action]} expected=${EXPECTED[$action]}
    say "${DOING[$action]} agent..."
    read_configmap
    update_configmap "${WORD[$action]}"

    find_pods
    if [[ ${#PODS[@]} -eq 0 ]]; then
        say "No pods match $SELECTOR in namespace $NAMESPACE: nothing to signal or verify;"
        say "agents that start later follow the ConfigMap."
        return 0
    fi
    local pod out unsignalled=0
    for pod in "${PODS[@]}"; do
        if out=$(kn exec "$pod" -- kill -"$signal" 1 2>&1); then
            say "SIG$signal signal sent to pod $pod"
        else
            unsignalled=$((unsignalled + 1))
            warn "cannot exec into pod $pod to signal it ($(first_line "$out")); relying on the ConfigMap"
        fi
    done
    if [[ $unsignalled -gt 0 ]]; then
        warn "exec unavailable for $unsignalled of ${#PODS[@]} pods; they follow the ConfigMap through its watch"
    fi
    if [[ "$WAIT" == false ]]; then
        say "Not waiting (--no-wait); check with: $PROG status"
        return 0
    fi

    # Pods that have not started run no agent: they read the ConfigMap when they start.
    local pending=() not_started=()
    for pod in "${PODS[@]}"; do
        if [[ "${POD_PHASE[$pod]}" == Pending ]]; then
            not_started+=("$pod")
        else
            pending+=("$pod")
        fi
    done
    if [[ ${#not_started[@]} -gt 0 ]]; then
        say "Not started (they read the ConfigMap when they start): ${not_started[*]}"
    fi
    if [[ ${#pending[@]} -eq 0 ]]; then
        say "No running pods to verify: they follow the ConfigMap when they start"
        return 0
    fi
    read_reports
    printf 'Waiting for agent to %s..' "$action"
    local deadline=$((SECONDS + TIMEOUT)) state
    local -A last=()
    local gone=() counted=${#pending[@]}
    while [[ ${#pending[@]} -gt 0 ]]; do
        local still=()
        for pod in "${pending[@]}"; do
            if [[ "$REPORTS_ON" == true ]]; then
                if state=$(reported_state "$pod" "$REQUESTED_AT") && [[ "$state" == "$expected" ]]; then
                    continue
                fi
            elif state=$(pod_state "$pod") && [[ "$state" == "$expected" ]]; then
                continue
            fi
            # A pod deleted meanwhile (a rollout, a scale-down) has nothing left to verify.
            if [[ -z "${POD_PHASE[$pod]:-}" ]]; then
                gone+=("$pod")
                continue
            fi
            last[$pod]=$state
            still+=("$pod")
        done
        pending=("${still[@]}")
        [[ ${#pending[@]} -gt 0 && $SECONDS -lt $deadline ]] || break
        printf '.'
        sleep "$POLL_INTERVAL"
        [[ "$REPORTS_ON" == true ]] && read_reports
        list_phases
    done
    printf '\n'
    local verified=$((counted - ${#gone[@]}))
    if [[ ${#gone[@]} -gt 0 ]]; then
        say "Pods deleted while waiting (not verified): ${gone[*]}"
    fi
    if [[ ${#pending[@]} -eq 0 ]]; then
        ok "Agent successfully ${DONE[$action]} ($verified of $verified pods)"
        return 0
    fi
    for pod in "${pending[@]}"; do
        printf '%s  pod %s: %s%s\n' "$RED" "$pod" "${last[$pod]:-no state}" "$RESET" >&2
    done
    die "Agent not $expected within ${TIMEOUT}s: ${#pending[@]} of $counted pods did not report it: ${pending[*]}" "$EXIT_UNVERIFIED"
}

status() {
    read_configmap
    say "${BOLD}Release $RELEASE, namespace $NAMESPACE${RESET} (pods: $SELECTOR)"
    if [[ "$CM_EXISTS" == true ]]; then
        say "ConfigMap $CONFIGMAP: state=${CM_STATE:-<none>}${CM_REASON:+ reason=\"$CM_REASON\"}${CM_BY:+ requested-by=$CM_BY}${CM_AT:+ requested-at=$CM_AT}"
    else
        say "ConfigMap $CONFIGMAP: not found (agents use the state they have)"
    fi
    find_pods
    if [[ ${#PODS[@]} -eq 0 ]]; then
        say "No pods match $SELECTOR in namespace $NAMESPACE"
        return 0
    fi
    local pod health state unhealthy=0 label colour logs
    for pod in "${PODS[@]}"; do
        say ""
        if health=$(kn exec "$pod" -- cat "$LIVENESS_FILE" 2>&1); then
            state=$(first_line "$health")
            case "${state//[[:space:]]/}" in
                running) label=RUNNING colour=$GREEN ;;
                paused) label=PAUSED colour=$YELLOW ;;
                *) label=UNHEALTHY colour=$RED ;;
            esac
        else
            label=UNHEALTHY colour=$RED
            health="cannot read $LIVENESS_FILE: $(first_line "$health")"
        fi
        [[ "$label" == UNHEALTHY ]] && unhealthy=$((unhealthy + 1))
        if [[ "${POD_PHASE[$pod]}" == Running ]]; then
            say "Pod $pod: ${colour}${label}${RESET}"
        else
            say "Pod $pod: ${colour}${label}${RESET} (phase ${POD_PHASE[$pod]})"
        fi
        printf '%s\n' "$health" | sed 's/^/    /'
        say "  Recent pause/resume log lines:"
        if logs=$(kn logs "$pod" --tail=500 2>&1); then
            logs=$(printf '%s\n' "$logs" | grep -i -E 'paus|resum' | tail -n 5 || true)
            printf '%s\n' "${logs:-(none)}" | sed 's/^/    /'
        else
            say "    (cannot read logs: $(first_line "$logs"))"
        fi
    done
    if [[ $unhealthy -gt 0 ]]; then
        exit "$EXIT_UNVERIFIED"
    fi
}

case "$COMMAND" in
    pause | resume) control "$COMMAND" ;;
    status) status ;;
esac
