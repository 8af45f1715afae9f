package pods_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	corev1 "k8s.io/api/core/v1"

	"github.com/crashdump-io/crashdump/collector/pods"
	"github.com/crashdump-io/crashdump/collector/pods/podstest"
)

func writeTemp(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func discard() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// fakeSource is an in-memory Source whose answers the test controls.
type fakeSource struct {
	mu    sync.Mutex
	pods  []corev1.Pod
	err   error
	calls int
	gate  chan struct{} // when set, List waits for it
}

func (f *fakeSource) set(ps ...podstest.Pod) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.pods = nil
	for _, p := range ps {
		f.pods = append(f.pods, p.Core())
	}
}

func (f *fakeSource) fail(err error) {
	f.mu.Lock()
	f.err = err
	f.mu.Unlock()
}

func (f *fakeSource) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls
}

func (f *fakeSource) List(ctx context.Context) ([]corev1.Pod, error) {
	f.mu.Lock()
	f.calls++
	gate := f.gate
	f.mu.Unlock()
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return nil, f.err
	}
	return append([]corev1.Pod(nil), f.pods...), nil
}

func (f *fakeSource) String() string { return "fake" }

// clock is a manual clock.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock() *clock { return &clock{now: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// richPod has every kind of container and a restarted one.
func richPod() podstest.Pod {
	return podstest.Pod{Namespace: "shop", Name: "worker-0", UID: podstest.UID("worker-0"), Node: node,
		OwnerKind: "StatefulSet", OwnerName: "worker", Labels: map[string]string{"app": "worker"},
		Init:       []podstest.Container{{Name: "migrate", Image: "registry.example.com/shop/migrate:3", ID: "containerd://" + podstest.Hex64("init")}},
		Containers: []podstest.Container{{Name: "worker", Image: "registry.example.com/shop/worker:9", ID: "containerd://" + podstest.Hex64("run2"), LastID: "containerd://" + podstest.Hex64("run1"), RestartCount: 1}, {Name: "envoy", Image: "envoyproxy/envoy:v1.31.0", ID: "containerd://" + podstest.Hex64("envoy")}},
		Ephemeral:  []podstest.Container{{Name: "debugger-x7k2", Image: "busybox:1.36", ID: "containerd://" + podstest.Hex64("debug")}},
	}
}

func TestCacheIndexesEveryContainerID(t *testing.T) {
	src := &fakeSource{}
	p := richPod()
	src.set(append(testPods(), p)...)
	c := pods.NewCache(src, pods.CacheOptions{}, discard(), prometheus.NewRegistry())
	defer c.Close()
	snap, err := c.Fresh(context.Background(), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		id, container, kind string
	}{
		{podstest.Hex64("init"), "migrate", pods.KindInit},
		{podstest.Hex64("run2"), "worker", pods.KindContainer},
		{podstest.Hex64("run1"), "worker", pods.KindContainer}, // lastState.terminated
		{"containerd://" + podstest.Hex64("run1"), "worker", pods.KindContainer},
		{podstest.Hex64("envoy"), "envoy", pods.KindContainer},
		{podstest.Hex64("debug"), "debugger-x7k2", pods.KindEphemeral},
	}
	for _, tt := range tests {
		ref, ok := snap.ByContainerID(tt.id)
		if !ok {
			t.Errorf("container %s not found", tt.id)
			continue
		}
		if ref.Pod.UID != p.UID || ref.Container.Name != tt.container || ref.Container.Kind != tt.kind {
			t.Errorf("container %s: pod %s container %s (%s), want %s %s (%s)", tt.id, ref.Pod.Key(), ref.Container.Name, ref.Container.Kind, p.Name, tt.container, tt.kind)
		}
	}
	if _, ok := snap.ByContainerID(podstest.Hex64("nobody")); ok {
		t.Error("unknown container ID found")
	}
	// Two namespaces, one pod name: two pods, never one.
	for _, ns := range []string{"shop", "billing"} {
		got := snap.ByName(ns, "api-7d9f8c6b5-x2k4p")
		if len(got) != 1 || got[0].Namespace != ns {
			t.Errorf("ByName(%s): %v", ns, got)
		}
	}
	if got, ok := snap.ByUID(p.UID); !ok || got.Name != "worker-0" {
		t.Errorf("ByUID: %v %v", got, ok)
	}
}

func TestCacheRetention(t *testing.T) {
	clk := newClock()
	src := &fakeSource{}
	shop, billing := testPods()[0], testPods()[1]
	src.set(shop, billing)
	reg := prometheus.NewRegistry()
	c := pods.NewCache(src, pods.CacheOptions{Retention: time.Hour, MinInterval: time.Second, Now: clk.Now}, discard(), reg)
	defer c.Close()
	ctx := context.Background()
	fresh := func() *pods.Snapshot {
		t.Helper()
		clk.advance(2 * time.Second)
		s, err := c.Fresh(ctx, clk.Now())
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	fresh()
	// The shop pod is deleted: it stays known, marked gone.
	src.set(billing)
	s := fresh()
	p, ok := s.ByUID(shop.UID)
	if !ok || p.Listed() {
		t.Fatalf("deleted pod: found %v, listed %v; want remembered and not listed", ok, ok && p.Listed())
	}
	if ref, ok := s.ByContainerID(podstest.Hex64("shop api crashed")); !ok || ref.Pod.UID != shop.UID {
		t.Error("deleted pod's crashed container instance forgotten")
	}
	if n := metricValue(t, reg, "crashdump_pod_cache_pods"); n != 2 {
		t.Errorf("crashdump_pod_cache_pods = %v, want 2 (one listed, one remembered)", n)
	}
	// Still known just before the retention ends, forgotten after.
	clk.advance(time.Hour - 10*time.Second)
	if _, ok := fresh().ByUID(shop.UID); !ok {
		t.Error("pod forgotten before its retention ended")
	}
	clk.advance(20 * time.Second)
	if _, ok := fresh().ByUID(shop.UID); ok {
		t.Error("pod still known after its retention")
	}
}

// After two restarts the first crashed instance is in no status any more;
// the cache still knows it.
func TestCacheRemembersEarlierContainerInstances(t *testing.T) {
	clk := newClock()
	src := &fakeSource{}
	p := richPod()
	src.set(p)
	c := pods.NewCache(src, pods.CacheOptions{Now: clk.Now}, discard(), prometheus.NewRegistry())
	defer c.Close()
	if _, err := c.Fresh(context.Background(), clk.Now()); err != nil {
		t.Fatal(err)
	}
	p.Containers[0].LastID, p.Containers[0].ID, p.Containers[0].RestartCount = p.Containers[0].ID, "containerd://"+podstest.Hex64("run3"), 2
	src.set(p)
	clk.advance(time.Minute)
	s, err := c.Fresh(context.Background(), clk.Now())
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"run1", "run2", "run3"} {
		ref, ok := s.ByContainerID(podstest.Hex64(id))
		if !ok || ref.Container.Name != "worker" {
			t.Errorf("instance %s: %v", id, ok)
		}
	}
	if ref, _ := s.ByContainerID(podstest.Hex64("run3")); ref.Container.RestartCount != 2 {
		t.Errorf("restartCount %d, want the latest, 2", ref.Container.RestartCount)
	}
}

func TestCacheRateLimitsAndSharesLists(t *testing.T) {
	src := &fakeSource{gate: make(chan struct{})}
	src.set(testPods()...)
	c := pods.NewCache(src, pods.CacheOptions{MinInterval: 200 * time.Millisecond}, discard(), prometheus.NewRegistry())
	defer c.Close()
	ctx := context.Background()
	start := time.Now()
	// Ten dumps arrive at once: one list serves them all.
	var wg sync.WaitGroup
	for range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := c.Fresh(ctx, start); err != nil {
				t.Error(err)
			}
		}()
	}
	for src.count() == 0 {
		time.Sleep(time.Millisecond) // wait for the list to start
	}
	close(src.gate)
	wg.Wait()
	if n := src.count(); n != 1 {
		t.Fatalf("%d lists for 10 concurrent callers, want 1", n)
	}
	// A snapshot listed after `since` is reused without a request.
	if _, err := c.Fresh(ctx, start); err != nil || src.count() != 1 {
		t.Fatalf("fresh enough snapshot: err %v, %d lists", err, src.count())
	}
	// Asking for newer data waits for the rate limit, then lists once.
	if _, err := c.Fresh(ctx, time.Now()); err != nil {
		t.Fatal(err)
	}
	if n := src.count(); n != 2 {
		t.Fatalf("%d lists, want 2", n)
	}
	if d := time.Since(start); d < 200*time.Millisecond {
		t.Errorf("second list after %s, want ≥ MinInterval 200ms", d)
	}
}

func TestCacheKeepsPodsWhenSourceFails(t *testing.T) {
	clk := newClock()
	src := &fakeSource{}
	src.set(testPods()...)
	reg := prometheus.NewRegistry()
	c := pods.NewCache(src, pods.CacheOptions{Now: clk.Now, MinInterval: time.Second, MaxWait: time.Millisecond, Period: 30 * time.Second}, discard(), reg)
	defer c.Close()
	ctx := context.Background()
	if _, err := c.Fresh(ctx, clk.Now()); err != nil {
		t.Fatal(err)
	}
	boom := &pods.StatusError{URL: "https://127.0.0.1/pods", Code: 500}
	src.fail(boom)
	clk.advance(5 * time.Second)
	s, err := c.Fresh(ctx, clk.Now())
	if !errors.Is(err, boom) {
		t.Fatalf("Fresh: %v, want the source's error", err)
	}
	if _, ok := s.ByUID(podstest.UID("shop api")); !ok || s.Err == nil {
		t.Fatalf("known pods lost on a failed refresh (err field %v)", s.Err)
	}
	// Backing off: the next attempt within the backoff does not list.
	clk.advance(time.Second)
	if _, err := c.Fresh(ctx, clk.Now()); !errors.Is(err, boom) || src.count() != 2 {
		t.Fatalf("during backoff: err %v, %d lists (want the last error, 2 lists)", err, src.count())
	}
	want := `
# HELP crashdump_pod_source_failures_total Failed pod list requests by reason (unreachable, unauthorized, server_error, bad_response).
# TYPE crashdump_pod_source_failures_total counter
crashdump_pod_source_failures_total{reason="bad_response"} 0
crashdump_pod_source_failures_total{reason="server_error"} 1
crashdump_pod_source_failures_total{reason="unauthorized"} 0
crashdump_pod_source_failures_total{reason="unreachable"} 0
# HELP crashdump_pod_source_requests_total Pod list requests to the pod source (kubelet or API server) by result (success, failure), retries included in one request.
# TYPE crashdump_pod_source_requests_total counter
crashdump_pod_source_requests_total{result="failure"} 1
crashdump_pod_source_requests_total{result="success"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "crashdump_pod_source_failures_total", "crashdump_pod_source_requests_total"); err != nil {
		t.Error(err)
	}
}

func TestCacheMetricsPreset(t *testing.T) {
	reg := prometheus.NewRegistry()
	c := pods.NewCache(&fakeSource{}, pods.CacheOptions{}, discard(), reg)
	defer c.Close()
	for name, want := range map[string]int{
		"crashdump_pod_source_requests_total": 2, "crashdump_pod_source_failures_total": 4,
		"crashdump_pod_cache_pods": 1, "crashdump_pod_source_last_success_timestamp_seconds": 1,
	} {
		if n, err := testutil.GatherAndCount(reg, name); err != nil || n != want {
			t.Errorf("%s: %d series (%v), want %d pre-set", name, n, err, want)
		}
	}
}

func TestCacheRunRefreshesPeriodically(t *testing.T) {
	src := &fakeSource{}
	src.set(testPods()...)
	c := pods.NewCache(src, pods.CacheOptions{Period: 20 * time.Millisecond, MinInterval: time.Millisecond}, discard(), prometheus.NewRegistry())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { c.Run(ctx); close(done) }()
	deadline := time.Now().Add(5 * time.Second)
	for src.count() < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("%d lists in 5s with a 20ms period", src.count())
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	<-done
	if !c.Snapshot().Loaded() {
		t.Error("snapshot not loaded")
	}
}

// metricValue reads one series from reg: name and label pairs.
func metricValue(t *testing.T, reg *prometheus.Registry, name string, labels ...string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metrics:
		for _, m := range mf.GetMetric() {
			for i := 0; i+1 < len(labels); i += 2 {
				found := false
				for _, lp := range m.GetLabel() {
					if lp.GetName() == labels[i] && lp.GetValue() == labels[i+1] {
						found = true
					}
				}
				if !found {
					continue metrics
				}
			}
			switch {
			case m.Counter != nil:
				return m.GetCounter().GetValue()
			case m.Gauge != nil:
				return m.GetGauge().GetValue()
			}
		}
	}
	t.Fatalf("no series %s%v", name, labels)
	return 0
}
