package collector_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/crashdump-io/crashdump/collector"
	"github.com/crashdump-io/crashdump/uploader/manifest"
	"github.com/crashdump-io/crashdump/uploader/miniotest"
	"github.com/crashdump-io/crashdump/uploader/routing"
	"github.com/crashdump-io/crashdump/uploader/s3store"
)

// pathResolver attributes a dump at <ns>/<pod>/<file> to container "app"
// of that pod, with per-namespace annotations: a stand-in for the kubelet.
type pathResolver struct {
	annotations map[string]map[string]string // by namespace
}

func (r pathResolver) Resolve(_ context.Context, ev collector.Evidence) collector.Attribution {
	parts := strings.Split(ev.Path, "/")
	if len(parts) < 3 {
		return collector.Attribution{Method: manifest.MethodNone}
	}
	return collector.Attribution{
		Method:      manifest.MethodPath,
		Pod:         &manifest.Pod{Namespace: parts[0], Name: parts[1], Container: "app"},
		Annotations: r.annotations[parts[0]],
	}
}

func (e *env) startWith(cfg collector.Config, res collector.PodResolver, dests collector.Destinations) (stop func() error) {
	e.t.Helper()
	a := e.buildFull(cfg, res, nil, dests)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	stopped := false
	stop = func() error {
		if stopped {
			return nil
		}
		stopped = true
		cancel()
		return <-done
	}
	e.t.Cleanup(func() { _ = stop() })
	return stop
}

// TestDiskBudgetEvictsOldest: with uploads failing (store down), dumps pile
// up; past --max-dump-bytes the oldest pending one is evicted, counted and
// logged, the newest kept — and uploaded once the store is back.
func TestDiskBudgetEvictsOldest(t *testing.T) {
	e := newEnv(t, true)
	e.srv.Stop()
	cfg := e.config()
	cfg.MaxDumpBytes = 2_500_000
	cfg.RetryBase = time.Minute // failed dumps wait, evictable
	cfg.RetryMax = time.Minute
	stop := e.startWith(cfg, nil, nil)
	for i, name := range []string{"old.dmp", "mid.dmp"} {
		mustWrite(t, filepath.Join(e.dumpDir, name), randomData(t, 1_000_000))
		eventually(t, 30*time.Second, name+" failed once", func() bool {
			return metric(t, e.reg, "crashdump_uploads_total", "result", "failure") >= float64(i+1)
		})
	}
	if got := metric(t, e.reg, "crashdump_dumps_dropped_total", "reason", "disk_budget"); got != 0 {
		t.Fatalf("evicted %v dumps under the budget", got)
	}
	mustWrite(t, filepath.Join(e.dumpDir, "new.dmp"), randomData(t, 1_000_000))
	eventually(t, 30*time.Second, "oldest evicted", func() bool {
		return metric(t, e.reg, "crashdump_dumps_dropped_total", "reason", "disk_budget") == 1
	})
	if !strings.Contains(e.logs.String(), `"msg":"evicted dump to keep the disk budget","path":"old.dmp"`) {
		t.Errorf("eviction of old.dmp not logged")
	}
	if got := metric(t, e.reg, "crashdump_pending_dumps"); got != 2 {
		t.Errorf("pending dumps %v, want 2", got)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if err := e.srv.Restart(); err != nil {
		t.Fatal(err)
	}
	// The retry backoff is long; a restarted agent resumes at once.
	e.startWith(e.config(), nil, nil)
	eventually(t, 60*time.Second, "the two newest stored", func() bool { return len(e.dumps()) == 2 })
	for _, d := range e.dumps() {
		if d.manifest.File.Name == "old.dmp" {
			t.Error("the evicted dump was uploaded")
		}
	}
}

// TestKeepFree: free space under --keep-free, caused by a file the agent
// does not hold, evicts nothing: evicting tenants' dumps would pay for
// someone else's file. It is reported (logged, crashdump_disk_pressure),
// and dumps keep being collected: a new dump is claimed at once (with its
// writer evidence) and uploaded when the store is back, which is what
// frees its space. On a real, small filesystem (a 24 MiB tmpfs) when one
// can be mounted; otherwise through an injected free-space function.
func TestKeepFree(t *testing.T) {
	e := newEnv(t, true)
	cfg := e.config()
	cfg.RetryBase, cfg.RetryMax = time.Minute, time.Minute
	cfg.BudgetInterval = 100 * time.Millisecond
	mnt := filepath.Join(t.TempDir(), "small")
	must(t, os.MkdirAll(mnt, 0o755))
	if err := unix.Mount("tmpfs", mnt, "tmpfs", 0, "size=24m"); err == nil {
		t.Cleanup(func() { _ = unix.Unmount(mnt, unix.MNT_DETACH) })
		t.Log("using a real 24 MiB tmpfs")
	} else {
		t.Logf("cannot mount a tmpfs (%v): injecting free space", err)
		cfg.FreeSpace = func(string) (uint64, uint64, error) {
			used := int64(0)
			_ = filepath.WalkDir(mnt, func(p string, d os.DirEntry, err error) error {
				if fi, ierr := os.Lstat(p); ierr == nil && fi.Mode().IsRegular() {
					used += fi.Size()
				}
				return nil
			})
			return uint64(24<<20 - used), 24 << 20, nil
		}
	}
	cfg.DumpDir, cfg.StateDir = filepath.Join(mnt, "dumps"), filepath.Join(mnt, "state")
	must(t, os.MkdirAll(cfg.DumpDir, 0o755))
	e.dumpDir, e.stateDir = cfg.DumpDir, cfg.StateDir
	cfg.KeepFreeBytes = 10 << 20
	e.srv.Stop()
	stop := e.startWith(cfg, nil, nil)
	mustWrite(t, filepath.Join(e.dumpDir, "victim.dmp"), randomData(t, 4<<20))
	eventually(t, 30*time.Second, "victim failed once", func() bool {
		return metric(t, e.reg, "crashdump_uploads_total", "result", "failure") >= 1
	})
	// Someone else's 12 MiB: 8 MiB left, under the 10 MiB floor.
	foreign := filepath.Join(mnt, "other", "foreign.bin")
	must(t, os.MkdirAll(filepath.Dir(foreign), 0o755))
	mustWrite(t, foreign, randomData(t, 12<<20))
	eventually(t, 10*time.Second, "disk pressure reported", func() bool {
		return metric(t, e.reg, "crashdump_disk_pressure") == 1
	})
	if !strings.Contains(e.logs.String(), "disk pressure: free space under --keep-free") {
		t.Error("the disk pressure was not logged")
	}
	late := randomData(t, 1<<20)
	mustWrite(t, filepath.Join(e.dumpDir, "late.dmp"), late)
	// Claimed under pressure: a rename on the same filesystem, no space.
	eventually(t, 10*time.Second, "late.dmp claimed under disk pressure", func() bool {
		return emptyDir(t, e.dumpDir)
	})
	if got := metric(t, e.reg, "crashdump_dumps_dropped_total", "reason", "disk_budget"); got != 0 {
		t.Fatalf("evicted %v dumps for another's file", got)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if err := e.srv.Restart(); err != nil {
		t.Fatal(err)
	}
	e.startWith(cfg, nil, nil)
	eventually(t, 60*time.Second, "both stored", func() bool { return len(e.dumps()) == 2 })
	for _, d := range e.dumps() {
		if d.manifest.File.Name == "late.dmp" && !bytes.Equal(d.original(t), late) {
			t.Error("late.dmp stored with other bytes")
		}
	}
	if got := metric(t, e.reg, "crashdump_dumps_dropped_total", "reason", "disk_budget"); got != 0 {
		t.Errorf("evicted %v dumps", got)
	}
	// Stored under pressure, node copies deleted (lingering ones released
	// early): the agent gave its share of the space back; the pressure
	// ends with the foreign file.
	eventually(t, 10*time.Second, "node copies deleted", func() bool {
		return emptyDir(t, filepath.Join(e.stateDir, "staging"))
	})
	must(t, os.Remove(foreign))
	eventually(t, 10*time.Second, "disk pressure over", func() bool {
		return metric(t, e.reg, "crashdump_disk_pressure") == 0
	})
}

// TestFreeSpaceComputation checks the real statfs computation against df.
func TestFreeSpaceComputation(t *testing.T) {
	free, total, err := collector.FreeSpace(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if total == 0 || free > total {
		t.Fatalf("free %d total %d", free, total)
	}
	out, err := exec.Command("df", "-B1", "--output=size,avail", t.TempDir()).Output()
	if err != nil {
		t.Skipf("no df: %v", err)
	}
	var dfTotal, dfFree uint64
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if _, err := fmt.Sscan(lines[len(lines)-1], &dfTotal, &dfFree); err != nil {
		t.Fatalf("parse df output %q: %v", out, err)
	}
	if dfTotal != total {
		t.Errorf("total %d, df says %d", total, dfTotal)
	}
	if diff := int64(dfFree) - int64(free); diff > 64<<20 || diff < -64<<20 {
		t.Errorf("free %d, df says %d", free, dfFree)
	}
}

// TestCrashLoopStorm: 300 dumps of one container; exactly the limit (3 per
// hour) are uploaded, also across a restart, and the rest cost one object:
// a manifest-only record counting them (issue 20: 2,000 one-byte dumps of
// one pod were 2,003 objects). Another container's dumps get their own.
func TestCrashLoopStorm(t *testing.T) {
	const total = 300
	e := newEnv(t, true)
	cfg := e.config()
	cfg.Policy = collector.Policy{MaxPerWindow: 3, Window: time.Hour}
	res := pathResolver{}
	stop := e.startWith(cfg, res, nil)
	for i := range 2 {
		mustWrite(t, filepath.Join(e.dumpDir, "prod", "api-0", fmt.Sprintf("core.%d", i)), randomData(t, 10_000))
	}
	eventually(t, 30*time.Second, "first two stored", func() bool { return len(e.dumps()) == 2 })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	e.startWith(cfg, res, nil)
	for i := 2; i < total; i++ {
		mustWrite(t, filepath.Join(e.dumpDir, "prod", "api-0", fmt.Sprintf("core.%d", i)), randomData(t, 10_000))
	}
	for i := range 5 {
		mustWrite(t, filepath.Join(e.dumpDir, "prod", "web-0", fmt.Sprintf("core.%d", i)), randomData(t, 1))
	}
	eventually(t, 60*time.Second, "all handled", func() bool {
		return len(e.staged()) == 0 && emptyDir(t, e.dumpDir) &&
			metric(t, e.reg, "crashdump_dumps_dropped_total", "reason", "rate_limited") == total-3+2
	})
	uploaded := map[string]int{}
	records := map[string]*manifest.Manifest{}
	for _, k := range e.keys() {
		if !strings.HasSuffix(k, ".json") {
			uploaded[strings.Split(k, "/")[1]]++
			continue
		}
		m, err := manifest.Unmarshal(e.read(k, true))
		if err != nil {
			t.Fatal(err)
		}
		if m.Object.ManifestOnly {
			if records[m.Pod.Name] != nil {
				t.Errorf("two manifest-only records of %s", m.Pod.Name)
			}
			records[m.Pod.Name] = m
			// Not hashed: the bytes are deleted unread, which is the point
			// of the limit during a storm of large dumps.
			if m.Pod == nil || m.Pod.Container != "app" || m.File.Size == 0 || m.File.SHA256 != "" || m.Suppressed == nil {
				t.Errorf("manifest-only record lacks facts: %+v", m)
			}
		}
	}
	if got := len(e.keys()); got != 3*2+1+3*2+1 {
		t.Errorf("%d objects in the store, want 14 (3 dumps and their manifests, and one record, per pod)", got)
	}
	for pod, want := range map[string]struct {
		count int
		bytes int64
	}{"api-0": {total - 3, (total - 3) * 10_000}, "web-0": {2, 2}} {
		if uploaded[pod] != 3 {
			t.Errorf("%s: %d dumps uploaded, want 3", pod, uploaded[pod])
		}
		r := records[pod]
		if r == nil || r.Suppressed == nil {
			t.Errorf("%s: no manifest-only record", pod)
			continue
		}
		sp := r.Suppressed
		if sp.Count != want.count || sp.Bytes != want.bytes || sp.Key != "prod/"+pod+"/app" {
			t.Errorf("%s: suppressed %d dumps of %d bytes as %q, want %d of %d as prod/%s/app", pod, sp.Count, sp.Bytes, sp.Key, want.count, want.bytes, pod)
		}
		if wantTimes := min(want.count, 100); len(sp.Times) != wantTimes || sp.TimesDropped != want.count-wantTimes {
			t.Errorf("%s: %d times listed, %d dropped; want %d and %d", pod, len(sp.Times), sp.TimesDropped, wantTimes, want.count-wantTimes)
		}
		if sp.First.After(sp.Last) || !sp.WindowEnd.After(sp.First) {
			t.Errorf("%s: window %v..%v ends %v", pod, sp.First, sp.Last, sp.WindowEnd)
		}
	}
}

// TestSelection: crashdump.io/collect "false" is skipped; with
// --collect-annotated-only only "true" pods are collected.
func TestSelection(t *testing.T) {
	e := newEnv(t, true)
	res := pathResolver{annotations: map[string]map[string]string{
		"quiet": {collector.AnnotationCollect: "false"},
		"loud":  {collector.AnnotationCollect: "true"},
	}}
	stop := e.startWith(e.config(), res, nil)
	mustWrite(t, filepath.Join(e.dumpDir, "quiet", "p", "core"), randomData(t, 1000))
	mustWrite(t, filepath.Join(e.dumpDir, "plain", "p", "core"), randomData(t, 1000))
	eventually(t, 30*time.Second, "handled", func() bool { return emptyDir(t, e.dumpDir) && len(e.staged()) == 0 && len(e.dumps()) == 1 })
	if ns := e.dumps()[0].manifest.Pod.Namespace; ns != "plain" {
		t.Errorf("stored %s, want only the unannotated pod's dump", ns)
	}
	if got := metric(t, e.reg, "crashdump_dumps_dropped_total", "reason", "not_selected"); got != 1 {
		t.Errorf("not_selected %v, want 1", got)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	cfg := e.config()
	cfg.Policy.AnnotatedOnly = true
	e.startWith(cfg, res, nil)
	mustWrite(t, filepath.Join(e.dumpDir, "loud", "p", "core"), randomData(t, 1000))
	mustWrite(t, filepath.Join(e.dumpDir, "plain", "q", "core"), randomData(t, 1000))
	eventually(t, 30*time.Second, "handled", func() bool { return emptyDir(t, e.dumpDir) && len(e.staged()) == 0 && len(e.dumps()) == 2 })
	for _, d := range e.dumps() {
		if d.manifest.Pod.Namespace == "plain" && d.manifest.Pod.Name == "q" {
			t.Error("unannotated pod collected in annotated-only mode")
		}
	}
}

// TestRoutingTwoBuckets: team-a's dumps go to its own bucket with its own
// credentials (a mounted Secret), everyone else's to the default bucket,
// and nothing crosses over.
func TestRoutingTwoBuckets(t *testing.T) {
	e := newEnv(t, true)
	e.srv.MakeBucket(t, "team-a")
	creds := filepath.Join(t.TempDir(), "credentials")
	mustWrite(t, filepath.Join(creds, "team-a-s3", "AWS_ACCESS_KEY_ID"), []byte(miniotest.AccessKey+"\n"))
	mustWrite(t, filepath.Join(creds, "team-a-s3", "AWS_SECRET_ACCESS_KEY"), []byte(miniotest.SecretKey))
	rc, err := routing.Parse([]byte(`destinations:
  - name: team-a
    store: s3://team-a/crashes
    credentialsSecret: team-a-s3
routes:
  - namespaces: [team-a]
    destination: team-a
`))
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	def := e.defaultStore()
	dests, err := routing.Open(context.Background(), rc, def, s3store.Config{Endpoint: e.srv.Endpoint, PartSize: s3store.MinPartSize, FilePartSize: s3store.MinPartSize},
		routing.OpenOptions{CredentialsDir: creds, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	e.startWith(e.config(), pathResolver{}, dests)
	for _, p := range []string{"team-a/api-0/core.1", "team-a/api-1/core.2", "team-b/web-0/core.3"} {
		mustWrite(t, filepath.Join(e.dumpDir, p), randomData(t, 5000))
	}
	eventually(t, 30*time.Second, "all stored", func() bool {
		return len(e.srv.Keys(t, "team-a", ""))+len(e.srv.Keys(t, bucket, "")) == 6
	})
	for _, k := range e.srv.Keys(t, "team-a", "") {
		if !strings.HasPrefix(k, "crashes/team-a/") {
			t.Errorf("team-a bucket holds %s", k)
		}
	}
	for _, k := range e.srv.Keys(t, bucket, "") {
		if !strings.HasPrefix(k, "team-b/") {
			t.Errorf("default bucket holds %s", k)
		}
	}
	if n := len(e.srv.Keys(t, "team-a", "")); n != 4 {
		t.Errorf("team-a bucket holds %d objects, want 4", n)
	}
	m, err := manifest.Unmarshal(e.srv.Get(t, "team-a", e.srv.Keys(t, "team-a", "crashes/team-a/api-0/")[1]))
	if err != nil {
		t.Fatal(err)
	}
	if m.Object.Destination != "team-a" || m.Object.Bucket != "team-a" || !strings.HasPrefix(m.Object.Key, "crashes/") {
		t.Errorf("manifest object %+v", m.Object)
	}
	if got := metric(t, e.reg, "crashdump_correlations_total", "method", "path"); got != 3 {
		t.Errorf("correlations %v", got)
	}
}

// TestRoutingConfigChecked: the agent refuses a bad routing config at start,
// naming the line; --config-check says so without running.
func TestRoutingConfigChecked(t *testing.T) {
	e := newEnv(t, true)
	bad := filepath.Join(t.TempDir(), "routing.yaml")
	mustWrite(t, bad, []byte("destinations:\n  - name: team-a\n    store: s3://team-a\nroutes:\n  - namespaces: [team-a]\n    destination: team-b\n"))
	for _, extra := range [][]string{{"--config-check"}, nil} {
		out, err := exec.Command(agentBinary(t), append([]string{"agent", "--routing-config", bad, "--dump-dir", e.dumpDir,
			"--state-dir", e.stateDir, "--store", "s3://" + bucket, "--s3-endpoint", e.srv.Endpoint, "--pod-source", "none",
			"--listen-address", ""}, extra...)...).CombinedOutput()
		if err == nil {
			t.Fatalf("agent %v accepted a bad routing config:\n%s", extra, out)
		}
		if !strings.Contains(string(out), "line 6: destination \"team-b\" is not defined") {
			t.Errorf("error does not name the line:\n%s", out)
		}
	}
	good := filepath.Join(t.TempDir(), "routing.yaml")
	mustWrite(t, good, []byte("destinations:\n  - name: team-a\n    store: s3://team-a\nroutes:\n  - namespaces: [team-a]\n    destination: team-a\n"))
	cmd := exec.Command(agentBinary(t), "agent", "--config-check", "--routing-config", good, "--dump-dir", e.dumpDir,
		"--state-dir", e.stateDir, "--store", "s3://"+bucket, "--s3-endpoint", e.srv.Endpoint, "--pod-source", "none", "--listen-address", "")
	cmd.Env = append(os.Environ(), e.srv.Env()...)
	if out, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(out), "configuration OK") {
		t.Errorf("--config-check of a good config: %v\n%s", err, out)
	}
}

// TestBandwidthLimit: a 200 MiB upload with --max-upload-bandwidth 20MiB
// takes at least 9 s.
func TestBandwidthLimit(t *testing.T) {
	if testing.Short() {
		t.Skip("slow")
	}
	e := newEnv(t, true)
	mustWrite(t, filepath.Join(e.dumpDir, "core.1"), randomData(t, 200<<20))
	start := time.Now()
	cmd := exec.Command(agentBinary(t), "agent", "--once", "--dump-dir", e.dumpDir, "--state-dir", e.stateDir,
		"--store", "s3://"+bucket, "--s3-endpoint", e.srv.Endpoint, "--pod-source", "none", "--settle-time", "100ms",
		"--keep-free", "0", "--max-dump-bytes", "0", "--max-upload-bandwidth", "20MiB")
	cmd.Env = append(os.Environ(), e.srv.Env()...)
	out, err := cmd.CombinedOutput()
	took := time.Since(start)
	if err != nil {
		t.Fatalf("agent: %v\n%s", err, out)
	}
	t.Logf("200 MiB at 20 MiB/s took %s", took.Round(time.Millisecond))
	if took < 9*time.Second {
		t.Errorf("took %s, want at least 9s", took)
	}
	if took > 60*time.Second {
		t.Errorf("took %s: far slower than the limit", took)
	}
	if len(e.dumps()) != 1 {
		t.Fatal("dump not stored")
	}
}

// TestFailedRetention: a dump that keeps failing is retried for --retry-for,
// then moved to failed/ (counted), and deleted after --failed-ttl.
func TestFailedRetention(t *testing.T) {
	e := newEnv(t, true)
	e.srv.Stop()
	cfg := e.config()
	cfg.RetryFor = time.Second
	cfg.FailedTTL = 2 * time.Second
	cfg.BudgetInterval = 200 * time.Millisecond
	e.startWith(cfg, nil, nil)
	mustWrite(t, filepath.Join(e.dumpDir, "core.1"), randomData(t, 1000))
	eventually(t, 30*time.Second, "moved to failed/", func() bool {
		return metric(t, e.reg, "crashdump_dumps_failed_total") == 1
	})
	if len(e.staged()) != 0 {
		t.Error("failed dump still in staging")
	}
	failed, _ := os.ReadDir(filepath.Join(e.stateDir, "failed"))
	if len(failed) != 1 || metric(t, e.reg, "crashdump_failed_dumps") != 1 {
		t.Fatalf("failed/ holds %d entries", len(failed))
	}
	eventually(t, 30*time.Second, "deleted after its TTL", func() bool {
		entries, _ := os.ReadDir(filepath.Join(e.stateDir, "failed"))
		return len(entries) == 0 && metric(t, e.reg, "crashdump_dumps_dropped_total", "reason", "failed_ttl") == 1
	})
	if metric(t, e.reg, "crashdump_failed_dumps") != 0 {
		t.Error("failed gauge not back to 0")
	}
}

// TestCompressionAnnotation: crashdump.io/compression "none" stores a
// compressible dump raw.
func TestCompressionAnnotation(t *testing.T) {
	e := newEnv(t, false)
	res := pathResolver{annotations: map[string]map[string]string{"raw": {collector.AnnotationCompression: "none"}}}
	e.startWith(e.config(), res, nil)
	mustWrite(t, filepath.Join(e.dumpDir, "raw", "p", "core"), make([]byte, 1<<20))
	mustWrite(t, filepath.Join(e.dumpDir, "zipped", "p", "core"), make([]byte, 1<<20))
	eventually(t, 30*time.Second, "stored", func() bool { return len(e.dumps()) == 2 })
	for _, d := range e.dumps() {
		want := manifest.CompressionZstd
		if d.manifest.Pod.Namespace == "raw" {
			want = manifest.CompressionNone
		}
		if d.manifest.Object.Compression != want {
			t.Errorf("%s stored with %q, want %q", d.manifest.Pod.Namespace, d.manifest.Object.Compression, want)
		}
	}
}
