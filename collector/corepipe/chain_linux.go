//go:build linux

package corepipe

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// chainEnv is the environment the kernel gives a pipe handler.
var chainEnv = []string{"HOME=/", "PATH=/sbin:/bin:/usr/sbin:/usr/bin"}

// chain runs the previous handler with the core on our stdin (passed
// through unchanged: an *os.File stdin becomes the child's fd 0) and waits
// for it. What it leaves unread is drained by the caller.
func (h *handler) chain() error {
	argv, pidfd := h.chainArgv()
	if pidfd != nil {
		defer pidfd.Close()
	}
	if len(argv) == 0 || !filepath.IsAbs(argv[0]) {
		return fmt.Errorf("previous core_pattern %q: want |/absolute/program [args]", h.cfg.PreviousPattern)
	}
	if strings.Contains(h.cfg.PreviousPattern, "core-handler") {
		return errors.New("previous core_pattern is crashdump core-handler itself: not chained (loop)")
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = chainEnv
	cmd.Stdin = h.in
	cmd.Dir = "/"
	if pidfd != nil {
		cmd.ExtraFiles = []*os.File{pidfd} // fd 3, what %F names
	}
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s: %w", argv[0], err)
	}
	return nil
}

// chainArgv splits the previous pattern after its '|' at blanks, as the
// kernel does, and expands each argument's % specifiers:
//
//	%% %   %p innermost NSpid   %P %i %s %t %c %d from our arguments
//	%I %i when the process is in the initial PID namespace, else ""
//	%e kernelComm (sanitized)   %E the exe path with '/' as '!'   %f the exe's base name
//	%u %g real UID and GID from status   %h this host's name
//	%F a pidfd of the process, passed as fd 3 (empty when none can be opened)
//
// Any other specifier expands to nothing, as in the kernel.
func (h *handler) chainArgv() ([]string, *os.File) {
	pattern := strings.TrimPrefix(strings.TrimSpace(h.cfg.PreviousPattern), "|")
	var pidfd *os.File
	if strings.Contains(pattern, "%F") {
		if fd, err := unix.PidfdOpen(h.ev.Process.HostPID, 0); err == nil {
			pidfd = os.NewFile(uintptr(fd), "pidfd")
		}
	}
	f := h.facts
	tid := h.args.TID
	itid := ""
	if len(f.NSpid) <= 1 {
		itid = tid
	}
	nspid := h.args.PID
	if len(f.NSpid) > 0 {
		nspid = strconv.Itoa(f.NSpid[len(f.NSpid)-1])
	}
	num := func(n int) string {
		if n < 0 {
			return ""
		}
		return strconv.Itoa(n)
	}
	host, _ := os.Hostname()
	vals := map[byte]string{
		'%': "%", 'p': nspid, 'P': h.args.PID, 'i': tid, 'I': itid,
		's': h.args.Signal, 't': h.args.Time, 'c': h.args.CoreLimit, 'd': h.args.DumpMode,
		'e': h.ev.Kernel.KernelComm, 'E': strings.ReplaceAll(f.Exe, "/", "!"), 'f': filepath.Base(f.Exe),
		'u': num(f.UID), 'g': num(f.GID), 'h': host,
	}
	if f.Exe == "" {
		vals['f'] = ""
	}
	if pidfd != nil {
		vals['F'] = "3"
	}
	var argv []string
	for _, field := range strings.Fields(pattern) {
		var b strings.Builder
		for i := 0; i < len(field); i++ {
			if field[i] != '%' || i+1 == len(field) {
				b.WriteByte(field[i])
				continue
			}
			i++
			b.WriteString(vals[field[i]])
		}
		argv = append(argv, b.String())
	}
	return argv, pidfd
}
