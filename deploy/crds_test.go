package deploy

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// The Prometheus operator's kinds are not in client-go. These types are the
// part of their monitoring.coreos.com/v1 schema the chart uses, with the
// field names of the operator's CRDs; decoding refuses any other field, so a
// typo or a field in the wrong place fails like it would against the CRD.

type relabelConfig struct {
	SourceLabels []string `json:"sourceLabels,omitempty"`
	Separator    string   `json:"separator,omitempty"`
	TargetLabel  string   `json:"targetLabel,omitempty"`
	Regex        string   `json:"regex,omitempty"`
	Modulus      uint64   `json:"modulus,omitempty"`
	Replacement  *string  `json:"replacement,omitempty"`
	Action       string   `json:"action,omitempty"`
}

type scrapeEndpoint struct {
	Port              string          `json:"port,omitempty"`
	Path              string          `json:"path,omitempty"`
	Scheme            string          `json:"scheme,omitempty"`
	Interval          string          `json:"interval,omitempty"`
	ScrapeTimeout     string          `json:"scrapeTimeout,omitempty"`
	HonorLabels       bool            `json:"honorLabels,omitempty"`
	Relabelings       []relabelConfig `json:"relabelings,omitempty"`
	MetricRelabelings []relabelConfig `json:"metricRelabelings,omitempty"`
}

type namespaceSelector struct {
	Any        bool     `json:"any,omitempty"`
	MatchNames []string `json:"matchNames,omitempty"`
}

type serviceMonitor struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              struct {
		JobLabel          string               `json:"jobLabel,omitempty"`
		Selector          metav1.LabelSelector `json:"selector"`
		NamespaceSelector namespaceSelector    `json:"namespaceSelector,omitempty"`
		Endpoints         []scrapeEndpoint     `json:"endpoints"`
	} `json:"spec"`
}

type podMonitor struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              struct {
		JobLabel            string               `json:"jobLabel,omitempty"`
		Selector            metav1.LabelSelector `json:"selector"`
		NamespaceSelector   namespaceSelector    `json:"namespaceSelector,omitempty"`
		PodMetricsEndpoints []scrapeEndpoint     `json:"podMetricsEndpoints"`
	} `json:"spec"`
}

type rule struct {
	Alert         string            `json:"alert,omitempty"`
	Record        string            `json:"record,omitempty"`
	Expr          string            `json:"expr"`
	For           string            `json:"for,omitempty"`
	KeepFiringFor string            `json:"keep_firing_for,omitempty"`
	Labels        map[string]string `json:"labels,omitempty"`
	Annotations   map[string]string `json:"annotations,omitempty"`
}

type ruleGroup struct {
	Name     string `json:"name"`
	Interval string `json:"interval,omitempty"`
	Rules    []rule `json:"rules"`
}

type ruleGroups struct {
	Groups []ruleGroup `json:"groups"`
}

type prometheusRule struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              ruleGroups `json:"spec"`
}

func decodeMonitoring(gvk schema.GroupVersionKind, js []byte) (any, error) {
	if gvk.Version != "v1" {
		return nil, fmt.Errorf("%s: want monitoring.coreos.com/v1", gvk)
	}
	var v any
	switch gvk.Kind {
	case "ServiceMonitor":
		v = &serviceMonitor{}
	case "PodMonitor":
		v = &podMonitor{}
	case "PrometheusRule":
		v = &prometheusRule{}
	default:
		return nil, fmt.Errorf("%s: unknown kind", gvk)
	}
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return nil, fmt.Errorf("%s: %w", gvk.Kind, err)
	}
	switch m := v.(type) {
	case *serviceMonitor:
		for _, e := range m.Spec.Endpoints {
			if err := checkEndpoint(e); err != nil {
				return nil, err
			}
		}
	case *podMonitor:
		for _, e := range m.Spec.PodMetricsEndpoints {
			if err := checkEndpoint(e); err != nil {
				return nil, err
			}
		}
	case *prometheusRule:
		if err := checkRuleGroups(m.Spec); err != nil {
			return nil, err
		}
	}
	return v, nil
}

// promDuration parses Prometheus durations (1h, 15m, 30s, 1d).
func promDuration(s string) (time.Duration, error) {
	if n := len(s); n > 1 && s[n-1] == 'd' {
		d, err := time.ParseDuration(s[:n-1] + "h")
		return d * 24, err
	}
	return time.ParseDuration(s)
}

func checkEndpoint(e scrapeEndpoint) error {
	if e.Port == "" {
		return fmt.Errorf("scrape endpoint without a port name")
	}
	iv, err := promDuration(e.Interval)
	if err != nil {
		return fmt.Errorf("interval %q: %w", e.Interval, err)
	}
	to, err := promDuration(e.ScrapeTimeout)
	if err != nil {
		return fmt.Errorf("scrapeTimeout %q: %w", e.ScrapeTimeout, err)
	}
	if to > iv {
		return fmt.Errorf("scrapeTimeout %s above the interval %s (Prometheus refuses the scrape config)", e.ScrapeTimeout, e.Interval)
	}
	return nil
}

func checkRuleGroups(g ruleGroups) error {
	if len(g.Groups) == 0 {
		return fmt.Errorf("no rule groups")
	}
	seen := map[string]bool{}
	for _, grp := range g.Groups {
		if grp.Name == "" || seen[grp.Name] {
			return fmt.Errorf("rule group name %q empty or repeated", grp.Name)
		}
		seen[grp.Name] = true
		for _, r := range grp.Rules {
			if (r.Alert == "") == (r.Record == "") {
				return fmt.Errorf("rule %q/%q: exactly one of alert and record", r.Alert, r.Record)
			}
			if r.Expr == "" {
				return fmt.Errorf("rule %s: empty expr", r.Alert+r.Record)
			}
			if r.For != "" {
				if _, err := promDuration(r.For); err != nil {
					return fmt.Errorf("rule %s: for %q: %w", r.Alert, r.For, err)
				}
			}
		}
	}
	return nil
}
