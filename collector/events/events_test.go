package events_test

import (
	"context"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/rest"

	"github.com/crashdump-io/crashdump/collector/events"
	"github.com/crashdump-io/crashdump/collector/kubeapi"
	"github.com/crashdump-io/crashdump/collector/pods/podstest"
	"github.com/crashdump-io/crashdump/uploader/manifest"
)

func discard() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func client(t *testing.T, a *podstest.APIServer) *kubeapi.Client {
	t.Helper()
	c, err := kubeapi.New(&rest.Config{Host: a.URL, BearerToken: a.Token(), TLSClientConfig: rest.TLSClientConfig{CAData: a.CAData}})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func uploaded(ns, pod string) *manifest.Manifest {
	m := &manifest.Manifest{
		ID: "0123456789abcdef0123456789abcdef", Kind: "minidump",
		File:        manifest.File{Name: "coredump.1.dmp", Size: 3 << 20},
		Object:      manifest.Object{Store: "s3", Bucket: "dumps", Key: "prod/" + ns + "/" + pod + "/x.dmp.zst", URL: "s3://dumps/prod/" + ns + "/" + pod + "/x.dmp.zst"},
		CrashReport: &manifest.CrashReport{ExceptionType: "System.NullReferenceException"},
	}
	if pod != "" || ns != "" {
		m.Pod = &manifest.Pod{Namespace: ns, Name: pod, UID: podstest.UID(ns + " " + pod), Container: "api"}
	}
	return m
}

func expectCounts(t *testing.T, reg *prometheus.Registry, posted, failed, dropped, skipped int) {
	t.Helper()
	want := `
# HELP crashdump_events_total Kubernetes Events about uploaded dumps by result (posted, failed, dropped, skipped).
# TYPE crashdump_events_total counter
`
	for _, r := range []struct {
		name string
		n    int
	}{{"dropped", dropped}, {"failed", failed}, {"posted", posted}, {"skipped", skipped}} {
		want += "crashdump_events_total{result=\"" + r.name + "\"} " + strconv.Itoa(r.n) + "\n"
	}
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "crashdump_events_total"); err != nil {
		t.Error(err)
	}
}

func TestEventPosted(t *testing.T) {
	a := podstest.StartAPIServer(t, "node-1")
	reg := prometheus.NewRegistry()
	n := events.New(client(t, a), events.Options{Node: "node-1"}, discard(), reg)
	defer n.Close(5 * time.Second)
	m := uploaded("shop", "api-7d9f8c6b5-x2k4p")
	n.DumpUploaded(context.Background(), m)
	ev := a.WaitEvents(t, 1, 10*time.Second)[0]
	if ev.Reason != "CrashDumpUploaded" || ev.Type != corev1.EventTypeWarning || ev.Action != "Upload" {
		t.Errorf("reason %q type %q action %q", ev.Reason, ev.Type, ev.Action)
	}
	r := ev.Regarding
	if ev.Namespace != "shop" || r.Kind != "Pod" || r.APIVersion != "v1" || r.Namespace != "shop" || r.Name != "api-7d9f8c6b5-x2k4p" || string(r.UID) != m.Pod.UID {
		t.Errorf("event %s regarding %+v", ev.Namespace, r)
	}
	if ev.ReportingController != "crashdump.io/agent" || ev.ReportingInstance != "crashdump-agent-node-1" {
		t.Errorf("reporting %q %q", ev.ReportingController, ev.ReportingInstance)
	}
	for _, s := range []string{m.Object.URL, "3.0 MiB", "minidump", "System.NullReferenceException", "container api"} {
		if !strings.Contains(ev.Note, s) {
			t.Errorf("note %q lacks %q", ev.Note, s)
		}
	}
	n.Close(5 * time.Second)
	expectCounts(t, reg, 1, 0, 0, 0)
}

func TestEventSkippedWithoutPod(t *testing.T) {
	a := podstest.StartAPIServer(t, "node-1")
	reg := prometheus.NewRegistry()
	n := events.New(client(t, a), events.Options{Node: "node-1"}, discard(), reg)
	n.DumpUploaded(context.Background(), uploaded("", ""))     // not attributed
	n.DumpUploaded(context.Background(), uploaded("shop", "")) // namespace only
	n.Close(5 * time.Second)
	if a.EventPosts() != 0 {
		t.Errorf("%d event posts for dumps without a pod", a.EventPosts())
	}
	expectCounts(t, reg, 0, 0, 0, 2)
}

func TestEventFailureIsCountedNotFatal(t *testing.T) {
	a := podstest.StartAPIServer(t, "node-1")
	a.SetEventFailures(1)
	reg := prometheus.NewRegistry()
	n := events.New(client(t, a), events.Options{Node: "node-1"}, discard(), reg)
	n.DumpUploaded(context.Background(), uploaded("shop", "a"))
	n.DumpUploaded(context.Background(), uploaded("shop", "b"))
	a.WaitEvents(t, 1, 10*time.Second)
	n.Close(5 * time.Second)
	// client-go retries some server errors itself; what counts is that the
	// failure is counted once and the next event still goes out.
	expectCounts(t, reg, 1, 1, 0, 0)
}

// A slow API server never blocks uploads: the queue is bounded and what
// does not fit is dropped and counted.
func TestEventQueueBounded(t *testing.T) {
	a := podstest.StartAPIServer(t, "node-1")
	release := a.HoldEvents(t)
	reg := prometheus.NewRegistry()
	n := events.New(client(t, a), events.Options{Node: "node-1", QueueSize: 2}, discard(), reg)
	n.DumpUploaded(context.Background(), uploaded("shop", "p0"))
	a.WaitPosts(t, 1, 10*time.Second) // the poster is now stuck on p0
	done := make(chan struct{})
	go func() {
		for _, p := range []string{"p1", "p2", "p3", "p4"} {
			n.DumpUploaded(context.Background(), uploaded("shop", p))
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("DumpUploaded blocked on a slow API server")
	}
	release()
	a.WaitEvents(t, 3, 10*time.Second)
	n.Close(5 * time.Second)
	expectCounts(t, reg, 3, 0, 2, 0)
}

func TestNote(t *testing.T) {
	tests := []struct {
		name string
		m    func() *manifest.Manifest
		want []string
		not  []string
	}{
		{"crash report", func() *manifest.Manifest { return uploaded("shop", "api") },
			[]string{"Crash dump of container api uploaded to s3://dumps/prod/shop/api/x.dmp.zst (3.0 MiB, minidump); exception System.NullReferenceException"}, nil},
		{"core without report", func() *manifest.Manifest {
			m := uploaded("shop", "api")
			m.CrashReport, m.Kind, m.Core = nil, "elf-core", &manifest.Core{Signal: 11, SignalName: "SIGSEGV"}
			m.File.Size = 1536
			return m
		}, []string{"(1.5 KiB, elf-core); signal SIGSEGV"}, []string{"exception"}},
		{"hostile exception type", func() *manifest.Manifest {
			m := uploaded("shop", "api")
			m.CrashReport.ExceptionType = "Evil\nInjected\x1b[31m" + strings.Repeat("X", 5000)
			return m
		}, []string{"exception Evil Injected"}, []string{"\n", "\x1b"}},
		{"crashed instance's exit and restarts", func() *manifest.Manifest {
			m := uploaded("shop", "api")
			m.Pod.RestartCount = manifest.Restarts(2)
			m.Pod.Termination = &manifest.Termination{ExitCode: 139, Signal: 11, SignalName: "SIGSEGV"}
			return m
		}, []string{"; exit 139 SIGSEGV after 2 restarts"}, nil},
		{"first instance, exit not reported", func() *manifest.Manifest {
			m := uploaded("shop", "api")
			m.Pod.RestartCount = manifest.Restarts(0)
			return m
		}, []string{"; before any restart"}, []string{"exit"}},
		{"instance unknown", func() *manifest.Manifest { return uploaded("shop", "api") }, nil, []string{"restart", "exit"}},
		{"incomplete, no URL", func() *manifest.Manifest {
			m := uploaded("shop", "api")
			m.Object.URL, m.Incomplete = "", true
			return m
		}, []string{"uploaded to prod/shop/api/x.dmp.zst", "incomplete"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := events.Note(tt.m())
			if len(got) > 1024 {
				t.Errorf("note is %d bytes, over the API's 1 kB", len(got))
			}
			for _, s := range tt.want {
				if !strings.Contains(got, s) {
					t.Errorf("note %q lacks %q", got, s)
				}
			}
			for _, s := range tt.not {
				if strings.Contains(got, s) {
					t.Errorf("note %q has %q", got, s)
				}
			}
		})
	}
}
