// Package dumptest makes real dump files for tests and benchmarks: ELF core
// files written by gdb's gcore from live processes, and .NET crash reports
// byte-for-byte in the shape createdump writes them. Tests use what a node
// really sees, never invented bytes.
package dumptest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Gcore is the gcore binary (gdb), installed by `make tools`.
func Gcore(t testing.TB) string {
	t.Helper()
	p, err := exec.LookPath("gcore")
	if err != nil {
		t.Fatalf("gcore not found (install gdb: `make tools`): %v", err)
	}
	return p
}

// Process is a live helper process to take cores of.
type Process struct {
	Cmd *exec.Cmd
	PID int
}

// StartProcess starts argv in the background and kills it at cleanup.
func StartProcess(t testing.TB, argv ...string) *Process {
	t.Helper()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %v: %v", argv, err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	return &Process{Cmd: cmd, PID: cmd.Process.Pid}
}

// CoreOf writes a core of the live process pid to dst with gcore.
func CoreOf(t testing.TB, pid int, dst string) {
	t.Helper()
	prefix := filepath.Join(t.TempDir(), "core")
	out, err := exec.Command(Gcore(t), "-o", prefix, fmt.Sprint(pid)).CombinedOutput()
	if err != nil {
		t.Fatalf("gcore %d: %v\n%s", pid, err, out)
	}
	src := fmt.Sprintf("%s.%d", prefix, pid)
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(src, dst); err != nil {
		// t.TempDir and dst may be on different filesystems.
		b, rerr := os.ReadFile(src)
		if rerr != nil {
			t.Fatalf("move core: %v / %v", err, rerr)
		}
		if werr := os.WriteFile(dst, b, 0o644); werr != nil {
			t.Fatal(werr)
		}
	}
}

// SleepCore writes a small real core (about 1 MB) of a `sleep` process with
// the given argument to dst and returns the process's PID.
func SleepCore(t testing.TB, dst string) int {
	t.Helper()
	p := StartProcess(t, "sleep", "3600")
	waitStarted(t, p.PID)
	CoreOf(t, p.PID, dst)
	return p.PID
}

// waitStarted waits until the process has exec'd (its cmdline is readable).
func waitStarted(t testing.TB, pid int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if err == nil && len(b) > 0 && !strings.Contains(string(b), "dumptest") {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("process %d did not start", pid)
}

// CrashCore runs argv under gdb until it is stopped by a signal and writes
// its core to dst with gdb's gcore, as a crash would leave it. Unlike
// CoreOf (gcore attaching to a running process, which records only
// argv[0]), gdb started the program, so the core's pr_psargs holds the
// whole command line (its first 79 bytes), as a kernel-written core does.
// argv must make the program stop itself, e.g. sh -c 'kill -SEGV $$'.
func CrashCore(t testing.TB, dst string, argv ...string) {
	t.Helper()
	gdb, err := exec.LookPath("gdb")
	if err != nil {
		t.Fatalf("gdb not found (`make tools`): %v", err)
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		t.Fatal(err)
	}
	args := append([]string{"-nx", "-batch", "-ex", "run", "-ex", "gcore " + dst, "-ex", "kill", "--args"}, argv...)
	cmd := exec.Command(gdb, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	out, err := cmd.CombinedOutput()
	if _, serr := os.Stat(dst); serr != nil {
		t.Fatalf("gdb wrote no core of %v: %v %v\n%s", argv, err, serr, out)
	}
}
