{{- /*
The alerting rules, shared by the PrometheusRule object and the plain rule
file deploy/alerts/crashdump-rules.yaml (make manifests renders it with
prometheusRule.ruleFileOnly=true). Unit tests: deploy/alerts/crashdump-rules_test.yaml
(promtool test rules, in make test). Runbooks: docs/operations.md.

The agent's metrics carry no label naming an app's pod or namespace
(unbounded values are not allowed), so every alert is per agent: job,
instance and node (the ServiceMonitor/PodMonitor add node from the pod's
node name), and the target labels namespace and pod of the agent pod (one
per agent, bounded), which Alertmanager routes on: every aggregation keeps
them ($by). CrashdumpAgentAbsent has no target to take them from: it
carries the release namespace. CrashdumpAgentNotOnAllNodes has the
DaemonSet's namespace from kube-state-metrics.
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
groups:
  - name: crashdump
    rules:
      - alert: CrashdumpPodCrashed
        expr: sum by ({{ $by }}) (increase(crashdump_dumps_detected_total{ {{- $s -}} }[10m])) > 0
        labels:
          severity: info
        annotations:
          summary: A pod crashed and left a crash dump on {{ $where }}.
          description: >-
            {{`{{ $value | humanize }}`}} crash dump(s) were claimed on {{ $where }} in the last
            10 minutes. The crashed pod has a CrashDumpUploaded Event once the dump is stored;
            list the dumps with `kubectl crashdump ls -A --since 1h{{`{{ with $labels.node }} --node {{ . }}{{ end }}`}}`.
            This alert's namespace and pod labels are the agent's, which claimed the dump.
          runbook_url: {{ $rb }}#crashdumppodcrashed
      - alert: CrashdumpUploadsFailing
        expr: |-
          (
            sum by ({{ $by }}) (rate(crashdump_uploads_total{ {{- $sc }}result="failure"}[15m]))
          /
            sum by ({{ $by }}) (rate(crashdump_uploads_total{ {{- $s -}} }[15m]))
          ) > {{ $t.uploadFailureRatio }}
        for: 15m
        labels:
          severity: warning
        annotations:
          summary: Crash dump uploads are failing on {{ $where }}.
          description: >-
            {{`{{ $value | humanizePercentage }}`}} of the upload attempts on {{ $where }} failed
            over the last 15 minutes. Dumps stay on the node and are retried with backoff.
          runbook_url: {{ $rb }}#crashdumpuploadsfailing
      - alert: CrashdumpStoreUnreachable
        expr: |-
          sum by ({{ $by }}) (rate(crashdump_store_operations_total{ {{- $sc }}result="error"}[10m])) > 0
          unless
          sum by ({{ $by }}) (rate(crashdump_store_operations_total{ {{- $sc }}result=~"success|not_found"}[10m])) > 0
        for: 10m
        labels:
          severity: critical
        annotations:
          summary: The agent on {{ $where }} cannot reach the object store.
          description: >-
            Every store operation of the agent on {{ $where }} failed for 10 minutes: no dump
            leaves this node. Check the store URL, the endpoint, the credentials and the network.
          runbook_url: {{ $rb }}#crashdumpstoreunreachable
      - alert: CrashdumpBacklogGrowing
        expr: |-
          crashdump_pending_dumps{ {{- $s -}} } >= {{ $t.backlogDumps }}
          and
          delta(crashdump_pending_dumps{ {{- $s -}} }[1h]) > 0
        for: 30m
        labels:
          severity: warning
        annotations:
          summary: The crash dump backlog on {{ $where }} keeps growing.
          description: >-
            {{`{{ $value }}`}} dumps are waiting on {{ $where }} and the backlog grew over the last
            hour: dumps arrive faster than they are uploaded.
          runbook_url: {{ $rb }}#crashdumpbackloggrowing
      - alert: CrashdumpDumpsStuck
        expr: |-
          crashdump_pending_dumps{ {{- $s -}} } > 0
          and on (job, instance)
          (time() - crashdump_last_upload_timestamp_seconds{ {{- $s -}} }) > {{ $t.stuckForSeconds }}
          and on (job, instance)
          (time() - process_start_time_seconds{ {{- $s -}} }) > {{ $t.stuckForSeconds }}
        for: 15m
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
        for: 10m
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
        for: 5m
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
        for: 10m
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
        expr: sum by ({{ $by }}) (increase(crashdump_dumps_failed_total{ {{- $s -}} }[1h])) > 0
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
        expr: sum by ({{ $by }}, reason) (increase(crashdump_dumps_dropped_total{ {{- $sc }}reason!~"empty|not_selected|rate_limited"}[30m])) > 0
        labels:
          severity: warning
        annotations:
          summary: The agent on {{ $where }} left out or removed dumps ({{`{{ $labels.reason }}`}}).
          description: >-
            {{`{{ $value | humanize }}`}} dump(s) or directory entries were not uploaded on {{ $where }}
            in the last 30 minutes, reason {{`{{ $labels.reason }}`}}.
          runbook_url: {{ $rb }}#crashdumpdumpsdropped
      - alert: CrashdumpPodSourceFailing
        expr: |-
          sum by ({{ $by }}) (increase(crashdump_pod_source_requests_total{ {{- $sc }}result="failure"}[15m])) > 0
          unless
          sum by ({{ $by }}) (increase(crashdump_pod_source_requests_total{ {{- $sc }}result="success"}[15m])) > 0
        for: 15m
        labels:
          severity: warning
        annotations:
          summary: The agent on {{ $where }} cannot list its node's pods.
          description: >-
            Every pod list request of the agent on {{ $where }} failed for 15 minutes. Dumps are
            still uploaded, but attributed by their directory only, or not at all.
          runbook_url: {{ $rb }}#crashdumppodsourcefailing
      - alert: CrashdumpAgentDown
        expr: up{ {{- $s -}} } == 0
        for: 10m
        labels:
          severity: warning
        annotations:
          summary: The crashdump agent on {{ $where }} is down.
          description: >-
            Prometheus could not scrape the agent on {{ $where }} for 10 minutes. Dumps written
            there wait on the node's disk until it is back.
          runbook_url: {{ $rb }}#crashdumpagentdown
      - alert: CrashdumpAgentAbsent
        expr: absent(up{ {{- $s -}} })
        for: 15m
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
        for: 30m
        labels:
          severity: warning
        annotations:
          summary: The crashdump agent is not available on every node.
          description: >-
            {{`{{ $value }}`}} node(s) have no available crashdump agent for 30 minutes (from
            kube-state-metrics); dumps on those nodes are not collected.
          runbook_url: {{ $rb }}#crashdumpagentnotonallnodes
      {{- with $p.additionalRules }}
      {{- toYaml . | nindent 6 }}
      {{- end }}
{{- end -}}
