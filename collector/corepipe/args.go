package corepipe

import (
	"fmt"
	"io"
	"os"
	"strings"
	"syscall"
	"unicode"
	"unicode/utf8"
)

// Args are the kernel's specifiers, in the fixed order they follow "--"
// on the core_pattern line: %P %i %s %t %c %d %e. Every value is untrusted
// text; only PID is used to find facts, after it is checked to be digits.
type Args struct {
	PID       string // %P: PID in the initial PID namespace
	TID       string // %i: TID of the faulting thread, in the process's PID namespace
	Signal    string // %s
	Time      string // %t: seconds since the epoch
	CoreLimit string // %c: RLIMIT_CORE of the process
	DumpMode  string // %d: the dump mode (suid_dumpable value)
	Comm      string // %e: the process's own name; untrusted, may be several words
}

// Usage is the positional part of the command line.
const Usage = "-- %P %i %s %t %c %d %e"

// ParseArgs reads the positional arguments. At least %P is required; the
// others may be missing (an older pattern), and everything from the
// seventh argument on is %e (kernels before 5.3 split an %e with blanks
// into several arguments).
func ParseArgs(a []string) (Args, error) {
	if len(a) == 0 {
		return Args{}, fmt.Errorf("want the kernel's specifiers %s", Usage)
	}
	get := func(i int) string {
		if i < len(a) {
			return a[i]
		}
		return ""
	}
	args := Args{PID: a[0], TID: get(1), Signal: get(2), Time: get(3), CoreLimit: get(4), DumpMode: get(5)}
	if len(a) > 6 {
		args.Comm = strings.Join(a[6:], " ")
	}
	return args, nil
}

// maxCommText bounds kernelComm (the kernel's own is at most 15 bytes; %e
// may be longer on new kernels that use the executable's name).
const maxCommText = 64

// Sanitize makes untrusted text safe to store and log: at most max bytes,
// valid UTF-8, printable characters only, and no path separators. Anything
// else becomes '_'.
func Sanitize(s string, max int) string { return sanitize(s, max, false) }

// cleanText is Sanitize for paths and arguments: '/' is kept.
func cleanText(s string, max int) string { return sanitize(s, max, true) }

func sanitize(s string, max int, slash bool) string {
	var b strings.Builder
	for _, r := range s {
		if b.Len()+utf8.RuneLen(r) > max {
			break
		}
		switch {
		case r == utf8.RuneError, r == '/' && !slash, r == '\\', r == 0, !unicode.IsPrint(r):
			b.WriteByte('_')
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// isDigits reports whether s is a PID-shaped decimal: 1 to 10 digits, no
// leading zero.
func isDigits(s string) bool {
	if s == "" || len(s) > 10 || s[0] == '0' {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// readNoFollow reads at most max bytes of path without following a
// symlink at its last element.
func readNoFollow(path string, max int64) ([]byte, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > max {
		return nil, fmt.Errorf("%s: %w", path, errTooLarge)
	}
	return b, nil
}
