package main

import (
	"fmt"
	"os"
	"syscall"
	"time"
	"unsafe"
)

const (
	prSetName     = 15
	prSetDumpable = 4
	prSetPtracer  = 0x59616d61
)

func setProcessName(name string) {
	b := append([]byte(name), 0)
	syscall.RawSyscall(syscall.SYS_PRCTL, prSetName, uintptr(unsafe.Pointer(&b[0])), 0)
}

func allowPtraceByAnyone() {
	// PR_SET_PTRACER_ANY; fails harmlessly (EINVAL) without Yama.
	syscall.RawSyscall(syscall.SYS_PRCTL, prSetPtracer, ^uintptr(0), 0)
}

// kernelSigaction is struct sigaction as rt_sigaction(2) takes it.
type kernelSigaction struct {
	handler  uintptr
	flags    uint64
	restorer uintptr
	mask     uint64
}

// setDefaultAction resets sig to SIG_DFL behind the Go runtime's back.
func setDefaultAction(sig syscall.Signal) {
	var sa kernelSigaction // handler 0 == SIG_DFL
	syscall.RawSyscall6(syscall.SYS_RT_SIGACTION, uintptr(sig), uintptr(unsafe.Pointer(&sa)), 0, 8, 0, 0)
}

// exitLikeAbort ends the process the way glibc's abort() does after the
// runtime's unhandled-exception path.
func exitLikeAbort(cfg config) int {
	if cfg.Exit != "abort" {
		return cfg.ExitCode
	}
	// No kernel core file of the emulator itself on the node.
	syscall.RawSyscall(syscall.SYS_PRCTL, prSetDumpable, 0, 0)
	os.Stdout.Sync()
	os.Stderr.Sync()
	// 1. raise(SIGABRT) with the default action: killed by signal 6 (134).
	setDefaultAction(syscall.SIGABRT)
	syscall.Tgkill(os.Getpid(), syscall.Gettid(), syscall.SIGABRT)
	time.Sleep(100 * time.Millisecond)
	// 2. Still alive: we are the init of a PID namespace (a container's
	// PID 1), which never gets signals it has no handler for. glibc then
	// executes its abort instruction and the kernel forces a SIGSEGV.
	fmt.Fprintln(os.Stderr, "crashing app: SIGABRT ignored (PID 1 of a PID namespace); faulting like glibc's abort()")
	setDefaultAction(syscall.SIGSEGV)
	var p *int
	*p = 0 //nolint:govet // the fault is the point
	return 127
}
