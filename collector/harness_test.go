package collector_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/klauspost/compress/zstd"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/crashdump-io/crashdump/collector"
	"github.com/crashdump-io/crashdump/uploader"
	"github.com/crashdump-io/crashdump/uploader/manifest"
	"github.com/crashdump-io/crashdump/uploader/miniotest"
	"github.com/crashdump-io/crashdump/uploader/s3store"
	"github.com/crashdump-io/crashdump/uploader/stores"
)

const bucket = "dumps"

// env is one agent's world: a dump directory, a state directory on the same
// filesystem, a store (real MinIO, or a local directory) and a registry.
type env struct {
	t        *testing.T
	base     string
	dumpDir  string
	stateDir string
	srv      *miniotest.Server
	storeURL string
	reg      *prometheus.Registry
	logs     *syncBuffer
	// upOpts configures the agent's uploader (main sets the spill file).
	upOpts uploader.Options
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// Reset forgets what was written (a second agent's logs).
func (s *syncBuffer) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.b.Reset()
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// newEnv prepares an environment; withMinIO starts a real MinIO.
func newEnv(t *testing.T, withMinIO bool) *env {
	t.Helper()
	base := t.TempDir()
	e := &env{t: t, base: base, dumpDir: filepath.Join(base, "dumps"), stateDir: filepath.Join(base, "state"),
		reg: prometheus.NewRegistry(), logs: &syncBuffer{}}
	for _, d := range []string{e.dumpDir, e.stateDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if withMinIO {
		if testing.Short() {
			t.Skip("needs MinIO")
		}
		e.srv = miniotest.Start(t)
		e.srv.MakeBucket(t, bucket)
		e.srv.SetEnv(t)
		e.storeURL = "s3://" + bucket
	} else {
		e.storeURL = "file://" + filepath.Join(base, "store")
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("agent logs:\n%s", e.logs.String())
		}
	})
	return e
}

func (e *env) config() collector.Config {
	return collector.Config{
		DumpDir: e.dumpDir, StateDir: e.stateDir, Node: "node-1", Version: "test",
		SettleTime: 200 * time.Millisecond, RescanInterval: 2 * time.Second,
		RetryBase: 50 * time.Millisecond, RetryMax: 500 * time.Millisecond, ShutdownGrace: 5 * time.Second,
	}
}

// newAgent builds an agent the way cmd/crashdump wires it.
func (e *env) newAgent(cfg collector.Config, res collector.PodResolver) *collector.Agent {
	e.t.Helper()
	return e.build(cfg, res, nil)
}

// newAgentWithStore builds an agent whose store is wrapped by wrap.
func (e *env) newAgentWithStore(cfg collector.Config, wrap func(uploader.Store) uploader.Store) *collector.Agent {
	e.t.Helper()
	return e.build(cfg, nil, wrap)
}

// objectVersionTime is the stored object's modification time: it changes
// when the object is written again.
func (e *env) objectVersionTime(t *testing.T, key string) time.Time {
	t.Helper()
	out, err := e.srv.Client().HeadObject(context.Background(), &s3.HeadObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if err != nil {
		t.Fatal(err)
	}
	return aws.ToTime(out.LastModified)
}

func (e *env) build(cfg collector.Config, res collector.PodResolver, wrap func(uploader.Store) uploader.Store) *collector.Agent {
	e.t.Helper()
	return e.buildFull(cfg, res, wrap, nil)
}

// defaultStore opens the env's store as the agent would.
func (e *env) defaultStore() uploader.Store {
	e.t.Helper()
	opened, err := stores.Open(context.Background(), e.storeURL, s3store.Config{
		Endpoint: e.endpoint(), PartSize: s3store.MinPartSize, FilePartSize: s3store.MinPartSize, MaxAttempts: 2, MaxBackoff: 100 * time.Millisecond,
	}, slog.New(slog.DiscardHandler))
	if err != nil {
		e.t.Fatal(err)
	}
	return opened.Store
}

func (e *env) buildFull(cfg collector.Config, res collector.PodResolver, wrap func(uploader.Store) uploader.Store, dests collector.Destinations) *collector.Agent {
	e.t.Helper()
	// One registry per agent, as in main; tests read the latest.
	e.reg = prometheus.NewRegistry()
	log := slog.New(slog.NewJSONHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	opened, err := stores.Open(context.Background(), e.storeURL, s3store.Config{
		Endpoint: e.endpoint(), PartSize: s3store.MinPartSize, FilePartSize: s3store.MinPartSize, MaxAttempts: 2, MaxBackoff: 100 * time.Millisecond,
	}, log)
	if err != nil {
		e.t.Fatal(err)
	}
	up, err := uploader.New(e.upOpts)
	if err != nil {
		e.t.Fatal(err)
	}
	store := opened.Store
	if wrap != nil {
		store = wrap(store)
	}
	a, err := collector.New(cfg, collector.Deps{
		Store: uploader.NewStoreMetrics(e.reg).Wrap(store, "default"), Uploader: up, Destinations: dests,
		Resolver: res, Ping: opened.Ping, Log: log, Registry: e.reg,
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return a
}

func (e *env) endpoint() string {
	if e.srv == nil {
		return ""
	}
	return e.srv.Endpoint
}

// start runs an agent until the returned stop is called (or the test ends).
func (e *env) start(cfg collector.Config) (stop func() error) {
	e.t.Helper()
	a := e.newAgent(cfg, nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	var once sync.Once
	var err error
	stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case err = <-done:
			case <-time.After(30 * time.Second):
				err = errors.New("agent did not stop within 30s")
			}
		})
		return err
	}
	e.t.Cleanup(func() { _ = stop() })
	eventually(e.t, 10*time.Second, "agent ready", a.Ready)
	return stop
}

// eventually polls cond until it holds or the timeout passes.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// stored is one dump in the store: its manifest and its bytes.
type stored struct {
	key      string
	manifest *manifest.Manifest
	meta     map[string]string
	raw      []byte // as stored
}

// dumps returns every dump (object with a manifest) in the store.
func (e *env) dumps() []stored {
	e.t.Helper()
	var out []stored
	for _, k := range e.keys() {
		if !strings.HasSuffix(k, ".json") || strings.HasSuffix(k, manifest.CrashReportSuffix) {
			continue // not a manifest, or a dump's crash report
		}
		m, err := manifest.Unmarshal(e.read(strings.TrimSuffix(k, ".json")+".json", true))
		if err != nil {
			e.t.Fatalf("manifest %s: %v", k, err)
		}
		key := strings.TrimSuffix(k, ".json")
		out = append(out, stored{key: key, manifest: m, raw: e.read(key, false), meta: e.meta(key)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].key < out[j].key })
	return out
}

// keys lists everything in the store.
func (e *env) keys() []string {
	e.t.Helper()
	if e.srv != nil {
		return e.srv.Keys(e.t, bucket, "")
	}
	root := strings.TrimPrefix(e.storeURL, "file://")
	var keys []string
	_ = filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			rel, _ := filepath.Rel(root, p)
			keys = append(keys, filepath.ToSlash(rel))
		}
		return nil
	})
	sort.Strings(keys)
	return keys
}

func (e *env) read(key string, _ bool) []byte {
	e.t.Helper()
	if e.srv != nil {
		return e.srv.Get(e.t, bucket, key)
	}
	b, err := os.ReadFile(filepath.Join(strings.TrimPrefix(e.storeURL, "file://"), filepath.FromSlash(key)))
	if err != nil {
		e.t.Fatal(err)
	}
	return b
}

func (e *env) meta(key string) map[string]string {
	e.t.Helper()
	if e.srv == nil {
		return nil
	}
	opened, err := stores.Open(context.Background(), e.storeURL, s3store.Config{Endpoint: e.srv.Endpoint}, slog.New(slog.DiscardHandler))
	if err != nil {
		e.t.Fatal(err)
	}
	o, err := opened.Store.Head(context.Background(), key)
	if err != nil {
		e.t.Fatal(err)
	}
	out := map[string]string{}
	for k, v := range o.Metadata {
		out[strings.ToLower(k)] = v
	}
	return out
}

// original returns the dump's original bytes (decompressed if needed).
func (s stored) original(t *testing.T) []byte {
	t.Helper()
	if s.manifest.Object.Compression != manifest.CompressionZstd {
		return s.raw
	}
	d, err := zstd.NewReader(bytes.NewReader(s.raw))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	b, err := io.ReadAll(d)
	if err != nil {
		t.Fatalf("decompress %s: %v", s.key, err)
	}
	return b
}

func sha(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// metric returns the value of a counter or gauge with the given labels.
func metric(t *testing.T, reg *prometheus.Registry, name string, labels ...string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			for i := 0; i+1 < len(labels); i += 2 {
				found := false
				for _, lp := range m.GetLabel() {
					if lp.GetName() == labels[i] && lp.GetValue() == labels[i+1] {
						found = true
					}
				}
				if !found {
					continue next
				}
			}
			if m.Counter != nil {
				return m.Counter.GetValue()
			}
			if m.Gauge != nil {
				return m.Gauge.GetValue()
			}
			if m.Histogram != nil {
				return float64(m.Histogram.GetSampleCount())
			}
		}
	}
	t.Fatalf("metric %s%v not found", name, labels)
	return 0
}

// emptyDir reports whether dir holds nothing but (empty) directories.
func emptyDir(t *testing.T, dir string) bool {
	t.Helper()
	empty := true
	_ = filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			empty = false
		}
		return nil
	})
	return empty
}

// staged lists the staging entries.
func (e *env) staged() []string {
	des, _ := os.ReadDir(filepath.Join(e.stateDir, "staging"))
	var out []string
	for _, d := range des {
		out = append(out, d.Name())
	}
	return out
}
