package main

import (
	"fmt"
	"strconv"
	"strings"
)

// dumpNameVars are the values the runtime substitutes into
// DOTNET_DbgMiniDumpName.
type dumpNameVars struct {
	PID      int    // %p and %d: the crashing process's PID as it sees itself (1 when it is the container's init)
	Exe      string // %e: the process's executable file name
	Hostname string // %h: gethostname(); the pod name unless the pod sets hostname
	Time     int64  // %t: seconds since the epoch at the time the name is formatted
}

// expandDumpName formats a dump file name the way createdump's
// FormatDumpName (src/coreclr/debug/createdump/dumpname.cpp) does:
//
//	%%  a single %          %p, %d  PID of the dumped process
//	%e  executable name     %h      host name       %t  epoch seconds
//
// Every other specifier (%E %s %g %c %u %i %I %P ...) is an error, as is a
// pattern starting with '|' (pipe syntax). A lone '%' at the very end ends the
// name there, without error, exactly like the runtime.
func expandDumpName(pattern string, v dumpNameVars) (string, error) {
	if strings.HasPrefix(pattern, "|") {
		return "", fmt.Errorf("pipe syntax in dump name not supported")
	}
	var b strings.Builder
	for i := 0; i < len(pattern); i++ {
		c := pattern[i]
		if c != '%' {
			b.WriteByte(c)
			continue
		}
		i++
		if i >= len(pattern) {
			return b.String(), nil
		}
		switch pattern[i] {
		case '%':
			b.WriteByte('%')
		case 'p', 'd':
			b.WriteString(strconv.Itoa(v.PID))
		case 't':
			b.WriteString(strconv.FormatInt(v.Time, 10))
		case 'h':
			b.WriteString(v.Hostname)
		case 'e':
			b.WriteString(v.Exe)
		default:
			return "", fmt.Errorf("invalid dump name format char '%c'", pattern[i])
		}
	}
	if b.Len() > maxLongPath {
		return "", fmt.Errorf("the formatted dump path is too long")
	}
	return b.String(), nil
}

// maxLongPath is the runtime's MAX_LONGPATH (the formatted name must fit).
const maxLongPath = 1024
