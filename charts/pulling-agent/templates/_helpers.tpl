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

{{/* ServiceAccount of the agent pods. */}}
{{- define "pulling-agent.agentServiceAccountName" -}}
{{- include "pulling-agent.fullname" . }}
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

{{/* ServiceAccount of the control Jobs. */}}
{{- define "pulling-agent.controlServiceAccountName" -}}
{{- include "pulling-agent.suffixedName" (list . "control") }}
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

{{/* Restricted Pod Security, pod level. */}}
{{- define "pulling-agent.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 10001
runAsGroup: 10001
fsGroup: 10001
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/* Restricted Pod Security, container level. */}}
{{- define "pulling-agent.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
capabilities:
  drop:
    - ALL
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
{{- $fullname := include "pulling-agent.fullname" . }}
{{- $seen := dict }}
{{- range .Values.maintenanceWindows }}
{{- if hasKey $seen .name }}
{{- fail (printf "maintenanceWindows: the name %q is used twice" .name) }}
{{- end }}
{{- $_ := set $seen .name true }}
{{- if and $.Values.control.jobs.enabled (eq .name $fullname) }}
{{- fail (printf "maintenanceWindows: the name %q would collide with the on-demand CronJobs pause-%s and resume-%s; choose another name" .name $fullname $fullname) }}
{{- end }}
{{- end }}
{{- end }}
