package oncall

import (
	"fmt"
	"regexp"
	"sort"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"
)

const monitoringV1 = "monitoring.coreos.com/v1"

// SDOptions is how the generated scrape configs reach Kubernetes.
type SDOptions struct {
	// KubeconfigFile is kubernetes_sd_configs' kubeconfig_file: the e2e
	// Prometheus runs outside the cluster and talks to the API server on
	// 127.0.0.1 with this kubeconfig.
	KubeconfigFile string
	// EndpointSlice makes ServiceMonitors discover with role endpointslice,
	// as the operator does with serviceDiscoveryRole EndpointSlice; the
	// default is role endpoints, the operator's default.
	EndpointSlice bool
	// Namespace is the namespace of objects rendered without
	// metadata.namespace (the one helm install -n would put them in).
	Namespace string
}

// ScrapeConfig is one entry of prometheus.yml's scrape_configs. The JSON
// tags are Prometheus' own field names (sigs.k8s.io/yaml marshals through
// JSON).
type ScrapeConfig struct {
	JobName              string               `json:"job_name"`
	HonorLabels          bool                 `json:"honor_labels"`
	HonorTimestamps      *bool                `json:"honor_timestamps,omitempty"`
	KubernetesSDConfigs  []KubernetesSDConfig `json:"kubernetes_sd_configs"`
	ScrapeInterval       string               `json:"scrape_interval,omitempty"`
	ScrapeTimeout        string               `json:"scrape_timeout,omitempty"`
	MetricsPath          string               `json:"metrics_path,omitempty"`
	Params               map[string][]string  `json:"params,omitempty"`
	Scheme               string               `json:"scheme,omitempty"`
	RelabelConfigs       []RelabelConfig      `json:"relabel_configs"`
	MetricRelabelConfigs []RelabelConfig      `json:"metric_relabel_configs,omitempty"`
}

// KubernetesSDConfig is one kubernetes_sd_configs entry.
type KubernetesSDConfig struct {
	Role           string      `json:"role"`
	KubeconfigFile string      `json:"kubeconfig_file,omitempty"`
	Namespaces     *Namespaces `json:"namespaces,omitempty"`
}

// Namespaces restricts discovery to these namespaces.
type Namespaces struct {
	Names []string `json:"names"`
}

// RelabelConfig is a Prometheus relabel_configs (or metric_relabel_configs)
// entry. Unset fields keep Prometheus' defaults (action replace, regex (.*),
// replacement $1, separator ;), as in the operator's output.
type RelabelConfig struct {
	SourceLabels []string `json:"source_labels,omitempty"`
	Separator    *string  `json:"separator,omitempty"`
	TargetLabel  string   `json:"target_label,omitempty"`
	Regex        string   `json:"regex,omitempty"`
	Modulus      uint64   `json:"modulus,omitempty"`
	Replacement  *string  `json:"replacement,omitempty"`
	Action       string   `json:"action,omitempty"`
}

// The monitor types below hold only the fields ScrapeConfigs translates:
// they are decoded strictly, so any other field the chart starts to render
// is an error naming it instead of a scrape setting silently dropped.

type monitorObject struct {
	APIVersion string            `json:"apiVersion"`
	Kind       string            `json:"kind"`
	Metadata   metav1.ObjectMeta `json:"metadata"`
	Spec       monitorSpec       `json:"spec"`
}

type monitorSpec struct {
	JobLabel          string               `json:"jobLabel"`
	Selector          metav1.LabelSelector `json:"selector"`
	NamespaceSelector struct {
		Any        bool     `json:"any"`
		MatchNames []string `json:"matchNames"`
	} `json:"namespaceSelector"`
	PodTargetLabels     []string   `json:"podTargetLabels"`
	TargetLabels        []string   `json:"targetLabels"`        // ServiceMonitor only
	PodMetricsEndpoints []endpoint `json:"podMetricsEndpoints"` // PodMonitor only
	Endpoints           []endpoint `json:"endpoints"`           // ServiceMonitor only
}

type endpoint struct {
	Port              string              `json:"port"`
	Path              string              `json:"path"`
	Scheme            string              `json:"scheme"`
	Params            map[string][]string `json:"params"`
	Interval          string              `json:"interval"`
	ScrapeTimeout     string              `json:"scrapeTimeout"`
	HonorLabels       bool                `json:"honorLabels"`
	HonorTimestamps   *bool               `json:"honorTimestamps"`
	FilterRunning     *bool               `json:"filterRunning"`
	Relabelings       []monitorRelabel    `json:"relabelings"`
	MetricRelabelings []monitorRelabel    `json:"metricRelabelings"`
}

type monitorRelabel struct {
	SourceLabels []string `json:"sourceLabels"`
	Separator    *string  `json:"separator"`
	TargetLabel  string   `json:"targetLabel"`
	Regex        string   `json:"regex"`
	Modulus      uint64   `json:"modulus"`
	Replacement  *string  `json:"replacement"`
	Action       string   `json:"action"`
}

// ScrapeConfigs translates every monitoring.coreos.com/v1 PodMonitor and
// ServiceMonitor in rendered (helm template output) into the scrape configs
// the Prometheus Operator generates for them (pkg/prometheus/promcfg.go,
// generatePodMonitorConfig and generateServiceMonitorConfig): same job
// names, service discovery, selection and target labels, then the object's
// own relabelings. Left out: the operator's sharding rules (a no-op with one
// shard) and scrape classes (the e2e Prometheus has none). Fields it does
// not translate are errors.
func ScrapeConfigs(rendered []byte, opt SDOptions) ([]ScrapeConfig, error) {
	objs, err := splitObjects(rendered)
	if err != nil {
		return nil, err
	}
	var out []ScrapeConfig
	for _, o := range objs {
		isMonitoring := strings.HasPrefix(o.APIVersion, "monitoring.coreos.com/")
		switch {
		case o.APIVersion == monitoringV1 && (o.Kind == "PodMonitor" || o.Kind == "ServiceMonitor"):
		case isMonitoring && (o.Kind == "Probe" || o.Kind == "ScrapeConfig"):
			// A scrape the e2e Prometheus would miss without a word.
			return nil, fmt.Errorf("%s: %s %s is not translated", o, o.APIVersion, o.Kind)
		default:
			continue
		}
		var m monitorObject
		if err := yaml.UnmarshalStrict(o.raw, &m); err != nil {
			return nil, fmt.Errorf("%s: unsupported field: %w", o, err)
		}
		if m.Metadata.Namespace == "" {
			m.Metadata.Namespace = opt.Namespace
		}
		scs, err := translateMonitor(m, opt)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", o, err)
		}
		out = append(out, scs...)
	}
	return out, nil
}

func translateMonitor(m monitorObject, opt SDOptions) ([]ScrapeConfig, error) {
	pod := m.Kind == "PodMonitor"
	eps := m.Spec.Endpoints
	if pod {
		if len(m.Spec.Endpoints) > 0 || len(m.Spec.TargetLabels) > 0 {
			return nil, fmt.Errorf("endpoints and targetLabels are ServiceMonitor fields")
		}
		eps = m.Spec.PodMetricsEndpoints
	} else if len(m.Spec.PodMetricsEndpoints) > 0 {
		return nil, fmt.Errorf("podMetricsEndpoints is a PodMonitor field")
	}

	sd := KubernetesSDConfig{Role: "pod", KubeconfigFile: opt.KubeconfigFile}
	prefix := "podMonitor"
	// What the selector is matched against: the pod's labels for a
	// PodMonitor, the service's for a ServiceMonitor.
	meta := "__meta_kubernetes_pod_"
	if !pod {
		sd.Role = "endpoints"
		if opt.EndpointSlice {
			sd.Role = "endpointslice"
		}
		prefix = "serviceMonitor"
		meta = "__meta_kubernetes_service_"
	}
	// The operator's namespace rule: any means all namespaces, no
	// matchNames means the object's own.
	switch ns := m.Spec.NamespaceSelector; {
	case ns.Any:
	case len(ns.MatchNames) > 0:
		sd.Namespaces = &Namespaces{Names: ns.MatchNames}
	default:
		sd.Namespaces = &Namespaces{Names: []string{m.Metadata.Namespace}}
	}

	selection, err := selectorRelabels(m.Spec.Selector, meta)
	if err != nil {
		return nil, err
	}

	var out []ScrapeConfig
	for i, ep := range eps {
		rc := []RelabelConfig{{SourceLabels: []string{"job"}, TargetLabel: "__tmp_prometheus_job_name"}}
		running := ep.FilterRunning == nil || *ep.FilterRunning
		// Targets of pods that have ended keep their addresses in the pod
		// list; the operator drops them.
		runningFilter := RelabelConfig{Action: "drop", SourceLabels: []string{"__meta_kubernetes_pod_phase"}, Regex: "(Failed|Succeeded)"}
		if pod {
			if running {
				rc = append(rc, runningFilter)
			}
			rc = append(rc, selection...)
			if ep.Port != "" {
				rc = append(rc, keep("__meta_kubernetes_pod_container_port_name", ep.Port))
			}
			rc = append(rc,
				copyLabel("__meta_kubernetes_namespace", "namespace"),
				copyLabel("__meta_kubernetes_pod_container_name", "container"),
				copyLabel("__meta_kubernetes_pod_name", "pod"))
			rc = append(rc, labelsFrom("__meta_kubernetes_pod_label_", m.Spec.PodTargetLabels)...)
			rc = append(rc, RelabelConfig{TargetLabel: "job", Replacement: ptr(m.Metadata.Namespace + "/" + m.Metadata.Name)})
		} else {
			rc = append(rc, selection...)
			sdMeta := "__meta_kubernetes_endpoint"
			if sd.Role == "endpointslice" {
				sdMeta = "__meta_kubernetes_endpointslice"
			}
			if ep.Port != "" {
				rc = append(rc, keep(sdMeta+"_port_name", ep.Port))
			}
			target := []string{sdMeta + "_address_target_kind", sdMeta + "_address_target_name"}
			rc = append(rc,
				RelabelConfig{SourceLabels: target, Separator: ptr(";"), Regex: "Node;(.*)", Replacement: ptr("${1}"), TargetLabel: "node"},
				RelabelConfig{SourceLabels: target, Separator: ptr(";"), Regex: "Pod;(.*)", Replacement: ptr("${1}"), TargetLabel: "pod"},
				copyLabel("__meta_kubernetes_namespace", "namespace"),
				copyLabel("__meta_kubernetes_service_name", "service"),
				copyLabel("__meta_kubernetes_pod_name", "pod"),
				copyLabel("__meta_kubernetes_pod_container_name", "container"))
			if running {
				rc = append(rc, runningFilter)
			}
			rc = append(rc, labelsFrom("__meta_kubernetes_service_label_", m.Spec.TargetLabels)...)
			rc = append(rc, labelsFrom("__meta_kubernetes_pod_label_", m.Spec.PodTargetLabels)...)
			rc = append(rc, RelabelConfig{SourceLabels: []string{"__meta_kubernetes_service_name"}, TargetLabel: "job", Replacement: ptr("${1}")})
		}
		// jobLabel: the job is that label's value on the pod (service), and
		// stays the default above where the label is missing or empty.
		if m.Spec.JobLabel != "" {
			rc = append(rc, RelabelConfig{
				SourceLabels: []string{meta + "label_" + sanitizeLabelName(m.Spec.JobLabel)},
				TargetLabel:  "job", Regex: "(.+)", Replacement: ptr("${1}"),
			})
		}
		if ep.Port != "" {
			rc = append(rc, RelabelConfig{TargetLabel: "endpoint", Replacement: ptr(ep.Port)})
		}
		out = append(out, ScrapeConfig{
			JobName:              fmt.Sprintf("%s/%s/%s/%d", prefix, m.Metadata.Namespace, m.Metadata.Name, i),
			HonorLabels:          ep.HonorLabels,
			HonorTimestamps:      ep.HonorTimestamps,
			KubernetesSDConfigs:  []KubernetesSDConfig{sd},
			ScrapeInterval:       ep.Interval,
			ScrapeTimeout:        ep.ScrapeTimeout,
			MetricsPath:          ep.Path,
			Params:               ep.Params,
			Scheme:               ep.Scheme,
			RelabelConfigs:       append(rc, convertRelabels(ep.Relabelings)...),
			MetricRelabelConfigs: convertRelabels(ep.MetricRelabelings),
		})
	}
	return out, nil
}

// selectorRelabels turns a label selector into keep/drop rules on the
// discovered object's labels. A label and its labelpresent twin are matched
// together so that `key: ""` selects objects having the label with an empty
// value, not objects lacking it.
func selectorRelabels(sel metav1.LabelSelector, meta string) ([]RelabelConfig, error) {
	keys := make([]string, 0, len(sel.MatchLabels))
	for k := range sel.MatchLabels {
		keys = append(keys, k)
	}
	sort.Strings(keys) // deterministic output, like the operator's
	var rc []RelabelConfig
	valueAndPresent := func(k string) []string {
		k = sanitizeLabelName(k)
		return []string{meta + "label_" + k, meta + "labelpresent_" + k}
	}
	for _, k := range keys {
		rc = append(rc, RelabelConfig{Action: "keep", SourceLabels: valueAndPresent(k), Regex: fmt.Sprintf("(%s);true", sel.MatchLabels[k])})
	}
	for _, e := range sel.MatchExpressions {
		present := []string{meta + "labelpresent_" + sanitizeLabelName(e.Key)}
		in := fmt.Sprintf("(%s);true", strings.Join(e.Values, "|"))
		switch e.Operator {
		case metav1.LabelSelectorOpIn:
			rc = append(rc, RelabelConfig{Action: "keep", SourceLabels: valueAndPresent(e.Key), Regex: in})
		case metav1.LabelSelectorOpNotIn:
			rc = append(rc, RelabelConfig{Action: "drop", SourceLabels: valueAndPresent(e.Key), Regex: in})
		case metav1.LabelSelectorOpExists:
			rc = append(rc, RelabelConfig{Action: "keep", SourceLabels: present, Regex: "true"})
		case metav1.LabelSelectorOpDoesNotExist:
			rc = append(rc, RelabelConfig{Action: "drop", SourceLabels: present, Regex: "true"})
		default:
			return nil, fmt.Errorf("selector.matchExpressions: unknown operator %q", e.Operator)
		}
	}
	return rc, nil
}

// convertRelabels maps the CRD's camelCase relabelings to Prometheus'
// relabel_configs; the operator lowercases the action (the CRD accepts
// Replace as well as replace).
func convertRelabels(in []monitorRelabel) []RelabelConfig {
	var out []RelabelConfig
	for _, r := range in {
		out = append(out, RelabelConfig{
			SourceLabels: r.SourceLabels,
			Separator:    r.Separator,
			TargetLabel:  r.TargetLabel,
			Regex:        r.Regex,
			Modulus:      r.Modulus,
			Replacement:  r.Replacement,
			Action:       strings.ToLower(r.Action),
		})
	}
	return out
}

func keep(label, regex string) RelabelConfig {
	return RelabelConfig{Action: "keep", SourceLabels: []string{label}, Regex: regex}
}

func copyLabel(from, to string) RelabelConfig {
	return RelabelConfig{SourceLabels: []string{from}, TargetLabel: to}
}

// labelsFrom copies the named Kubernetes labels (podTargetLabels,
// targetLabels) onto the target where they have a value.
func labelsFrom(meta string, names []string) []RelabelConfig {
	var rc []RelabelConfig
	for _, l := range names {
		rc = append(rc, RelabelConfig{SourceLabels: []string{meta + sanitizeLabelName(l)}, TargetLabel: sanitizeLabelName(l), Regex: "(.+)", Replacement: ptr("${1}")})
	}
	return rc
}

var invalidLabelChar = regexp.MustCompile(`[^a-zA-Z0-9_]`)

// sanitizeLabelName is how Kubernetes SD names a Kubernetes label in its
// meta labels (app.kubernetes.io/name: __meta_kubernetes_pod_label_app_kubernetes_io_name).
func sanitizeLabelName(name string) string {
	return invalidLabelChar.ReplaceAllString(name, "_")
}

func ptr[T any](v T) *T { return &v }
