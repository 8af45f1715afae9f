package collector_test

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"

	"github.com/crashdump-io/crashdump/collector"
	"github.com/crashdump-io/crashdump/collector/corepipe"
	"github.com/crashdump-io/crashdump/collector/dumptest"
	"github.com/crashdump-io/crashdump/collector/identify"
	"github.com/crashdump-io/crashdump/collector/pods"
	"github.com/crashdump-io/crashdump/collector/pods/podstest"
	"github.com/crashdump-io/crashdump/collector/staging"
	"github.com/crashdump-io/crashdump/uploader/manifest"
)

// staticPods is a pod source that always lists the same pods.
type staticPods []podstest.Pod

func (s staticPods) List(context.Context) ([]corev1.Pod, error) {
	return podstest.List(s...).Items, nil
}
func (s staticPods) String() string { return "static" }

// kernelProc writes a fixture <proc>/<pid> as core-handler reads it: a
// process in a container (PID 1 in its namespace) of the given cgroup.
// kernelEnv is a test environment and a real ELF core (gcore of a live
// sleep; dumptest fails the test when gdb is missing: make tools installs it).
func kernelEnv(t *testing.T, withMinIO bool) (*env, string) {
	t.Helper()
	e := newEnv(t, withMinIO)
	core := filepath.Join(t.TempDir(), "core")
	dumptest.SleepCore(t, core)
	return e, core
}

func kernelProc(t *testing.T, procRoot, pid, cgroup string) {
	t.Helper()
	d := filepath.Join(procRoot, pid)
	if err := os.MkdirAll(d, 0o755); err != nil {
		t.Fatal(err)
	}
	status := "Name:\tcrasher\nTgid:\t" + pid + "\nPid:\t" + pid + "\nUid:\t1000\t1000\t1000\t1000\nNSpid:\t" + pid + "\t1\n"
	for name, s := range map[string]string{"cgroup": cgroup, "status": status, "cmdline": "/app/crasher\x00--port\x008080\x00"} {
		if err := os.WriteFile(filepath.Join(d, name), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("/app/crasher", filepath.Join(d, "exe")); err != nil {
		t.Fatal(err)
	}
}

// runHandler runs `crashdump core-handler` in-process for pid with the
// file core on stdin.
func runHandler(t *testing.T, procRoot, stateDir, pid, core string) corepipe.Result {
	t.Helper()
	f, err := os.Open(core)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	args, err := corepipe.ParseArgs([]string{pid, "1", "11", "1796695554", "18446744073709551615", "1", "crasher"})
	if err != nil {
		t.Fatal(err)
	}
	return corepipe.Run(corepipe.Config{ProcRoot: procRoot, StateDir: stateDir, HostCores: corepipe.HostDrop, Logf: func(string) {}}, args, f)
}

func cgroupOf(podUID, containerID string) string {
	return "0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + strings.ReplaceAll(podUID, "-", "_") +
		".slice/cri-containerd-" + containerID + ".scope\n"
}

// The handler's inbox goes through the agent's pipeline: a core of a pod's
// container lands in MinIO attributed with method kernel, a refused one
// becomes a manifest-only record, a host core is counted and deleted, a
// malformed entry is rejected and removed, and the policy snapshot is
// written.
func TestKernelCoresIngested(t *testing.T) {
	e, core := kernelEnv(t, true)

	apiUID, apiCID := podstest.UID("kernel api"), podstest.Hex64("kernel api running")
	jobUID, jobCID := podstest.UID("kernel job"), podstest.Hex64("kernel job running")
	strangerCID := podstest.Hex64("kernel stranger")
	ps := staticPods{
		{Namespace: "shop", Name: "api-0", UID: apiUID, Node: "node-1",
			Containers: []podstest.Container{{Name: "sidecar", Image: "envoy:1", ID: "containerd://" + podstest.Hex64("kernel sidecar")},
				{Name: "api", Image: "registry.example.com/shop/api:1", ID: "containerd://" + apiCID}}},
		{Namespace: "batch", Name: "job-x", UID: jobUID, Node: "node-1",
			Containers: []podstest.Container{{Name: "job", Image: "job:1", ID: "containerd://" + jobCID}}},
	}
	procRoot := filepath.Join(t.TempDir(), "proc")
	kernelProc(t, procRoot, "4242", cgroupOf(apiUID, apiCID))
	kernelProc(t, procRoot, "4343", cgroupOf(jobUID, jobCID))
	kernelProc(t, procRoot, "4444", "0::/system.slice/chronyd.service\n")
	// A container no pod lists, in a pod no one knows: never guessed.
	kernelProc(t, procRoot, "4545", cgroupOf(podstest.UID("kernel stranger"), strangerCID))

	// No snapshot yet: harmless mode accepts one core per container.
	got := runHandler(t, procRoot, e.stateDir, "4242", core)
	if got.Evidence.Outcome != corepipe.OutcomeCore {
		t.Fatalf("pod core: outcome %q (%s)", got.Evidence.Outcome, got.Evidence.Reason)
	}
	stranger := runHandler(t, procRoot, e.stateDir, "4545", core)
	if stranger.Evidence.Outcome != corepipe.OutcomeCore {
		t.Fatalf("stranger core: outcome %q (%s)", stranger.Evidence.Outcome, stranger.Evidence.Reason)
	}
	if r := runHandler(t, procRoot, e.stateDir, "4444", core); r.Evidence.Outcome != corepipe.OutcomeDropped {
		t.Fatalf("host core: outcome %q", r.Evidence.Outcome)
	}
	// The budget used up: the handler refuses and writes no core.
	if err := corepipe.WritePolicy(corepipe.PolicyPath(e.stateDir), corepipe.Policy{MaxAgeSeconds: 60, BudgetBytesRemaining: 0}); err != nil {
		t.Fatal(err)
	}
	refused := runHandler(t, procRoot, e.stateDir, "4343", core)
	if refused.Evidence.Outcome != corepipe.OutcomeRefused || refused.Evidence.Reason != corepipe.ReasonBudget {
		t.Fatalf("refused: outcome %q reason %q", refused.Evidence.Outcome, refused.Evidence.Reason)
	}
	inbox := filepath.Join(e.stateDir, corepipe.DirName, "inbox")
	// Malformed entries: bad JSON; a symlink in place of an entry.
	bad := filepath.Join(inbox, strings.Repeat("ab", 16))
	if err := os.Mkdir(bad, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(bad, corepipe.EvidenceName), []byte(`{"schemaVersion":1,`), 0o600); err != nil {
		t.Fatal(err)
	}
	outside := t.TempDir()
	if err := os.Symlink(outside, filepath.Join(inbox, strings.Repeat("cd", 16))); err != nil {
		t.Fatal(err)
	}
	// An entry still being written is left alone; one a handler left
	// unfinished long ago is removed.
	tmp := filepath.Join(inbox, strings.Repeat("ef", 16)+".tmp")
	if err := os.Mkdir(tmp, 0o700); err != nil {
		t.Fatal(err)
	}
	dead := filepath.Join(inbox, strings.Repeat("01", 16)+".tmp")
	if err := os.Mkdir(dead, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dead, corepipe.CoreName), []byte("partial"), 0o600); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-2 * time.Hour)
	if err := os.Chtimes(dead, old, old); err != nil {
		t.Fatal(err)
	}

	cfg := e.config()
	cfg.KernelCores, cfg.Once = true, true
	cache := pods.NewCache(ps, pods.CacheOptions{MinInterval: 20 * time.Millisecond}, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	t.Cleanup(cache.Close)
	res := identify.New(cache, identify.Options{Timeout: 10 * time.Second, TerminationWait: -1}, slog.New(slog.DiscardHandler))
	a := e.newAgent(cfg, res)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := a.Run(ctx); err != nil {
		t.Fatalf("agent: %v", err)
	}

	byID := map[string]stored{}
	for _, k := range e.keys() {
		if !strings.HasSuffix(k, ".json") {
			continue
		}
		m, err := manifest.Unmarshal(e.read(k, true))
		if err != nil {
			t.Fatalf("manifest %s: %v", k, err)
		}
		s := stored{key: strings.TrimSuffix(k, ".json"), manifest: m}
		if !m.Object.ManifestOnly {
			s.raw = e.read(s.key, false)
		}
		byID[m.ID] = s
	}
	if len(byID) != 3 {
		t.Fatalf("stored %d manifests, want 3 (core, stranger, refused): %v", len(byID), e.keys())
	}
	t.Run("pod core", func(t *testing.T) {
		s, ok := byID[got.EntryID]
		if !ok {
			t.Fatalf("core %s not stored: %v", got.EntryID, e.keys())
		}
		m := s.manifest
		if !strings.HasPrefix(s.key, "shop/api-0/") {
			t.Errorf("key %s, want under shop/api-0/", s.key)
		}
		if m.Correlation.Method != manifest.MethodKernel {
			t.Errorf("method %q, want kernel (%s)", m.Correlation.Method, m.Correlation.Reason)
		}
		if p := m.Pod; p == nil || p.Namespace != "shop" || p.Name != "api-0" || p.UID != apiUID || p.Container != "api" ||
			p.ContainerID != "containerd://"+apiCID || p.Image != "registry.example.com/shop/api:1" {
			t.Errorf("pod %+v", m.Pod)
		} else if p.RestartCount == nil || *p.RestartCount != 0 {
			t.Errorf("instance not determined: restartCount %v", p.RestartCount)
		}
		if c := m.Core; c == nil || c.Signal != 11 || c.SignalName != "SIGSEGV" || c.Exe != "/app/crasher" {
			t.Errorf("core %+v", m.Core)
		}
		if p := m.Process; p == nil || p.HostPID != 4242 || p.PID != 1 || p.Exe != "/app/crasher" {
			t.Errorf("process %+v", m.Process)
		}
		if m.Kind != "elf-core" || m.Incomplete || m.Object.ManifestOnly {
			t.Errorf("kind %q incomplete %v manifestOnly %v", m.Kind, m.Incomplete, m.Object.ManifestOnly)
		}
		want, err := os.ReadFile(core)
		if err != nil {
			t.Fatal(err)
		}
		if sha(s.original(t)) != sha(want) || m.File.SHA256 != sha(want) {
			t.Errorf("stored core differs from the one on the handler's stdin")
		}
	})
	t.Run("unknown container", func(t *testing.T) {
		s, ok := byID[stranger.EntryID]
		if !ok {
			t.Fatalf("core %s not stored", stranger.EntryID)
		}
		m := s.manifest
		if m.Pod != nil || m.Correlation.Method != manifest.MethodNone || !strings.HasPrefix(s.key, "_unknown/_unknown/") {
			t.Errorf("key %s pod %+v method %q: a container no pod lists is not attributed", s.key, m.Pod, m.Correlation.Method)
		}
		if !strings.Contains(m.Correlation.Reason, "kernel: ") {
			t.Errorf("reason %q does not say what the kernel evidence said", m.Correlation.Reason)
		}
	})
	t.Run("refused", func(t *testing.T) {
		s, ok := byID[refused.Evidence.ID]
		if !ok {
			t.Fatalf("refused %s: no manifest-only record", refused.Evidence.ID)
		}
		m := s.manifest
		if !m.Object.ManifestOnly || !strings.Contains(m.Object.NotUploadedReason, corepipe.ReasonBudget) {
			t.Errorf("manifestOnly %v reason %q", m.Object.ManifestOnly, m.Object.NotUploadedReason)
		}
		if m.Pod == nil || m.Pod.Name != "job-x" || m.Pod.Container != "job" || m.Correlation.Method != manifest.MethodKernel {
			t.Errorf("pod %+v method %q", m.Pod, m.Correlation.Method)
		}
		for _, k := range e.keys() {
			if k == s.key {
				t.Errorf("refused core has an object %s", k)
			}
		}
	})

	left, _ := os.ReadDir(inbox)
	if len(left) != 1 || left[0].Name() != filepath.Base(tmp) {
		var names []string
		for _, d := range left {
			names = append(names, d.Name())
		}
		t.Errorf("inbox holds %v, want only the entry being written", names)
	}
	if _, err := os.Stat(outside); err != nil {
		t.Errorf("the symlink's target was touched: %v", err)
	}
	if s := e.staged(); len(s) != 0 {
		t.Errorf("staging holds %v", s)
	}
	for _, c := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"crashdump_kernel_cores_total", []string{"outcome", "core"}, 2},
		{"crashdump_kernel_cores_total", []string{"outcome", "refused"}, 1},
		{"crashdump_kernel_cores_total", []string{"outcome", "dropped"}, 1},
		{"crashdump_kernel_cores_total", []string{"outcome", "chained"}, 0},
		{"crashdump_kernel_cores_refused_total", []string{"reason", "budget"}, 1},
		{"crashdump_dumps_dropped_total", []string{"reason", collector.DropKernelInvalid}, 3},
		{"crashdump_dumps_dropped_total", []string{"reason", collector.DropKernelRefused}, 1},
		{"crashdump_correlations_total", []string{"method", "kernel"}, 2},
		{"crashdump_correlations_total", []string{"method", "none"}, 1},
	} {
		if got := metric(t, e.reg, c.name, c.labels...); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	if n := histogramCount(t, e.reg, "crashdump_kernel_handler_seconds"); n != 4 {
		t.Errorf("crashdump_kernel_handler_seconds count %d, want 4", n)
	}
	if logs := e.logs.String(); strings.Count(logs, "not ingesting kernel core inbox entry") != 3 {
		t.Errorf("rejected entries not logged once each:\n%s", logs)
	}

	p, err := corepipe.ReadPolicy(corepipe.PolicyPath(e.stateDir))
	if err != nil {
		t.Fatal(err)
	}
	if p.Stale(time.Now()) || p.MaxAgeSeconds != 60 || time.Since(p.GeneratedAt) > time.Minute || p.BudgetBytesRemaining != -1 {
		t.Errorf("policy snapshot %+v: not the agent's fresh one", p)
	}
}

func histogramCount(t *testing.T, reg *prometheus.Registry, name string) uint64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) == 1 {
			return mf.GetMetric()[0].GetHistogram().GetSampleCount()
		}
	}
	return 0
}

// What the handler decided steers the agent: a crash-loop refusal is the
// crash-loop limit's manifest-only record, an opted-out pod's refusal
// leaves nothing, a truncated core is uploaded marked incomplete.
func TestKernelRefusalsAndTruncation(t *testing.T) {
	e, core := kernelEnv(t, false)
	type proc struct{ pid, ns, name, uid, cid string }
	loop := proc{"5001", "shop", "loop-0", podstest.UID("kernel loop"), podstest.Hex64("kernel loop")}
	quiet := proc{"5002", "shop", "quiet-0", podstest.UID("kernel quiet"), podstest.Hex64("kernel quiet")}
	big := proc{"5003", "shop", "big-0", podstest.UID("kernel big"), podstest.Hex64("kernel big")}
	procRoot := filepath.Join(t.TempDir(), "proc")
	var ps staticPods
	for _, p := range []proc{loop, quiet, big} {
		kernelProc(t, procRoot, p.pid, cgroupOf(p.uid, p.cid))
		ps = append(ps, podstest.Pod{Namespace: p.ns, Name: p.name, UID: p.uid, Node: "node-1",
			Containers: []podstest.Container{{Name: "app", Image: "app:1", ID: "containerd://" + p.cid}}})
	}
	policy := func(p corepipe.Policy) {
		t.Helper()
		p.MaxAgeSeconds = 60
		if err := corepipe.WritePolicy(corepipe.PolicyPath(e.stateDir), p); err != nil {
			t.Fatal(err)
		}
	}
	policy(corepipe.Policy{BudgetBytesRemaining: -1, LimitedContainers: []string{loop.cid}, OptedOutPodUIDs: []string{quiet.uid}})
	rl := runHandler(t, procRoot, e.stateDir, loop.pid, core)
	oo := runHandler(t, procRoot, e.stateDir, quiet.pid, core)
	policy(corepipe.Policy{BudgetBytesRemaining: 64 << 10})
	tr := runHandler(t, procRoot, e.stateDir, big.pid, core)
	if rl.Evidence.Reason != corepipe.ReasonRateLimited || oo.Evidence.Reason != corepipe.ReasonOptedOut || !tr.Evidence.Truncated {
		t.Fatalf("handler: %q %q truncated=%v", rl.Evidence.Reason, oo.Evidence.Reason, tr.Evidence.Truncated)
	}

	cfg := e.config()
	cfg.KernelCores, cfg.Once = true, true
	cache := pods.NewCache(ps, pods.CacheOptions{MinInterval: 20 * time.Millisecond}, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	t.Cleanup(cache.Close)
	res := identify.New(cache, identify.Options{Timeout: 10 * time.Second, TerminationWait: -1}, slog.New(slog.DiscardHandler))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := e.newAgent(cfg, res).Run(ctx); err != nil {
		t.Fatalf("agent: %v", err)
	}
	byID := map[string]*manifest.Manifest{}
	objects := map[string]bool{}
	for _, k := range e.keys() {
		if !strings.HasSuffix(k, ".json") {
			objects[k] = true
			continue
		}
		m, err := manifest.Unmarshal(e.read(k, true))
		if err != nil {
			t.Fatalf("manifest %s: %v", k, err)
		}
		byID[m.ID] = m
	}
	if m := byID[rl.EntryID]; m == nil || !m.Object.ManifestOnly || !strings.HasPrefix(m.Object.NotUploadedReason, "crash-loop limit") ||
		m.Pod == nil || m.Pod.Name != loop.name {
		t.Errorf("rate-limited: %+v", m)
	}
	if m := byID[oo.EntryID]; m != nil {
		t.Errorf("opted-out pod has a manifest: %+v", m)
	}
	m := byID[tr.EntryID]
	if m == nil || m.Object.ManifestOnly || !m.Incomplete || !strings.Contains(m.IncompleteReason, "core handler") || !objects[m.Object.Key] {
		t.Fatalf("truncated: %+v", m)
	}
	if metric(t, e.reg, "crashdump_dumps_dropped_total", "reason", collector.DropNotSelected) != 1 ||
		metric(t, e.reg, "crashdump_dumps_dropped_total", "reason", collector.DropRateLimited) != 1 ||
		metric(t, e.reg, "crashdump_kernel_cores_refused_total", "reason", corepipe.ReasonRateLimited) != 1 ||
		metric(t, e.reg, "crashdump_kernel_cores_refused_total", "reason", corepipe.ReasonOptedOut) != 1 {
		t.Errorf("metrics: dropped/refused counts wrong")
	}
	if left, _ := os.ReadDir(filepath.Join(e.stateDir, corepipe.DirName, "inbox")); len(left) != 0 {
		t.Errorf("inbox not empty: %d entries", len(left))
	}
}

// An agent killed after it moved a core into staging and before it
// removed the inbox entry: the restart uploads the staged core once and
// removes the entry, without calling it invalid.
func TestKernelIngestKilledMidway(t *testing.T) {
	e, core := kernelEnv(t, false)
	procRoot := filepath.Join(t.TempDir(), "proc")
	kernelProc(t, procRoot, "6001", "0::/kubepods.slice/kubepods-pod"+strings.ReplaceAll(podstest.UID("midway"), "-", "_")+".slice/cri-containerd-"+podstest.Hex64("midway")+".scope\n")
	r := runHandler(t, procRoot, e.stateDir, "6001", core)
	if r.EntryID == "" || r.Evidence.Outcome != corepipe.OutcomeCore {
		t.Fatalf("handler: %+v", r)
	}
	// What the killed agent had done: the staging entry with its record
	// and the core moved in.
	st, err := staging.Open(context.Background(), e.stateDir, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	rec := map[string]any{"version": 1, "id": r.EntryID, "state": "claiming", "path": "core.crasher.6001", "claimedAt": time.Now().UTC(),
		"scanned": true, "kernel": map[string]any{"outcome": "core", "hostPID": 6001, "pid": 1, "signal": 11, "exe": "/app/crasher", "cgroupRead": true}}
	ent, err := st.Create(r.EntryID, rec)
	if err != nil {
		t.Fatal(err)
	}
	entry := filepath.Join(e.stateDir, corepipe.DirName, "inbox", r.EntryID)
	if err := os.Rename(filepath.Join(entry, corepipe.CoreName), ent.Path(staging.DumpName)); err != nil {
		t.Fatal(err)
	}
	st.Close()

	cfg := e.config()
	cfg.KernelCores, cfg.Once = true, true
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := e.newAgent(cfg, nil).Run(ctx); err != nil {
		t.Fatalf("agent: %v", err)
	}
	var manifests []string
	for _, k := range e.keys() {
		if strings.HasSuffix(k, ".json") {
			manifests = append(manifests, k)
		}
	}
	if len(manifests) != 1 || !strings.Contains(manifests[0], r.EntryID[:8]) {
		t.Errorf("stored %v, want the one core", manifests)
	}
	if _, err := os.Lstat(entry); err == nil {
		t.Errorf("inbox entry left")
	}
	if n := metric(t, e.reg, "crashdump_dumps_dropped_total", "reason", collector.DropKernelInvalid); n != 0 {
		t.Errorf("kernel_invalid = %v: a half-ingested entry is not invalid", n)
	}
	if n := metric(t, e.reg, "crashdump_kernel_cores_total", "outcome", "core"); n != 0 {
		t.Errorf("kernel_cores_total{core} = %v: counted by the agent that staged it", n)
	}
}

// A running agent polls the inbox: a core that arrives while it runs is
// uploaded, and the snapshot is written at start.
func TestKernelInboxPolled(t *testing.T) {
	e, core := kernelEnv(t, false)
	procRoot := filepath.Join(t.TempDir(), "proc")
	kernelProc(t, procRoot, "7001", cgroupOf(podstest.UID("polled"), podstest.Hex64("polled")))
	cfg := e.config()
	cfg.KernelCores, cfg.KernelPoll = true, 50*time.Millisecond
	stop := e.start(cfg)
	eventually(t, 10*time.Second, "policy snapshot", func() bool {
		p, err := corepipe.ReadPolicy(corepipe.PolicyPath(e.stateDir))
		return err == nil && !p.Stale(time.Now()) && p.MaxAgeSeconds == 60
	})
	r := runHandler(t, procRoot, e.stateDir, "7001", core)
	if r.Evidence.Outcome != corepipe.OutcomeCore {
		t.Fatalf("handler: %q %q", r.Evidence.Outcome, r.Evidence.Reason)
	}
	eventually(t, 20*time.Second, "core uploaded", func() bool {
		for _, k := range e.keys() {
			if strings.HasSuffix(k, ".json") && strings.Contains(k, r.EntryID[:8]) {
				return true
			}
		}
		return false
	})
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if left, _ := os.ReadDir(filepath.Join(e.stateDir, corepipe.DirName, "inbox")); len(left) != 0 {
		t.Errorf("inbox not empty: %d entries", len(left))
	}
}
