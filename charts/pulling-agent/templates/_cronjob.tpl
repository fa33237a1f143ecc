{{/*
One control CronJob.  Call with a dict:
  root      the top context
  name      the CronJob name (at most 52 characters)
  action    pause | resume
  schedule  a cron schedule (quoted in the output)
  timeZone  an IANA time zone, or ""
  suspend   bool
  reason    the reason written to the ConfigMap
  startingDeadlineSeconds  an int, or 0 for none
  window    the maintenance window's name, or "" for the on-demand CronJobs
The Job runs the agent image's own CLI, `pulling-agent ctl`, with the Job's
ServiceAccount: no kubectl image.  Its command is complete in itself (no
$(VAR) references), so the same command also works from a workstation.
*/}}
{{- define "pulling-agent.controlCronJob" -}}
{{- $root := .root -}}
apiVersion: batch/v1
kind: CronJob
metadata:
  name: {{ .name }}
  namespace: {{ $root.Release.Namespace }}
  labels:
    {{- include "pulling-agent.labels" $root | nindent 4 }}
    app.kubernetes.io/component: control
    app: {{ include "pulling-agent.controlAppLabel" $root }}
    {{- with .window }}
    pulling-agent.io/maintenance-window: {{ . }}
    {{- end }}
spec:
  schedule: {{ .schedule | quote }}
  {{- with .timeZone }}
  timeZone: {{ . | quote }}
  {{- end }}
  suspend: {{ .suspend }}
  concurrencyPolicy: Forbid
  successfulJobsHistoryLimit: {{ $root.Values.control.jobs.successfulJobsHistoryLimit }}
  failedJobsHistoryLimit: {{ $root.Values.control.jobs.failedJobsHistoryLimit }}
  {{- with .startingDeadlineSeconds }}
  startingDeadlineSeconds: {{ . }}
  {{- end }}
  jobTemplate:
    metadata:
      # Copied to the Jobs, also by `kubectl create job --from=cronjob/...`:
      # `kubectl get jobs -l app={{ include "pulling-agent.controlAppLabel" $root }}`.
      labels:
        {{- include "pulling-agent.labels" $root | nindent 8 }}
        app.kubernetes.io/component: control
        app: {{ include "pulling-agent.controlAppLabel" $root }}
        pulling-agent.io/action: {{ .action }}
    spec:
      backoffLimit: {{ $root.Values.control.jobs.backoffLimit }}
      {{- if $root.Values.control.reports }}
      # Exit 3: the state is written but an agent did not report it in time.
      # Retrying would not change that: fail the Job now (kube_job_failed).
      # Other failures (the API briefly away) are retried up to backoffLimit.
      podFailurePolicy:
        rules:
          - action: FailJob
            onExitCodes:
              containerName: ctl
              operator: In
              values: [3]
      {{- end }}
      activeDeadlineSeconds: {{ $root.Values.control.jobs.activeDeadlineSeconds }}
      template:
        metadata:
          labels:
            {{- include "pulling-agent.selectorLabels" $root | nindent 12 }}
            app.kubernetes.io/component: control
            app: {{ include "pulling-agent.controlAppLabel" $root }}
            pulling-agent.io/action: {{ .action }}
        spec:
          serviceAccountName: {{ include "pulling-agent.controlServiceAccountName" $root }}
          automountServiceAccountToken: true
          restartPolicy: Never
          {{- with $root.Values.imagePullSecrets }}
          imagePullSecrets:
            {{- toYaml . | nindent 12 }}
          {{- end }}
          {{- with $root.Values.podSecurityContext }}
          securityContext:
            {{- toYaml . | nindent 12 }}
          {{- end }}
          containers:
            - name: ctl
              image: {{ include "pulling-agent.image" $root | quote }}
              imagePullPolicy: {{ $root.Values.image.pullPolicy }}
              command:
                - pulling-agent
                - ctl
                - {{ .action }}
                - --configmap
                - {{ include "pulling-agent.controlConfigMapName" $root | quote }}
                - --namespace
                - {{ $root.Release.Namespace | quote }}
                - --reason
                - {{ .reason | quote }}
                - --by
                - {{ printf "cronjob/%s" .name | quote }}
                {{- if $root.Values.control.reports }}
                # Wait until every running agent reports the state; exit 3 names
                # those that did not (see the Job's log).
                - --wait
                - --timeout
                - {{ printf "%vs" $root.Values.control.jobs.waitTimeoutSeconds | quote }}
                - --selector
                - {{ include "pulling-agent.agentSelector" $root | quote }}
                {{- else }}
                - --no-wait
                {{- end }}
                {{- if $root.Values.control.jobs.signalPods }}
                # Also signal the agent pods (SIGUSR1/SIGUSR2 through pods/exec).
                - --signal-selector
                - {{ include "pulling-agent.agentSelector" $root | quote }}
                {{- end }}
              resources:
                {{- toYaml $root.Values.control.jobs.resources | nindent 16 }}
              {{- with $root.Values.securityContext }}
              securityContext:
                {{- toYaml . | nindent 16 }}
              {{- end }}
              volumeMounts:
                - name: tmp
                  mountPath: /tmp
          volumes:
            - name: tmp
              emptyDir: {}
          {{- with $root.Values.nodeSelector }}
          nodeSelector:
            {{- toYaml . | nindent 12 }}
          {{- end }}
          {{- with $root.Values.tolerations }}
          tolerations:
            {{- toYaml . | nindent 12 }}
          {{- end }}
{{- end }}
