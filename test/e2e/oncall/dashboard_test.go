package oncall

import (
	"os"
	"reflect"
	"strings"
	"testing"
)

func TestDashboardQueries(t *testing.T) {
	const templating = `"templating": {"list": [
	  {"name": "job", "includeAll": true, "allValue": ".*crashdump.*", "current": {"text": "All", "value": "$__all"}},
	  {"name": "node", "includeAll": true, "allValue": ".*", "current": {"text": "All", "value": ["$__all"]}},
	  {"name": "ns", "current": {"value": "crashdump"}},
	  {"name": "bare", "includeAll": true, "current": {"value": "$__all"}}]}`
	dash := func(exprs ...string) []byte {
		targets := make([]string, len(exprs))
		for i, e := range exprs {
			targets[i] = `{"refId": "` + string(rune('A'+i)) + `", "expr": ` + e + `}`
		}
		return []byte(`{"panels": [{"type": "row", "title": "R", "panels": [{"title": "P", "targets": [` +
			strings.Join(targets, ",") + `]}]}], ` + templating + `}`)
	}
	vars := map[string]string{"__rate_interval": "1m", "__range": "1h", "pod": "p-1"}
	for _, tc := range []struct {
		name string
		dash []byte
		vars map[string]string
		want []string
		err  string
	}{{
		name: "forms, All values, current value, vars",
		dash: dash(`"up{job=~\"$job\", node=~\"${node}\", namespace=\"[[ns]]\", pod=\"${pod:regex}\"}[$__rate_interval]"`,
			`"label_replace(x, \"a\", \"$1${1}\", \"b\", \"(.*)\")[$__range]"`, `""`),
		vars: vars,
		want: []string{`up{job=~".*crashdump.*", node=~".*", namespace="crashdump", pod="p-1"}[1m]`,
			`label_replace(x, "a", "$1${1}", "b", "(.*)")[1h]`},
	}, {
		name: "vars win, All from vars",
		dash: dash(`"up{job=~\"$job\", namespace=\"$ns\"}"`),
		vars: map[string]string{"job": "All", "ns": "other"},
		want: []string{`up{job=~".*crashdump.*", namespace="other"}`},
	}, {
		name: "unknown variable",
		dash: dash(`"rate(x[$__rate_interval])"`, `"up{a=\"$nope\"}"`),
		vars: vars,
		err:  `panel "P" (B): unknown variable $nope`,
	}, {
		name: "unset built-in",
		dash: dash(`"rate(x[$__interval])"`),
		vars: vars,
		err:  `unknown variable $__interval`,
	}, {
		name: "All without allValue",
		dash: dash(`"up{a=~\"$bare\"}"`),
		err:  `$bare is All without allValue`,
	}} {
		t.Run(tc.name, func(t *testing.T) {
			qs, err := DashboardQueries(tc.dash, tc.vars)
			if !checkErr(t, err, tc.err) {
				return
			}
			var got []string
			for _, q := range qs {
				if q.Panel != "P" {
					t.Errorf("panel %q", q.Panel)
				}
				got = append(got, q.Expr)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got\n%q\nwant\n%q", got, tc.want)
			}
		})
	}
}

// TestDashboardQueriesChart substitutes every query of the repository's
// dashboard with the dashboard's own defaults (All).
func TestDashboardQueriesChart(t *testing.T) {
	qs := repoDashboardQueries(t)
	if len(qs) < 30 {
		t.Errorf("only %d queries", len(qs))
	}
	found := false
	for _, q := range qs {
		if strings.Contains(q.Expr, "$") || strings.Contains(q.Expr, "[[") {
			t.Errorf("%s: unsubstituted: %s", q, q.Expr)
		}
		if q.Panel == "Agents up" {
			found = true
			if want := `sum(up{job=~".*crashdump.*", node=~".*"}) / count(up{job=~".*crashdump.*", node=~".*"})`; q.Expr != want {
				t.Errorf("Agents up: %s, want %s", q.Expr, want)
			}
		}
	}
	if !found {
		t.Error("no Agents up panel")
	}
}

// repoDashboardQueries are the queries of the repository's dashboard with
// its own defaults (All) and a 1m rate interval.
func repoDashboardQueries(t *testing.T) []PanelQuery {
	t.Helper()
	js, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	qs, err := DashboardQueries(js, map[string]string{"__rate_interval": "1m"})
	if err != nil {
		t.Fatal(err)
	}
	return qs
}
