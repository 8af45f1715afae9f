package oncall

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// Metrics shaped like the agent's, served to the test's Prometheus.
const testMetrics = `# TYPE crashdump_uploads_total counter
crashdump_uploads_total{result="success"} 1
crashdump_uploads_total{result="failure"} 0
# TYPE crashdump_upload_duration_seconds histogram
crashdump_upload_duration_seconds_bucket{le="1"} 1
crashdump_upload_duration_seconds_bucket{le="+Inf"} 1
crashdump_upload_duration_seconds_sum 0.5
crashdump_upload_duration_seconds_count 1
# TYPE crashdump_pending_dumps gauge
crashdump_pending_dumps 0
`

// startPrometheus runs the real Prometheus, scraping testMetrics every
// second with the target labels the chart's monitors give the agent, and
// returns a client once the series are there.
func startPrometheus(t *testing.T) *Prometheus {
	bin := tool(t, "E2E_PROMETHEUS_BIN", "prometheus")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		fmt.Fprint(w, testMetrics)
	}), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close() })

	dir := t.TempDir()
	cfg := fmt.Sprintf(`global: {scrape_interval: 1s, scrape_timeout: 1s}
scrape_configs:
  - job_name: crashdump
    static_configs:
      - targets: [%q]
        labels: {node: n1, namespace: crashdump, pod: crashdump-abcde, container: crashdump, endpoint: metrics}
`, ln.Addr().String())
	file := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(file, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := "127.0.0.1:" + freePort(t)
	start(t, bin, "--config.file="+file, "--storage.tsdb.path="+filepath.Join(dir, "data"), "--web.listen-address="+addr)
	waitReady(t, "http://"+addr+"/-/ready")

	p := &Prometheus{URL: "http://" + addr}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		s, err := p.Series(ctx, `{__name__=~"crashdump_upload_duration_seconds_bucket|up"}`)
		if err == nil && len(s) == 3 {
			return p
		}
		select {
		case <-ctx.Done():
			t.Fatalf("no scraped series: %v %v", s, err)
		case <-tick.C:
		}
	}
}

func TestPrometheus(t *testing.T) {
	p := startPrometheus(t)
	ctx := context.Background()

	t.Run("Query", func(t *testing.T) {
		for _, tc := range []struct {
			expr, typ string
			series    int
			err       string
		}{
			{expr: "crashdump_uploads_total", typ: "vector", series: 2},
			{expr: "crashdump_uploads_total[5m]", typ: "matrix", series: 2},
			{expr: "1+1", typ: "scalar", series: 1},
			{expr: "sum(", err: "bad_data"},
		} {
			typ, n, err := p.Query(ctx, tc.expr)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Errorf("%s: err %v, want %q", tc.expr, err, tc.err)
				}
				continue
			}
			if err != nil || typ != tc.typ || n != tc.series {
				t.Errorf("%s: %s %d %v, want %s %d", tc.expr, typ, n, err, tc.typ, tc.series)
			}
		}
	})

	t.Run("Series", func(t *testing.T) {
		s, err := p.Series(ctx, `crashdump_uploads_total{result="success"}`)
		if err != nil || len(s) != 1 || s[0]["node"] != "n1" || s[0]["job"] != "crashdump" {
			t.Errorf("series %v %v", s, err)
		}
	})

	t.Run("CheckExported", func(t *testing.T) {
		for _, tc := range []struct {
			name, expr string
			want       []string // one substring per error, in order
		}{
			{name: "dashboard-like", expr: `sum by (result) (increase(crashdump_uploads_total{job=~".*crashdump.*", node=~".*"}[1m]))`},
			{name: "histogram le", expr: `histogram_quantile(0.9, sum by (le) (rate(crashdump_upload_duration_seconds_bucket{job="crashdump"}[1m])))`},
			{name: "up", expr: `sum(up{job=~".*crashdump.*", node=~".*"}) / count(up{job=~".*crashdump.*", node=~".*"})`},
			{name: "scrape labels", expr: `sum by (job, instance, node, namespace, pod, container, endpoint) (crashdump_pending_dumps)`},
			{name: "label_replace makes the label", expr: `sum by (x) (label_replace(crashdump_pending_dumps, "x", "$1", "node", "(.*)"))`},
			{name: "inner aggregation makes the labels", expr: `max by (n) (count_values("n", crashdump_pending_dumps))`},
			{name: "either side of a binary expression", expr: `sum by (result) (crashdump_uploads_total / on (job, instance) group_left crashdump_pending_dumps)`},
			{name: "a regexp name is not checked", expr: `{__name__=~"crashdump_.*", nolabel="x"}`},
			{name: "misspelled metric", expr: `sum(rate(crashdump_upload_total{job="crashdump"}[1m])) / sum(rate(crashdump_uploads_total[1m]))`,
				want: []string{"metric crashdump_upload_total is not exported"}},
			{name: "wrong matcher label, reported once", expr: `crashdump_uploads_total{reslt="success"} / crashdump_uploads_total{reslt="success"}`,
				want: []string{"label reslt not on metric crashdump_uploads_total"}},
			{name: "wrong grouping label", expr: `sum by (reason, node) (rate(crashdump_uploads_total[1m]))`,
				want: []string{"label reason not on metric crashdump_uploads_total (in by)"}},
			{name: "le is on the buckets only", expr: `sum by (le) (crashdump_upload_duration_seconds_count)`,
				want: []string{"label le not on metric crashdump_upload_duration_seconds_count (in by)"}},
			{name: "parse error", expr: `sum(rate(crashdump_uploads_total[1m])`,
				want: []string{"parse error: unclosed left parenthesis"}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				var got []string
				for _, err := range p.CheckExported(ctx, tc.expr) {
					got = append(got, err.Error())
				}
				if !slices.EqualFunc(got, tc.want, strings.Contains) {
					t.Errorf("got  %q\nwant %q", got, tc.want)
				}
			})
		}
	})

	t.Run("CheckQueries", func(t *testing.T) {
		errs := p.CheckQueries(ctx, []PanelQuery{
			{Panel: "Good", RefID: "A", Expr: "sum(crashdump_pending_dumps)"},
			{Panel: "Typo", RefID: "B", Expr: "sum(crashdump_pending_dump)"},
			{Panel: "Broken", RefID: "C", Expr: "sum("},
		})
		var got []string
		for _, err := range errs {
			got = append(got, err.Error())
		}
		if len(got) != 2 || got[0] != `panel "Typo" (B): metric crashdump_pending_dump is not exported` || !strings.HasPrefix(got[1], `panel "Broken" (C): prometheus query: bad_data`) {
			t.Errorf("got %q", got)
		}
	})

	// Every query of the repository's dashboard is valid PromQL for the
	// pinned Prometheus (whether its metrics exist is the e2e's business).
	t.Run("dashboard parses", func(t *testing.T) {
		for _, q := range repoDashboardQueries(t) {
			if _, err := p.ParseQuery(ctx, q.Expr); err != nil {
				t.Errorf("%s: %v", q, err)
			}
		}
	})
}
