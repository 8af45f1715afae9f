//go:build linux

package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// procTree is a fixture host /proc for --proc-root: process directories
// whose fd entries are real symlinks reaching the real dump files, with
// fdinfo, status, stat, exe and cgroup in the kernel's formats.
type procTree struct {
	t    *testing.T
	root string
}

func newProcTree(t *testing.T) *procTree {
	t.Helper()
	root := filepath.Join(t.TempDir(), "proc")
	if err := os.MkdirAll(root, 0o755); err != nil {
		t.Fatal(err)
	}
	p := &procTree{t: t, root: root}
	// Some ordinary processes, for the scan to walk past.
	p.bystander(1, "systemd", "0::/init.scope\n")
	p.bystander(812, "containerd", "0::/system.slice/containerd.service\n")
	return p
}

func (p *procTree) dir(pid int) string { return filepath.Join(p.root, strconv.Itoa(pid)) }

func (p *procTree) write(pid int, name, content string) {
	p.t.Helper()
	path := filepath.Join(p.dir(pid), name)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		p.t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		p.t.Fatal(err)
	}
}

func (p *procTree) symlink(pid int, name, target string) {
	p.t.Helper()
	path := filepath.Join(p.dir(pid), name)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		p.t.Fatal(err)
	}
	if err := os.Symlink(target, path); err != nil {
		p.t.Fatal(err)
	}
}

// status is /proc/<pid>/status as Linux 6.x prints it (the fields procfs
// reads, in their places).
func status(pid, nspid int, comm string) string {
	ns := strconv.Itoa(pid)
	if nspid != 0 && nspid != pid {
		ns += "\t" + strconv.Itoa(nspid)
	}
	return fmt.Sprintf("Name:\t%s\nUmask:\t0022\nState:\tS (sleeping)\nTgid:\t%d\nNgid:\t0\nPid:\t%d\nPPid:\t1\nTracerPid:\t0\n"+
		"Uid:\t1000\t1000\t1000\t1000\nGid:\t1000\t1000\t1000\t1000\nFDSize:\t64\nNStgid:\t%s\nNSpid:\t%s\nNSpgid:\t%s\nNSsid:\t%s\n",
		comm, pid, pid, ns, ns, ns, ns)
}

func statLine(pid int, comm string) string {
	return strconv.Itoa(pid) + " (" + comm + ") S 1 " + strconv.Itoa(pid) + " " + strconv.Itoa(pid) +
		" 0 -1 4194560 1393 0 0 0 3 1 0 0 20 0 22 0 123456 274989056 10240 18446744073709551615 1 1 0 0 0 0 0 4096 17663 0 0 0 17 1 0 0 0 0 0 0 0 0 0 0 0 0 0\n"
}

func (p *procTree) bystander(pid int, comm, cgroup string) {
	p.write(pid, "status", status(pid, 0, comm))
	p.write(pid, "stat", statLine(pid, comm))
	p.write(pid, "cgroup", cgroup)
	p.symlink(pid, "fd/0", "/dev/null")
	p.symlink(pid, "fd/1", "socket:[48213]")
	p.symlink(pid, "fd/2", "pipe:[48214]")
}

// fixtureWriter is a process of the fixture tree holding a dump open for
// writing.
type fixtureWriter struct {
	p       *procTree
	pid     int
	file    *os.File      // the test's own descriptor on the dump
	scanned chan struct{} // closed once the agent has read the cgroup
	held    map[int]*os.File
}

// hold makes the writer hold path open for writing as fd too, as createdump
// holds its crash report while it writes it. closeAfterScan closes it.
func (w *fixtureWriter) hold(path string, fd int) {
	p := w.p
	p.t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		p.t.Fatal(err)
	}
	p.t.Cleanup(func() { _ = f.Close() })
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		p.t.Fatal(err)
	}
	p.symlink(w.pid, "fd/"+strconv.Itoa(fd), fmt.Sprintf("/proc/%d/fd/%d", os.Getpid(), f.Fd()))
	p.write(w.pid, "fdinfo/"+strconv.Itoa(fd), fmt.Sprintf("pos:\t0\nflags:\t0100001\nmnt_id:\t1234\nino:\t%d\n", st.Ino))
	if w.held == nil {
		w.held = map[int]*os.File{}
	}
	w.held[fd] = f
}

// writer makes pid a process in a container (cgroup, the cgroup file
// contents) that holds dumpPath open for writing as fd 42.
//
// The fd is a symlink to the test process's own descriptor on the file
// (/proc/<test pid>/fd/<n>), a kernel link that follows the file when the
// agent renames it into staging, as a real writer's fd does. Its cgroup is
// a FIFO: the agent reads it right after it found the writer, which tells
// the test that the writer evidence is taken; the FIFO is then replaced by
// a regular file with the same contents.
func (p *procTree) writer(pid int, comm, exe, cgroup, dumpPath string) *fixtureWriter {
	p.t.Helper()
	f, err := os.OpenFile(dumpPath, os.O_RDWR, 0)
	if err != nil {
		p.t.Fatal(err)
	}
	p.t.Cleanup(func() { _ = f.Close() })
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		p.t.Fatal(err)
	}
	p.write(pid, "status", status(pid, 1, comm))
	p.write(pid, "stat", statLine(pid, comm))
	p.symlink(pid, "exe", exe)
	p.symlink(pid, "fd/0", "/dev/null")
	p.symlink(pid, "fd/1", "pipe:[51000]")
	p.symlink(pid, "fd/42", fmt.Sprintf("/proc/%d/fd/%d", os.Getpid(), f.Fd()))
	// O_RDWR|O_LARGEFILE|O_CLOEXEC, as createdump opens its dump.
	p.write(pid, "fdinfo/42", fmt.Sprintf("pos:\t4096\nflags:\t02100002\nmnt_id:\t1234\nino:\t%d\n", st.Ino))

	fifo := filepath.Join(p.dir(pid), "cgroup")
	if err := unix.Mkfifo(fifo, 0o644); err != nil {
		p.t.Fatal(err)
	}
	w := &fixtureWriter{p: p, pid: pid, file: f, scanned: make(chan struct{})}
	go func() {
		defer close(w.scanned)
		// Blocks until the agent opens the cgroup file to read it.
		out, err := os.OpenFile(fifo, os.O_WRONLY, 0)
		if err != nil {
			return
		}
		_, _ = out.WriteString(cgroup)
		_ = out.Close()
		tmp := fifo + ".tmp"
		if os.WriteFile(tmp, []byte(cgroup), 0o644) == nil {
			_ = os.Rename(tmp, fifo)
		}
	}()
	p.t.Cleanup(func() {
		// Unblock the goroutine if the agent never came.
		if r, err := os.OpenFile(fifo, os.O_RDONLY|syscall.O_NONBLOCK, 0); err == nil {
			_ = r.Close()
		}
	})
	return w
}

// waitScanned waits until the agent took the writer evidence, then closes
// the file as the writer finishing would: the dump can settle.
func (w *fixtureWriter) closeAfterScan(timeout time.Duration) error {
	select {
	case <-w.scanned:
	case <-time.After(timeout):
		return fmt.Errorf("the agent did not read the cgroup of writer %d within %s", w.pid, timeout)
	}
	for fd, f := range w.held {
		_ = os.Remove(filepath.Join(w.p.dir(w.pid), "fd", strconv.Itoa(fd)))
		_ = os.Remove(filepath.Join(w.p.dir(w.pid), "fdinfo", strconv.Itoa(fd)))
		_ = f.Close()
	}
	_ = os.Remove(filepath.Join(w.p.dir(w.pid), "fd", "42"))
	_ = os.Remove(filepath.Join(w.p.dir(w.pid), "fdinfo", "42"))
	return w.file.Close()
}
