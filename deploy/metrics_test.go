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

	"sigs.k8s.io/yaml"
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

// dashboard is what the tests read of deploy/dashboards/crashdump.json.
type dashboard struct {
	UID           string           `json:"uid"`
	Title         string           `json:"title"`
	SchemaVersion int              `json:"schemaVersion"`
	Panels        []dashboardPanel `json:"panels"`
	Templating    struct {
		List []struct {
			Name  string `json:"name"`
			Query any    `json:"query"`
		} `json:"list"`
	} `json:"templating"`
}

type dashboardPanel struct {
	ID          int    `json:"id"`
	Type        string `json:"type"`
	Title       string `json:"title"`
	Description string `json:"description"`
	GridPos     struct {
		H int `json:"h"`
		W int `json:"w"`
		X int `json:"x"`
		Y int `json:"y"`
	} `json:"gridPos"`
	Targets []struct {
		Expr    string `json:"expr"`
		Instant bool   `json:"instant"`
	} `json:"targets"`
	FieldConfig struct {
		Defaults struct {
			Thresholds struct {
				Mode  string `json:"mode"`
				Steps []struct {
					Color string   `json:"color"`
					Value *float64 `json:"value"`
				} `json:"steps"`
			} `json:"thresholds"`
		} `json:"defaults"`
	} `json:"fieldConfig"`
}

func loadDashboard(t *testing.T) dashboard {
	t.Helper()
	b, err := os.ReadFile("dashboards/crashdump.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash dashboard
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatal(err)
	}
	return dash
}

// The Grafana dashboard is valid JSON whose queries use only exported
// metrics, with unique panel ids.
func TestDashboard(t *testing.T) {
	dash := loadDashboard(t)
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

// Every panel says what it shows and what to do when it looks bad, and an
// alert it names is one the rules have (so its runbook section exists:
// TestEveryAlertHasRunbookAndTest). Rows only group panels: Grafana shows
// no description for them.
func TestDashboardPanelsDescribed(t *testing.T) {
	alerts := map[string]bool{}
	for _, g := range loadRuleFile(t).Groups {
		for _, r := range g.Rules {
			alerts[r.Alert] = true
		}
	}
	alertRef := regexp.MustCompile(`\bCrashdump[A-Z][A-Za-z]+\b`)
	named := 0
	for _, p := range loadDashboard(t).Panels {
		if p.Type == "row" {
			continue
		}
		if strings.TrimSpace(p.Description) == "" {
			t.Errorf("panel %q (id %d) has no description", p.Title, p.ID)
			continue
		}
		for _, a := range alertRef.FindAllString(p.Description, -1) {
			named++
			if !alerts[a] {
				t.Errorf("panel %q names alert %s, which the rules do not have", p.Title, a)
			}
		}
	}
	if named == 0 {
		t.Error("no panel description names an alert")
	}
}

// The on-call's first question, in the top row: did the agent lose dumps?
// "Dumps lost (24h)" adds the two drop reasons that lose a dump (read from
// the collector's constants, on the metric that has the reason label):
// evicted by the disk budget, deleted from failed/ after --failed-ttl. Red
// above 0, green at 0.
func TestDashboardDumpsLost(t *testing.T) {
	src, err := os.ReadFile(repoFile("collector/metrics.go"))
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`Name:\s+"crashdump_dumps_dropped_total",[^}]*\},\s*\[\]string\{"reason"\}`).Match(src) {
		t.Fatal("collector/metrics.go: crashdump_dumps_dropped_total with the label reason (only) not found")
	}
	consts := map[string]string{}
	for _, m := range regexp.MustCompile(`\b(Drop[A-Za-z]+)\s*=\s*"([a-z_]+)"`).FindAllStringSubmatch(string(src), -1) {
		consts[m[1]] = m[2]
	}
	lost := []string{consts["DropDiskBudget"], consts["DropFailedTTL"]}
	if lost[0] == "" || lost[1] == "" {
		t.Fatalf("DropDiskBudget, DropFailedTTL not found in collector/metrics.go (%v)", consts)
	}
	sort.Strings(lost)

	dash := loadDashboard(t)
	var p *dashboardPanel
	var rows []int // y of the rows
	for i, q := range dash.Panels {
		if q.Type == "row" {
			rows = append(rows, q.GridPos.Y)
		}
		if q.Title == "Dumps lost (24h)" {
			p = &dash.Panels[i]
		}
	}
	if p == nil {
		t.Fatal(`the dashboard has no "Dumps lost (24h)" panel`)
	}
	if p.Type != "stat" {
		t.Errorf("Dumps lost (24h) is a %s, want a stat", p.Type)
	}
	if len(rows) < 2 || p.GridPos.Y <= rows[0] || p.GridPos.Y >= rows[1] {
		t.Errorf("Dumps lost (24h) at y %d, not in the top row (rows at %v)", p.GridPos.Y, rows)
	}
	if len(p.Targets) != 1 {
		t.Fatalf("Dumps lost (24h) has %d queries, want 1", len(p.Targets))
	}
	expr := p.Targets[0].Expr
	sel := regexp.MustCompile(`^sum\(increase\(crashdump_dumps_dropped_total\{([^}]*)\}\[24h\]\)\)$`).FindStringSubmatch(expr)
	if sel == nil {
		t.Fatalf("Dumps lost (24h): %s, want sum(increase(crashdump_dumps_dropped_total{...}[24h]))", expr)
	}
	matchers := map[string]string{}
	for _, m := range regexp.MustCompile(`([a-z_]+)\s*(=~|=|!=|!~)\s*"([^"]*)"`).FindAllStringSubmatch(sel[1], -1) {
		matchers[m[1]] = m[2] + m[3]
	}
	// job and node: the dashboard's variables (target labels); reason: the
	// metric's one label.
	want := map[string]string{"job": `=~$job`, "node": `=~$node`, "reason": "=~" + strings.Join(lost, "|")}
	for l, v := range matchers {
		if want[l] == "" {
			t.Errorf("Dumps lost (24h) matches on %s, which crashdump_dumps_dropped_total does not have", l)
		} else if v != want[l] {
			t.Errorf("Dumps lost (24h): %s%s, want %s%s", l, v, l, want[l])
		}
	}
	for l, v := range want {
		if _, ok := matchers[l]; !ok {
			t.Errorf("Dumps lost (24h) does not match %s%s", l, v)
		}
	}
	if !p.Targets[0].Instant {
		t.Error("Dumps lost (24h): want an instant query, like the other stats")
	}
	th := p.FieldConfig.Defaults.Thresholds
	if th.Mode != "absolute" || len(th.Steps) != 2 || th.Steps[0].Value != nil || th.Steps[0].Color != "green" ||
		th.Steps[1].Color != "red" || th.Steps[1].Value == nil || *th.Steps[1].Value <= 0 || *th.Steps[1].Value > 1 {
		b, _ := json.Marshal(th)
		t.Errorf("Dumps lost (24h) thresholds %s: want absolute, green at 0, red from 1 (or a step between 0 and 1)", b)
	}
}

// The panels fit the 24 columns and none hides another.
func TestDashboardLayout(t *testing.T) {
	panels := loadDashboard(t).Panels
	for i, p := range panels {
		g := p.GridPos
		if g.W <= 0 || g.H <= 0 || g.X < 0 || g.Y < 0 || g.X+g.W > 24 {
			t.Errorf("panel %q: gridPos %+v outside the 24 columns", p.Title, g)
		}
		for _, q := range panels[:i] {
			h := q.GridPos
			if g.X < h.X+h.W && h.X < g.X+g.W && g.Y < h.Y+h.H && h.Y < g.Y+g.H {
				t.Errorf("panels %q %+v and %q %+v overlap", q.Title, h, p.Title, g)
			}
		}
	}
}

// Alertmanager routes on the target labels namespace and pod of the agent
// pod (one value per agent: bounded); on CrashdumpPodCrashed they are the
// crashed pod's (bounded by the agent: 32 series of at most 1 h), the
// agent's moved to agent_namespace and agent_pod. An aggregation that drops
// them sends the alert to the default route: every by (...) of the rules
// keeps them, and the promtool tests expect them on every alert but the two
// that have no agent target (absent: only the release namespace, a static
// label; kube-state-metrics: the DaemonSet's namespace) and an unattributed
// dump's CrashdumpPodCrashed (no pod).
func TestAlertsKeepNamespaceAndPod(t *testing.T) {
	aggr := `(?:sum|min|max|avg|group|stddev|stdvar|count|count_values|bottomk|topk|quantile|limitk|limit_ratio)`
	by := regexp.MustCompile(`\b` + aggr + `\s+by\s*\(([^)]*)\)`)
	bare := regexp.MustCompile(`\b` + aggr + `\s*\(`)
	without := regexp.MustCompile(`\bwithout\s*\(([^)]*)\)`)
	for _, g := range loadRuleFile(t).Groups {
		for _, r := range g.Rules {
			for _, m := range by.FindAllStringSubmatch(r.Expr, -1) {
				have := map[string]bool{}
				for _, l := range strings.Split(m[1], ",") {
					have[strings.TrimSpace(l)] = true
				}
				if !have["namespace"] || !have["pod"] {
					t.Errorf("alert %s: %q drops namespace or pod", r.Alert, m[0])
				}
			}
			if m := bare.FindString(r.Expr); m != "" {
				t.Errorf("alert %s: %q aggregates without a leading by (...) keeping namespace and pod", r.Alert, m)
			}
			for _, m := range without.FindAllStringSubmatch(r.Expr, -1) {
				if strings.Contains(m[1], "namespace") || strings.Contains(m[1], "pod") {
					t.Errorf("alert %s: %q drops namespace or pod", r.Alert, m[0])
				}
			}
		}
	}

	b, err := os.ReadFile("alerts/crashdump-rules_test.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var tests struct {
		Tests []struct {
			AlertRuleTest []struct {
				Alertname string `json:"alertname"`
				ExpAlerts []struct {
					ExpLabels map[string]string `json:"exp_labels"`
				} `json:"exp_alerts"`
			} `json:"alert_rule_test"`
		} `json:"tests"`
	}
	if err := yaml.Unmarshal(b, &tests); err != nil {
		t.Fatal(err)
	}
	noPod := map[string]bool{"CrashdumpAgentAbsent": true, "CrashdumpAgentNotOnAllNodes": true}
	firing := map[string]bool{}
	for _, tc := range tests.Tests {
		for _, a := range tc.AlertRuleTest {
			for _, e := range a.ExpAlerts {
				firing[a.Alertname] = true
				if a.Alertname == "CrashdumpPodCrashed" {
					// The crashed pod's namespace and pod (none when the dump
					// is not attributed); the agent pod's as agent_*.
					if e.ExpLabels["namespace"] == "" || e.ExpLabels["agent_namespace"] == "" || e.ExpLabels["agent_pod"] == "" {
						t.Errorf("alerts/crashdump-rules_test.yaml: %s expected with labels %v, without namespace, agent_namespace or agent_pod", a.Alertname, e.ExpLabels)
					}
					continue
				}
				if e.ExpLabels["namespace"] == "" || (!noPod[a.Alertname] && e.ExpLabels["pod"] == "") {
					t.Errorf("alerts/crashdump-rules_test.yaml: %s expected with labels %v, without namespace or pod", a.Alertname, e.ExpLabels)
				}
			}
		}
	}
	for _, g := range loadRuleFile(t).Groups {
		for _, r := range g.Rules {
			if !firing[r.Alert] {
				t.Errorf("alerts/crashdump-rules_test.yaml never expects %s to fire", r.Alert)
			}
		}
	}
}
