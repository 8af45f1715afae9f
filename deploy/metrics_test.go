package deploy

import (
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
)

// agentMetrics are the metric names the Go code registers (Name:
// "crashdump_..."), with histograms' series suffixes.
func agentMetrics(t *testing.T) map[string]bool {
	t.Helper()
	re := regexp.MustCompile(`Name:\s+"(crashdump_[a-z0-9_]+)"`)
	hist := regexp.MustCompile(`(?s)New(Histogram|HistogramVec)\(prometheus\.HistogramOpts\{\s*Name:\s+"(crashdump_[a-z0-9_]+)"`)
	names := map[string]bool{}
	err := filepath.WalkDir(repoFile("."), func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			switch d.Name() {
			case ".git", "bin", "test", "demo", "bench":
				return fs.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(p, ".go") || strings.HasSuffix(p, "_test.go") {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		for _, m := range re.FindAllStringSubmatch(string(b), -1) {
			names[m[1]] = true
		}
		for _, m := range hist.FindAllStringSubmatch(string(b), -1) {
			for _, sfx := range []string{"_bucket", "_sum", "_count"} {
				names[m[2]+sfx] = true
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"crashdump_dumps_detected_total", "crashdump_uploads_total", "crashdump_pending_bytes",
		"crashdump_upload_duration_seconds_bucket", "crashdump_store_operations_total"} {
		if !names[want] {
			t.Fatalf("metric %s not found in the Go code: the scan is broken", want)
		}
	}
	return names
}

var metricRef = regexp.MustCompile(`\bcrashdump_[a-z0-9_]+`)

// unknownMetrics lists the crashdump_ metrics expr uses that the agent does
// not export.
func unknownMetrics(expr string, known map[string]bool) []string {
	var bad []string
	for _, m := range metricRef.FindAllString(expr, -1) {
		if !known[m] {
			bad = append(bad, m)
		}
	}
	return bad
}

// The alert rules only use metrics the agent exports: a renamed metric
// would otherwise silently disable an alert.
func TestRulesUseExportedMetrics(t *testing.T) {
	known := agentMetrics(t)
	groups := loadRuleFile(t)
	n := 0
	for _, g := range groups.Groups {
		for _, r := range g.Rules {
			n++
			if bad := unknownMetrics(r.Expr, known); len(bad) > 0 {
				t.Errorf("alert %s uses %v, which the agent does not export", r.Alert, bad)
			}
			if r.Labels["severity"] == "" || r.Annotations["summary"] == "" || r.Annotations["description"] == "" {
				t.Errorf("alert %s needs severity, summary and description", r.Alert)
			}
			if !strings.Contains(r.Annotations["runbook_url"], "operations.md#"+strings.ToLower(r.Alert)) {
				t.Errorf("alert %s: runbook_url %q does not point at its section", r.Alert, r.Annotations["runbook_url"])
			}
		}
	}
	if n < 8 {
		t.Errorf("only %d rules", n)
	}
}

// Every alert has its runbook section in docs/operations.md, and the promtool
// unit tests exercise every alert.
func TestEveryAlertHasRunbookAndTest(t *testing.T) {
	ops, err := os.ReadFile(repoFile("docs/operations.md"))
	if err != nil {
		t.Fatal(err)
	}
	tests, err := os.ReadFile("alerts/crashdump-rules_test.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range loadRuleFile(t).Groups {
		for _, r := range g.Rules {
			if !regexp.MustCompile(`(?m)^### ` + r.Alert + `$`).Match(ops) {
				t.Errorf("docs/operations.md has no section \"### %s\"", r.Alert)
			}
			if !strings.Contains(string(tests), "alertname: "+r.Alert+"\n") {
				t.Errorf("alerts/crashdump-rules_test.yaml does not test %s", r.Alert)
			}
		}
	}
}

func loadRuleFile(t *testing.T) ruleGroups {
	t.Helper()
	objs := helmTemplate(t, "--set", "prometheusRule.enabled=true,prometheusRule.ruleFileOnly=true", "--show-only", "templates/prometheusrule.yaml")
	var groups ruleGroups
	if err := yamlStrict([]byte(objs), &groups); err != nil {
		t.Fatal(err)
	}
	return groups
}

// The Grafana dashboard is valid JSON whose queries use only exported
// metrics, with unique panel ids.
func TestDashboard(t *testing.T) {
	b, err := os.ReadFile("dashboards/crashdump.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		UID           string `json:"uid"`
		Title         string `json:"title"`
		SchemaVersion int    `json:"schemaVersion"`
		Panels        []struct {
			ID      int    `json:"id"`
			Type    string `json:"type"`
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
		Templating struct {
			List []struct {
				Name  string `json:"name"`
				Query any    `json:"query"`
			} `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatal(err)
	}
	if dash.UID == "" || dash.Title == "" || dash.SchemaVersion == 0 {
		t.Errorf("uid %q title %q schemaVersion %d", dash.UID, dash.Title, dash.SchemaVersion)
	}
	known := agentMetrics(t)
	ids := map[int]bool{}
	used := map[string]bool{}
	queries := 0
	for _, p := range dash.Panels {
		if ids[p.ID] {
			t.Errorf("panel id %d twice", p.ID)
		}
		ids[p.ID] = true
		if p.Type != "row" && len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, q := range p.Targets {
			queries++
			if bad := unknownMetrics(q.Expr, known); len(bad) > 0 {
				t.Errorf("panel %q uses %v, which the agent does not export", p.Title, bad)
			}
			for _, m := range metricRef.FindAllString(q.Expr, -1) {
				used[m] = true
			}
		}
	}
	// What the issue asks the dashboard to show.
	for _, m := range []string{"crashdump_dumps_detected_total", "crashdump_upload_bytes_total", "crashdump_upload_duration_seconds_bucket",
		"crashdump_pending_dumps", "crashdump_pending_bytes", "crashdump_disk_budget_bytes", "crashdump_uploads_total",
		"crashdump_dumps_dropped_total", "crashdump_correlations_total"} {
		if !used[m] {
			t.Errorf("the dashboard does not show %s", m)
		}
	}
	var list []string
	for m := range used {
		list = append(list, m)
	}
	sort.Strings(list)
	t.Logf("%d panels, %d queries over %v", len(dash.Panels), queries, list)
}
