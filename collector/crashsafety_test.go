package collector_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/crashdump-io/crashdump/uploader"
)

var (
	buildOnce sync.Once
	builtBin  string
	buildErr  error
)

// agentBinary builds cmd/crashdump once per test run.
func agentBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "crashdump-bin-")
		if err != nil {
			buildErr = err
			return
		}
		builtBin = filepath.Join(dir, "crashdump")
		out, err := exec.Command("go", "build", "-o", builtBin, "github.com/crashdump-io/crashdump/cmd/crashdump").CombinedOutput()
		if err != nil {
			buildErr = errors.New(string(out))
		}
	})
	if buildErr != nil {
		t.Fatalf("build agent: %v", buildErr)
	}
	return builtBin
}

// mixedDump is half random, half zeros: compressible enough to be sent
// through zstd, large enough for many parts.
func mixedDump(t *testing.T, n int) []byte {
	b := make([]byte, n)
	copy(b, randomData(t, n/2))
	return b
}

// agentProcess runs the built agent against the env.
func (e *env) agentProcess(t *testing.T, extra ...string) *exec.Cmd {
	t.Helper()
	args := append([]string{"agent", "--dump-dir", e.dumpDir, "--state-dir", e.stateDir,
		"--store", e.storeURL, "--s3-endpoint", e.srv.Endpoint, "--pod-source", "none",
		"--listen-address", "127.0.0.1:0", "--settle-time", "200ms", "--part-size", "5MiB",
		"--node-name", "node-1", "--keep-free", "0", "--max-dump-bytes", "0"}, extra...)
	cmd := exec.Command(agentBinary(t), args...)
	cmd.Env = append(os.Environ(), e.srv.Env()...)
	cmd.Stdout, cmd.Stderr = e.logs, e.logs
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return cmd
}

// TestKilledAgentResumes: the agent is SIGKILLed at several points of a
// large upload; after restarts the dump is stored exactly once, intact, no
// multipart upload is left behind and the node copy is gone.
func TestKilledAgentResumes(t *testing.T) {
	e := newEnv(t, true)
	data := mixedDump(t, 96<<20)
	mustWrite(t, filepath.Join(e.dumpDir, "prod", "core.77"), data)

	// newUpload reports a multipart upload this agent process started (an
	// earlier, killed one's may still be listed until it is abandoned).
	seen := map[string]bool{}
	newUpload := func() bool {
		for _, u := range e.srv.MultipartUploads(t, bucket) {
			if !seen[u] {
				seen[u] = true
				return true
			}
		}
		return false
	}
	points := []struct {
		name string
		at   func() bool
	}{
		{"right after the claim", func() bool { return len(e.staged()) > 0 }},
		{"during the multipart upload", newUpload},
		{"during the resumed multipart upload", newUpload},
		{"a moment after start", func() bool { time.Sleep(400 * time.Millisecond); return true }},
	}
	for _, p := range points {
		cmd := e.agentProcess(t)
		exited := make(chan struct{})
		go func() { _ = cmd.Wait(); close(exited) }()
		deadline := time.Now().Add(30 * time.Second)
	wait:
		for !p.at() {
			select {
			case <-exited:
				t.Fatalf("%s: agent exited on its own", p.name)
			default:
			}
			if time.Now().After(deadline) {
				t.Logf("%s: point not reached (upload already done?)", p.name)
				break wait
			}
			time.Sleep(2 * time.Millisecond)
		}
		_ = cmd.Process.Signal(syscall.SIGKILL)
		<-exited
		t.Logf("killed %s: %d staged, %d objects, %d unfinished uploads", p.name, len(e.staged()), len(e.keys()), len(e.srv.MultipartUploads(t, bucket)))
	}

	cmd := e.agentProcess(t)
	eventually(t, 60*time.Second, "dump stored after restart", func() bool { return len(e.dumps()) == 1 && len(e.staged()) == 0 })
	// A polite stop exits 0.
	_ = cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		t.Errorf("agent exit after SIGTERM: %v", err)
	}
	if keys := e.keys(); len(keys) != 2 {
		t.Fatalf("store holds %v, want exactly one dump and its manifest", keys)
	}
	d := e.dumps()[0]
	if !bytes.Equal(d.original(t), data) {
		t.Fatal("stored dump differs from the original")
	}
	if d.manifest.File.Path != "prod/core.77" {
		t.Errorf("manifest path %q", d.manifest.File.Path)
	}
	if ups := e.srv.MultipartUploads(t, bucket); len(ups) != 0 {
		t.Errorf("unfinished multipart uploads left: %v", ups)
	}
	if !emptyDir(t, e.dumpDir) {
		t.Error("node copy left in the dump directory")
	}
}

// TestStoreDownDuringUpload: MinIO disappears in the middle of an upload and
// comes back; the dump arrives, once, with nothing left behind.
func TestStoreDownDuringUpload(t *testing.T) {
	e := newEnv(t, true)
	e.start(e.config())
	data := mixedDump(t, 64<<20)
	mustWrite(t, filepath.Join(e.dumpDir, "core.5"), data)
	eventually(t, 30*time.Second, "upload in progress", func() bool { return len(e.srv.MultipartUploads(t, bucket)) > 0 })
	e.srv.Stop()
	eventually(t, 30*time.Second, "a failed attempt", func() bool {
		return metric(t, e.reg, "crashdump_uploads_total", "result", "failure") >= 1
	})
	if err := e.srv.Restart(); err != nil {
		t.Fatal(err)
	}
	eventually(t, 60*time.Second, "dump stored after the store came back", func() bool { return len(e.dumps()) == 1 && len(e.staged()) == 0 })
	if !bytes.Equal(e.dumps()[0].original(t), data) {
		t.Fatal("stored dump differs")
	}
	if ups := e.srv.MultipartUploads(t, bucket); len(ups) != 0 {
		t.Errorf("unfinished multipart uploads left: %v", ups)
	}
	if n := len(e.keys()); n != 2 {
		t.Errorf("store holds %d objects, want 2", n)
	}
}

// TestTruncatedWhileUploading: a writer the agent cannot see (no hostPID:
// an empty proc root here) truncates the dump in the middle of its upload.
// The agent notices, waits for it to settle again and stores what is there
// now, under the same key, once.
func TestTruncatedWhileUploading(t *testing.T) {
	e := newEnv(t, true)
	cfg := e.config()
	cfg.ProcRoot = t.TempDir() // sees no processes
	e.start(cfg)
	data := randomData(t, 64<<20)
	p := filepath.Join(e.dumpDir, "core.9")
	w, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if _, err := w.Write(data); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "upload in progress", func() bool { return len(e.srv.MultipartUploads(t, bucket)) > 0 })
	if err := w.Truncate(10 << 20); err != nil {
		t.Fatal(err)
	}
	eventually(t, 60*time.Second, "dump stored", func() bool { return len(e.dumps()) == 1 && len(e.staged()) == 0 })
	d := e.dumps()[0]
	if got := d.original(t); !bytes.Equal(got, data[:10<<20]) {
		t.Fatalf("stored %d bytes, want the truncated 10 MiB", len(got))
	}
	if d.manifest.File.Size != 10<<20 || d.manifest.File.SHA256 != sha(data[:10<<20]) {
		t.Errorf("manifest size %d sha %s do not describe the stored bytes", d.manifest.File.Size, d.manifest.File.SHA256)
	}
	if n := len(e.keys()); n != 2 {
		t.Errorf("store holds %d objects, want 2", n)
	}
}

// failManifests is a test store that refuses manifests: the dump object is
// stored, the manifest is not — as if the agent died right between them.
type failManifests struct{ uploader.Store }

func (f failManifests) Put(ctx context.Context, key string, body io.Reader, size int64, o uploader.PutOptions) (uploader.Object, error) {
	if strings.HasSuffix(key, ".json") {
		return uploader.Object{}, errors.New("injected: manifest refused")
	}
	return f.Store.Put(ctx, key, body, size, o)
}

// TestRestartAfterObjectStored: the dump object is complete and verified
// but the agent stops before its manifest and clean-up. The next agent must
// not upload the dump again: it writes the manifest and removes the copy.
func TestRestartAfterObjectStored(t *testing.T) {
	e := newEnv(t, true)
	data := mixedDump(t, 12<<20)
	mustWrite(t, filepath.Join(e.dumpDir, "core.3"), data)

	cfg := e.config()
	a := e.newAgentWithStore(cfg, func(s uploader.Store) uploader.Store { return failManifests{s} })
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	eventually(t, 30*time.Second, "dump object stored", func() bool { return len(e.keys()) == 1 })
	eventually(t, 30*time.Second, "manifest refused", func() bool {
		return metric(t, e.reg, "crashdump_uploads_total", "result", "failure") >= 1
	})
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("agent: %v", err)
	}
	if len(e.staged()) != 1 {
		t.Fatal("node copy removed without a manifest")
	}
	first := e.srv.Keys(t, bucket, "")[0]
	putsBefore := e.objectVersionTime(t, first)

	e.start(cfg)
	eventually(t, 30*time.Second, "manifest stored", func() bool { return len(e.dumps()) == 1 && len(e.staged()) == 0 })
	if got := metric(t, e.reg, "crashdump_store_operations_total", "operation", "put", "result", "success"); got != 1 {
		t.Errorf("%v puts after restart, want 1 (the manifest only)", got)
	}
	if e.objectVersionTime(t, first) != putsBefore {
		t.Error("dump object was uploaded again")
	}
	if !bytes.Equal(e.dumps()[0].original(t), data) {
		t.Fatal("stored dump differs")
	}
}
