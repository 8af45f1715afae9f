//go:build linux

package corepipe

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"

	"golang.org/x/sys/unix"

	"github.com/crashdump-io/crashdump/collector/procfs"
)

// Bounds on what is read from /proc/<pid>.
const (
	maxCgroupSize  = 64 << 10
	maxStatusSize  = 64 << 10
	maxCmdlineSize = 4 << 10
	maxCmdlineArgs = 64
	maxExeLen      = 4096
)

// facts is what /proc/<pid> says about the crashing process.
type facts struct {
	Tgid    int
	NSpid   []int
	UID     int // real UID, -1 unknown
	GID     int // real GID, -1 unknown
	Exe     string
	Cmdline []string
	Cgroup  procfs.Cgroup
	InPod   bool // the cgroup names a pod
	// CgroupRead: the cgroup file was read, so InPod false means a host process.
	CgroupRead bool
	Errors     []string
}

// readFacts reads the process's facts through a directory fd of
// <procRoot>/<pid>, opening nothing with a symlink at its last element.
// pid must be digits (isDigits). errNoProcess: the directory is missing.
func readFacts(procRoot, pid string) (facts, error) {
	f := facts{UID: -1, GID: -1}
	dir := procRoot + "/" + pid
	dfd, err := openDirNoFollow(unix.AT_FDCWD, dir)
	if err != nil {
		return f, fmt.Errorf("%w: %s: %v", errNoProcess, dir, err)
	}
	defer unix.Close(dfd)
	note := func(what string, err error) { f.Errors = append(f.Errors, what+": "+err.Error()) }

	if b, err := readAt(dfd, "cgroup", maxCgroupSize); err != nil {
		note("cgroup", err)
	} else {
		f.CgroupRead = true
		f.Cgroup, f.InPod = procfs.ParseCgroup(b)
	}
	if b, err := readAt(dfd, "status", maxStatusSize); err != nil {
		note("status", err)
	} else {
		parseStatus(&f, b)
	}
	buf := make([]byte, maxExeLen)
	if n, err := unix.Readlinkat(dfd, "exe", buf); err != nil {
		note("exe", err)
	} else {
		f.Exe = cleanText(string(buf[:n]), maxExeLen)
	}
	if b, err := readAtTrunc(dfd, "cmdline", maxCmdlineSize); err != nil {
		note("cmdline", err)
	} else {
		f.Cmdline = splitCmdline(b)
	}
	return f, nil
}

var errNoProcess = errors.New("no such process")

func openDirNoFollow(at int, name string) (int, error) {
	for {
		fd, err := unix.Openat(at, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err == unix.EINTR {
			continue
		}
		return fd, err
	}
}

// readAt reads name in dfd (not following a symlink), failing when it is
// larger than max.
func readAt(dfd int, name string, max int) ([]byte, error) {
	b, err := readAtTrunc(dfd, name, max+1)
	if err == nil && len(b) > max {
		return nil, errTooLarge
	}
	return b, err
}

// readAtTrunc reads at most max bytes of name in dfd.
func readAtTrunc(dfd int, name string, max int) ([]byte, error) {
	fd, err := unix.Openat(dfd, name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return nil, err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return nil, errors.New("not a regular file")
	}
	b := make([]byte, 0, 4096)
	for len(b) < max {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
		end := min(cap(b), max)
		n, err := unix.Read(fd, b[len(b):end])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, err
		}
		if n == 0 {
			break
		}
		b = b[:len(b)+n]
	}
	return b, nil
}

func parseStatus(f *facts, data []byte) {
	for len(data) > 0 {
		var line []byte
		line, data, _ = bytes.Cut(data, []byte{'\n'})
		key, val, ok := bytes.Cut(line, []byte{':'})
		if !ok {
			continue
		}
		fields := bytes.Fields(val)
		switch string(key) {
		case "Tgid":
			if len(fields) > 0 {
				f.Tgid, _ = strconv.Atoi(string(fields[0]))
			}
		case "NSpid":
			for _, x := range fields {
				if n, err := strconv.Atoi(string(x)); err == nil && n > 0 && len(f.NSpid) < 32 {
					f.NSpid = append(f.NSpid, n)
				}
			}
		case "Uid", "Gid":
			if len(fields) > 0 {
				if n, err := strconv.Atoi(string(fields[0])); err == nil && n >= 0 {
					if key[0] == 'U' {
						f.UID = n
					} else {
						f.GID = n
					}
				}
			}
		}
	}
}

// splitCmdline splits NUL-separated arguments, at most maxCmdlineArgs,
// each sanitized.
func splitCmdline(b []byte) []string {
	b = bytes.TrimRight(b, "\x00")
	if len(b) == 0 {
		return nil
	}
	var out []string
	for _, a := range bytes.Split(b, []byte{0}) {
		if len(out) == maxCmdlineArgs {
			break
		}
		out = append(out, cleanText(string(a), maxCmdlineSize))
	}
	return out
}
