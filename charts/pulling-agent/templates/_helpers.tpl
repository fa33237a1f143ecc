{{/*
Naming, kube-state-metrics style: every name is cut to 63 characters.
*/}}

{{/* The chart name, or nameOverride. */}}
{{- define "pulling-agent.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The fully qualified name: fullnameOverride, else the release name when it
already contains the chart name, else <release>-<chart>.
*/}}
{{- define "pulling-agent.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* chart label value: <name>-<version>. */}}
{{- define "pulling-agent.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels on every object. */}}
{{- define "pulling-agent.labels" -}}
helm.sh/chart: {{ include "pulling-agent.chart" . }}
{{ include "pulling-agent.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: {{ include "pulling-agent.name" . }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
Selector labels: never change these across chart versions, a Deployment's
selector is immutable.
*/}}
{{- define "pulling-agent.selectorLabels" -}}
app.kubernetes.io/name: {{ include "pulling-agent.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* The agent pods: selector labels plus the component. */}}
{{- define "pulling-agent.agentSelectorLabels" -}}
{{ include "pulling-agent.selectorLabels" . }}
app.kubernetes.io/component: agent
{{- end }}

{{/* The `app` label the operator guide selects pods by (`-l app=pulling-agent`). */}}
{{- define "pulling-agent.appLabel" -}}
{{- include "pulling-agent.name" . }}
{{- end }}

{{/* The `app` label of the control Jobs (`-l app=pulling-agent-control`). */}}
{{- define "pulling-agent.controlAppLabel" -}}
{{- printf "%s-control" (include "pulling-agent.name" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* ServiceAccount of the agent pods: serviceAccount.name, else <fullname>. */}}
{{- define "pulling-agent.agentServiceAccountName" -}}
{{- default (include "pulling-agent.fullname" .) .Values.serviceAccount.name }}
{{- end }}

{{/*
<fullname>-<suffix>, within 63 characters: the fullname is cut, never the
suffix, so that two suffixes never collapse into one name.  Call with a list:
the top context, the suffix.
*/}}
{{- define "pulling-agent.suffixedName" -}}
{{- $suffix := index . 1 }}
{{- $base := include "pulling-agent.fullname" (index . 0) | trunc (int (sub 62 (len $suffix))) | trimSuffix "-" }}
{{- printf "%s-%s" $base $suffix }}
{{- end }}

{{/* ServiceAccount of the control Jobs: control.jobs.serviceAccount.name, else <fullname>-control. */}}
{{- define "pulling-agent.controlServiceAccountName" -}}
{{- default (include "pulling-agent.suffixedName" (list . "control")) .Values.control.jobs.serviceAccount.name }}
{{- end }}

{{/* "true" when the chart renders control Jobs (on-demand CronJobs or maintenance windows). */}}
{{- define "pulling-agent.hasControlJobs" -}}
{{- if or .Values.control.jobs.enabled .Values.maintenanceWindows }}true{{ end }}
{{- end }}

{{/*
"true" for the install the operator guide describes: the fullname is the
chart's name (release `pulling-agent`, no overrides).  It keeps the guide's
short names (ConfigMap `agent-control`, CronJobs `pause-<window>`); every other
release puts its fullname in them, so that two releases in one namespace never
share an object.
*/}}
{{- define "pulling-agent.guideNames" -}}
{{- if eq (include "pulling-agent.fullname" .) .Chart.Name }}true{{ end }}
{{- end }}

{{/*
The Helm release owning a live object, "" when there is none (or under `helm
template`, where lookup finds nothing).  Call with a list: the top context,
apiVersion, kind, name.
*/}}
{{- define "pulling-agent.liveOwner" -}}
{{- $root := index . 0 }}
{{- $live := lookup (index . 1) (index . 2) $root.Release.Namespace (index . 3) }}
{{- if $live }}
{{- dig "metadata" "annotations" "meta.helm.sh/release-name" "" $live }}
{{- end }}
{{- end }}

{{/*
The control ConfigMap: control.configMapName; else the guide's `agent-control`
for the guide's install; else `agent-control` still when this release already
owns it (it was every release's default before, and it holds the live state);
else <fullname>-control.
*/}}
{{- define "pulling-agent.controlConfigMapName" -}}
{{- if .Values.control.configMapName }}
{{- .Values.control.configMapName }}
{{- else if include "pulling-agent.guideNames" . }}
{{- "agent-control" }}
{{- else if eq (include "pulling-agent.liveOwner" (list . "v1" "ConfigMap" "agent-control")) .Release.Name }}
{{- "agent-control" }}
{{- else }}
{{- include "pulling-agent.suffixedName" (list . "control") }}
{{- end }}
{{- end }}

{{/*
The status ConfigMap the agents report to (control.reports): <control ConfigMap>-status.
*/}}
{{- define "pulling-agent.statusConfigMapName" -}}
{{- printf "%s-status" (include "pulling-agent.controlConfigMapName" .) }}
{{- end }}

{{/*
"true" when the agent talks to the API: the ConfigMap watch or the reports (its token is mounted).
*/}}
{{- define "pulling-agent.agentUsesApi" -}}
{{- if or .Values.control.watch .Values.control.reports }}true{{ end }}
{{- end }}

{{/*
A maintenance window's CronJob: <action>-<window> for the guide's install,
<action>-<fullname>-<window> for any other release.  Never cut: a cut name
could be another release's; `pulling-agent.validate` refuses one over 52
characters.  Call with a list: the top context, the action, the window name.
*/}}
{{- define "pulling-agent.windowCronJobName" -}}
{{- $root := index . 0 }}
{{- if include "pulling-agent.guideNames" $root }}
{{- printf "%s-%s" (index . 1) (index . 2) }}
{{- else }}
{{- printf "%s-%s-%s" (index . 1) (include "pulling-agent.fullname" $root) (index . 2) }}
{{- end }}
{{- end }}

{{/*
A CronJob name: CronJob names are limited to 52 characters (the controller
appends an 11-character suffix to its Jobs' names).  Call with a list: prefix, name.
*/}}
{{- define "pulling-agent.cronJobName" -}}
{{- printf "%s-%s" (index . 0) (index . 1) | trunc 52 | trimSuffix "-" }}
{{- end }}

{{/* The agent image reference: digest wins over tag, tag defaults to appVersion. */}}
{{- define "pulling-agent.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/*
The label selector of the agent pods, as a string (for the control Jobs'
signalling and for NOTES).
*/}}
{{- define "pulling-agent.agentSelector" -}}
{{- $sel := list }}
{{- range $k, $v := (include "pulling-agent.agentSelectorLabels" . | fromYaml) }}
{{- $sel = append $sel (printf "%s=%s" $k $v) }}
{{- end }}
{{- join "," $sel }}
{{- end }}

{{/*
Checks that templates cannot express in the schema (they need two values at once).
*/}}
{{- define "pulling-agent.validate" -}}
{{- if le (int .Values.terminationGracePeriodSeconds) (int .Values.agent.stopGraceSeconds) }}
{{- fail (printf "terminationGracePeriodSeconds (%v) must exceed agent.stopGraceSeconds (%v): the agent needs the grace period to finish its batch and release the rest" .Values.terminationGracePeriodSeconds .Values.agent.stopGraceSeconds) }}
{{- end }}
{{- if le (int .Values.health.livenessMaxAgeSeconds) (mul 2 (int .Values.agent.heartbeatInterval)) }}
{{- fail (printf "health.livenessMaxAgeSeconds (%v) must exceed twice agent.heartbeatInterval (%v), or a healthy agent is killed" .Values.health.livenessMaxAgeSeconds .Values.agent.heartbeatInterval) }}
{{- end }}
{{- if and (not .Values.source.existingSecret) (regexMatch "^[A-Za-z][A-Za-z0-9+.-]*://[^/@]*:[^/@]*@" .Values.source.url) }}
{{- fail "source.url contains a password: put the URL in a Secret and set source.existingSecret (and source.existingSecretKey) instead" }}
{{- end }}
{{- if and (not .Values.source.existingSecret) (hasPrefix "sqlite:" .Values.source.url) (gt (int .Values.replicaCount) 1) }}
{{- fail (printf "replicaCount (%v) > 1 needs a shared source (postgresql://...): source.url is the embedded SQLite queue" .Values.replicaCount) }}
{{- end }}
{{- if and .Values.metrics.serviceMonitor.enabled (not .Values.metrics.enabled) }}
{{- fail "metrics.serviceMonitor.enabled needs metrics.enabled" }}
{{- end }}
{{- if and .Values.metrics.prometheusRule.enabled (not .Values.metrics.enabled) }}
{{- fail "metrics.prometheusRule.enabled needs metrics.enabled" }}
{{- end }}
{{- if and .Values.metrics.dashboard.enabled (not .Values.metrics.enabled) }}
{{- fail "metrics.dashboard.enabled needs metrics.enabled" }}
{{- end }}
{{- /* Accounts: an existing one must be named; the chart never creates one twice. */}}
{{- $jobs := include "pulling-agent.hasControlJobs" . }}
{{- if not (or .Values.serviceAccount.create .Values.serviceAccount.name) }}
{{- fail "serviceAccount.create is false: set serviceAccount.name to the existing ServiceAccount the agent pods run as" }}
{{- end }}
{{- if and $jobs (not (or .Values.control.jobs.serviceAccount.create .Values.control.jobs.serviceAccount.name)) }}
{{- fail "control.jobs.serviceAccount.create is false: set control.jobs.serviceAccount.name to the existing ServiceAccount the control Jobs run as" }}
{{- end }}
{{- $agentAccount := include "pulling-agent.agentServiceAccountName" . }}
{{- $controlAccount := include "pulling-agent.controlServiceAccountName" . }}
{{- if and $jobs .Values.serviceAccount.create .Values.control.jobs.serviceAccount.create (eq $agentAccount $controlAccount) }}
{{- fail (printf "serviceAccount.name and control.jobs.serviceAccount.name are both %q: the chart would create it twice; give the control Jobs an account of their own" $agentAccount) }}
{{- end }}
{{- /* Names: [apiVersion, kind, name, the value that chose it] of every object named from values. */}}
{{- $named := list (list "v1" "ConfigMap" (include "pulling-agent.controlConfigMapName" .) "control.configMapName") }}
{{- if .Values.control.reports }}
{{- $named = append $named (list "v1" "ConfigMap" (include "pulling-agent.statusConfigMapName" .) "control.configMapName") }}
{{- end }}
{{- if .Values.serviceAccount.create }}
{{- $named = append $named (list "v1" "ServiceAccount" $agentAccount "serviceAccount.name") }}
{{- end }}
{{- if and $jobs .Values.control.jobs.serviceAccount.create }}
{{- $named = append $named (list "v1" "ServiceAccount" $controlAccount "control.jobs.serviceAccount.name") }}
{{- end }}
{{- $fullname := include "pulling-agent.fullname" . }}
{{- $onDemand := dict }}
{{- if .Values.control.jobs.enabled }}
{{- range $action := list "pause" "resume" }}
{{- $name := include "pulling-agent.cronJobName" (list $action $fullname) }}
{{- $_ := set $onDemand $name true }}
{{- $named = append $named (list "batch/v1" "CronJob" $name "the release name (or fullnameOverride)") }}
{{- end }}
{{- end }}
{{- $seen := dict }}
{{- range $i, $w := .Values.maintenanceWindows }}
{{- if hasKey $seen $w.name }}
{{- fail (printf "maintenanceWindows: the name %q is used twice" $w.name) }}
{{- end }}
{{- $_ := set $seen $w.name true }}
{{- range $action := list "pause" "resume" }}
{{- $name := include "pulling-agent.windowCronJobName" (list $ $action $w.name) }}
{{- if hasKey $onDemand $name }}
{{- fail (printf "maintenanceWindows: the name %q would collide with the on-demand CronJobs pause-%s and resume-%s; choose another name" $w.name $fullname $fullname) }}
{{- end }}
{{- if gt (len $name) 52 }}
{{- $longest := sub 52 (len (include "pulling-agent.windowCronJobName" (list $ "resume" ""))) }}
{{- fail (printf "maintenanceWindows[%d]: the CronJob name %q is %d characters, over the 52 Kubernetes allows; shorten the window name %q to at most %d characters (or the release name)" $i $name (len $name) $w.name $longest) }}
{{- end }}
{{- $named = append $named (list "batch/v1" "CronJob" $name (printf "maintenanceWindows[%d].name" $i)) }}
{{- end }}
{{- end }}
{{- /* Two releases in one namespace: a live object of one of these names must be this release's. */}}
{{- range $named }}
{{- $owner := include "pulling-agent.liveOwner" (list $ (index . 0) (index . 1) (index . 2)) }}
{{- if and $owner (ne $owner $.Release.Name) }}
{{- fail (printf "%s %q in namespace %s belongs to release %q, and two releases cannot share it: change %s" (index . 1) (index . 2) $.Release.Namespace $owner (index . 3)) }}
{{- end }}
{{- end }}
{{- end }}
