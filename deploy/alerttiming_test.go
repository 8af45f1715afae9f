package deploy

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// renderRules renders the rule file with extra helm args.
func renderRules(t *testing.T, args ...string) map[string]rule {
	t.Helper()
	args = append([]string{"--set", "prometheusRule.enabled=true,prometheusRule.ruleFileOnly=true", "--show-only", "templates/prometheusrule.yaml"}, args...)
	var groups ruleGroups
	if err := yamlStrict([]byte(helmTemplate(t, args...)), &groups); err != nil {
		t.Fatal(err)
	}
	rules := map[string]rule{}
	for _, g := range groups.Groups {
		for _, r := range g.Rules {
			rules[r.Alert] = r
		}
	}
	return rules
}

var rangeWindow = regexp.MustCompile(`\[([^\]]+)\]`)

// The for: and range windows of the alerts are chart values
// (prometheusRule.alerts), so a test environment can make alerts fire within
// seconds: what the values say is what the rules get, for every alert.
func TestAlertTimingValues(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(chartDir, "values.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var values struct {
		PrometheusRule struct {
			Alerts map[string]map[string]string `json:"alerts"`
		} `json:"prometheusRule"`
	}
	if err := yaml.Unmarshal(b, &values); err != nil {
		t.Fatal(err)
	}
	alerts := values.PrometheusRule.Alerts
	defaults := renderRules(t)
	if len(alerts) != len(defaults) {
		t.Errorf("prometheusRule.alerts has %d alerts, the rules %d", len(alerts), len(defaults))
	}
	// Defaults: each rule has the for: and windows of its values.
	for name, r := range defaults {
		v, ok := alerts[name]
		if !ok {
			t.Errorf("prometheusRule.alerts has no %s", name)
			continue
		}
		if r.For != v["for"] {
			t.Errorf("%s: for %q, values say %q", name, r.For, v["for"])
		}
		for _, w := range rangeWindow.FindAllStringSubmatch(r.Expr, -1) {
			if w[1] != v["window"] {
				t.Errorf("%s: range window [%s], values say %q", name, w[1], v["window"])
			}
		}
	}
	if got := defaults["CrashdumpPodCrashed"].Expr; !strings.Contains(got, "crashdump_last_dump_timestamp_seconds{job=~\".*crashdump.*\"} < 600,") {
		t.Errorf("CrashdumpPodCrashed: the 10m window is not 600 seconds:\n%s", got)
	}

	// Every alert with odd values: nothing else is left in the rules.
	var set []string
	for name, v := range alerts {
		set = append(set, fmt.Sprintf("prometheusRule.alerts.%s.for=7s", name))
		if _, ok := v["window"]; ok {
			set = append(set, fmt.Sprintf("prometheusRule.alerts.%s.window=13s", name))
		}
	}
	for name, r := range renderRules(t, "--set", strings.Join(set, ",")) {
		if r.For != "7s" {
			t.Errorf("%s with for=7s: for %q", name, r.For)
		}
		ws := rangeWindow.FindAllStringSubmatch(r.Expr, -1)
		if _, ok := alerts[name]["window"]; ok != (len(ws) > 0 || name == "CrashdumpPodCrashed") {
			t.Errorf("%s: values window %v, expression has windows %v", name, ok, ws)
		}
		for _, w := range ws {
			if w[1] != "13s" {
				t.Errorf("%s with window=13s: range window [%s]", name, w[1])
			}
		}
	}

	// What an e2e sets: one alert's for and window, the rest as they were.
	r := renderRules(t, "--set", "prometheusRule.alerts.CrashdumpStoreUnreachable.for=30s,prometheusRule.alerts.CrashdumpStoreUnreachable.window=1m")
	su := r["CrashdumpStoreUnreachable"]
	if su.For != "30s" || strings.Count(su.Expr, "[1m]") != 2 || strings.Contains(su.Expr, "[10m]") {
		t.Errorf("CrashdumpStoreUnreachable with for=30s, window=1m: for %q, expr\n%s", su.For, su.Expr)
	}
	if !strings.Contains(su.Annotations["description"], "failed for 1 minute:") {
		t.Errorf("CrashdumpStoreUnreachable description does not say the window: %s", su.Annotations["description"])
	}
	if r["CrashdumpAgentDown"].For != "10m" {
		t.Errorf("CrashdumpAgentDown for %q: changed by another alert's values", r["CrashdumpAgentDown"].For)
	}
	// for 0s: no for at all.
	if got := renderRules(t, "--set", "prometheusRule.alerts.CrashdumpAgentDown.for=0s")["CrashdumpAgentDown"]; got.For != "" ||
		strings.Contains(got.Annotations["description"], " for ") {
		t.Errorf("CrashdumpAgentDown with for=0s: for %q, description %q", got.For, got.Annotations["description"])
	}

	// CrashdumpPodCrashed compares with seconds: durations converted.
	for window, want := range map[string]string{"90s": "90", "1h30m": "5400", "1500ms": "1.5", "2d": "172800", "1m5ms": "60.005"} {
		expr := renderRules(t, "--set", "prometheusRule.alerts.CrashdumpPodCrashed.window="+window)["CrashdumpPodCrashed"].Expr
		if !strings.Contains(expr, "} < "+want+",") {
			t.Errorf("CrashdumpPodCrashed window %s: want < %s in\n%s", window, want, expr)
		}
	}
}

// A duration PromQL would refuse fails the render, naming the value; the
// schema refuses alerts that do not exist and windows of alerts without one.
func TestAlertTimingRefusesBadValues(t *testing.T) {
	base := []string{"--set", "prometheusRule.enabled=true"}
	for _, tc := range []struct{ set, want string }{
		{"prometheusRule.alerts.CrashdumpStoreUnreachable.window=10", `prometheusRule.alerts.CrashdumpStoreUnreachable.window "10": want a PromQL duration such as 30s, 10m, 1h30m or 500ms`},
		{"prometheusRule.alerts.CrashdumpStoreUnreachable.for=1.5h", `prometheusRule.alerts.CrashdumpStoreUnreachable.for "1.5h": want a PromQL duration`},
		{"prometheusRule.alerts.CrashdumpPodCrashed.window=30m1h", `prometheusRule.alerts.CrashdumpPodCrashed.window "30m1h": want a PromQL duration`},
		{"prometheusRule.alerts.CrashdumpPodCrashed.window=0s", `prometheusRule.alerts.CrashdumpPodCrashed.window "0s": a range window must be longer than 0`},
		{"prometheusRule.alerts.CrashdumpDumpsDropped.window=", `prometheusRule.alerts.CrashdumpDumpsDropped.window "": want a PromQL duration`},
		{"prometheusRule.alerts.CrashdumpStoreUnreachabel.for=1m", "CrashdumpStoreUnreachabel"},
		{"prometheusRule.alerts.CrashdumpAgentDown.window=1m", "window"},
	} {
		_, err := helmTemplateErr(t, append(base, "--set-string", tc.set)...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("--set-string %s: error %v, want one mentioning %q", tc.set, err, tc.want)
		}
	}
}
