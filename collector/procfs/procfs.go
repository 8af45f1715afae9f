package procfs

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// DefaultRoot is where the host's procfs is mounted when --proc-root is not
// given.
const DefaultRoot = "/proc"

// FS reads processes under a procfs root. It holds nothing but the root path,
// so it is safe for concurrent use and cheap to copy; the zero value reads
// DefaultRoot.
type FS struct {
	root string
}

// New returns an FS reading the procfs mounted at root ("" means
// DefaultRoot). Nothing is read until a method is called, so a missing root
// is reported by the first scan, not here.
func New(root string) FS {
	if root == "" {
		root = DefaultRoot
	}
	return FS{root: filepath.Clean(root)}
}

// Root returns the procfs root this FS reads.
func (fs FS) Root() string {
	if fs.root == "" {
		return DefaultRoot
	}
	return fs.root
}

func (fs FS) pidDir(pid int) string {
	return fs.Root() + "/" + strconv.Itoa(pid)
}

// Process is what the agent needs to know about a dump's writer.
type Process struct {
	PID   int    // PID as seen under the root (the host PID)
	NSPID int    // PID in the innermost PID namespace: last field of "NSpid:" in status (0 if absent)
	Comm  string // short command name, from status "Name:" (escaped by the kernel) or comm
	Exe   string // target of <root>/<pid>/exe, "" if unreadable (kernel threads, no permission)
	// StartTime is the process start time in clock ticks after boot (field 22
	// of <root>/<pid>/stat), 0 if unknown. PIDs are recycled: two reads of
	// one PID saw the same process only if they saw the same StartTime
	// (compare with Opener.StartTime).
	StartTime uint64
	Cgroup    Cgroup // parsed <root>/<pid>/cgroup; zero when it names no pod
}

// Process reads the facts about one process. It fails when the process does
// not exist (errors.Is(err, fs.ErrNotExist)), when its status or cgroup
// cannot be read, or when it exited or its PID was taken by another process
// while it was being read; an unreadable exe link or stat file only leaves
// Exe or StartTime empty. Safe for concurrent use.
//
// The PID may have been recycled since it was found holding a dump open. A
// caller that needs certainty compares StartTime with Opener.StartTime, or
// confirms with OpenersIn afterwards that the PID still holds the file.
func (fs FS) Process(pid int) (Process, error) { return fs.process(pid, true) }

// Identity is Process without the cgroup, for a process whose cgroup the
// scan that found it already read (Opener.CgroupRead).
func (fs FS) Identity(pid int) (Process, error) { return fs.process(pid, false) }

func (fs FS) process(pid int, withCgroup bool) (Process, error) {
	if pid <= 0 {
		return Process{}, fmt.Errorf("read process %d: invalid pid", pid)
	}
	dir := fs.pidDir(pid)
	// The start time is read first and again last, so that all the facts
	// are known to come from one process and not from two that had the
	// same PID one after the other.
	p := Process{PID: pid, StartTime: readStartTime(dir)}

	path := dir + "/status"
	status, err := os.ReadFile(path)
	if err != nil {
		return Process{}, fmt.Errorf("read %s: %w", path, err)
	}
	p.Comm, p.NSPID = parseStatus(status)
	if p.Comm == "" {
		// Fixture trees and very old kernels may lack "Name:"; comm has it raw.
		if b, err := os.ReadFile(dir + "/comm"); err == nil {
			p.Comm = strings.TrimSuffix(string(b), "\n")
		}
	}

	if exe, err := os.Readlink(dir + "/exe"); err == nil {
		p.Exe = exe
	}

	if withCgroup {
		path = dir + "/cgroup"
		cg, err := os.ReadFile(path)
		if err != nil {
			return Process{}, fmt.Errorf("read %s: %w", path, err)
		}
		p.Cgroup, _ = ParseCgroup(cg)
	}

	if p.StartTime != 0 && readStartTime(dir) != p.StartTime {
		return Process{}, fmt.Errorf("read process %d: it exited or its pid was reused while being read", pid)
	}
	return p, nil
}

// parseStatus extracts the command name and the innermost namespace PID from
// the contents of /proc/<pid>/status.
func parseStatus(data []byte) (comm string, nspid int) {
	for len(data) > 0 {
		var line []byte
		line, data, _ = bytes.Cut(data, []byte{'\n'})
		switch {
		case bytes.HasPrefix(line, []byte("Name:")):
			// "Name:\t<comm>": the name itself may start with blanks.
			comm = string(bytes.TrimPrefix(line[len("Name:"):], []byte{'\t'}))
		case bytes.HasPrefix(line, []byte("NSpid:")):
			// "NSpid:\t4242\t1": one PID per nested PID namespace, outermost
			// (the reader's) first. The last one is what the process calls
			// itself, which is what %p in a dump name expands to.
			f := bytes.Fields(line[len("NSpid:"):])
			if len(f) == 0 {
				continue
			}
			if n, err := strconv.Atoi(string(f[len(f)-1])); err == nil && n > 0 {
				nspid = n
			}
		}
	}
	return comm, nspid
}

// readStartTime returns field 22 (starttime) of <dir>/stat, or 0 if it
// cannot be read or parsed.
func readStartTime(dir string) uint64 {
	b, err := os.ReadFile(dir + "/stat")
	if err != nil {
		return 0
	}
	return parseStartTime(b)
}

func parseStartTime(stat []byte) uint64 {
	// "pid (comm) state ppid ...": comm may contain spaces and ')', so the
	// fields are counted from the last ')'. After it, field 3 (state) comes
	// first, so starttime (field 22) is the 20th.
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return 0
	}
	f := bytes.Fields(stat[i+1:])
	if len(f) < 20 {
		return 0
	}
	n, err := strconv.ParseUint(string(f[19]), 10, 64)
	if err != nil {
		return 0
	}
	return n
}

// parseDecimal parses a PID or fd number the way procfs writes them:
// digits only, no sign, no leading zero, at most 2^31-1. Anything else under
// the root ("self", "net", "sys", ...) is not a process.
func parseDecimal(s string) (int, bool) {
	if s == "" || len(s) > 10 || (s[0] == '0' && len(s) > 1) {
		return 0, false
	}
	n := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	if n > 1<<31-1 {
		return 0, false
	}
	return n, true
}

func parsePID(s string) (int, bool) {
	n, ok := parseDecimal(s)
	return n, ok && n > 0
}

func parseFD(s string) (int, bool) { return parseDecimal(s) }
