package collector_test

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/crashdump-io/crashdump/collector"
	"github.com/crashdump-io/crashdump/uploader/manifest"
)

const lastDumpMetric = "crashdump_last_dump_timestamp_seconds"

// dirResolver attributes <ns>/<pod>/<file> to container "app" of that pod,
// <ns>/<file> to the namespace alone (a per-namespace directory), and
// nothing else.
type dirResolver struct{}

func (dirResolver) Resolve(_ context.Context, ev collector.Evidence) collector.Attribution {
	switch parts := strings.Split(ev.Path, "/"); len(parts) {
	case 3:
		return collector.Attribution{Method: manifest.MethodPath, Pod: &manifest.Pod{Namespace: parts[0], Name: parts[1], Container: "app"}}
	case 2:
		return collector.Attribution{Method: manifest.MethodPath, Pod: &manifest.Pod{Namespace: parts[0]}}
	}
	return collector.Attribution{Method: manifest.MethodNone}
}

// lastDumpSeries maps "namespace/pod/container" to the value of each
// crashdump_last_dump_timestamp_seconds series.
func lastDumpSeries(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != lastDumpMetric {
			continue
		}
		for _, m := range mf.GetMetric() {
			l := map[string]string{}
			for _, lp := range m.GetLabel() {
				l[lp.GetName()] = lp.GetValue()
			}
			if len(l) != 3 {
				t.Errorf("%s series with labels %v, want dump_namespace, dump_pod, dump_container", lastDumpMetric, l)
			}
			out[l["dump_namespace"]+"/"+l["dump_pod"]+"/"+l["dump_container"]] = m.GetGauge().GetValue()
		}
	}
	return out
}

// TestLastDumpTimestamp: every dump the agent claims sets
// crashdump_last_dump_timestamp_seconds of the container it is attributed
// to, at the time of the attribution — rate-limited (manifest-only) ones too
// — with empty labels for what is not known.
func TestLastDumpTimestamp(t *testing.T) {
	for _, c := range []struct {
		name  string
		paths []string // written one after the other
		want  string   // the series, namespace/pod/container
		// rateLimited: how many of them are stored as manifest-only records.
		rateLimited float64
	}{
		{name: "attributed", paths: []string{"prod/api-7f9c/core.1"}, want: "prod/api-7f9c/app"},
		{name: "namespace directory", paths: []string{"prod/core.1"}, want: "prod//"},
		{name: "not attributed", paths: []string{"core.1"}, want: "//"},
		{name: "rate limited", paths: []string{"prod/loop-0/core.1", "prod/loop-0/core.2"}, want: "prod/loop-0/app", rateLimited: 1},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t, false)
			cfg := e.config()
			cfg.Policy.MaxPerWindow = 1
			e.startWith(cfg, dirResolver{}, nil)
			var last float64
			for i, p := range c.paths {
				before := float64(time.Now().UnixNano()) / 1e9
				mustWrite(t, filepath.Join(e.dumpDir, p), randomData(t, 5000))
				eventually(t, 30*time.Second, p+" attributed", func() bool {
					n := 0.0
					for _, m := range []string{manifest.MethodPath, manifest.MethodNone} {
						n += metric(t, e.reg, "crashdump_correlations_total", "method", m)
					}
					return n == float64(i+1)
				})
				got := lastDumpSeries(t, e.reg)
				if len(got) != 1 {
					t.Fatalf("after %s: series %v, want only %s", p, got, c.want)
				}
				v, ok := got[c.want]
				if !ok {
					t.Fatalf("after %s: series %v, want %s", p, got, c.want)
				}
				if v < before || v > float64(time.Now().UnixNano())/1e9 || v <= last {
					t.Errorf("after %s: %s = %v, want the time of its attribution (after %v and the earlier %v)", p, c.want, v, before, last)
				}
				last = v
			}
			eventually(t, 30*time.Second, "dumps done", func() bool { return emptyDir(t, e.dumpDir) && metric(t, e.reg, "crashdump_pending_dumps") == 0 })
			if got := metric(t, e.reg, "crashdump_dumps_dropped_total", "reason", collector.DropRateLimited); got != c.rateLimited {
				t.Errorf("%v dumps rate limited, want %v", got, c.rateLimited)
			}
		})
	}
}

// TestLastDumpTimestampBounded: past 32 containers the series of the
// container whose dump is the oldest goes, so an agent exports at most 32.
func TestLastDumpTimestampBounded(t *testing.T) {
	e := newEnv(t, false)
	e.startWith(e.config(), dirResolver{}, nil)
	attributed := func(n int) func() bool {
		return func() bool {
			return metric(t, e.reg, "crashdump_correlations_total", "method", manifest.MethodPath) == float64(n)
		}
	}
	mustWrite(t, filepath.Join(e.dumpDir, "old/first-0/core.1"), randomData(t, 5000))
	eventually(t, 30*time.Second, "the first dump attributed", attributed(1))
	if _, ok := lastDumpSeries(t, e.reg)["old/first-0/app"]; !ok {
		t.Fatalf("no series for the first dump: %v", lastDumpSeries(t, e.reg))
	}
	for i := range 32 {
		mustWrite(t, filepath.Join(e.dumpDir, fmt.Sprintf("prod/pod-%d/core.1", i)), randomData(t, 5000))
	}
	eventually(t, 60*time.Second, "33 dumps attributed", attributed(33))
	got := lastDumpSeries(t, e.reg)
	if len(got) != 32 {
		t.Errorf("%d series, want 32", len(got))
	}
	if _, ok := got["old/first-0/app"]; ok {
		t.Error("the oldest series was kept past 32 containers")
	}
	for i := range 32 {
		if _, ok := got[fmt.Sprintf("prod/pod-%d/app", i)]; !ok {
			t.Errorf("no series for prod/pod-%d", i)
		}
	}
}
