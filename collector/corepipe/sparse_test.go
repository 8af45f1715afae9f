//go:build linux

package corepipe

import (
	"bytes"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"
)

func fallocate(f *os.File, n int64) error { return syscall.Fallocate(int(f.Fd()), 0, 0, n) }

// sparseCore is a stream of size bytes, all zero but for one 4 KiB page
// of 0xAA every 64 MiB (what a core of a process with a large, mostly
// untouched heap looks like), generated, never materialised.
type sparseCore struct{ off, size int64 }

const sparseEvery = 64 << 20

func (s *sparseCore) Read(p []byte) (int, error) {
	if s.off >= s.size {
		return 0, io.EOF
	}
	n := int(min(int64(len(p)), s.size-s.off))
	p = p[:n]
	clear(p)
	for i := 0; i < n; {
		pos := s.off + int64(i)
		inBlock := pos % sparseEvery
		if inBlock < pageSize {
			end := min(n, i+int(pageSize-inBlock))
			for j := i; j < end; j++ {
				p[j] = 0xAA
			}
			i = end
			continue
		}
		i += int(sparseEvery - inBlock)
	}
	s.off += int64(n)
	return n, nil
}

func TestSparseCoreInProcess(t *testing.T) {
	if testing.Short() {
		t.Skip("4 GiB stream: skipped with -short")
	}
	e := newEnv(t)
	e.process(fixturePID, cgCgroupfsV2)
	const size = 4 << 30
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	stop := make(chan struct{})
	peak := make(chan uint64)
	go func() {
		var max uint64
		for {
			var m runtime.MemStats
			runtime.ReadMemStats(&m)
			max = maxU(max, m.HeapInuse)
			select {
			case <-stop:
				peak <- max
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()
	a, _ := ParseArgs(kernelArgs("crasher"))
	r := Run(e.config(), a, &sparseCore{size: size})
	close(stop)
	p := <-peak
	ev := r.Evidence
	if ev.Outcome != OutcomeCore || ev.Truncated || ev.Counts.BytesReceived != size {
		t.Fatalf("outcome %q truncated %v counts %+v", ev.Outcome, ev.Truncated, ev.Counts)
	}
	pages := int64(size / sparseEvery * pageSize)
	if ev.Counts.BytesWritten != pages || ev.Counts.BytesSparse != size-pages {
		t.Errorf("written %d sparse %d, want %d and %d", ev.Counts.BytesWritten, ev.Counts.BytesSparse, pages, size-pages)
	}
	fi, err := os.Stat(filepath.Join(e.stateDir, DirName, "inbox", r.EntryID, CoreName))
	if err != nil {
		t.Fatal(err)
	}
	disk := fi.Sys().(*syscall.Stat_t).Blocks * 512
	if fi.Size() != size || disk > 4<<20 {
		t.Errorf("core: size %d, %d bytes on disk (want %d, at most 4 MiB)", fi.Size(), disk, int64(size))
	}
	if p > before.HeapInuse+8<<20 {
		t.Errorf("heap in use peaked at %d MiB (before %d MiB)", p>>20, before.HeapInuse>>20)
	}
	t.Logf("4 GiB sparse core: %.2fs, %d KiB on disk, peak heap in use %d MiB", ev.Counts.DurationSeconds, disk>>10, p>>20)
}

func maxU(a, b uint64) uint64 {
	if a > b {
		return a
	}
	return b
}

// The real binary, as the kernel runs it: peak RSS (wait4's ru_maxrss)
// for a 4 GiB sparse core on a pipe.
func TestSparseCoreBinaryPeakRSS(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and streams 4 GiB: skipped with -short")
	}
	bin := filepath.Join(t.TempDir(), "crashdump")
	build := exec.Command("go", "build", "-o", bin, "github.com/crashdump-io/crashdump/cmd/crashdump")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	e := newEnv(t)
	e.process(fixturePID, cgCgroupfsV2)
	const size = 4 << 30
	cmd := exec.Command(bin, append([]string{"core-handler", "--log", "stderr", "--proc-root", e.procRoot, "--state-dir", e.stateDir, "--"}, kernelArgs("crasher")...)...)
	cmd.Env = []string{"PATH=/usr/bin:/bin"}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	w, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	if _, err := io.CopyBuffer(w, &sparseCore{size: size}, make([]byte, 1<<20)); err != nil {
		t.Fatal(err)
	}
	w.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("core-handler: %v\n%s", err, stderr.String())
	}
	wall := time.Since(start)
	maxrss := cmd.ProcessState.SysUsage().(*syscall.Rusage).Maxrss // KiB
	if maxrss > 32<<10 {
		t.Errorf("peak RSS %d KiB, want at most 32 MiB", maxrss)
	}
	if !strings.Contains(stderr.String(), ": core,") {
		t.Errorf("log: %s", stderr.String())
	}
	var blocks int64
	entries, _ := os.ReadDir(filepath.Join(e.stateDir, DirName, "inbox"))
	for _, d := range entries {
		if fi, err := os.Stat(filepath.Join(e.stateDir, DirName, "inbox", d.Name(), CoreName)); err == nil {
			blocks += fi.Sys().(*syscall.Stat_t).Blocks * 512
		}
	}
	if len(entries) != 1 || blocks > 4<<20 {
		t.Errorf("%d entries, %d bytes on disk", len(entries), blocks)
	}
	t.Logf("binary, 4 GiB sparse core on a pipe: %v wall, peak RSS %d KiB, %d KiB on disk", wall.Round(time.Millisecond), maxrss, blocks>>10)
}
