//go:build linux

package procfs

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"
	"testing"
)

func sortOpeners(o []Opener) []Opener {
	o = slices.Clone(o)
	slices.SortFunc(o, func(a, b Opener) int {
		if a.PID != b.PID {
			return a.PID - b.PID
		}
		return a.FD - b.FD
	})
	return o
}

// TestOpenersFixture scans a tree with the kinds of fds a real node has and
// the churn it sees mid-scan.
func TestOpenersFixture(t *testing.T) {
	data := t.TempDir()
	dump := writeFile(t, data, "dumps/coredump.1.dmp")
	other := writeFile(t, data, "dumps/coredump.7.dmp") // wanted, held by nobody
	lib := writeFile(t, data, "usr/lib/libcoreclr.so")
	hardlink := filepath.Join(data, "staging/claimed.dmp") // another name for the dump's inode
	if err := os.MkdirAll(filepath.Dir(hardlink), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(dump, hardlink); err != nil {
		t.Fatal(err)
	}

	f := newProcFixture(t)
	// 4242: createdump writing the dump, among the usual non-file fds.
	f.process(4242)
	f.fd(4242, 0, "/dev/null", "0100002")
	f.fd(4242, 1, "pipe:[19496]", "01")
	f.fd(4242, 2, "socket:[20001]", "02")
	f.fd(4242, 3, "anon_inode:[eventfd]", "02")
	f.fd(4242, 4, dump, "0100001") // O_WRONLY|O_LARGEFILE
	f.fd(4242, 5, lib, "02100000") // O_RDONLY|O_CLOEXEC
	f.fd(4242, 6, "/dev/pts/0", "0100002")
	f.fd(4242, 7, "net:[4026531840]", "0100000")
	f.file(4242, "stat", statLine(4242, 987654))
	// Its cgroup is read with the descriptor, not later: createdump may
	// have exited by the end of the scan.
	const cg4242 = "0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod7e1c9a52_8d3f_4b6e_9a0c_2f5d8e7b1a34.slice/cri-containerd-4b3f0c9d8e7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d1e0f9a8b7c6d5e4f3a2b1c.scope\n"
	f.file(4242, "cgroup", cg4242)
	// 100: a reader, plus an O_RDWR|O_CLOEXEC fd on the same dump.
	f.process(100)
	f.fd(100, 3, dump, "0100000")
	f.fd(100, 7, dump, "02100002")
	// 700: holds the same inode through another name.
	f.process(700)
	f.fd(700, 3, hardlink, "0100001")
	// 7: its only file fd points at a file that is gone (closed mid-scan).
	f.process(7)
	f.fd(7, 9, filepath.Join(data, "gone.log"), "0100001")
	// 600: the fd was closed between stat and fdinfo.
	f.process(600)
	f.fd(600, 4, dump, "")
	// 601: fdinfo without flags: unknown mode must count as writable.
	f.process(601)
	f.fd(601, 4, dump, "")
	f.file(601, "fdinfo/4", "pos:\t0\nmnt_id:\t29\n")
	// 602: fd 5 was closed after the stat and its number reused for the
	// library: fdinfo's ino is not the dump's.
	f.process(602)
	f.fd(602, 5, dump, "")
	f.file(602, "fdinfo/5", "pos:\t0\nflags:\t0100001\nmnt_id:\t29\nino:\t"+strconv.FormatUint(fileID(t, lib).Ino, 10)+"\n")
	// 555: exited, its fd directory is gone.
	if err := os.MkdirAll(f.pidDir(555), 0o755); err != nil {
		t.Fatal(err)
	}
	// Entries that are not processes, and a non-fd entry in an fd dir.
	if err := os.Symlink("4242", filepath.Join(f.root, "self")); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"net", "sys", "0100", "-1", "42abc"} {
		if err := os.MkdirAll(filepath.Join(f.root, d, "fd"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(dump, filepath.Join(f.root, d, "fd", "3")); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(dump, filepath.Join(f.pidDir(100), "fd", "cwd")); err != nil {
		t.Fatal(err)
	}

	dumpID, otherID, libID := fileID(t, dump), fileID(t, other), fileID(t, lib)
	want := map[FileID]struct{}{dumpID: {}, otherID: {}}

	got, stats, err := New(f.root).OpenersStats(want)
	if err != nil {
		t.Fatalf("OpenersStats: %v", err)
	}
	wantDump := []Opener{
		{PID: 100, FD: 3, Writable: false},
		{PID: 100, FD: 7, Writable: true},
		{PID: 601, FD: 4, Writable: true},
		{PID: 700, FD: 3, Writable: true},
		{PID: 4242, FD: 4, Writable: true, StartTime: 987654, Cgroup: mustCgroup(t, cg4242), CgroupRead: true},
	}
	if g := sortOpeners(got[dumpID]); !slices.Equal(g, wantDump) {
		t.Errorf("openers of the dump:\n got %+v\nwant %+v", g, wantDump)
	}
	if o, ok := got[otherID]; ok {
		t.Errorf("file held by nobody reported with openers %+v", o)
	}
	if o, ok := got[libID]; ok {
		t.Errorf("unwanted file reported with openers %+v", o)
	}
	if len(got) != 1 {
		t.Errorf("got %d files, want 1: %+v", len(got), got)
	}
	// 7 fd tables read (4242 100 700 7 600 601 602) with 15 fds; of 4242's
	// 8 fds only the dump and the library are stat'ed, every other fd is a
	// file; 555's fd dir, 7's target, 600's fdinfo and 602's fd number
	// vanished; 601's mode is unknown.
	wantStats := ScanStats{Processes: 7, FDs: 15, Stated: 9, Vanished: 4, UnknownMode: 1}
	if stats != wantStats {
		t.Errorf("stats = %+v, want %+v", stats, wantStats)
	}

	// Openers is the same scan without the stats.
	plain, err := New(f.root).Openers(want)
	if err != nil {
		t.Fatalf("Openers: %v", err)
	}
	if g := sortOpeners(plain[dumpID]); !slices.Equal(g, wantDump) {
		t.Errorf("Openers of the dump = %+v, want %+v", g, wantDump)
	}
}

func TestOpenersInFixture(t *testing.T) {
	data := t.TempDir()
	dump := writeFile(t, data, "coredump.1.dmp")
	f := newProcFixture(t)
	f.process(4242)
	f.fd(4242, 4, dump, "0100001")
	f.process(100)
	f.fd(100, 3, dump, "0100000")
	f.process(200)
	f.fd(200, 3, dump, "0100002")
	dumpID := fileID(t, dump)
	want := map[FileID]struct{}{dumpID: {}}

	tests := []struct {
		name string
		pids []int
		want []Opener
	}{
		{"known writer", []int{4242}, []Opener{{PID: 4242, FD: 4, Writable: true}}},
		{"duplicates and invalid pids", []int{4242, 4242, 0, -5}, []Opener{{PID: 4242, FD: 4, Writable: true}}},
		{"exited writer", []int{99999}, nil},
		{"two of three", []int{100, 4242}, []Opener{{PID: 100, FD: 3}, {PID: 4242, FD: 4, Writable: true}}},
		{"none", nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := New(f.root).OpenersIn(tt.pids, want)
			if err != nil {
				t.Fatalf("OpenersIn: %v", err)
			}
			if g := sortOpeners(got[dumpID]); !slices.Equal(g, tt.want) {
				t.Errorf("got %+v, want %+v", g, tt.want)
			}
		})
	}
}

// Only a missing or unusable root is an error: it must never read as "no
// process holds the file".
func TestOpenersBadRoot(t *testing.T) {
	dir := t.TempDir()
	notDir := writeFile(t, dir, "file")
	want := map[FileID]struct{}{{Dev: 1, Ino: 2}: {}}
	for _, root := range []string{filepath.Join(dir, "missing"), notDir} {
		t.Run(filepath.Base(root), func(t *testing.T) {
			fs := New(root)
			if got, err := fs.Openers(want); err == nil {
				t.Errorf("Openers(%s) = %v, nil; want an error", root, got)
			}
			if got, err := fs.Openers(nil); err == nil {
				t.Errorf("Openers(%s, empty) = %v, nil; want an error", root, got)
			}
			if got, err := fs.OpenersIn([]int{1}, want); err == nil {
				t.Errorf("OpenersIn(%s) = %v, nil; want an error", root, got)
			}
		})
	}
}

func TestOpenersEmptyWant(t *testing.T) {
	f := newProcFixture(t)
	f.process(1)
	f.fd(1, 3, writeFile(t, t.TempDir(), "x"), "01")
	got, stats, err := New(f.root).OpenersStats(nil)
	if err != nil || len(got) != 0 || got == nil {
		t.Errorf("OpenersStats(nil) = %v, %v; want an empty map", got, err)
	}
	if stats.FDs != 0 {
		t.Errorf("scanned %d fds for nothing wanted", stats.FDs)
	}
}

// TestScanErrorClasses: vanished and denied processes are skipped and
// counted, never fatal.
func TestScanErrorClasses(t *testing.T) {
	tests := []struct {
		err         error
		skipProcess bool
		want        ScanStats
	}{
		{&os.PathError{Op: "open", Path: "/proc/1/fd", Err: syscall.ENOENT}, false, ScanStats{Vanished: 1}},
		{syscall.ESRCH, false, ScanStats{Vanished: 1}},
		{fmt.Errorf("readlink: %w", syscall.EACCES), true, ScanStats{Denied: 1}},
		{syscall.EPERM, true, ScanStats{Denied: 1}},
		{syscall.EIO, false, ScanStats{Errors: 1}},
		{errors.New("other"), false, ScanStats{Errors: 1}},
	}
	for _, tt := range tests {
		t.Run(tt.err.Error(), func(t *testing.T) {
			s := newScanner(New(""), nil)
			if got := s.count(tt.err); got != tt.skipProcess {
				t.Errorf("count() skipProcess = %v, want %v", got, tt.skipProcess)
			}
			if s.stats != tt.want {
				t.Errorf("stats = %+v, want %+v", s.stats, tt.want)
			}
		})
	}
}

func TestMayBeFile(t *testing.T) {
	tests := []struct {
		target string
		want   bool
	}{
		{"/dumps/coredump.1.dmp", true},
		{"/dumps/coredump.1.dmp (deleted)", true},
		{"/memfd:doublemapper (deleted)", true},
		{"relative/fixture/link", true},
		{"socket:[20001]", false},
		{"pipe:[19496]", false},
		{"anon_inode:[eventfd]", false},
		{"anon_inode:inotify", false},
		{"net:[4026531840]", false},
		{"/dev/null", false},
		{"/dev/pts/0", false},
		{"", false},
	}
	for _, tt := range tests {
		if got := mayBeFile([]byte(tt.target)); got != tt.want {
			t.Errorf("mayBeFile(%q) = %v, want %v", tt.target, got, tt.want)
		}
	}
}

func TestParseFdinfo(t *testing.T) {
	tests := []struct {
		name     string
		data     string
		writable bool
		ino      uint64 // 0: no ino line
		ok       bool
	}{
		// Real content of /proc/self/fdinfo/0 on Linux 6.18.
		{"O_RDONLY|O_LARGEFILE", "pos:\t0\nflags:\t0100000\nmnt_id:\t23\nino:\t3\n", false, 3, true},
		{"O_WRONLY|O_LARGEFILE", "pos:\t0\nflags:\t0100001\nmnt_id:\t23\nino:\t3180\n", true, 3180, true},
		{"O_RDWR|O_CLOEXEC", "pos:\t4096\nflags:\t02100002\nmnt_id:\t23\n", true, 0, true},
		{"O_WRONLY|O_APPEND|O_CREAT", "flags:\t02102101\n", true, 0, true},
		{"O_PATH", "pos:\t0\nflags:\t012000000\n", false, 0, true},
		{"no flags line", "pos:\t0\nmnt_id:\t23\nino:\t3\n", false, 3, false},
		{"not octal", "flags:\t0x1\n", false, 0, false},
		{"empty", "", false, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			info, ok := parseFdinfo([]byte(tt.data))
			if ok != tt.ok {
				t.Fatalf("ok = %v, want %v", ok, tt.ok)
			}
			if writable := info.flags&oAccMode == oWronly || info.flags&oAccMode == oRdwr; ok && writable != tt.writable {
				t.Errorf("flags %o: writable = %v, want %v", info.flags, writable, tt.writable)
			}
			if info.hasIno != (tt.ino != 0) || info.ino != tt.ino {
				t.Errorf("ino = %d (present %v), want %d", info.ino, info.hasIno, tt.ino)
			}
		})
	}
}

// An fd number closed and reused for another file between the stat and the
// fdinfo read must not lend its flags to the wanted file.
func TestReadWritableReusedFD(t *testing.T) {
	path := writeFile(t, t.TempDir(), "fdinfo")
	if err := os.WriteFile(path, []byte("pos:\t0\nflags:\t0100000\nmnt_id:\t23\nino:\t77\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if w, reused, err := readWritable(path, 77); err != nil || reused || w {
		t.Errorf("same inode: writable %v reused %v err %v; want false false nil", w, reused, err)
	}
	if _, reused, err := readWritable(path, 78); err != nil || !reused {
		t.Errorf("other inode: reused %v err %v; want true nil", reused, err)
	}
	if w, _, err := readWritable(path+".missing", 77); err == nil || !isVanished(err) || !w {
		t.Errorf("missing fdinfo: writable %v err %v; want true and a not-exist error", w, err)
	}
}

// TestOpenersRealProc runs against this machine's /proc with files this test
// process opens itself.
func TestOpenersRealProc(t *testing.T) {
	if _, err := os.Stat("/proc/self/fdinfo"); err != nil {
		t.Skipf("no procfs here: %v", err)
	}
	fs := New("/proc")
	me := os.Getpid()
	dir := t.TempDir()
	tests := []struct {
		name     string
		flag     int
		writable bool
	}{
		{"write only", os.O_WRONLY, true},
		{"append", os.O_WRONLY | os.O_APPEND, true},
		{"read write", os.O_RDWR, true},
		{"read only", os.O_RDONLY, false},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := writeFile(t, dir, fmt.Sprintf("coredump.%d.dmp", i))
			f, err := os.OpenFile(path, tt.flag, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			fi, err := f.Stat()
			if err != nil {
				t.Fatal(err)
			}
			id, ok := FileIDOf(fi)
			if !ok {
				t.Fatal("FileIDOf not ok")
			}
			want := map[FileID]struct{}{id: {}}
			wantOpener := Opener{PID: me, FD: int(f.Fd()), Writable: tt.writable}

			got, stats, err := fs.OpenersStats(want)
			if err != nil {
				t.Fatalf("Openers: %v", err)
			}
			if stats.Processes == 0 || stats.FDs == 0 {
				t.Errorf("scan read nothing: %+v", stats)
			}
			if !hasOpener(got[id], wantOpener) {
				t.Errorf("Openers = %+v, want it to contain %+v", got[id], wantOpener)
			}
			self, err := fs.Process(me)
			if err != nil {
				t.Fatal(err)
			}
			for _, o := range got[id] {
				if o.PID == me && o.StartTime != self.StartTime {
					t.Errorf("Opener.StartTime = %d, Process.StartTime = %d", o.StartTime, self.StartTime)
				}
			}

			in, err := fs.OpenersIn([]int{me}, want)
			if err != nil {
				t.Fatalf("OpenersIn: %v", err)
			}
			if !hasOpener(in[id], wantOpener) {
				t.Errorf("OpenersIn = %+v, want it to contain %+v", in[id], wantOpener)
			}
			for _, o := range in[id] {
				// The re-check reads no cgroup: a writer's cgroup is read
				// once, by the claim's scan (a second read hung a fixture
				// whose cgroup file is a one-shot FIFO).
				if o.CgroupRead {
					t.Errorf("OpenersIn read the cgroup of %d", o.PID)
				}
			}

			if err := f.Close(); err != nil {
				t.Fatal(err)
			}
			after, err := fs.Openers(want)
			if err != nil {
				t.Fatalf("Openers after close: %v", err)
			}
			for _, o := range after[id] {
				if o.PID == me {
					t.Errorf("closed file still reported open: %+v", o)
				}
			}
			afterIn, err := fs.OpenersIn([]int{me}, want)
			if err != nil {
				t.Fatalf("OpenersIn after close: %v", err)
			}
			if len(afterIn[id]) != 0 {
				t.Errorf("OpenersIn after close = %+v, want none", afterIn[id])
			}
		})
	}
}

func hasOpener(list []Opener, want Opener) bool {
	for _, o := range list {
		if o.PID == want.PID && o.FD == want.FD && o.Writable == want.Writable {
			return true
		}
	}
	return false
}

func TestFileIDOf(t *testing.T) {
	dir := t.TempDir()
	a := writeFile(t, dir, "a")
	b := writeFile(t, dir, "b")
	link := filepath.Join(dir, "a-link")
	if err := os.Link(a, link); err != nil {
		t.Fatal(err)
	}
	if fileID(t, a) != fileID(t, link) {
		t.Error("two names of one inode have different FileIDs")
	}
	if fileID(t, a) == fileID(t, b) {
		t.Error("two files have the same FileID")
	}
	if id := fileID(t, a); id.Ino == 0 {
		t.Errorf("FileID %+v has no inode number", id)
	}
	if _, ok := FileIDOf(nil); ok {
		t.Error("FileIDOf(nil) ok")
	}
	if _, ok := FileIDOf(fakeFileInfo{}); ok {
		t.Error("FileIDOf(FileInfo without Stat_t) ok")
	}
}

type fakeFileInfo struct{ os.FileInfo }

func (fakeFileInfo) Sys() any { return nil }

// BenchmarkOpeners scans a node-sized fixture: 2,000 processes with 30 fds
// each (stdio, sockets, pipes, anonymous inodes, devices, shared libraries
// and logs), 100 dumps wanted at once, each held by one writer.
func BenchmarkOpeners(b *testing.B) {
	const (
		procs    = 2000
		fdsEach  = 30
		files    = 300
		dumps    = 100
		firstPID = 1000
	)
	data := b.TempDir()
	f := newProcFixture(b)
	var paths []string
	for i := 0; i < files; i++ {
		paths = append(paths, writeFile(b, data, fmt.Sprintf("lib/file%03d.so", i)))
	}
	want := make(map[FileID]struct{}, dumps)
	var dumpPaths []string
	for i := 0; i < dumps; i++ {
		p := writeFile(b, data, fmt.Sprintf("dumps/coredump.%d.dmp", i))
		dumpPaths = append(dumpPaths, p)
		want[fileID(b, p)] = struct{}{}
	}
	for i := 0; i < procs; i++ {
		pid := firstPID + i
		f.process(pid)
		for fd := 0; fd < fdsEach; fd++ {
			var target string
			switch {
			case fd < 3:
				target = "/dev/null"
			case fd < 10:
				target = fmt.Sprintf("socket:[%d]", 100000+pid*fdsEach+fd)
			case fd < 14:
				target = fmt.Sprintf("pipe:[%d]", 200000+pid*fdsEach+fd)
			case fd < 17:
				target = "anon_inode:[eventfd]"
			case fd == 17:
				target = "/dev/pts/0"
			case fd == 29 && i < dumps:
				target = dumpPaths[i]
			default:
				target = paths[(i*fdsEach+fd)%files]
			}
			f.fd(pid, fd, target, "0100001")
		}
	}
	fs := New(f.root)
	var stats ScanStats
	b.ReportAllocs()
	for b.Loop() {
		got, st, err := fs.OpenersStats(want)
		if err != nil {
			b.Fatal(err)
		}
		if len(got) != dumps {
			b.Fatalf("found %d dumps, want %d", len(got), dumps)
		}
		stats = st
	}
	if stats.FDs != procs*fdsEach {
		b.Fatalf("scanned %d fds, want %d", stats.FDs, procs*fdsEach)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(stats.FDs), "ns/fd")
}

func mustCgroup(t *testing.T, s string) Cgroup {
	t.Helper()
	cg, ok := ParseCgroup([]byte(s))
	if !ok || cg.ContainerID == "" || cg.PodUID == "" {
		t.Fatalf("ParseCgroup(%q) = %+v, %v", s, cg, ok)
	}
	return cg
}

func TestNewestFirst(t *testing.T) {
	for _, tc := range []struct {
		name string
		pids []int
		last int
		want []int
	}{
		{"no wrap", []int{1, 300, 4242, 900}, 4242, []int{4242, 900, 300, 1}},
		{"after a wrap the newest have the smallest PIDs", []int{1, 32739, 394, 30000, 479, 12}, 479, []int{479, 394, 12, 1, 32739, 30000}},
		{"last PID unknown", []int{5, 7, 6}, 0, []int{7, 6, 5}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := newestFirst(slices.Clone(tc.pids), tc.last); !slices.Equal(got, tc.want) {
				t.Errorf("newestFirst(%v, %d) = %v, want %v", tc.pids, tc.last, got, tc.want)
			}
		})
	}
	// Read from the proc root.
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "sys", "kernel"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "sys", "kernel", "ns_last_pid"), []byte("479\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got := readLastPID(root); got != 479 {
		t.Errorf("readLastPID = %d, want 479", got)
	}
	if got := readLastPID(t.TempDir()); got != 0 {
		t.Errorf("readLastPID without the file = %d, want 0", got)
	}
}
