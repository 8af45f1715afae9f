{{- /*
The alerting rules, shared by the PrometheusRule object and the plain rule
file deploy/alerts/crashdump-rules.yaml (make manifests renders it with
prometheusRule.ruleFileOnly=true). Unit tests: deploy/alerts/crashdump-rules_test.yaml
(promtool test rules, in make test). Runbooks: docs/operations.md.

Every alert but one is per agent: job, instance and node (the
ServiceMonitor/PodMonitor add node from the pod's node name), and the target
labels namespace and pod of the agent pod (one per agent, bounded), which
Alertmanager routes on: every aggregation keeps them ($by).
CrashdumpAgentAbsent has no target to take them from: it carries the
release namespace. CrashdumpAgentNotOnAllNodes has the DaemonSet's
namespace from kube-state-metrics.

CrashdumpPodCrashed is per crashed container: its namespace, pod and
container are the crashed pod's, from the one agent metric that names it,
crashdump_last_dump_timestamp_seconds{dump_namespace,dump_pod,dump_container}
(bounded by the agent: at most 32 series per agent, none older than 1 h; the
labels are dump_* because the scrape's target labels namespace and pod would
rename a metric label of that name to exported_*). The agent pod's name
moves to agent_pod, its namespace to agent_namespace. A dump not attributed
to a pod has no pod or container label, and the namespace from its
directory, else the agent's.

for: and the range windows come from prometheusRule.alerts (PromQL
durations, checked by crashdump.durationMs in _helpers.tpl; an alert whose
for is absent or 0 has none).
*/ -}}
{{- define "crashdump.ruleGroups" -}}
{{- $p := .Values.prometheusRule -}}
{{- $s := $p.selector | default "" -}}
{{- $sc := "" -}}
{{- if $s }}{{ $sc = printf "%s," $s }}{{ end -}}
{{- $rb := $p.runbookBaseURL -}}
{{- $t := $p.thresholds -}}
{{- $by := "job, instance, node, namespace, pod" -}}
{{- $where := `{{ with $labels.node }}node {{ . }}{{ else }}{{ $labels.instance }}{{ end }}` -}}
{{- $a := $p.alerts | default dict -}}
{{- /* $win: each windowed alert's range window as given, $winS in seconds, $winW in words. */ -}}
{{- $win := dict -}}
{{- $winS := dict -}}
{{- $winW := dict -}}
{{- range list "CrashdumpPodCrashed" "CrashdumpUploadsFailing" "CrashdumpStoreUnreachable" "CrashdumpBacklogGrowing" "CrashdumpDumpsFailed" "CrashdumpDumpsDropped" "CrashdumpPodSourceFailing" -}}
{{- $d := dict "key" (printf "prometheusRule.alerts.%s.window" .) "value" (dig . "window" nil $a) "positive" true -}}
{{- $_ := set $winS . (include "crashdump.durationSeconds" $d) -}}
{{- $_ := set $winW . (include "crashdump.durationWords" $d) -}}
{{- $_ := set $win . (toString $d.value) -}}
{{- end -}}
{{- /* $for: each alert's for: as given (absent when 0), $forW in words. */ -}}
{{- $for := dict -}}
{{- $forW := dict -}}
{{- range $name, $v := $a -}}
{{- if and (kindIs "map" $v) (hasKey $v "for") (not (kindIs "invalid" (get $v "for"))) -}}
{{- $d := dict "key" (printf "prometheusRule.alerts.%s.for" $name) "value" (get $v "for") -}}
{{- if ne (include "crashdump.durationMs" $d) "0" -}}
{{- $_ := set $for $name (toString $d.value) -}}
{{- $_ := set $forW $name (include "crashdump.durationWords" $d) -}}
{{- end -}}
{{- end -}}
{{- end -}}
groups:
  - name: crashdump
    rules:
      - alert: CrashdumpPodCrashed
        expr: |-
          min by (job, instance, node, namespace, pod, container, agent_namespace, agent_pod) (
            label_replace(label_replace(label_replace(label_replace(label_replace(
              time() - crashdump_last_dump_timestamp_seconds{ {{- $s -}} } < {{ $winS.CrashdumpPodCrashed }},
            "agent_namespace", "$1", "namespace", "(.*)"),
            "agent_pod", "$1", "pod", "(.*)"),
            "namespace", "$1", "dump_namespace", "(.+)"),
            "pod", "$1", "dump_pod", "(.*)"),
            "container", "$1", "dump_container", "(.*)")
          )
        {{- with $for.CrashdumpPodCrashed }}
        for: {{ . }}
        {{- end }}
        labels:
          severity: info
        annotations:
          summary: >-
            {{`{{ if $labels.pod }}Pod {{ $labels.namespace }}/{{ $labels.pod }}{{ with $labels.container }} (container {{ . }}){{ end }} crashed and left a crash dump on`}} {{ $where }}.{{`{{ else }}A process crashed and left a crash dump on`}} {{ $where }}{{`{{ if ne $labels.namespace $labels.agent_namespace }} in namespace {{ $labels.namespace }}{{ end }}; the dump is not attributed to a pod.{{ end }}`}}
          description: >-
            {{`{{ if $labels.pod }}The newest dump of this container{{ else }}The newest dump not attributed to a pod{{ end }}`}}
            was claimed {{`{{ $value | humanizeDuration }}`}} ago by the agent{{`{{ with $labels.agent_pod }} {{ . }}{{ end }}`}} on {{ $where }};
            the alert lasts {{ $winW.CrashdumpPodCrashed }} after a dump. {{`{{ if $labels.pod }}The pod has a CrashDumpUploaded Event
            once the dump is stored; list{{ else }}List{{ end }}`}} the dumps with `kubectl crashdump ls
            {{- `{{ if or $labels.pod (ne $labels.namespace $labels.agent_namespace) }} -n {{ $labels.namespace }}{{ else }} -A{{ end }}{{ with $labels.pod }} --pod {{ . }}{{ end }}` }} --since 1h{{`{{ with $labels.node }} --node {{ . }}{{ end }}`}}`.
          runbook_url: {{ $rb }}#crashdumppodcrashed
      - alert: CrashdumpUploadsFailing
        expr: |-
          (
            sum by ({{ $by }}) (rate(crashdump_uploads_total{ {{- $sc }}result="failure"}[{{ $win.CrashdumpUploadsFailing }}]))
          /
            sum by ({{ $by }}) (rate(crashdump_uploads_total{ {{- $s -}} }[{{ $win.CrashdumpUploadsFailing }}]))
          ) > {{ $t.uploadFailureRatio }}
        {{- with $for.CrashdumpUploadsFailing }}
        for: {{ . }}
        {{- end }}
        labels:
          severity: warning
        annotations:
          summary: Crash dump uploads are failing on {{ $where }}.
          description: >-
            {{`{{ $value | humanizePercentage }}`}} of the upload attempts on {{ $where }} failed
            over the last {{ $winW.CrashdumpUploadsFailing }}. Dumps stay on the node and are retried with backoff.
          runbook_url: {{ $rb }}#crashdumpuploadsfailing
      - alert: CrashdumpStoreUnreachable
        expr: |-
          sum by ({{ $by }}) (rate(crashdump_store_operations_total{ {{- $sc }}result="error"}[{{ $win.CrashdumpStoreUnreachable }}])) > 0
          unless
          sum by ({{ $by }}) (rate(crashdump_store_operations_total{ {{- $sc }}result=~"success|not_found"}[{{ $win.CrashdumpStoreUnreachable }}])) > 0
        {{- with $for.CrashdumpStoreUnreachable }}
        for: {{ . }}
        {{- end }}
        labels:
          severity: critical
        annotations:
          summary: The agent on {{ $where }} cannot reach the object store.
          description: >-
            Every store operation of the agent on {{ $where }} failed for {{ $winW.CrashdumpStoreUnreachable }}: no dump
            leaves this node. Check the store URL, the endpoint, the credentials and the network.
          runbook_url: {{ $rb }}#crashdumpstoreunreachable
      - alert: CrashdumpBacklogGrowing
        expr: |-
          crashdump_pending_dumps{ {{- $s -}} } >= {{ $t.backlogDumps }}
          and
          delta(crashdump_pending_dumps{ {{- $s -}} }[{{ $win.CrashdumpBacklogGrowing }}]) > 0
        {{- with $for.CrashdumpBacklogGrowing }}
        for: {{ . }}
        {{- end }}
        labels:
          severity: warning
        annotations:
          summary: The crash dump backlog on {{ $where }} keeps growing.
          description: >-
            {{`{{ $value }}`}} dumps are waiting on {{ $where }} and the backlog grew over the last
            {{ regexReplaceAll "^1 ([a-z]+)$" $winW.CrashdumpBacklogGrowing "${1}" }}: dumps arrive faster than they are uploaded.
          runbook_url: {{ $rb }}#crashdumpbackloggrowing
      - alert: CrashdumpDumpsStuck
        expr: |-
          crashdump_pending_dumps{ {{- $s -}} } > 0
          and on (job, instance)
          (time() - crashdump_last_upload_timestamp_seconds{ {{- $s -}} }) > {{ $t.stuckForSeconds }}
          and on (job, instance)
          (time() - process_start_time_seconds{ {{- $s -}} }) > {{ $t.stuckForSeconds }}
        {{- with $for.CrashdumpDumpsStuck }}
        for: {{ . }}
        {{- end }}
        labels:
          severity: warning
        annotations:
          summary: Crash dumps have been pending on {{ $where }} for too long.
          description: >-
            {{`{{ $value }}`}} dump(s) are pending on {{ $where }} and nothing was uploaded there for
            over {{ div ($t.stuckForSeconds | int) 60 }} minutes although the agent has been running
            that long.
          runbook_url: {{ $rb }}#crashdumpdumpsstuck
      - alert: CrashdumpDiskBudgetNearlyExhausted
        expr: |-
          (
            crashdump_dump_disk_bytes{ {{- $s -}} }
          /
            (crashdump_disk_budget_bytes{ {{- $s -}} } > 0)
          ) > {{ $t.diskBudgetRatio }}
        {{- with $for.CrashdumpDiskBudgetNearlyExhausted }}
        for: {{ . }}
        {{- end }}
        labels:
          severity: warning
        annotations:
          summary: Crash dumps on {{ $where }} fill {{`{{ $value | humanizePercentage }}`}} of the disk budget.
          description: >-
            Dumps waiting for upload or given up on hold {{`{{ $value | humanizePercentage }}`}} of
            --max-dump-bytes on {{ $where }}. At 100% the agent evicts the oldest dumps, which are
            then lost (CrashdumpDumpsDropped, reason disk_budget).
          runbook_url: {{ $rb }}#crashdumpdiskbudgetnearlyexhausted
      - alert: CrashdumpDiskPressure
        expr: crashdump_disk_pressure{ {{- $s -}} } == 1
        {{- with $for.CrashdumpDiskPressure }}
        for: {{ . }}
        {{- end }}
        labels:
          severity: warning
        annotations:
          summary: The crashdump agent on {{ $where }} is short of disk (free space under --keep-free).
          description: >-
            Free space on the dump filesystem of {{ $where }} is under --keep-free, from files the
            agent does not hold. It evicts no dump for it and keeps collecting and uploading,
            which frees the dumps' space; the rest of the disk is someone else's. Find what fills it.
          runbook_url: {{ $rb }}#crashdumpdiskpressure
      - alert: CrashdumpPendingBytesHigh
        expr: |-
          crashdump_pending_bytes{ {{- $s -}} } > {{ $t.pendingBytes | int64 }}
          unless on (job, instance)
          crashdump_disk_budget_bytes{ {{- $s -}} } > 0
        {{- with $for.CrashdumpPendingBytesHigh }}
        for: {{ . }}
        {{- end }}
        labels:
          severity: warning
        annotations:
          summary: Crash dumps waiting on {{ $where }} take {{`{{ $value | humanize1024 }}`}}B of disk, with no disk budget.
          description: >-
            {{`{{ $value | humanize1024 }}`}}B of dumps are waiting for upload on {{ $where }}
            (threshold {{ $t.pendingBytes | int64 }} bytes) and the agent has no --max-dump-bytes
            budget: they grow until the node runs out of disk (--keep-free only reports it).
          runbook_url: {{ $rb }}#crashdumppendingbyteshigh
      - alert: CrashdumpDumpsFailed
        expr: sum by ({{ $by }}) (increase(crashdump_dumps_failed_total{ {{- $s -}} }[{{ $win.CrashdumpDumpsFailed }}])) > 0
        {{- with $for.CrashdumpDumpsFailed }}
        for: {{ . }}
        {{- end }}
        labels:
          severity: warning
        annotations:
          summary: Dumps on {{ $where }} could not be uploaded for --retry-for and were given up on.
          description: >-
            {{`{{ $value | humanize }}`}} dump(s) on {{ $where }} failed to upload for the whole
            --retry-for period (default 24h) and were moved to the agent's failed/ directory, where
            they stay for --failed-ttl (default 7 days) unless the disk budget needs the space.
          runbook_url: {{ $rb }}#crashdumpdumpsfailed
      - alert: CrashdumpDumpsDropped
        expr: sum by ({{ $by }}, reason) (increase(crashdump_dumps_dropped_total{ {{- $sc }}reason!~"empty|not_selected|rate_limited"}[{{ $win.CrashdumpDumpsDropped }}])) > 0
        {{- with $for.CrashdumpDumpsDropped }}
        for: {{ . }}
        {{- end }}
        labels:
          severity: warning
        annotations:
          summary: The agent on {{ $where }} left out or removed dumps ({{`{{ $labels.reason }}`}}).
          description: >-
            {{`{{ $value | humanize }}`}} dump(s) or directory entries were not uploaded on {{ $where }}
            in the last {{ $winW.CrashdumpDumpsDropped }}, reason {{`{{ $labels.reason }}`}}.
          runbook_url: {{ $rb }}#crashdumpdumpsdropped
      - alert: CrashdumpPodSourceFailing
        expr: |-
          sum by ({{ $by }}) (increase(crashdump_pod_source_requests_total{ {{- $sc }}result="failure"}[{{ $win.CrashdumpPodSourceFailing }}])) > 0
          unless
          sum by ({{ $by }}) (increase(crashdump_pod_source_requests_total{ {{- $sc }}result="success"}[{{ $win.CrashdumpPodSourceFailing }}])) > 0
        {{- with $for.CrashdumpPodSourceFailing }}
        for: {{ . }}
        {{- end }}
        labels:
          severity: warning
        annotations:
          summary: The agent on {{ $where }} cannot list its node's pods.
          description: >-
            Every pod list request of the agent on {{ $where }} failed for {{ $winW.CrashdumpPodSourceFailing }}. Dumps are
            still uploaded, but attributed by their directory only, or not at all.
          runbook_url: {{ $rb }}#crashdumppodsourcefailing
      - alert: CrashdumpAgentDown
        expr: up{ {{- $s -}} } == 0
        {{- with $for.CrashdumpAgentDown }}
        for: {{ . }}
        {{- end }}
        labels:
          severity: warning
        annotations:
          summary: The crashdump agent on {{ $where }} is down.
          description: >-
            Prometheus could not scrape the agent on {{ $where }}{{ with $forW.CrashdumpAgentDown }} for {{ . }}{{ end }}. Dumps written
            there wait on the node's disk until it is back.
          runbook_url: {{ $rb }}#crashdumpagentdown
      - alert: CrashdumpAgentAbsent
        expr: absent(up{ {{- $s -}} })
        {{- with $for.CrashdumpAgentAbsent }}
        for: {{ . }}
        {{- end }}
        labels:
          severity: warning
          namespace: {{ .Release.Namespace | quote }}
        annotations:
          summary: No crashdump agent is scraped at all.
          description: >-
            Prometheus has no target matching {{ $s }}: the agent is not installed, or not
            scraped (ServiceMonitor/PodMonitor, or prometheusRule.selector does not match).
          runbook_url: {{ $rb }}#crashdumpagentabsent
      - alert: CrashdumpAgentNotOnAllNodes
        expr: |-
          kube_daemonset_status_desired_number_scheduled{daemonset="{{ include "crashdump.fullname" . }}", namespace="{{ .Release.Namespace }}"}
          -
          kube_daemonset_status_number_available{daemonset="{{ include "crashdump.fullname" . }}", namespace="{{ .Release.Namespace }}"}
          > 0
        {{- with $for.CrashdumpAgentNotOnAllNodes }}
        for: {{ . }}
        {{- end }}
        labels:
          severity: warning
        annotations:
          summary: The crashdump agent is not available on every node.
          description: >-
            {{`{{ $value }}`}} node(s) have no available crashdump agent{{ with $forW.CrashdumpAgentNotOnAllNodes }} for {{ . }}{{ end }} (from
            kube-state-metrics); dumps on those nodes are not collected.
          runbook_url: {{ $rb }}#crashdumpagentnotonallnodes
      {{- with $p.additionalRules }}
      {{- toYaml . | nindent 6 }}
      {{- end }}
{{- end -}}
