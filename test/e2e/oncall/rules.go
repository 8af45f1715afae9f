package oncall

import (
	"encoding/json"
	"fmt"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"
)

// RuleFile returns the rule groups of every monitoring.coreos.com/v1
// PrometheusRule in rendered as one Prometheus rule file (rule_files:), as
// the operator mounts them into Prometheus. The groups are passed through
// untouched: Prometheus and promtool judge them.
func RuleFile(rendered []byte) ([]byte, error) {
	objs, err := splitObjects(rendered)
	if err != nil {
		return nil, err
	}
	var groups []json.RawMessage
	for _, o := range objs {
		if o.APIVersion != monitoringV1 || o.Kind != "PrometheusRule" {
			continue
		}
		// groups is the whole PrometheusRule spec; anything else in it is
		// an error rather than dropped.
		var r struct {
			APIVersion string            `json:"apiVersion"`
			Kind       string            `json:"kind"`
			Metadata   metav1.ObjectMeta `json:"metadata"`
			Spec       struct {
				Groups []json.RawMessage `json:"groups"`
			} `json:"spec"`
		}
		if err := yaml.UnmarshalStrict(o.raw, &r); err != nil {
			return nil, fmt.Errorf("%s: unsupported field: %w", o, err)
		}
		groups = append(groups, r.Spec.Groups...)
	}
	if len(groups) == 0 {
		return nil, fmt.Errorf("no PrometheusRule with rule groups in the rendered objects")
	}
	return yaml.Marshal(map[string]any{"groups": groups})
}
