package procfs

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
)

// FileID identifies an inode: what a dump file is, whatever path or mount
// namespace a process reaches it through. A rename (the agent's claim step)
// keeps it.
type FileID struct{ Dev, Ino uint64 }

// Opener is one open file descriptor on a wanted file.
type Opener struct {
	PID int // PID as seen under the root (host PID)
	FD  int
	// Writable is true when the fd was opened O_WRONLY or O_RDWR, from the
	// octal "flags:" of <root>/<pid>/fdinfo/<fd>. When fdinfo exists but
	// cannot be read or parsed it is true as well: waiting longer for a
	// dump is safe, uploading it half-written is not.
	Writable bool
	// StartTime is the process start time (see Process.StartTime), 0 if
	// unknown. It lets a caller notice that PID was recycled between this scan
	// and a later Process call.
	StartTime uint64
	// Cgroup is the process's cgroup, read the moment its descriptor was
	// found (CgroupRead): a createdump that closes and exits right after
	// is gone by the time the rest of the scan is done, and its cgroup is
	// the evidence.
	Cgroup     Cgroup
	CgroupRead bool
}

// ScanStats counts what one scan did and what it skipped, for metrics and
// logs. Vanished is normal churn on a busy node. Denied means the agent may
// not look at those processes' fds (reading fd links needs ptrace read
// access: hostPID and CAP_SYS_PTRACE); while it is above zero, writer
// detection is blind to those processes.
type ScanStats struct {
	Processes int // process fd directories read
	FDs       int // fd entries examined
	Stated    int // fd targets stat'ed (those that can be a file)
	Vanished  int // processes or fds that went away during the scan (ENOENT, ESRCH)
	Denied    int // processes whose fds could not be read (EACCES, EPERM)
	Errors    int // processes or fds skipped for any other error
	// UnknownMode counts wanted fds whose fdinfo could not be read or
	// parsed; they are reported with Writable=true.
	UnknownMode int
}

// Openers scans every <root>/<pid>/fd once and returns, for each wanted
// inode, who holds it open; files nobody holds are absent from the map. One
// pass serves any number of wanted files, so callers batch all the dumps that
// are settling (a node may get 10,000 new files at once) into one call.
//
// Processes and fds that vanish or cannot be read are skipped; only a missing
// or unreadable root is an error. Safe for concurrent use.
func (fs FS) Openers(want map[FileID]struct{}) (map[FileID][]Opener, error) {
	found, _, err := fs.OpenersStats(want)
	return found, err
}

// OpenersStats is Openers that also reports what the scan skipped, for
// metrics and logs.
func (fs FS) OpenersStats(want map[FileID]struct{}) (map[FileID][]Opener, ScanStats, error) {
	root := fs.Root()
	d, err := openDir(root)
	if err != nil {
		return nil, ScanStats{}, fmt.Errorf("list processes: %w", err)
	}
	s := newScanner(fs, want)
	names, err := d.names(s.dirBuf, nil)
	d.close()
	if err != nil {
		return nil, ScanStats{}, fmt.Errorf("list processes in %s: %w", root, err)
	}
	if len(want) == 0 {
		return s.found, s.stats, nil
	}
	pids := make([]int, 0, len(names))
	for _, name := range names {
		if pid, ok := parsePID(name); ok {
			pids = append(pids, pid)
		}
	}
	// Newest first: a dump's writer (createdump, forked at the crash) is
	// usually the newest process, and it may close the file within 200 ms.
	// A scan slowed by a CPU limit still reaches it before the old,
	// long-lived processes with their many fds. This is an order, not a
	// shortcut: every process is still scanned.
	for _, pid := range newestFirst(pids, readLastPID(root)) {
		s.scanProcess(pid)
	}
	return s.found, s.stats, nil
}

// OpenersIn is the cheap re-check of only the given PIDs, for a dump whose
// writer is known and still writing. PIDs that no longer exist are skipped.
// It reads no cgroup (Opener.CgroupRead is false): the evidence was taken
// by the claim's scan, and the re-check runs every 50 ms per writer.
// Safe for concurrent use.
func (fs FS) OpenersIn(pids []int, want map[FileID]struct{}) (map[FileID][]Opener, error) {
	found, _, err := fs.OpenersInStats(pids, want)
	return found, err
}

// OpenersInStats is OpenersIn that also reports what the scan skipped.
func (fs FS) OpenersInStats(pids []int, want map[FileID]struct{}) (map[FileID][]Opener, ScanStats, error) {
	// A vanished root must not read as "every writer exited".
	root := fs.Root()
	fi, err := os.Stat(root)
	if err != nil {
		return nil, ScanStats{}, fmt.Errorf("check proc root: %w", err)
	}
	if !fi.IsDir() {
		return nil, ScanStats{}, fmt.Errorf("check proc root %s: not a directory", root)
	}
	s := newScanner(fs, want)
	s.noCgroup = true
	if len(want) == 0 {
		return s.found, s.stats, nil
	}
	seen := make(map[int]struct{}, len(pids))
	for _, pid := range pids {
		if pid <= 0 {
			continue
		}
		if _, dup := seen[pid]; dup {
			continue
		}
		seen[pid] = struct{}{}
		s.scanProcess(pid)
	}
	return s.found, s.stats, nil
}

// scanner holds the state of one scan. Each scan has its own, which is what
// makes FS safe for concurrent use.
type scanner struct {
	fs      FS
	want    map[FileID]struct{}
	found   map[FileID][]Opener
	stats   ScanStats
	dirBuf  []byte   // getdents buffer
	linkBuf []byte   // readlink buffer; only prefixes matter
	names   []string // reused fd name list
	// noCgroup: do not read the holders' cgroups (OpenersIn).
	noCgroup bool
}

func newScanner(fs FS, want map[FileID]struct{}) *scanner {
	return &scanner{
		fs:      fs,
		want:    want,
		found:   make(map[FileID][]Opener),
		dirBuf:  make([]byte, 16<<10),
		linkBuf: make([]byte, 128),
	}
}

// count files a per-process or per-fd failure in the stats and reports
// whether the rest of the process should be skipped.
func (s *scanner) count(err error) (skipProcess bool) {
	switch {
	case isVanished(err):
		s.stats.Vanished++
		return false
	case errors.Is(err, os.ErrPermission):
		// Access to fd links is decided per process (ptrace access
		// mode), so every other fd of this process would fail too.
		s.stats.Denied++
		return true
	default:
		s.stats.Errors++
		return false
	}
}

func (s *scanner) scanProcess(pid int) {
	pidDir := s.fs.pidDir(pid)
	d, err := openDir(pidDir + "/fd")
	if err != nil {
		s.count(err)
		return
	}
	defer d.close()
	s.names, err = d.names(s.dirBuf, s.names[:0])
	if err != nil {
		s.count(err)
		return
	}
	s.stats.Processes++

	var startTime uint64
	haveStartTime := false
	var mine []FileID // the wanted files this process holds
	for _, name := range s.names {
		fd, ok := parseFD(name)
		if !ok {
			continue
		}
		s.stats.FDs++
		// readlink is cheap and tells sockets, pipes, anonymous inodes and
		// devices apart from files without touching them.
		target, err := d.readlink(name, s.linkBuf)
		if err != nil {
			if s.count(err) {
				return
			}
			continue
		}
		if !mayBeFile(target) {
			continue
		}
		s.stats.Stated++
		id, err := d.stat(name)
		if err != nil {
			if s.count(err) {
				return
			}
			continue
		}
		if _, ok := s.want[id]; !ok {
			continue
		}
		writable, reused, err := readWritable(pidDir+"/fdinfo/"+name, id.Ino)
		if reused || (err != nil && isVanished(err)) {
			// The fd was closed (or the process exited) since the stat;
			// if its number was reused, the flags are another file's.
			s.stats.Vanished++
			continue
		}
		if err != nil {
			s.stats.UnknownMode++
		}
		if !haveStartTime {
			startTime, haveStartTime = readStartTime(pidDir), true
		}
		if !slices.Contains(mine, id) {
			mine = append(mine, id)
		}
		s.found[id] = append(s.found[id], Opener{PID: pid, FD: fd, Writable: writable, StartTime: startTime})
	}
	if len(mine) == 0 || s.noCgroup {
		return
	}
	// The cgroup, read as soon as this process's descriptors are listed,
	// not after the whole scan: a createdump that closes and exits right
	// after is gone by then, and its cgroup is the evidence.
	b, err := os.ReadFile(pidDir + "/cgroup")
	if err != nil || (startTime != 0 && readStartTime(pidDir) != startTime) {
		return
	}
	cg, _ := ParseCgroup(b)
	for _, id := range mine {
		for i := range s.found[id] {
			if o := &s.found[id][i]; o.PID == pid {
				o.Cgroup, o.CgroupRead = cg, true
			}
		}
	}
}

// mayBeFile reports whether an fd link target can be a regular file that a
// process wrote. Kernel objects without a path read "socket:[123]",
// "pipe:[123]", "anon_inode:[eventfd]", "anon_inode:bpf-map" or
// "net:[4026531840]"; devices live under /dev. Everything else is stat'ed.
func mayBeFile(target []byte) bool {
	if len(target) == 0 {
		return false
	}
	if target[0] != '/' {
		return !bytes.HasPrefix(target, []byte("anon_inode:")) && !bytes.Contains(target, []byte(":["))
	}
	return !bytes.HasPrefix(target, []byte("/dev/"))
}

// Access mode bits of the "flags:" field in fdinfo, in Linux's values
// (include/uapi/asm-generic/fcntl.h), which is what procfs prints whatever
// system reads it.
const (
	oAccMode = 0o3
	oWronly  = 0o1
	oRdwr    = 0o2
)

// readWritable reads an fdinfo file and reports whether its fd was opened for
// writing. reused is true when fdinfo names another inode than ino (kernels
// since 5.14 print "ino:"): the fd was closed and its number taken by another
// file after the stat. On any error other than a vanished fd it answers true
// together with the error: an fd whose mode is unknown must keep a dump from
// settling.
func readWritable(path string, ino uint64) (writable, reused bool, err error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return true, false, fmt.Errorf("read %s: %w", path, err)
	}
	info, ok := parseFdinfo(b)
	if info.hasIno && info.ino != ino {
		return false, true, nil
	}
	if !ok {
		return true, false, fmt.Errorf("read %s: no octal flags field", path)
	}
	mode := info.flags & oAccMode
	return mode == oWronly || mode == oRdwr, false, nil
}

// fdinfo holds the fields of /proc/<pid>/fdinfo/<fd> that matter here.
type fdinfo struct {
	flags  uint64 // "flags:", printed in octal ("flags:\t0100002")
	ino    uint64 // "ino:", decimal, absent before Linux 5.14
	hasIno bool
}

// parseFdinfo parses fdinfo; ok is false without a valid flags field.
func parseFdinfo(data []byte) (info fdinfo, ok bool) {
	for len(data) > 0 {
		var line []byte
		line, data, _ = bytes.Cut(data, []byte{'\n'})
		if rest, found := bytes.CutPrefix(line, []byte("flags:")); found {
			n, err := strconv.ParseUint(string(bytes.TrimSpace(rest)), 8, 64)
			if err != nil {
				return info, false
			}
			info.flags, ok = n, true
		} else if rest, found := bytes.CutPrefix(line, []byte("ino:")); found {
			if n, err := strconv.ParseUint(string(bytes.TrimSpace(rest)), 10, 64); err == nil {
				info.ino, info.hasIno = n, true
			}
		}
	}
	return info, ok
}

// readLastPID is the PID the kernel handed out last in the PID namespace
// of the proc root (sys/kernel/ns_last_pid), 0 if unknown.
func readLastPID(root string) int {
	b, err := os.ReadFile(root + "/sys/kernel/ns_last_pid")
	if err != nil {
		return 0
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || n < 0 {
		return 0
	}
	return n
}

// newestFirst orders pids from the most recently allocated back. PIDs are
// handed out upwards and wrap at pid_max, so after a wrap the newest
// processes have the smallest PIDs: descending from the last PID handed
// out, then from the top down to it. (Plain descending order put the
// newest after every old process once PIDs wrapped, and the e2e lost the
// writer of the one dump written right after the wrap.) last 0 (unknown)
// is plain descending order. It sorts pids in place and returns it.
func newestFirst(pids []int, last int) []int {
	slices.SortFunc(pids, func(a, b int) int {
		ka, kb := a <= last, b <= last
		if ka != kb {
			if ka {
				return -1
			}
			return 1
		}
		return b - a
	})
	return pids
}
