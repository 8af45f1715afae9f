package oncall

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRuleFile(t *testing.T) {
	const rule = "apiVersion: monitoring.coreos.com/v1\nkind: PrometheusRule\nmetadata: {name: %s}\nspec:\n"
	for _, tc := range []struct {
		name, rendered string
		want           []string // substrings of the rule file
		err            string
	}{{
		name: "groups of two objects",
		rendered: strings.Replace(rule, "%s", "a", 1) + "  groups: [{name: a, rules: [{alert: A, expr: up == 0}]}]\n---\n" +
			strings.Replace(rule, "%s", "b", 1) + "  groups: [{name: b, rules: [{record: r, expr: sum(up)}]}]\n",
		want: []string{"groups:\n", "name: a", "alert: A", "name: b", "record: r"},
	}, {
		name:     "unknown spec field",
		rendered: strings.Replace(rule, "%s", "a", 1) + "  groups: []\n  extra: 1\n",
		err:      `unknown field "extra"`,
	}, {
		name:     "none",
		rendered: "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n",
		err:      "no PrometheusRule",
	}} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := RuleFile([]byte(tc.rendered))
			if !checkErr(t, err, tc.err) {
				return
			}
			for _, w := range tc.want {
				if !strings.Contains(string(got), w) {
					t.Errorf("rule file lacks %q:\n%s", w, got)
				}
			}
		})
	}
}

// TestRuleFileChart has promtool accept the chart's PrometheusRule as a rule
// file.
func TestRuleFileChart(t *testing.T) {
	promtool := tool(t, "E2E_PROMTOOL_BIN", "promtool")
	rules, err := RuleFile(renderChart(t, "prometheusRule.enabled=true"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(rules), "alert: CrashdumpAgentDown") {
		t.Errorf("rule file lacks CrashdumpAgentDown:\n%s", rules)
	}
	file := filepath.Join(t.TempDir(), "rules.yml")
	if err := os.WriteFile(file, rules, 0o600); err != nil {
		t.Fatal(err)
	}
	run(t, promtool, "check", "rules", file)
}
