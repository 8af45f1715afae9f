// Package pair decides which crash report belongs to which dump: the step
// between claim and upload that gives a .NET dump its own
// <dump>.crashreport.json. createdump writes the report, closes it, then
// writes the dump, both in place with O_TRUNC, so in a directory shared by
// replicas a second crash of the same name replaces the first one's report
// before the dump is done. A name therefore proves nothing; this package
// pairs only on proof:
//
//   - writer: one process, the same PID with the same start time, held
//     both files open for writing when the agent claimed them;
//   - thread: the report's crashed thread (native_thread_id, ctx.IP,
//     ctx.SP) is one of the dump's NT_PRSTATUS threads, registers and all.
//
// A report that no dump proves, or that two dumps prove, is paired with
// none. Everything here is pure and safe for concurrent use.
package pair

import (
	"strconv"
	"strings"

	"github.com/crashdump-io/crashdump/collector/inspect"
)

// Basis names the proof a pairing rests on.
const (
	BasisWriter = "writer" // the same writer process wrote both
	BasisThread = "thread" // the report's crashed thread is in the core
)

// Process identifies one process for its lifetime: PIDs are recycled, a
// PID with its start time (clock ticks after boot) is not.
type Process struct {
	PID       int
	StartTime uint64
}

// Report is the evidence about one crash report.
type Report struct {
	// Writers are the processes that held the report open for writing at
	// claim time (often none: createdump closes it quickly).
	Writers []Process
	// Thread is the crashed thread as the report names it; ok false when
	// the report names none or its values do not parse.
	Thread   Thread
	ThreadOK bool
}

// Thread is one thread's ID and registers.
type Thread struct {
	TID    uint64
	IP, SP uint64
}

// Dump is the evidence about one dump.
type Dump struct {
	Writers []Process
	// Threads are the dump's NT_PRSTATUS threads with registers (ELF cores
	// on architectures whose layout inspect knows).
	Threads []Thread
}

// ReportThread reads the crashed thread of a parsed report. A thread whose
// IP and SP are both zero proves nothing (createdump writes zeros when it
// has no context) and is not returned.
func ReportThread(cr *inspect.CrashReport) (Thread, bool) {
	if cr == nil {
		return Thread{}, false
	}
	tid, ok1 := hex(cr.CrashedThreadID)
	ip, ok2 := hex(cr.CrashedThreadIP)
	sp, ok3 := hex(cr.CrashedThreadSP)
	if !ok1 || !ok2 || !ok3 || (ip == 0 && sp == 0) {
		return Thread{}, false
	}
	return Thread{TID: tid, IP: ip, SP: sp}, true
}

// CoreThreads converts a core summary's registers.
func CoreThreads(cs *inspect.CoreSummary) []Thread {
	if cs == nil {
		return nil
	}
	out := make([]Thread, 0, len(cs.Registers))
	for _, r := range cs.Registers {
		if r.TID < 0 {
			continue
		}
		out = append(out, Thread{TID: uint64(r.TID), IP: r.IP, SP: r.SP})
	}
	return out
}

func hex(s string) (uint64, bool) {
	s = strings.TrimSpace(s)
	h, ok := strings.CutPrefix(strings.ToLower(s), "0x")
	if !ok || h == "" {
		return 0, false
	}
	v, err := strconv.ParseUint(h, 16, 64)
	return v, err == nil
}

// Prove returns the basis on which r belongs to d, or "" when nothing
// proves it. Writer identity needs a start time on both sides: a bare PID
// may have been recycled.
func Prove(r Report, d Dump) string {
	for _, rw := range r.Writers {
		if rw.StartTime == 0 {
			continue
		}
		for _, dw := range d.Writers {
			if dw == rw {
				return BasisWriter
			}
		}
	}
	if r.ThreadOK {
		for _, t := range d.Threads {
			if t == r.Thread {
				return BasisThread
			}
		}
	}
	return ""
}

// One returns the index of the only report among rs that d proves, with its
// basis, or -1 when none or more than one does: two reports proven by one
// dump mean the proof is not unique (identical registers), and a report
// attached wrongly is worse than none.
func One(d Dump, rs []Report) (int, string) {
	found, basis := -1, ""
	for i, r := range rs {
		if b := Prove(r, d); b != "" {
			if found >= 0 {
				return -1, ""
			}
			found, basis = i, b
		}
	}
	return found, basis
}
