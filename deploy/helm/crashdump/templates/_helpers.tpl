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

{{/* The CLI's ConfigMap: crashdump-client for the release "crashdump". */}}
{{- define "crashdump.clientConfigMapName" -}}
{{- printf "%s-client" (include "crashdump.fullname" .) -}}
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

{{/*
GOMEMLIMIT: goMemLimitPercent of resources.limits.memory, in whole MiB
(rounded down). Every memory quantity the schema accepts yields one (Ki, Mi,
Gi, Ti, Pi, Ei; k, M, G, T, P, E; decimals such as 1.5Gi): a limit this
cannot read, or whose share is under 1MiB or 8EiB and over (which Go
refuses), fails the render instead of leaving the agent without a soft
memory limit. Empty only when goMemLimitPercent is 0, when there is no
memory limit, or when agent.extraEnv sets GOMEMLIMIT (theirs is kept).
*/}}
{{- define "crashdump.goMemLimit" -}}
{{- $pct := .Values.goMemLimitPercent | int -}}
{{- $limits := dict -}}
{{- if kindIs "map" .Values.resources -}}
{{- $limits = get .Values.resources "limits" | default dict -}}
{{- end -}}
{{- $mem := get $limits "memory" -}}
{{- $own := false -}}
{{- range .Values.agent.extraEnv -}}
{{- if and (kindIs "map" .) (eq (toString (get . "name")) "GOMEMLIMIT") -}}
{{- $own = true -}}
{{- end -}}
{{- end -}}
{{- if and (gt $pct 0) (not $own) (not (kindIs "invalid" $mem)) (ne (toString $mem) "") -}}
{{- $s := toString $mem -}}
{{- $bytes := 0.0 -}}
{{- $re := "^([0-9]+(\\.[0-9]*)?|\\.[0-9]+)(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E)?$" -}}
{{- if or (kindIs "int" $mem) (kindIs "int64" $mem) (kindIs "float64" $mem) -}}
{{- $bytes = float64 $mem -}}
{{- else if regexMatch $re $s -}}
{{- $units := dict "" 1 "Ki" 1024 "Mi" 1048576 "Gi" 1073741824 "Ti" 1099511627776 "Pi" 1125899906842624 "Ei" 1152921504606846976 "k" 1e3 "M" 1e6 "G" 1e9 "T" 1e12 "P" 1e15 "E" 1e18 -}}
{{- $bytes = mulf (regexReplaceAll $re $s "${1}" | float64) (get $units (regexReplaceAll $re $s "${3}")) -}}
{{- else -}}
{{- fail (printf "resources.limits.memory %q: GOMEMLIMIT cannot be derived from it; want a memory quantity such as 192Mi, 1.5Gi or 512M (or set GOMEMLIMIT in agent.extraEnv, or goMemLimitPercent=0 for none)" $s) -}}
{{- end -}}
{{- $mib := floor (divf (mulf $bytes $pct) 104857600) -}}
{{- if lt $mib 1.0 -}}
{{- fail (printf "resources.limits.memory %s is %.0f bytes: %d%% of it, for GOMEMLIMIT, is under 1MiB, and the agent needs tens of MiB (the default is 192Mi; a number without a unit is bytes)" $s $bytes $pct) -}}
{{- end -}}
{{- if gt $mib 8796093022207.0 -}}
{{- fail (printf "resources.limits.memory %s: GOMEMLIMIT would be %.0fMiB, and Go takes at most 8EiB (set goMemLimitPercent=0 for none)" $s $mib) -}}
{{- end -}}
{{- printf "%dMiB" (int64 $mib) -}}
{{- end -}}
{{- end -}}

{{/*
crashdump.sizeArg: "--<flag>=<value>" for a size value the agent takes
(cmd/crashdump/bytesize.go: bytes, or a number with B, KB, MB, GB, TB, KiB,
MiB, GiB or TiB; with "percent", also a percentage below 100), or nothing
for null and "" (the agent's default). 0 is a value (no limit, spilling
off), never dropped. The schema checks the same syntax; this also refuses
what the agent would still refuse: over 1<<62 bytes.
  include "crashdump.sizeArg" (dict "flag" "max-dump-bytes" "key" "agent.maxDumpBytes" "value" .Values.agent.maxDumpBytes "percent" true)
*/}}
{{- define "crashdump.sizeArg" -}}
{{- $v := .value -}}
{{- $max := 4611686018427387904.0 -}}
{{- if not (kindIs "invalid" $v) -}}
{{- $s := "" -}}
{{- if or (kindIs "int" $v) (kindIs "int64" $v) -}}
{{- $s = printf "%d" $v -}}
{{- else if kindIs "float64" $v -}}
{{- $s = printf "%.0f" $v -}}
{{- else -}}
{{- $s = toString $v | trim -}}
{{- end -}}
{{- if ne $s "" -}}
{{- $re := "^(([0-9]+(\\.[0-9]*)?|\\.[0-9]+)([eE][+-]?[0-9]+)?) ?(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)?$" -}}
{{- if and .percent (regexMatch "^([0-9]{1,2}(\\.[0-9]*)?|\\.[0-9]+) ?%$" $s) -}}
{{- else if regexMatch $re $s -}}
{{- $units := dict "" 1 "B" 1 "KB" 1e3 "MB" 1e6 "GB" 1e9 "TB" 1e12 "KiB" 1024 "MiB" 1048576 "GiB" 1073741824 "TiB" 1099511627776 -}}
{{- if gt (mulf (regexReplaceAll $re $s "${1}" | float64) (get $units (regexReplaceAll $re $s "${5}"))) $max -}}
{{- fail (printf "%s %q: too large (the agent takes at most 4EiB)" .key $s) -}}
{{- end -}}
{{- else -}}
{{- fail (printf "%s %q: want bytes or a number with B, KB, MB, GB, TB, KiB, MiB, GiB or TiB (Kubernetes units such as Gi are not sizes)%s" .key $s (ternary ", or a percentage below 100 (10%)" "" (.percent | default false))) -}}
{{- end -}}
{{- printf "--%s=%s" .flag $s -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/*
crashdump.durationMs: a PromQL duration (prometheusRule.alerts.*: 30s, 10m,
1h30m, 500ms; units y, w, d, h, m, s, ms, largest first, each at most once,
as PromQL takes them) in whole milliseconds. Anything else fails the render,
naming the value: a bad duration would otherwise reach Prometheus, which
refuses the whole rule group. "positive" refuses 0 (a range window).
  include "crashdump.durationMs" (dict "key" "prometheusRule.alerts.CrashdumpPodCrashed.window" "value" "10m" "positive" true)
*/}}
{{- define "crashdump.durationMs" -}}
{{- $s := "" -}}
{{- if not (kindIs "invalid" .value) -}}{{- $s = toString .value -}}{{- end -}}
{{- $re := "^(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?$" -}}
{{- if or (eq $s "") (not (regexMatch $re $s)) -}}
{{- fail (printf "%s %q: want a PromQL duration such as 30s, 10m, 1h30m or 500ms (units ms, s, m, h, d, w, y, largest first)" .key $s) -}}
{{- end -}}
{{- $ms := 0 -}}
{{- range $i, $unit := list 31536000000 604800000 86400000 3600000 60000 1000 1 -}}
{{- $ms = add $ms (mul (regexReplaceAll $re $s (printf "${%d}" (add (mul $i 2) 2))| atoi) $unit) -}}
{{- end -}}
{{- if and .positive (eq $ms 0) -}}
{{- fail (printf "%s %q: a range window must be longer than 0" .key $s) -}}
{{- end -}}
{{- $ms -}}
{{- end -}}

{{/*
crashdump.durationSeconds: the same duration in seconds, for expressions
that compare with a number of seconds (600, 1.5).
*/}}
{{- define "crashdump.durationSeconds" -}}
{{- $ms := include "crashdump.durationMs" . | atoi -}}
{{- if eq (mod $ms 1000) 0 -}}
{{- div $ms 1000 -}}
{{- else -}}
{{- printf "%d.%03d" (div $ms 1000) (mod $ms 1000) | trimSuffix "0" | trimSuffix "0" -}}
{{- end -}}
{{- end -}}

{{/*
crashdump.durationWords: the same duration in words for alert texts:
"10 minutes", "1 hour 30 minutes".
*/}}
{{- define "crashdump.durationWords" -}}
{{- $ms := include "crashdump.durationMs" . | atoi -}}
{{- $words := list -}}
{{- range list (list 31536000000 "year") (list 604800000 "week") (list 86400000 "day") (list 3600000 "hour") (list 60000 "minute") (list 1000 "second") (list 1 "millisecond") -}}
{{- $n := div $ms (index . 0) -}}
{{- if gt $n 0 -}}
{{- $words = append $words (printf "%d %s%s" $n (index . 1) (ternary "" "s" (eq $n 1))) -}}
{{- $ms = sub $ms (mul $n (index . 0)) -}}
{{- end -}}
{{- end -}}
{{- if $words }}{{ join " " $words }}{{ else }}0 seconds{{ end -}}
{{- end -}}
