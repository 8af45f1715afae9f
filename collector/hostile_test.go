package collector_test

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/crashdump-io/crashdump/uploader"
)

// TestHostileInput: the dump directory belongs to pods; the agent runs
// privileged. Symlinks (to files and directories, inside and outside the
// root), FIFOs, sockets, device nodes, hard links to files outside the root,
// empty files and strange names must each be handled without a crash, a
// hang, a read outside the root or a lost dump, and every rejection logged
// with its reason and counted.
func TestHostileInput(t *testing.T) {
	e := newEnv(t, true)
	outside := t.TempDir() // same filesystem as the dump directory
	secret := []byte("root:$6$secret-hash:19000:0:99999:7:::\n")
	secretFile := filepath.Join(outside, "shadow")
	mustWrite(t, secretFile, secret)
	outsideDir := filepath.Join(outside, "dir")
	mustWrite(t, filepath.Join(outsideDir, "secret.dmp"), secret)
	mustWrite(t, filepath.Join(outsideDir, "core"), secret)
	var before unix.Stat_t
	if err := unix.Stat(secretFile, &before); err != nil {
		t.Fatal(err)
	}

	d := e.dumpDir
	// Legitimate dumps with names a pod may choose.
	good := map[string][]byte{
		"with space.dmp":           randomData(t, 1000),
		"new\nline.dmp":            randomData(t, 1000),
		"ünïcödé-名前.dmp":           randomData(t, 1000),
		"..dots..dmp":              randomData(t, 1000),
		"a..b.core":                randomData(t, 1000),
		"ns/pod/core":              randomData(t, 1000),
		"ns/-rf --no-preserve.dmp": randomData(t, 1000),
		"ns/$(touch x).hprof":      randomData(t, 1000),
	}
	for name, b := range good {
		mustWrite(t, filepath.Join(d, name), b)
	}
	mustWrite(t, filepath.Join(d, "inside-target.bin"), []byte("not a dump name"))
	must(t, os.Symlink(secretFile, filepath.Join(d, "link-out.dmp")))
	must(t, os.Symlink("inside-target.bin", filepath.Join(d, "link-in.dmp")))
	must(t, os.Symlink(outsideDir, filepath.Join(d, "dirlink.dmp")))
	must(t, os.Symlink(outsideDir, filepath.Join(d, "nsdir"))) // a directory link: never walked
	must(t, os.MkdirAll(filepath.Join(d, "ns2"), 0o755))
	must(t, os.Symlink("../"+filepath.Base(d)+"/..", filepath.Join(d, "ns2", "up"))) // a loop out of the root
	must(t, unix.Mkfifo(filepath.Join(d, "fifo.dmp"), 0o644))
	ln, err := net.Listen("unix", filepath.Join(d, "sock.dmp"))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	devices := 0
	if err := unix.Mknod(filepath.Join(d, "dev.dmp"), syscall.S_IFCHR|0o644, int(unix.Mkdev(1, 3))); err == nil {
		devices = 1
	} else {
		t.Logf("no device node test: %v", err)
	}
	must(t, os.Link(secretFile, filepath.Join(d, "hard.dmp")))
	mustWrite(t, filepath.Join(d, "empty.dmp"), nil)

	e.start(e.config())

	eventually(t, 30*time.Second, "every legitimate dump stored", func() bool { return len(e.dumps()) == len(good) })
	wantDropped := map[string]float64{
		"symlink":     3, // link-out, link-in, dirlink (ns2/up does not match a dump name)
		"not_regular": float64(2 + devices),
		"hardlink":    1,
		"empty":       1,
	}
	eventually(t, 10*time.Second, "every rejection counted", func() bool {
		for reason, want := range wantDropped {
			if metric(t, e.reg, "crashdump_dumps_dropped_total", "reason", reason) != want {
				return false
			}
		}
		return true
	})
	// A rescan must not count or log the same entries again.
	time.Sleep(2*e.config().RescanInterval + 200*time.Millisecond)
	for reason, want := range wantDropped {
		if got := metric(t, e.reg, "crashdump_dumps_dropped_total", "reason", reason); got != want {
			t.Errorf("dropped{reason=%q} = %v, want %v", reason, got, want)
		}
	}

	byPath := map[string][]byte{}
	for _, s := range e.dumps() {
		if err := uploader.CheckKey(s.key); err != nil {
			t.Errorf("unsafe key: %v", err)
		}
		if bytes.Contains(s.original(t), []byte("secret-hash")) {
			t.Fatalf("%s holds data from outside the dump directory", s.key)
		}
		byPath[s.manifest.File.Path] = s.original(t)
	}
	for name, want := range good {
		if !bytes.Equal(byPath[name], want) {
			t.Errorf("dump %q not stored intact", name)
		}
	}
	if len(e.keys()) != 2*len(good) {
		t.Errorf("store holds %d objects, want %d: %v", len(e.keys()), 2*len(good), e.keys())
	}

	// Nothing outside the root was moved, changed or deleted.
	var after unix.Stat_t
	if err := unix.Stat(secretFile, &after); err != nil {
		t.Fatalf("file outside the root: %v", err)
	}
	if after.Ino != before.Ino || after.Size != before.Size {
		t.Error("file outside the root changed")
	}
	for _, p := range []string{filepath.Join(outsideDir, "secret.dmp"), filepath.Join(outsideDir, "core")} {
		if b, err := os.ReadFile(p); err != nil || !bytes.Equal(b, secret) {
			t.Errorf("%s outside the root was touched: %v", p, err)
		}
	}
	// Rejected entries stay where they were: the agent deletes nothing in
	// the dump directory.
	left := listTree(t, d)
	for _, want := range []string{"dev.dmp", "dirlink.dmp", "fifo.dmp", "hard.dmp", "link-in.dmp", "link-out.dmp", "sock.dmp"} {
		if want == "dev.dmp" && devices == 0 {
			continue
		}
		if !contains(left, want) {
			t.Errorf("rejected entry %s was removed or moved; left: %v", want, left)
		}
	}
	for _, reason := range []string{"symlink", "not_regular", "hardlink"} {
		if !strings.Contains(e.logs.String(), `"reason":"`+reason+`"`) {
			t.Errorf("no log line with reason %q", reason)
		}
	}
}

// TestManyFilesAtOnce: 10,000 dumps appearing at once are all collected,
// with memory and goroutines bounded (no goroutine per dump).
func TestManyFilesAtOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("slow")
	}
	e := newEnv(t, false)
	const n = 10000
	for i := range n {
		mustWrite(t, filepath.Join(e.dumpDir, fmt.Sprintf("ns-%02d", i%20), fmt.Sprintf("core.%d", i)), []byte(fmt.Sprintf("dump %d", i)))
	}
	e.start(e.config())
	eventually(t, 5*time.Minute, "all dumps stored", func() bool {
		return metric(t, e.reg, "crashdump_uploads_total", "result", "success") == n
	})
	if got := len(e.keys()); got != 2*n {
		t.Fatalf("store holds %d objects, want %d", got, 2*n)
	}
	// Written by no process the agent saw: each node copy is watched one
	// settle time after its upload before it goes (errLinger).
	eventually(t, time.Minute, "node copies removed", func() bool {
		return emptyDir(t, e.dumpDir) && len(e.staged()) == 0
	})
	if g := runtime.NumGoroutine(); g > 200 {
		t.Errorf("%d goroutines after 10,000 dumps", g)
	}
}

func mustWrite(t *testing.T, p string, b []byte) {
	t.Helper()
	must(t, os.MkdirAll(filepath.Dir(p), 0o755))
	must(t, os.WriteFile(p, b, 0o644))
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func listTree(t *testing.T, dir string) []string {
	var out []string
	_ = filepath.WalkDir(dir, func(p string, de os.DirEntry, err error) error {
		if err == nil && p != dir {
			rel, _ := filepath.Rel(dir, p)
			out = append(out, rel)
		}
		return nil
	})
	sort.Strings(out)
	return out
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
