{{/* Names. */}}
{{- define "crashdump.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "crashdump.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "crashdump.selectorLabels" -}}
app.kubernetes.io/name: {{ include "crashdump.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "crashdump.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "crashdump.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | trunc 63 | quote }}
app.kubernetes.io/part-of: crashdump
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "crashdump.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "crashdump.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "crashdump.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion | toString) -}}
{{- end -}}
{{- end -}}

{{/* The --store URL: store, else s3://bucket/prefix, else the node-local directory store. */}}
{{- define "crashdump.store" -}}
{{- if .Values.store -}}
{{- .Values.store -}}
{{- else if .Values.s3.bucket -}}
{{- $prefix := trimAll "/" (.Values.s3.prefix | toString) -}}
{{- if $prefix -}}
{{- printf "s3://%s/%s" .Values.s3.bucket $prefix -}}
{{- else -}}
{{- printf "s3://%s" .Values.s3.bucket -}}
{{- end -}}
{{- else -}}
file:///var/lib/crashdump/store
{{- end -}}
{{- end -}}

{{/* "true" when writer-pid attribution (hostPID + CAP_SYS_PTRACE) is on. */}}
{{- define "crashdump.writerPid" -}}
{{- $w := .Values.attribution.writerPid -}}
{{- if eq (toString $w) "auto" -}}
{{- if ne .Values.attribution.podSource "none" -}}true{{- end -}}
{{- else if eq (toString $w) "true" -}}
true
{{- else if ne (toString $w) "false" -}}
{{- fail (printf "attribution.writerPid must be auto, true or false, not %v" $w) -}}
{{- end -}}
{{- end -}}

{{/*
The capabilities the agent gets back after dropping ALL, computed from the
mode. docs/security.md gives the syscalls behind each; deploy/chart_test.go
holds the chart to exactly this list.
*/}}
{{- define "crashdump.capabilities" -}}
{{- $caps := list "DAC_READ_SEARCH" -}}
{{- if .Values.permissions.foreignDirectories -}}
{{- $caps = append $caps "DAC_OVERRIDE" -}}
{{- $caps = append $caps "FOWNER" -}}
{{- end -}}
{{- if include "crashdump.writerPid" . -}}
{{- $caps = append $caps "SYS_PTRACE" -}}
{{- end -}}
{{- toYaml (sortAlpha $caps) -}}
{{- end -}}

{{/* The namespaces whose <dump-dir>/<ns> the agent creates. */}}
{{- define "crashdump.namespaceDirs" -}}
{{- $dirs := concat (.Values.appVolumes.namespaces | default list) (.Values.namespaceDirs | default list) | uniq | sortAlpha -}}
{{- join "," $dirs -}}
{{- end -}}

{{/* listen address host:port */}}
{{- define "crashdump.listenAddress" -}}
{{- printf "%s:%d" (.Values.metrics.bindAddress | default "") (.Values.metrics.port | int) -}}
{{- end -}}

{{- define "crashdump.terminationGracePeriodSeconds" -}}
{{- $min := add (.Values.agent.shutdownGraceSeconds | int) 15 -}}
{{- if kindIs "invalid" .Values.terminationGracePeriodSeconds -}}
{{- $min -}}
{{- else if lt (.Values.terminationGracePeriodSeconds | int) $min -}}
{{- fail (printf "terminationGracePeriodSeconds (%v) must be at least agent.shutdownGraceSeconds + 15 (%d): the agent needs the grace for uploads in flight, then up to 5s to stop serving" .Values.terminationGracePeriodSeconds $min) -}}
{{- else -}}
{{- .Values.terminationGracePeriodSeconds | int -}}
{{- end -}}
{{- end -}}

{{/* GOMEMLIMIT from limits.memory (Ki/Mi/Gi or bytes), as MiB. */}}
{{- define "crashdump.goMemLimit" -}}
{{- $pct := .Values.goMemLimitPercent | int -}}
{{- $mem := "" -}}
{{- if and .Values.resources .Values.resources.limits -}}
{{- $mem = .Values.resources.limits.memory | default "" | toString -}}
{{- end -}}
{{- if and $mem (gt $pct 0) -}}
{{- $mib := 0 -}}
{{- if hasSuffix "Gi" $mem -}}
{{- $mib = mul (trimSuffix "Gi" $mem | int) 1024 -}}
{{- else if hasSuffix "Mi" $mem -}}
{{- $mib = trimSuffix "Mi" $mem | int -}}
{{- else if hasSuffix "Ki" $mem -}}
{{- $mib = div (trimSuffix "Ki" $mem | int) 1024 -}}
{{- else if regexMatch "^[0-9]+$" $mem -}}
{{- $mib = div ($mem | int64) 1048576 -}}
{{- end -}}
{{- if gt ($mib | int) 0 -}}
{{- printf "%dMiB" (div (mul $mib $pct) 100) -}}
{{- end -}}
{{- end -}}
{{- end -}}
