// Command createdump-emulator behaves like a .NET application that dies of an
// unhandled exception with the runtime's crash-dump settings, for end-to-end
// tests of the crashdump agent. It is meant to run as PID 1 of a container.
//
// Runtime settings honoured (DOTNET_ or the legacy COMPlus_ prefix):
//
//	DbgEnableMiniDump=1      write a dump (any other value: no dump)
//	DbgMiniDumpType=1..4     1 Mini, 2 Heap (default), 3 Triage, 4 Full
//	DbgMiniDumpName=PATTERN  default $TMPDIR/coredump.%p (TMPDIR defaults to /tmp);
//	                         %p/%d pid, %e executable, %h host name, %t epoch seconds, %% a '%'
//	EnableCrashReport=1      write <dump>.crashreport.json first
//	EnableCrashReportOnly=1  write the crash report and no dump
//
// Like the runtime, the crashing process starts a separate "createdump"
// process that writes the crash report, then the dump in place
// (O_WRONLY|O_CREAT|O_TRUNC, mode 0600, no temporary file, no rename), and
// waits for it before aborting. Emulator knobs (CRASHDUMP_EMULATOR_*):
//
//	CRASH_AFTER=0            run this long before the exception (Go duration or seconds)
//	CRASH_AT                 crash at this wall-clock time instead (Unix seconds, fractions allowed)
//	EXCEPTION_TYPE, MESSAGE, HRESULT   default System.Exception, "Boom!!", 0x80131500
//	RUNTIME_VERSION          configuration.version in the crash report
//	DUMP_SIZE                exact dump size for every type (overrides the defaults:
//	                         Triage 1MiB, Mini 2MiB, Heap 16MiB, Full FULL_SIZE=64MiB)
//	CHUNK_SIZE=1MiB, CHUNK_DELAY=20ms  write pacing; WRITE_DURATION spreads the write over a duration
//	HOLD_OPEN=0              keep the finished dump open this long before closing it
//	WRITER=child|self        who writes: a createdump child (default, like the runtime) or the crashing process
//	WAIT_FOR_DUMP=1          exit only after the dump is closed; 0: abort while the dump is still
//	                         being written (the writer dies with the container: a truncated dump)
//	EXIT=abort|code:N        abort (default) like glibc's abort(); code:N exits with N
//
// Exit: abort() raises SIGABRT (exit status 134). A container's PID 1 ignores
// signals it has no handler for, so - exactly like the real runtime as PID 1
// (dotnet/runtime#102785) - glibc's fallback then faults and the process dies
// of SIGSEGV (139). It marks itself non-dumpable first so no kernel core file
// of the emulator lands on the node.
package main

import (
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"
)

const roleEnv = envPrefix + "ROLE"
const targetEnv = envPrefix + "TARGET_PID"

func main() {
	cfg, err := loadConfig()
	if err != nil {
		fmt.Fprintln(os.Stderr, "createdump-emulator:", err)
		os.Exit(2)
	}
	if os.Getenv(roleEnv) == "createdump" {
		os.Exit(createdumpMain(cfg))
	}
	os.Exit(appMain(cfg))
}

func appMain(cfg config) int {
	host, _ := os.Hostname()
	fmt.Printf("crashing app: pid %d on %s; unhandled exception in %s\n", os.Getpid(), host, cfg.CrashAfter)
	term := make(chan os.Signal, 1)
	signal.Notify(term, syscall.SIGTERM, syscall.SIGINT)
	select {
	case s := <-term:
		fmt.Printf("crashing app: %s before the crash, exiting\n", s)
		return 143
	case <-time.After(cfg.CrashAfter):
	}
	signal.Stop(term)

	fmt.Fprintf(os.Stderr, "Unhandled exception. %s: %s\n", cfg.ExceptionType, cfg.Message)
	fmt.Fprintf(os.Stderr, "   at Program.<Main>$(String[] args) in /src/Program.cs:line 12\n")

	if cfg.EnableDump || cfg.CrashReportOnly {
		if cfg.Writer == "self" {
			createDump(cfg, os.Getpid(), !cfg.WaitForDump, nil)
		} else {
			runCreatedumpChild(cfg)
		}
	}
	return exitLikeAbort(cfg)
}

// runCreatedumpChild starts this binary again as "createdump" for this
// process and waits for it (or, with WAIT_FOR_DUMP=0, only until the dump
// is being written).
func runCreatedumpChild(cfg config) {
	allowPtraceByAnyone() // the runtime does prctl(PR_SET_PTRACER) for createdump too
	r, w, err := os.Pipe()
	if err != nil {
		fmt.Fprintln(os.Stderr, "createdump-emulator: pipe:", err)
		return
	}
	self, err := os.Executable()
	if err != nil {
		self = "/proc/self/exe"
	}
	attr := &os.ProcAttr{
		Env:   append(os.Environ(), roleEnv+"=createdump", fmt.Sprintf("%s=%d", targetEnv, os.Getpid())),
		Files: []*os.File{os.Stdin, os.Stdout, os.Stderr, w},
		Sys:   &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL},
	}
	p, err := os.StartProcess(self, []string{"createdump", fmt.Sprint(os.Getpid())}, attr)
	w.Close()
	if err != nil {
		fmt.Fprintln(os.Stderr, "createdump-emulator: starting createdump:", err)
		r.Close()
		return
	}
	if !cfg.WaitForDump {
		// The child writes one byte once the first dump chunk is on disk.
		b := make([]byte, 1)
		r.Read(b)
		fmt.Fprintln(os.Stderr, "crashing app: not waiting for createdump (WAIT_FOR_DUMP=0)")
		return
	}
	r.Close()
	p.Wait()
}

func createdumpMain(cfg config) int {
	setProcessName("createdump")
	var pid int
	fmt.Sscan(os.Getenv(targetEnv), &pid)
	if pid <= 0 {
		fmt.Fprintln(os.Stderr, "[createdump] no target pid")
		return 1
	}
	progress := os.NewFile(3, "progress")
	if !createDump(cfg, pid, false, progress) {
		return 1
	}
	return 0
}

func statusf(format string, a ...any) { fmt.Printf("[createdump] "+format, a...) }

// createDump writes the crash report and the dump for process pid.
// stopEarly aborts the dump after its first chunk (self writer with
// WAIT_FOR_DUMP=0); progress, when not nil, gets one byte after the first
// chunk.
func createDump(cfg config, pid int, stopEarly bool, progress *os.File) bool {
	start := time.Now()
	facts := gatherProcess(pid)
	statusf("Gathering state for process %d %s\n", pid, facts.comm)
	statusf("Crashing thread %04x signal %d (%04x)\n", pid, sigABRT, sigABRT)
	host, _ := os.Hostname()
	name, err := expandDumpName(cfg.DumpNamePattern, dumpNameVars{PID: pid, Exe: facts.comm, Hostname: host, Time: time.Now().Unix()})
	if err != nil {
		fmt.Fprintf(os.Stderr, "[createdump] %v\n", err)
		return false
	}
	if cfg.CrashReport || cfg.CrashReportOnly {
		rep := name + ".crashreport.json"
		statusf("Writing crash report to file %s\n", rep)
		if err := writeFileInPlace(rep, buildCrashReport(cfg, facts).render()); err != nil {
			fmt.Fprintf(os.Stderr, "[createdump] Writing the crash report file FAILED: %v\n", err)
			os.Remove(rep)
		} else {
			statusf("Crash report successfully written\n")
		}
	}
	if cfg.CrashReportOnly || !cfg.EnableDump {
		signalProgress(progress)
		return true
	}
	statusf("Writing %s to file %s\n", dumpTypeNames[cfg.DumpType], name)
	proc := facts.core(pid)
	layout := planCore(proc, cfg.DumpSize)
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		fmt.Fprintf(os.Stderr, "[createdump] Could not create output file '%s': %v\n", name, err)
		signalProgress(progress)
		return false
	}
	// The hash of what was written, in the log: the e2e's proof that a
	// retrieved dump holds exactly these bytes (not a line real createdump prints).
	sum := sha256.New()
	pw := &pacer{w: io.MultiWriter(f, sum), chunk: cfg.ChunkSize, delay: cfg.ChunkDelay}
	if stopEarly {
		pw.abortAfter = uint64(cfg.ChunkSize)
	}
	if progress != nil {
		pw.onFirstChunk = func() { signalProgress(progress) }
	}
	err = writeCore(pw, layout, proc)
	if err == nil {
		err = pw.flush()
	}
	if err == errAbortedMidDump {
		fmt.Fprintf(os.Stderr, "[createdump] stopped after %d bytes on purpose; the file stays open until the process dies\n", pw.written)
		return false // leave f open: the process is about to abort
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "[createdump] Error writing data to dump file: %v\n", err)
		f.Close()
		return false
	}
	if cfg.HoldOpen > 0 {
		time.Sleep(cfg.HoldOpen)
	}
	if err := f.Close(); err != nil {
		fmt.Fprintf(os.Stderr, "[createdump] close: %v\n", err)
		return false
	}
	statusf("Written %d bytes (%d pages) to core file\n", pw.written, pw.written/pageSize)
	fmt.Printf("[emulator] dump %s: %d bytes, sha256 %x\n", name, pw.written, sum.Sum(nil))
	statusf("Target process is alive\n")
	statusf("Dump successfully written in %dms\n", time.Since(start).Milliseconds())
	return true
}

func signalProgress(f *os.File) {
	if f != nil {
		f.Write([]byte{1})
		f.Close()
	}
}

// writeFileInPlace writes b with the runtime's open flags and mode.
func writeFileInPlace(path string, b []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
