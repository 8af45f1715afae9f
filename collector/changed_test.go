package collector_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/crashdump-io/crashdump/uploader"
)

// rewriteOnce is a store whose first upload of a dump, before it reads a
// byte, has the staged file rewritten by an invisible writer: 16 MiB of
// new bytes at offset 0, mtime set back as it was (utimensat). The
// store's reads then see bytes the agent's hash did not.
type rewriteOnce struct {
	uploader.Store
	t        *testing.T
	stateDir string
	fresh    []byte
	done     atomic.Bool
}

func (s *rewriteOnce) Put(ctx context.Context, key string, r io.Reader, size int64, opts uploader.PutOptions) (uploader.Object, error) {
	if !strings.HasSuffix(key, ".json") && s.done.CompareAndSwap(false, true) {
		paths, _ := filepath.Glob(filepath.Join(s.stateDir, "staging", "*", "dump"))
		if len(paths) != 1 {
			s.t.Errorf("staged dumps %v, want one", paths)
		} else {
			fi, err := os.Stat(paths[0])
			if err != nil {
				s.t.Error(err)
			}
			f, err := os.OpenFile(paths[0], os.O_WRONLY, 0)
			if err != nil {
				s.t.Error(err)
			} else {
				if _, err := f.WriteAt(s.fresh, 0); err != nil {
					s.t.Error(err)
				}
				_ = f.Close()
			}
			if err := os.Chtimes(paths[0], fi.ModTime(), fi.ModTime()); err != nil {
				s.t.Error(err)
			}
		}
	}
	return s.Store.Put(ctx, key, r, size, opts)
}

// TestDumpRewrittenDuringUploadMtimeRestored: a raw (incompressible) dump
// is rewritten in the middle of its upload by a writer the agent cannot
// see, which then restores the mtime. The size and mtime say nothing
// changed; the ctime does. The agent must not report the object uploaded
// with the hash of other bytes: it uploads again, and what is stored in
// the end equals its manifest's SHA-256 and the file's final content.
func TestDumpRewrittenDuringUploadMtimeRestored(t *testing.T) {
	e := newEnv(t, true)
	orig := randomData(t, 32<<20)
	w := &rewriteOnce{t: t, stateDir: e.stateDir, fresh: randomData(t, 16<<20)}
	a := e.newAgentWithStore(e.config(), func(s uploader.Store) uploader.Store { w.Store = s; return w })
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	eventually(t, 10*time.Second, "agent ready", a.Ready)

	if err := os.WriteFile(filepath.Join(e.dumpDir, "core.raw"), orig, 0o644); err != nil {
		t.Fatal(err)
	}
	final := append(append([]byte{}, w.fresh...), orig[len(w.fresh):]...)
	eventually(t, 60*time.Second, "dump stored and node copy removed", func() bool {
		return len(e.dumps()) == 1 && emptyDir(t, e.dumpDir) && len(e.staged()) == 0
	})
	if !w.done.Load() {
		t.Fatal("the store never saw the dump's upload")
	}
	d := e.dumps()[0]
	sum := sha256.Sum256(d.raw)
	stored := hex.EncodeToString(sum[:])
	if d.manifest.Object.Compression != "none" {
		t.Fatalf("compression %q, want a raw upload", d.manifest.Object.Compression)
	}
	if d.manifest.File.SHA256 != stored {
		t.Errorf("manifest sha256 %s, stored object's %s: the manifest does not describe the object", d.manifest.File.SHA256, stored)
	}
	if d.meta["sha256"] != stored {
		t.Errorf("object metadata sha256 %s, object's %s", d.meta["sha256"], stored)
	}
	if stored != sha(final) {
		t.Errorf("stored object is not the file's final content")
	}
	if got := metric(t, e.reg, "crashdump_uploads_redone_changed_total"); got < 1 {
		t.Errorf("crashdump_uploads_redone_changed_total = %v, want ≥ 1", got)
	}
}

// TestDumpGrowsAfterUpload: a writer the agent never sees (hardened mode:
// no process is visible) pauses longer than the settle time, the agent
// uploads what is there, and then the writer goes on. The node copy must
// still be there to take the rest, the final object must be the whole file
// with its manifest marked incomplete (the bytes may still not be all), and
// only then may the node copy go. Before the fix the node copy went right
// after the first upload: 10 MiB of 70 were stored, marked complete.
func TestDumpGrowsAfterUpload(t *testing.T) {
	e := newEnv(t, true)
	cfg := e.config()
	cfg.SettleTime = 2 * time.Second
	e.start(cfg)
	first := randomData(t, 1<<20)
	// Written elsewhere and moved in: the agent must see no writer (had it
	// caught this test writing, a writer seen closing the file is proof
	// enough, and rightly nothing lingers).
	src := filepath.Join(t.TempDir(), "core.grow")
	if err := os.WriteFile(src, first, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(src, filepath.Join(e.dumpDir, "core.grow")); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "first upload", func() bool {
		return metric(t, e.reg, "crashdump_uploads_total", "result", "success") >= 1
	})
	paths, _ := filepath.Glob(filepath.Join(e.stateDir, "staging", "*", "dump"))
	if len(paths) != 1 {
		t.Fatalf("staged copies after the first upload: %v, want the one still watched", paths)
	}
	rest := randomData(t, 3<<20)
	f, err := os.OpenFile(paths[0], os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(rest); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	whole := append(append([]byte{}, first...), rest...)
	eventually(t, 60*time.Second, "whole file stored and node copy removed", func() bool {
		ds := e.dumps()
		return len(ds) == 1 && int64(len(ds[0].raw)) == ds[0].manifest.Object.StoredSize &&
			ds[0].manifest.File.Size == int64(len(whole)) && len(e.staged()) == 0
	})
	d := e.dumps()[0]
	if sha(d.raw) != sha(whole) || d.manifest.File.SHA256 != sha(whole) {
		t.Errorf("stored object is not the whole file (or its manifest's hash is not the object's)")
	}
	if !d.manifest.Incomplete || !strings.Contains(d.manifest.IncompleteReason, "grew after its upload") {
		t.Errorf("manifest incomplete=%v reason %q, want marked as grown after its upload", d.manifest.Incomplete, d.manifest.IncompleteReason)
	}
	if got := metric(t, e.reg, "crashdump_uploads_redone_changed_total"); got < 1 {
		t.Errorf("crashdump_uploads_redone_changed_total = %v, want ≥ 1", got)
	}
}

// mapWriter is a store whose first upload of a dump has the file rewritten
// through a shared mapping whose pages were dirtied before the agent
// claimed it: writes to such pages do not fault, so neither mtime nor
// ctime moves. Only comparing what the two reads of the file saw (the
// hash's and the upload's) shows the change.
type mapWriter struct {
	uploader.Store
	t          *testing.T
	mem        []byte
	fresh      []byte
	stateDir   string
	ctimeMoved atomic.Bool
	done       atomic.Bool
}

func (s *mapWriter) Put(ctx context.Context, key string, r io.Reader, size int64, opts uploader.PutOptions) (uploader.Object, error) {
	if !strings.HasSuffix(key, ".json") && s.done.CompareAndSwap(false, true) {
		paths, _ := filepath.Glob(filepath.Join(s.stateDir, "staging", "*", "dump"))
		var before, after unix.Stat_t
		if len(paths) != 1 || unix.Stat(paths[0], &before) != nil {
			s.t.Errorf("staged dumps %v, want one", paths)
		}
		copy(s.mem, s.fresh)
		if len(paths) == 1 && unix.Stat(paths[0], &after) == nil && after.Ctim != before.Ctim {
			s.ctimeMoved.Store(true)
		}
	}
	return s.Store.Put(ctx, key, r, size, opts)
}

// TestDumpRewrittenThroughMapping: a raw dump is rewritten between the
// agent's hash and its upload through a shared mapping, with no sign in
// size, mtime or ctime. What is stored must still equal its manifest's
// SHA-256 (before the fix the object held the new bytes and the manifest
// the old bytes' hash), and the node copy goes only after that.
func TestDumpRewrittenThroughMapping(t *testing.T) {
	e := newEnv(t, true)
	const size = 8 << 20
	orig := randomData(t, size)
	// Written and mapped outside the dump directory, every page dirtied
	// through the mapping, then moved in.
	src := filepath.Join(t.TempDir(), "core.mapped")
	if err := os.WriteFile(src, orig, 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(src, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	mem, err := unix.Mmap(int(f.Fd()), 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	_ = f.Close()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = unix.Munmap(mem) })
	for i := 0; i < size; i += 4096 {
		mem[i] = orig[i]
	}
	w := &mapWriter{t: t, mem: mem[:4<<20], fresh: randomData(t, 4<<20), stateDir: e.stateDir}
	a := e.newAgentWithStore(e.config(), func(s uploader.Store) uploader.Store { w.Store = s; return w })
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	eventually(t, 10*time.Second, "agent ready", a.Ready)
	if err := os.Rename(src, filepath.Join(e.dumpDir, "core.mapped")); err != nil {
		t.Fatal(err)
	}
	eventually(t, 60*time.Second, "dump stored and node copy removed", func() bool {
		return len(e.dumps()) == 1 && emptyDir(t, e.dumpDir) && len(e.staged()) == 0
	})
	if !w.done.Load() {
		t.Fatal("the store never saw the dump's upload")
	}
	if w.ctimeMoved.Load() {
		t.Skip("the write through the mapping moved the ctime on this kernel/filesystem: the case is the ctime test's")
	}
	d := e.dumps()[0]
	final := append(append([]byte{}, w.fresh...), orig[len(w.fresh):]...)
	if got := sha(d.raw); d.manifest.File.SHA256 != got || d.meta["sha256"] != got {
		t.Errorf("manifest sha256 %s, metadata %s, stored object's %s: the manifest does not describe the object", d.manifest.File.SHA256, d.meta["sha256"], got)
	}
	if sha(d.raw) != sha(final) {
		t.Errorf("stored object is not the file's final content")
	}
	if got := metric(t, e.reg, "crashdump_uploads_redone_changed_total"); got < 1 {
		t.Errorf("crashdump_uploads_redone_changed_total = %v, want ≥ 1", got)
	}
}
