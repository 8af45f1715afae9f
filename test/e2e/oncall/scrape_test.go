package oncall

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"sigs.k8s.io/yaml"
)

// The chart's selector labels, as the operator turns them into keep rules.
var chartSelection = func(meta string) []RelabelConfig {
	return []RelabelConfig{
		{Action: "keep", SourceLabels: []string{meta + "label_app_kubernetes_io_instance", meta + "labelpresent_app_kubernetes_io_instance"}, Regex: "(x);true"},
		{Action: "keep", SourceLabels: []string{meta + "label_app_kubernetes_io_name", meta + "labelpresent_app_kubernetes_io_name"}, Regex: "(crashdump);true"},
	}
}

func TestScrapeConfigsChart(t *testing.T) {
	runningFilter := RelabelConfig{Action: "drop", SourceLabels: []string{"__meta_kubernetes_pod_phase"}, Regex: "(Failed|Succeeded)"}
	chartNode := RelabelConfig{SourceLabels: []string{"__meta_kubernetes_pod_node_name"}, TargetLabel: "node"}
	endpoint := RelabelConfig{TargetLabel: "endpoint", Replacement: ptr("metrics")}
	for _, tc := range []struct {
		name    string
		sets    []string
		opt     SDOptions
		job     string
		role    string
		want    []RelabelConfig // each must be present, in this order
		metrics []RelabelConfig
	}{{
		name: "PodMonitor",
		sets: []string{"metrics.podMonitor.enabled=true"},
		job:  "podMonitor/default/x-crashdump/0",
		role: "pod",
		want: append(append([]RelabelConfig{runningFilter}, chartSelection("__meta_kubernetes_pod_")...),
			keep("__meta_kubernetes_pod_container_port_name", "metrics"),
			copyLabel("__meta_kubernetes_namespace", "namespace"),
			copyLabel("__meta_kubernetes_pod_container_name", "container"),
			copyLabel("__meta_kubernetes_pod_name", "pod"),
			RelabelConfig{TargetLabel: "job", Replacement: ptr("default/x-crashdump")},
			RelabelConfig{SourceLabels: []string{"__meta_kubernetes_pod_label_app_kubernetes_io_name"}, TargetLabel: "job", Regex: "(.+)", Replacement: ptr("${1}")},
			endpoint, chartNode),
	}, {
		name: "ServiceMonitor endpointslice, chart relabelings and metricRelabelings",
		sets: []string{"metrics.serviceMonitor.enabled=true", "metrics.service.enabled=true",
			"metrics.serviceMonitor.relabelings[0].action=Replace", "metrics.serviceMonitor.relabelings[0].sourceLabels[0]=__meta_kubernetes_pod_host_ip",
			"metrics.serviceMonitor.relabelings[0].targetLabel=host_ip",
			"metrics.serviceMonitor.metricRelabelings[0].action=Drop", "metrics.serviceMonitor.metricRelabelings[0].sourceLabels[0]=__name__",
			"metrics.serviceMonitor.metricRelabelings[0].regex=go_.*"},
		opt:  SDOptions{EndpointSlice: true},
		job:  "serviceMonitor/default/x-crashdump/0",
		role: "endpointslice",
		want: append(chartSelection("__meta_kubernetes_service_"),
			keep("__meta_kubernetes_endpointslice_port_name", "metrics"),
			copyLabel("__meta_kubernetes_namespace", "namespace"),
			copyLabel("__meta_kubernetes_service_name", "service"),
			copyLabel("__meta_kubernetes_pod_name", "pod"),
			copyLabel("__meta_kubernetes_pod_container_name", "container"),
			runningFilter,
			RelabelConfig{SourceLabels: []string{"__meta_kubernetes_service_name"}, TargetLabel: "job", Replacement: ptr("${1}")},
			RelabelConfig{SourceLabels: []string{"__meta_kubernetes_service_label_app_kubernetes_io_name"}, TargetLabel: "job", Regex: "(.+)", Replacement: ptr("${1}")},
			endpoint, chartNode,
			RelabelConfig{Action: "replace", SourceLabels: []string{"__meta_kubernetes_pod_host_ip"}, TargetLabel: "host_ip"}),
		metrics: []RelabelConfig{{Action: "drop", SourceLabels: []string{"__name__"}, Regex: "go_.*"}},
	}, {
		name: "ServiceMonitor endpoints",
		sets: []string{"metrics.serviceMonitor.enabled=true"},
		job:  "serviceMonitor/default/x-crashdump/0",
		role: "endpoints",
		want: []RelabelConfig{keep("__meta_kubernetes_endpoint_port_name", "metrics"),
			{SourceLabels: []string{"__meta_kubernetes_endpoint_address_target_kind", "__meta_kubernetes_endpoint_address_target_name"},
				Separator: ptr(";"), Regex: "Pod;(.*)", Replacement: ptr("${1}"), TargetLabel: "pod"}},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			tc.opt.KubeconfigFile = "/etc/e2e/kubeconfig"
			scs, err := ScrapeConfigs(renderChart(t, tc.sets...), tc.opt)
			if err != nil {
				t.Fatal(err)
			}
			if len(scs) != 1 {
				t.Fatalf("got %d scrape configs, want 1: %+v", len(scs), scs)
			}
			sc := scs[0]
			wantSD := []KubernetesSDConfig{{Role: tc.role, KubeconfigFile: "/etc/e2e/kubeconfig", Namespaces: &Namespaces{Names: []string{"default"}}}}
			if sc.JobName != tc.job || sc.ScrapeInterval != "30s" || sc.ScrapeTimeout != "10s" || sc.MetricsPath != "/metrics" || !reflect.DeepEqual(sc.KubernetesSDConfigs, wantSD) {
				t.Errorf("got %s interval %s timeout %s path %s sd %+v", sc.JobName, sc.ScrapeInterval, sc.ScrapeTimeout, sc.MetricsPath, sc.KubernetesSDConfigs[0])
			}
			assertInOrder(t, sc.RelabelConfigs, tc.want)
			if !reflect.DeepEqual(sc.MetricRelabelConfigs, tc.metrics) {
				t.Errorf("metric_relabel_configs = %s, want %s", dump(sc.MetricRelabelConfigs), dump(tc.metrics))
			}
		})
	}
}

// assertInOrder checks that want is a subsequence of got.
func assertInOrder(t *testing.T, got, want []RelabelConfig) {
	t.Helper()
	i := 0
	for _, g := range got {
		if i < len(want) && reflect.DeepEqual(g, want[i]) {
			i++
		}
	}
	if i < len(want) {
		t.Errorf("relabel_configs lack (in order) %s\ngot:\n%s", dump(want[i]), dump(got))
	}
}

func dump(v any) string {
	b, _ := yaml.Marshal(v)
	return string(b)
}

func TestScrapeConfigsTranslation(t *testing.T) {
	const head = "apiVersion: monitoring.coreos.com/v1\nkind: PodMonitor\nmetadata: {name: m}\nspec:\n"
	for _, tc := range []struct {
		name, yaml string
		want       []RelabelConfig // in order, in the first config
		err        string          // error must contain this
	}{{
		name: "matchExpressions, namespace from SDOptions, own relabelings",
		yaml: head + `  selector:
    matchExpressions:
      - {key: tier, operator: In, values: [a, b]}
      - {key: app.x/y, operator: NotIn, values: [c]}
      - {key: e, operator: Exists}
      - {key: d, operator: DoesNotExist}
  podMetricsEndpoints:
    - relabelings: [{sourceLabels: [a, b], separator: "-", targetLabel: t, regex: "(.*)", replacement: "$1", action: HashMod, modulus: 3}]
`,
		want: []RelabelConfig{
			{Action: "keep", SourceLabels: []string{"__meta_kubernetes_pod_label_tier", "__meta_kubernetes_pod_labelpresent_tier"}, Regex: "(a|b);true"},
			{Action: "drop", SourceLabels: []string{"__meta_kubernetes_pod_label_app_x_y", "__meta_kubernetes_pod_labelpresent_app_x_y"}, Regex: "(c);true"},
			{Action: "keep", SourceLabels: []string{"__meta_kubernetes_pod_labelpresent_e"}, Regex: "true"},
			{Action: "drop", SourceLabels: []string{"__meta_kubernetes_pod_labelpresent_d"}, Regex: "true"},
			{TargetLabel: "job", Replacement: ptr("ns/m")},
			{SourceLabels: []string{"a", "b"}, Separator: ptr("-"), TargetLabel: "t", Regex: "(.*)", Replacement: ptr("$1"), Action: "hashmod", Modulus: 3},
		},
	}, {
		name: "filterRunning false",
		yaml: head + "  podMetricsEndpoints: [{port: m, filterRunning: false}]\n",
		want: []RelabelConfig{{SourceLabels: []string{"job"}, TargetLabel: "__tmp_prometheus_job_name"}, keep("__meta_kubernetes_pod_container_port_name", "m")},
	}, {
		name: "unknown spec field",
		yaml: head + "  sampleLimit: 10\n  podMetricsEndpoints: [{port: m}]\n",
		err:  `unknown field "sampleLimit"`,
	}, {
		name: "unknown endpoint field",
		yaml: head + "  podMetricsEndpoints: [{port: m, tlsConfig: {insecureSkipVerify: true}}]\n",
		err:  `unknown field "tlsConfig"`,
	}, {
		name: "unknown relabeling field",
		yaml: head + "  podMetricsEndpoints: [{port: m, relabelings: [{source_labels: [a]}]}]\n",
		err:  `unknown field "source_labels"`,
	}, {
		name: "ServiceMonitor field in a PodMonitor",
		yaml: head + "  endpoints: [{port: m}]\n",
		err:  "ServiceMonitor fields",
	}, {
		name: "unknown selector operator",
		yaml: head + "  selector: {matchExpressions: [{key: a, operator: Gt}]}\n  podMetricsEndpoints: [{port: m}]\n",
		err:  `unknown operator "Gt"`,
	}, {
		name: "Probe",
		yaml: "apiVersion: monitoring.coreos.com/v1\nkind: Probe\nmetadata: {name: p}\n",
		err:  "Probe is not translated",
	}} {
		t.Run(tc.name, func(t *testing.T) {
			scs, err := ScrapeConfigs([]byte("---\n# Source: x\n---\n"+tc.yaml), SDOptions{Namespace: "ns"})
			if !checkErr(t, err, tc.err) {
				return
			}
			assertInOrder(t, scs[0].RelabelConfigs, tc.want)
		})
	}
}

// TestScrapeConfigsPromtool has promtool, the pinned Prometheus' own config
// loader, accept a prometheus.yml made of the chart's monitors.
func TestScrapeConfigsPromtool(t *testing.T) {
	promtool := tool(t, "E2E_PROMTOOL_BIN", "promtool")
	dir := t.TempDir()
	kubeconfig := filepath.Join(dir, "kubeconfig")
	if err := os.WriteFile(kubeconfig, []byte(dummyKubeconfig), 0o600); err != nil {
		t.Fatal(err)
	}
	rendered := renderChart(t, "metrics.podMonitor.enabled=true", "metrics.serviceMonitor.enabled=true", "metrics.service.enabled=true")
	scs, err := ScrapeConfigs(rendered, SDOptions{KubeconfigFile: kubeconfig})
	if err != nil {
		t.Fatal(err)
	}
	if len(scs) != 2 {
		t.Fatalf("got %d scrape configs, want 2", len(scs))
	}
	cfg, err := yaml.Marshal(map[string]any{"global": map[string]any{"scrape_interval": "30s"}, "scrape_configs": scs})
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(file, cfg, 0o600); err != nil {
		t.Fatal(err)
	}
	run(t, promtool, "check", "config", file)
}

const dummyKubeconfig = `apiVersion: v1
kind: Config
clusters: [{name: e2e, cluster: {server: "https://127.0.0.1:6443"}}]
users: [{name: e2e, user: {token: x}}]
contexts: [{name: e2e, context: {cluster: e2e, user: e2e}}]
current-context: e2e
`
