//go:build linux

package procfs

import (
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

// procFixture builds a procfs-shaped tree in a temporary directory. Its fd
// entries are real symlinks to real files; the kernel's magic links behave
// the same way for readlink and stat.
type procFixture struct {
	tb   testing.TB
	root string
}

func newProcFixture(tb testing.TB) *procFixture {
	tb.Helper()
	root := filepath.Join(tb.TempDir(), "proc")
	if err := os.Mkdir(root, 0o755); err != nil {
		tb.Fatal(err)
	}
	return &procFixture{tb: tb, root: root}
}

func (f *procFixture) pidDir(pid int) string {
	return filepath.Join(f.root, strconv.Itoa(pid))
}

// process creates <root>/<pid>/fd and fdinfo.
func (f *procFixture) process(pid int) {
	f.tb.Helper()
	for _, d := range []string{"fd", "fdinfo"} {
		if err := os.MkdirAll(filepath.Join(f.pidDir(pid), d), 0o755); err != nil {
			f.tb.Fatal(err)
		}
	}
}

// fd adds fd -> target and, unless flags is "", its fdinfo in the kernel's
// format (as read from /proc/self/fdinfo on Linux 6.x), with the target's
// inode number when the target exists.
func (f *procFixture) fd(pid, fd int, target, flags string) {
	f.tb.Helper()
	name := strconv.Itoa(fd)
	if err := os.Symlink(target, filepath.Join(f.pidDir(pid), "fd", name)); err != nil {
		f.tb.Fatal(err)
	}
	if flags == "" {
		return
	}
	ino := uint64(4026531840) // what sockets, pipes and other kernel objects show
	if fi, err := os.Stat(target); err == nil {
		if id, ok := FileIDOf(fi); ok {
			ino = id.Ino
		}
	}
	f.file(pid, "fdinfo/"+name, "pos:\t0\nflags:\t"+flags+"\nmnt_id:\t29\nino:\t"+strconv.FormatUint(ino, 10)+"\n")
}

// file writes <root>/<pid>/<name>.
func (f *procFixture) file(pid int, name, content string) {
	f.tb.Helper()
	path := filepath.Join(f.pidDir(pid), name)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		f.tb.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		f.tb.Fatal(err)
	}
}

// statLine is a /proc/<pid>/stat line in the kernel's format with the given
// start time (field 22), and a comm with the characters that break naive
// parsers.
func statLine(pid int, startTime uint64) string {
	return strconv.Itoa(pid) + " (.NET Tiered) (x) S 1 " + strconv.Itoa(pid) + " " + strconv.Itoa(pid) +
		" 0 -1 4194560 1393 0 0 0 3 1 0 0 20 0 22 0 " + strconv.FormatUint(startTime, 10) +
		" 274989056 10240 18446744073709551615 1 1 0 0 0 0 0 4096 17663 0 0 0 17 1 0 0 0 0 0 0 0 0 0 0 0 0 0\n"
}

// writeFile creates a regular file with some content and returns its path.
func writeFile(tb testing.TB, dir, name string) string {
	tb.Helper()
	path := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(path, []byte("MDMP"), 0o644); err != nil {
		tb.Fatal(err)
	}
	return path
}

func fileID(tb testing.TB, path string) FileID {
	tb.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		tb.Fatal(err)
	}
	id, ok := FileIDOf(fi)
	if !ok {
		tb.Fatalf("FileIDOf(%s) not ok", path)
	}
	return id
}
