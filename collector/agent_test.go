package collector_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/crashdump-io/crashdump/collector/dumptest"
	"github.com/crashdump-io/crashdump/uploader"
	"github.com/crashdump-io/crashdump/uploader/manifest"
)

// TestSeedScenario is the seed scenario: a .NET-style
// coredump.1.dmp (a real ELF core) with its crash report lands in the dump
// directory; it arrives compressed with its manifest and metadata, the
// decompressed bytes are identical, and the node copy is gone.
func TestSeedScenario(t *testing.T) {
	for _, store := range []string{"s3", "file"} {
		t.Run(store, func(t *testing.T) {
			e := newEnv(t, store == "s3")
			stop := e.start(e.config())

			core := filepath.Join(t.TempDir(), "core")
			pid := dumptest.SleepCore(t, core)
			original, err := os.ReadFile(core)
			if err != nil {
				t.Fatal(err)
			}
			// createdump writes the crash report first, then the dump. Each
			// is renamed into place whole: written in place, the test
			// process would be the open writer of both, and the agent, when
			// its scan caught it, would rightly pair them by writer; this
			// test is about pairing by the crashed thread.
			report := dumptest.Boom().Of(t, core).Render()
			e.placeWhole(t, "coredump.1.dmp.crashreport.json", report)
			e.placeWhole(t, "coredump.1.dmp", original)

			eventually(t, 30*time.Second, "dump and manifest stored", func() bool { return len(e.dumps()) == 1 })
			// The pending gauges drop when the scheduler takes the worker's
			// result, just after the entry is removed: a stop in between
			// would leave them as they were.
			eventually(t, 10*time.Second, "node copy removed and no dump pending", func() bool {
				return emptyDir(t, e.dumpDir) && len(e.staged()) == 0 && metric(t, e.reg, "crashdump_pending_dumps") == 0
			})
			if err := stop(); err != nil {
				t.Fatalf("agent stopped with %v", err)
			}

			d := e.dumps()[0]
			m := d.manifest
			if keys := e.keys(); len(keys) != 3 {
				t.Errorf("store holds %v, want the dump, its crash report and its manifest", keys)
			}
			if got := e.read(d.key+".crashreport.json", false); !bytes.Equal(got, report) {
				t.Errorf("stored crash report differs from the one written (%d vs %d bytes)", len(got), len(report))
			}
			if !strings.HasPrefix(d.key, "_unknown/_unknown/") || !strings.HasSuffix(d.key, "_unknown_"+m.ID[:8]+"_coredump.1.dmp.zst") {
				t.Errorf("key %q does not follow the layout", d.key)
			}
			if got := d.original(t); !bytes.Equal(got, original) {
				t.Fatalf("decompressed dump differs from the original (%d vs %d bytes)", len(got), len(original))
			}
			checks := []struct {
				name      string
				got, want any
			}{
				{"schemaVersion", m.SchemaVersion, 1},
				{"node", m.Node, "node-1"},
				{"kind", m.Kind, "elf-core"},
				{"file.name", m.File.Name, "coredump.1.dmp"},
				{"file.size", m.File.Size, int64(len(original))},
				{"file.sha256", m.File.SHA256, sha(original)},
				{"file.crashReport", m.File.CrashReport, "coredump.1.dmp.crashreport.json"},
				{"object.compression", m.Object.Compression, "zstd"},
				{"object.key", m.Object.Key, d.key},
				{"object.storedSize", m.Object.StoredSize, int64(len(d.raw))},
				{"correlation.method", m.Correlation.Method, "none"},
				{"incomplete", m.Incomplete, false},
				{"crashReport.exceptionType", m.CrashReport.ExceptionType, "System.Exception"},
				{"crashReport.hresult", m.CrashReport.HResult, "0x80131500"},
				{"crashReport.processName", m.CrashReport.ProcessName, "CrashApp"},
				{"crashReport.frame0", m.CrashReport.CrashedThreadFrames[0].Method, "Program.<Main>$(System.String[])"},
				{"crashReport.key", m.CrashReport.Key, d.key + ".crashreport.json"},
				{"crashReport.size", m.CrashReport.Size, int64(len(report))},
				{"crashReport.sha256", m.CrashReport.SHA256, sha(report)},
				{"crashReport.pairedBy", m.CrashReport.PairedBy, "thread"},
				{"core.exe", m.Core.Exe, "/usr/bin/sleep"},
				{"core.pid", m.Core.PID, pid},
			}
			for _, c := range checks {
				if c.got != c.want {
					t.Errorf("manifest %s = %v, want %v", c.name, c.got, c.want)
				}
			}
			if len(d.raw) >= len(original) {
				t.Errorf("stored %d bytes for a %d-byte core: not compressed", len(d.raw), len(original))
			}
			if store == "s3" {
				for k, want := range map[string]string{"sha256": sha(original), "compression": "zstd", "node": "node-1",
					"original-size": strconv.Itoa(len(original)), "dump-id": m.ID} {
					if d.meta[k] != want {
						t.Errorf("object metadata %s = %q, want %q (all: %v)", k, d.meta[k], want, d.meta)
					}
				}
				if m.Object.Bucket != bucket || m.Object.URL != "s3://"+bucket+"/"+d.key {
					t.Errorf("object location %q %q", m.Object.Bucket, m.Object.URL)
				}
			}
			for _, c := range []struct {
				name   string
				labels []string
				want   float64
			}{
				{"crashdump_dumps_detected_total", nil, 1},
				{"crashdump_uploads_total", []string{"result", "success"}, 1},
				{"crashdump_uploads_total", []string{"result", "failure"}, 0},
				{"crashdump_pending_dumps", nil, 0},
				{"crashdump_pending_bytes", nil, 0},
				{"crashdump_correlations_total", []string{"method", "none"}, 1},
				{"crashdump_upload_bytes_total", nil, float64(len(d.raw))},
			} {
				if got := metric(t, e.reg, c.name, c.labels...); got != c.want {
					t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
				}
			}
			if metric(t, e.reg, "crashdump_last_upload_timestamp_seconds") < float64(time.Now().Add(-time.Minute).Unix()) {
				t.Error("last upload timestamp not set")
			}
		})
	}
}

// TestSameNameTwice: the seed's coredump.%p.dmp gives every container the
// same name (PID 1). A second crash writing the same name while the first
// dump is still being written must create a new file, and both must arrive.
func TestSameNameTwice(t *testing.T) {
	e := newEnv(t, true)
	e.start(e.config())
	a, b := randomData(t, 3<<20), randomData(t, 2<<20)
	name := filepath.Join(e.dumpDir, "coredump.1.dmp")

	w1, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer w1.Close()
	if _, err := w1.Write(a[:1<<20]); err != nil {
		t.Fatal(err)
	}
	// The agent claims the file while its writer still has it open.
	eventually(t, 10*time.Second, "first dump claimed", func() bool { _, err := os.Lstat(name); return os.IsNotExist(err) })

	// Second crash, same name: createdump opens with O_CREAT|O_TRUNC.
	if err := os.WriteFile(name, b, 0o644); err != nil {
		t.Fatal(err)
	}
	// The first writer finishes only now.
	if _, err := w1.Write(a[1<<20:]); err != nil {
		t.Fatal(err)
	}
	if err := w1.Close(); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "both dumps stored", func() bool { return len(e.dumps()) == 2 })
	got := map[string]bool{}
	for _, d := range e.dumps() {
		got[sha(d.original(t))] = true
		if d.manifest.Incomplete {
			t.Errorf("%s marked incomplete", d.key)
		}
	}
	if !got[sha(a)] || !got[sha(b)] {
		t.Fatalf("stored dumps do not match the two crashes intact")
	}
}

// TestNotUploadedWhileWriterOpen: a dump still held open for writing is
// never uploaded, however long its writer pauses, until the writer closes.
func TestNotUploadedWhileWriterOpen(t *testing.T) {
	e := newEnv(t, true)
	cfg := e.config()
	e.start(cfg)
	data := randomData(t, 2<<20)
	w, err := os.OpenFile(filepath.Join(e.dumpDir, "core.4242"), os.O_WRONLY|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	chunks := 4
	step := len(data) / chunks
	for i := range chunks {
		if _, err := w.Write(data[i*step : (i+1)*step]); err != nil {
			t.Fatal(err)
		}
		// Pause far beyond the settle time with the file open: the agent
		// must keep waiting.
		deadline := time.Now().Add(3 * cfg.SettleTime)
		for time.Now().Before(deadline) {
			if k := e.keys(); len(k) != 0 {
				t.Fatalf("uploaded while the writer still had it open: %v", k)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "dump stored after close", func() bool { return len(e.dumps()) == 1 })
	d := e.dumps()[0]
	if !bytes.Equal(d.original(t), data) {
		t.Fatal("stored dump is not the complete file")
	}
	if d.manifest.Incomplete {
		t.Error("dump marked incomplete")
	}
	if d.manifest.Object.Compression != manifest.CompressionNone {
		t.Errorf("random data stored with compression %q; incompressible data should go raw", d.manifest.Object.Compression)
	}
}

// TestMaxSettleWait: a writer that never closes does not hold a dump on the
// node forever: after the maximum wait it is uploaded, marked incomplete.
func TestMaxSettleWait(t *testing.T) {
	e := newEnv(t, false)
	cfg := e.config()
	cfg.MaxSettleWait = time.Second
	e.start(cfg)
	w, err := os.OpenFile(filepath.Join(e.dumpDir, "stuck.dmp"), os.O_WRONLY|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if _, err := w.Write([]byte("partial dump")); err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, "incomplete dump stored", func() bool { return len(e.dumps()) == 1 })
	m := e.dumps()[0].manifest
	if !m.Incomplete || !strings.Contains(m.IncompleteReason, "still open") {
		t.Errorf("incomplete=%v reason=%q, want incomplete because still open", m.Incomplete, m.IncompleteReason)
	}
}

// TestOnceMode: --once processes what is there and returns; with the store
// unreachable it fails and keeps the dumps staged.
func TestOnceMode(t *testing.T) {
	e := newEnv(t, true)
	for i, sub := range []string{"", "ns-a", "ns-b/pod"} {
		dir := filepath.Join(e.dumpDir, sub)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "core."+strconv.Itoa(i)), randomData(t, 100_000), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cfg := e.config()
	cfg.Once = true
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := e.newAgent(cfg, nil).Run(ctx); err != nil {
		t.Fatalf("once run: %v", err)
	}
	if n := len(e.dumps()); n != 3 {
		t.Fatalf("stored %d dumps, want 3", n)
	}
	if !emptyDir(t, e.dumpDir) || len(e.staged()) != 0 {
		t.Fatal("node copies left behind")
	}

	// Store down: the run fails, the dump stays staged, nothing is lost.
	if err := os.WriteFile(filepath.Join(e.dumpDir, "core.9"), randomData(t, 1000), 0o644); err != nil {
		t.Fatal(err)
	}
	e.srv.Stop()
	cfg.OnceMaxAttempts = 2
	err := e.newAgent(cfg, nil).Run(ctx)
	if err == nil || !strings.Contains(err.Error(), "could not be uploaded") {
		t.Fatalf("once run with the store down: %v, want an error", err)
	}
	if n := len(e.staged()); n != 1 {
		t.Fatalf("%d dumps staged, want 1 kept for the next run", n)
	}
	if err := e.srv.Restart(); err != nil {
		t.Fatal(err)
	}
	if err := e.newAgent(cfg, nil).Run(ctx); err != nil {
		t.Fatalf("once run after the store came back: %v", err)
	}
	if n := len(e.dumps()); n != 4 || len(e.staged()) != 0 {
		t.Fatalf("stored %d dumps, %d staged; want 4 and 0", n, len(e.staged()))
	}
}

func randomData(t testing.TB, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// TestSpilledBytesMetric: while the SHA-256 of a large dump runs, the
// compressed bytes wait in the spill file; the agent counts them in
// crashdump_upload_spilled_bytes_total, the same number its "dump
// uploaded" line logs. A small dump never spills.
func TestSpilledBytesMetric(t *testing.T) {
	e := newEnv(t, false)
	e.upOpts = uploader.Options{SpillDir: e.stateDir, SpillMax: 256 << 20}
	// The file store reads the body before it asks for the metadata; an S3
	// store must create the upload, with the SHA-256 as metadata, first.
	// This wrapper behaves like the latter with no buffer of its own.
	a := e.newAgentWithStore(e.config(), func(s uploader.Store) uploader.Store { return createFirst{s} })
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	eventually(t, 10*time.Second, "agent ready", a.Ready)
	if got := metric(t, e.reg, "crashdump_upload_spilled_bytes_total"); got != 0 {
		t.Fatalf("spilled bytes before any upload = %v", got)
	}

	// A small dump first: it must not spill.
	if err := os.WriteFile(filepath.Join(e.dumpDir, "small.dmp"), bytes.Repeat([]byte("small dump "), 1<<16), 0o644); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "small dump stored", func() bool { return len(e.dumps()) == 1 })
	if got := metric(t, e.reg, "crashdump_upload_spilled_bytes_total"); got != 0 {
		t.Errorf("spilled bytes after a 704 KiB dump = %v, want 0", got)
	}

	// 512 MiB, mostly a hole: the hash reads every byte (about 0.3 s here;
	// it starts before the dump is sampled), the compressor has its first
	// frames out milliseconds after the sample, and the store reads nothing
	// before the hash is done.
	f, err := os.Create(filepath.Join(e.dumpDir, "large.dmp"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(bytes.Repeat([]byte("header of a large dump "), 1<<14)); err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(512 << 20); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	// The agent logs "dump uploaded" once the manifest is stored, after
	// the object the store lists: wait for the lines, not the objects.
	type uploaded struct {
		Msg     string  `json:"msg"`
		Path    string  `json:"path"`
		Spilled float64 `json:"spilled"`
	}
	var lines []uploaded
	eventually(t, 60*time.Second, `both "dump uploaded" lines`, func() bool {
		lines = lines[:0]
		for _, line := range strings.Split(e.logs.String(), "\n") {
			var rec uploaded
			if json.Unmarshal([]byte(line), &rec) == nil && rec.Msg == "dump uploaded" {
				lines = append(lines, rec)
			}
		}
		return len(lines) == 2
	})
	var logged float64
	for _, rec := range lines {
		if rec.Path == "small.dmp" && rec.Spilled != 0 {
			t.Errorf("small dump logged spilled=%v", rec.Spilled)
		}
		logged += rec.Spilled
	}
	got := metric(t, e.reg, "crashdump_upload_spilled_bytes_total")
	if got != logged {
		t.Errorf("crashdump_upload_spilled_bytes_total = %v, the log says %v", got, logged)
	}
	if got <= 0 {
		t.Errorf("crashdump_upload_spilled_bytes_total = %v after a 512 MiB dump, want > 0", got)
	}
	t.Logf("spilled %v bytes", got)
}

// createFirst is a store that asks for the object's metadata (and so waits
// for the SHA-256) before it reads any of the body, as S3 stores do.
type createFirst struct{ uploader.Store }

func (s createFirst) Put(ctx context.Context, key string, r io.Reader, size int64, opts uploader.PutOptions) (uploader.Object, error) {
	md, err := opts.ObjectMetadata(ctx)
	if err != nil {
		return uploader.Object{}, err
	}
	opts.Metadata, opts.LateMetadata = md, nil
	return s.Store.Put(ctx, key, r, size, opts)
}
