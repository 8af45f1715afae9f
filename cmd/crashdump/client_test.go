package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/cobra"

	"github.com/crashdump-io/crashdump/collector"
	"github.com/crashdump-io/crashdump/collector/dumptest"
	"github.com/crashdump-io/crashdump/uploader"
	"github.com/crashdump-io/crashdump/uploader/catalog"
	"github.com/crashdump-io/crashdump/uploader/manifest"
	"github.com/crashdump-io/crashdump/uploader/miniotest"
	"github.com/crashdump-io/crashdump/uploader/s3store"
	"github.com/crashdump-io/crashdump/uploader/stores"
)

const testBucket = "dumps"

// result is one CLI run.
type result struct {
	stdout, stderr string
	code           int
}

// runCLI runs the command line in-process as main does, with argv0 as the
// program's name ("crashdump" or "kubectl-crashdump"), and returns what it
// printed and its exit status.
func runCLI(t *testing.T, argv0 string, args ...string) result {
	t.Helper()
	return runCLIContext(t, context.Background(), argv0, args...)
}

// runCLIContext is runCLI with the command's context: a canceled one is a
// Ctrl-C that came first.
func runCLIContext(t *testing.T, ctx context.Context, argv0 string, args ...string) result {
	t.Helper()
	var root *cobra.Command
	if argv0 == "crashdump" {
		root = newRootCmd()
	} else {
		// newRootCmd decides the mode from os.Args; build the same root
		// for another program name.
		root = &cobra.Command{Use: "crashdump", SilenceUsage: true, SilenceErrors: true,
			PersistentPreRunE: func(cmd *cobra.Command, _ []string) error { return bindEnv(cmd.Flags()) }}
		root.AddCommand(newAgentCmd(), newVersionCmd())
		addRetrievalCommandsAs(root, argv0, args)
	}
	var stdout, stderr bytes.Buffer
	root.SetOut(&stdout)
	root.SetErr(&stderr)
	if !modeFor(argv0).completer {
		root.SetArgs(args)
	}
	code := 0
	if err := root.ExecuteContext(ctx); err != nil {
		fmt.Fprintf(&stderr, "%s: %v\n", root.Name(), explainError(err))
		code = 1
		var ec exitCoder
		if errors.As(err, &ec) {
			code = ec.ExitCode()
		}
	}
	return result{stdout: stdout.String(), stderr: stderr.String(), code: code}
}

// isolateKube points the kubeconfig at nothing, so no test reads the
// machine's ~/.kube/config or reaches a real cluster.
func isolateKube(t *testing.T) {
	t.Helper()
	t.Setenv("KUBECONFIG", filepath.Join(t.TempDir(), "no-kubeconfig"))
	for _, e := range os.Environ() {
		if k, _, _ := strings.Cut(e, "="); strings.HasPrefix(k, envPrefix) {
			t.Setenv(k, "")
			os.Unsetenv(k)
		}
	}
}

// pathResolver attributes dumps by their path in the dump directory, the
// way the agent's path correlation does for <ns>/<pod>/ layouts.
type pathResolver map[string]manifest.Pod

func (r pathResolver) Resolve(_ context.Context, ev collector.Evidence) collector.Attribution {
	if p, ok := r[ev.Path]; ok {
		return collector.Attribution{Pod: &p, Method: manifest.MethodPath}
	}
	return collector.Attribution{Method: manifest.MethodNone, Reason: "test: no pod for " + ev.Path}
}

// dumpFile is a file dropped into the dump directory for the agent.
type dumpFile struct {
	name        string // logical name used by the tests
	path        string // relative to the dump directory
	data        []byte
	crashReport []byte
	pod         *manifest.Pod
}

// world is a store populated by the real agent pipeline (collector.Agent
// in --once mode, wired as cmd/crashdump/agent.go wires it).
type world struct {
	srv      *miniotest.Server // nil for a file store
	storeURL string
	storeDir string // file stores
	dumpDir  string
	stateDir string
	logs     *lockedBuffer

	originals map[string][]byte
	reports   map[string][]byte        // crash reports written beside dumps, by logical name
	dumps     map[string]*catalog.Dump // by logical name, after populate
	t1        time.Time                // key time of the first batch
	since     time.Time                // a time between the two batches
	policy    collector.Policy         // the agent's, for collect
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func newWorld(t *testing.T, withMinIO bool) *world {
	t.Helper()
	isolateKube(t)
	base := t.TempDir()
	w := &world{dumpDir: filepath.Join(base, "dumps"), stateDir: filepath.Join(base, "state"), logs: &lockedBuffer{},
		originals: map[string][]byte{}, reports: map[string][]byte{}, dumps: map[string]*catalog.Dump{}}
	for _, d := range []string{w.dumpDir, w.stateDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if withMinIO {
		w.srv = miniotest.Start(t)
		w.srv.MakeBucket(t, testBucket)
		w.srv.SetEnv(t)
		w.storeURL = "s3://" + testBucket + "/cluster-a"
	} else {
		w.storeDir = filepath.Join(base, "store")
		w.storeURL = "file://" + w.storeDir
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("agent logs:\n%s", w.logs.String())
		}
	})
	return w
}

func (w *world) endpoint() string {
	if w.srv == nil {
		return ""
	}
	return w.srv.Endpoint
}

// storeArgs are the flags that point a command at the world's store.
func (w *world) storeArgs() []string {
	args := []string{"--store", w.storeURL}
	if w.srv != nil {
		args = append(args, "--s3-endpoint", w.srv.Endpoint)
	}
	return args
}

// cli runs `crashdump <args> --store ...`.
func (w *world) cli(t *testing.T, args ...string) result {
	t.Helper()
	return runCLI(t, "crashdump", append(args, w.storeArgs()...)...)
}

// collect drops files into the dump directory and runs the agent once.
func (w *world) collect(t *testing.T, node string, files []dumpFile) {
	t.Helper()
	res := pathResolver{}
	for _, f := range files {
		p := filepath.Join(w.dumpDir, filepath.FromSlash(f.path))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		// createdump writes its crash report first.
		if f.crashReport != nil {
			if err := os.WriteFile(p+".crashreport.json", f.crashReport, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.WriteFile(p, f.data, 0o644); err != nil {
			t.Fatal(err)
		}
		if f.pod != nil {
			res[f.path] = *f.pod
		}
		w.originals[f.name] = f.data
		if f.crashReport != nil {
			w.reports[f.name] = f.crashReport
		}
	}
	log := slog.New(slog.NewTextHandler(w.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	opened, err := stores.Open(ctx, w.storeURL, s3store.Config{Endpoint: w.endpoint(), MaxAttempts: 2}, log)
	if err != nil {
		t.Fatal(err)
	}
	up, err := uploader.New(uploader.Options{})
	if err != nil {
		t.Fatal(err)
	}
	a, err := collector.New(collector.Config{
		DumpDir: w.dumpDir, StateDir: w.stateDir, Node: node, Version: "test",
		SettleTime: 100 * time.Millisecond, RetryBase: 50 * time.Millisecond, RetryMax: 200 * time.Millisecond,
		ShutdownGrace: 10 * time.Second, Once: true, Policy: w.policy,
	}, collector.Deps{Store: opened.Store, Uploader: up, Resolver: res, Ping: opened.Ping, Log: log, Registry: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Run(ctx); err != nil {
		t.Fatalf("agent --once: %v", err)
	}
}

// catalog opens the world's store as the CLI does.
func (w *world) catalog(t *testing.T) *session {
	t.Helper()
	o := &clientOptions{store: w.storeURL, s3Endpoint: w.endpoint(), flags: newLsCmd(cliMode{name: "crashdump"}).Flags()}
	if err := o.flags.Set("store", w.storeURL); err != nil {
		t.Fatal(err)
	}
	s, err := o.open(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.close)
	return s
}

func randomBytes(t *testing.T, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// textBytes is compressible and larger than the agent's 1 MiB chunks, so
// it is stored as several independent zstd frames.
func textBytes(n int, seed string) []byte {
	var b bytes.Buffer
	for i := 0; b.Len() < n; i++ {
		fmt.Fprintf(&b, "%s line %d: the quick brown fox jumps over the lazy dog\n", seed, i)
	}
	return b.Bytes()[:n]
}

// apiPod is the pod of the .NET dump: every field describe shows.
func apiPod() manifest.Pod {
	return manifest.Pod{Namespace: "prod", Name: "api-1", UID: "0f7c3b8e-1111-4c3a-9d7e-aaaaaaaaaaaa", Container: "api",
		ContainerID: "containerd://4b1d", Image: "registry.example/shop/api:1.4.2", OwnerKind: "ReplicaSet", OwnerName: "api-7d9f8c6b5",
		RestartCount: manifest.Restarts(3), Labels: map[string]string{"app": "api"},
		Termination: &manifest.Termination{ExitCode: 134, Signal: 6, SignalName: "SIGABRT", Reason: "Error",
			StartedAt: time.Date(2026, 3, 14, 9, 26, 1, 0, time.UTC), FinishedAt: time.Date(2026, 3, 14, 9, 26, 53, 0, time.UTC)}}
}

// populate collects two batches, a second apart: the first on node-a, the
// second (one dump) on node-b.
func (w *world) populate(t *testing.T) {
	t.Helper()
	api := apiPod()
	core := filepath.Join(t.TempDir(), "core")
	dumptest.SleepCore(t, core)
	coreBytes, err := os.ReadFile(core)
	if err != nil {
		t.Fatal(err)
	}
	api2 := manifest.Pod{Namespace: "prod", Name: "api-2", Container: "api"}
	web := manifest.Pod{Namespace: "staging", Name: "web-1", Container: "web"}
	w.collect(t, "node-a", []dumpFile{
		{name: "dotnet", path: "prod/api-1/coredump.1.dmp", data: coreBytes, crashReport: dumptest.Boom().Of(t, core).Render(), pod: &api},
		{name: "raw", path: "prod/api-2/core.7", data: randomBytes(t, 256<<10), pod: &api2},
		{name: "frames", path: "staging/web-1/web.dmp", data: textBytes(2<<20+12345, "web"), pod: &web},
		{name: "unknown", path: "x.dmp", data: randomBytes(t, 64<<10)},
	})
	w.refresh(t)
	for _, d := range w.dumps {
		if d.Time.After(w.t1) {
			w.t1 = d.Time
		}
	}
	// Key times have whole seconds: wait for the clock to pass the first
	// batch's, so the second batch sorts strictly after it.
	w.since = w.t1.Add(time.Second)
	for time.Now().Before(w.since) {
		time.Sleep(20 * time.Millisecond)
	}
	worker := apiPod()
	worker.Container = "worker"
	w.collect(t, "node-b", []dumpFile{
		{name: "late", path: "prod/api-1/late.dmp", data: textBytes(1<<20+777, "late"), pod: &worker},
	})
	w.refresh(t)
	if len(w.dumps) != 5 {
		t.Fatalf("store holds %d dumps, want 5", len(w.dumps))
	}
}

// refresh maps logical names to the dumps in the store.
func (w *world) refresh(t *testing.T) {
	t.Helper()
	s := w.catalog(t)
	ds, err := s.cat.List(context.Background(), catalog.Query{})
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range ds {
		if d.Manifest == nil {
			t.Fatalf("dump %s has no manifest", d.Key)
		}
		for name, data := range w.originals {
			sum := sha256Hex(data)
			if d.Manifest.File.SHA256 == sum {
				w.dumps[name] = d
			}
		}
	}
}

// overwrite replaces the stored bytes of key, as a faulty disk or a
// careless hand would.
func (w *world) overwrite(t *testing.T, key string, data []byte) {
	t.Helper()
	if w.srv == nil {
		p := filepath.Join(w.storeDir, filepath.FromSlash(key))
		if err := os.MkdirAll(filepath.Dir(p), 0o750); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	_, err := w.srv.Client().PutObject(context.Background(), &s3.PutObjectInput{
		Bucket: aws.String(testBucket), Key: aws.String(key), Body: bytes.NewReader(data)})
	if err != nil {
		t.Fatalf("overwrite %s: %v", key, err)
	}
}

// stored reads the stored bytes of key.
func (w *world) stored(t *testing.T, key string) []byte {
	t.Helper()
	if w.srv == nil {
		b, err := os.ReadFile(filepath.Join(w.storeDir, filepath.FromSlash(key)))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	return w.srv.Get(t, testBucket, key)
}

// TestRetrieval is the acceptance test of the retrieval CLI: a store
// populated by the real agent pipeline (a real gcore core with a .NET crash
// report, incompressible random bytes sent raw, a multi-frame zstd dump, an
// unattributed dump), in a real MinIO and in a file:// store, then ls,
// describe, get, completion, the kubectl plugin, abbreviated and ambiguous
// IDs, and corrupted objects.
func TestRetrieval(t *testing.T) {
	if testing.Short() {
		t.Skip("needs MinIO and gcore")
	}
	for _, kind := range []string{"s3", "file"} {
		t.Run(kind, func(t *testing.T) {
			w := newWorld(t, kind == "s3")
			w.populate(t)
			if w.dumps["raw"].Manifest.Object.Compression != manifest.CompressionNone ||
				w.dumps["frames"].Manifest.Object.Compression != manifest.CompressionZstd ||
				w.dumps["dotnet"].Manifest.Object.Compression != manifest.CompressionZstd {
				t.Fatalf("the agent did not store raw/zstd as expected: %s, %s, %s", w.dumps["raw"].Manifest.Object.Compression,
					w.dumps["frames"].Manifest.Object.Compression, w.dumps["dotnet"].Manifest.Object.Compression)
			}
			// Order matters: the later subtests change the store.
			t.Run("ls", func(t *testing.T) { testLs(t, w) })
			t.Run("ls-empty-store", func(t *testing.T) { testLsEmptyStore(t, w) })
			t.Run("describe", func(t *testing.T) { testDescribe(t, w) })
			t.Run("get", func(t *testing.T) { testGet(t, w) })
			t.Run("get-destinations", func(t *testing.T) { testGetDestinations(t, w) })
			t.Run("get-crash-report", func(t *testing.T) { testGetCrashReport(t, w) })
			t.Run("completion", func(t *testing.T) { testCompletion(t, w) })
			t.Run("plugin", func(t *testing.T) { testPlugin(t, w) })
			t.Run("ids", func(t *testing.T) { testIDs(t, w) })
			t.Run("corrupt", func(t *testing.T) { testCorrupt(t, w) })
		})
	}
}

func TestParseTimeFlag(t *testing.T) {
	now := time.Date(2026, 1, 2, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		in      string
		want    time.Time
		wantErr bool
	}{
		{"", time.Time{}, false},
		{"2h", now.Add(-2 * time.Hour), false},
		{"90m", now.Add(-90 * time.Minute), false},
		{"-30m", time.Time{}, true}, // "30m ago" or "in 30m"? refused (issue 19)
		{"7d", now.Add(-7 * 24 * time.Hour), false},
		{"2026-01-01T10:00:00Z", time.Date(2026, 1, 1, 10, 0, 0, 0, time.UTC), false},
		{"2026-01-01T10:00:00+02:00", time.Date(2026, 1, 1, 8, 0, 0, 0, time.UTC), false},
		{"2026-01-01T10:00:00", time.Date(2026, 1, 1, 10, 0, 0, 0, time.UTC), false},
		{"2026-01-01", time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), false},
		{"yesterday", time.Time{}, true},
		{"1.5d", time.Time{}, true},
	}
	for _, tt := range tests {
		got, err := parseTimeFlag(tt.in, now)
		if (err != nil) != tt.wantErr || !got.Equal(tt.want) {
			t.Errorf("parseTimeFlag(%q) = %v, %v; want %v (error %v)", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
}

func TestHumanBytes(t *testing.T) {
	for n, want := range map[int64]string{-1: "-", 0: "0B", 1023: "1023B", 1024: "1.0KiB", 1536: "1.5KiB",
		300 << 10: "300KiB", 5 << 20: "5.0MiB", 1<<30 + 1<<29: "1.5GiB", 12 << 40: "12.0TiB"} {
		if got := humanBytes(n); got != want {
			t.Errorf("humanBytes(%d) = %q, want %q", n, got, want)
		}
	}
}

// TestNoCredentialsExplained: without AWS credentials the CLI says what the
// chain tried and what to set for MinIO, in one line, not the SDK's chain
// ending in "no EC2 IMDS role found" (issue 19 item 3).
func TestNoCredentialsExplained(t *testing.T) {
	isolateKube(t)
	dir := t.TempDir()
	for k, v := range map[string]string{
		"AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": "", "AWS_SESSION_TOKEN": "", "AWS_PROFILE": "",
		"AWS_CONFIG_FILE": filepath.Join(dir, "none"), "AWS_SHARED_CREDENTIALS_FILE": filepath.Join(dir, "none"),
		"AWS_WEB_IDENTITY_TOKEN_FILE": "", "AWS_ROLE_ARN": "", "AWS_CONTAINER_CREDENTIALS_FULL_URI": "",
		"AWS_CONTAINER_CREDENTIALS_RELATIVE_URI": "", "AWS_EC2_METADATA_DISABLED": "true", "AWS_REGION": "us-east-1",
	} {
		t.Setenv(k, v)
	}
	r := runCLI(t, "crashdump", "ls", "--store", "s3://dumps/x", "--s3-endpoint", "http://127.0.0.1:9")
	want := "crashdump: no AWS credentials found (tried the environment AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY"
	if r.code != 1 || !strings.HasPrefix(r.stderr, want) || !strings.Contains(r.stderr, "for MinIO, set AWS_ACCESS_KEY_ID") ||
		strings.Count(strings.TrimSpace(r.stderr), "\n") != 0 || strings.Contains(r.stderr, "IMDS") {
		t.Errorf("exit %d, stderr %q; want 1 and one line starting %q", r.code, r.stderr, want)
	}
}
