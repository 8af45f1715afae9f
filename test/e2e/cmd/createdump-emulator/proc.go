package main

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
)

// processFacts is what createdump reads about its target from /proc.
type processFacts struct {
	pid, ppid, pgrp, sid int
	uid, gid             uint32
	comm, cmdline        string
	tids                 []int
	maps                 []mapping
	// stackEnd is the end of the [stack] mapping: where the main thread's
	// stack starts, randomised per process by ASLR.
	stackEnd uint64
}

func gatherProcess(pid int) processFacts {
	p := processFacts{pid: pid, comm: "unknown"}
	dir := fmt.Sprintf("/proc/%d", pid)
	if b, err := os.ReadFile(dir + "/comm"); err == nil {
		p.comm = strings.TrimSpace(string(b))
	}
	if b, err := os.ReadFile(dir + "/cmdline"); err == nil {
		p.cmdline = strings.TrimSpace(strings.ReplaceAll(string(b), "\x00", " "))
	}
	if b, err := os.ReadFile(dir + "/stat"); err == nil {
		// pid (comm) state ppid pgrp session ...
		s := string(b)
		if i := strings.LastIndexByte(s, ')'); i > 0 {
			f := strings.Fields(s[i+1:])
			if len(f) > 3 {
				p.ppid, _ = strconv.Atoi(f[1])
				p.pgrp, _ = strconv.Atoi(f[2])
				p.sid, _ = strconv.Atoi(f[3])
			}
		}
	}
	if b, err := os.ReadFile(dir + "/status"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			k, v, _ := strings.Cut(line, ":")
			f := strings.Fields(v)
			if len(f) == 0 {
				continue
			}
			n, _ := strconv.ParseUint(f[0], 10, 32)
			switch k {
			case "Uid":
				p.uid = uint32(n)
			case "Gid":
				p.gid = uint32(n)
			}
		}
	}
	if ents, err := os.ReadDir(dir + "/task"); err == nil {
		for _, e := range ents {
			if t, err := strconv.Atoi(e.Name()); err == nil {
				p.tids = append(p.tids, t)
			}
		}
		sort.Ints(p.tids)
	}
	if len(p.tids) == 0 {
		p.tids = []int{pid}
	}
	p.maps, _ = readMaps(dir + "/maps")
	p.stackEnd = stackEnd(dir + "/maps")
	return p
}

// registers gives plausible crash-time registers: an IP inside the first
// executable mapping and a stack pointer in the usual stack area.
func (p processFacts) registers() (ip, sp, bp uint64) {
	ip = 0x7f3a1c2b4d5e
	for _, m := range p.maps {
		if m.Flags&1 != 0 {
			ip = m.Start + min(0x1a2b3, m.End-m.Start-1)
			break
		}
	}
	sp = 0x7ffd5c3a1e40
	if p.stackEnd > 0x30000 {
		// Real registers differ between two processes of one image:
		// the stack is randomised, so the crash report's ctx.SP and the
		// core's NT_PRSTATUS name this process only, as createdump's do.
		sp = (p.stackEnd - 0x21e40) &^ 0xf
	}
	return ip, sp, sp + 0x60
}

// stackEnd returns the end address of the [stack] mapping in a maps file,
// 0 if there is none.
func stackEnd(path string) uint64 {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 6 || f[5] != "[stack]" {
			continue
		}
		_, hi, ok := strings.Cut(f[0], "-")
		if !ok {
			return 0
		}
		end, err := strconv.ParseUint(hi, 16, 64)
		if err != nil {
			return 0
		}
		return end
	}
	return 0
}

func (p processFacts) core(pid int) coreProcess {
	ip, sp, bp := p.registers()
	return coreProcess{
		PID: int32(p.pid), PPID: int32(p.ppid), PGRP: int32(p.pgrp), SID: int32(p.sid),
		UID: p.uid, GID: p.gid,
		Comm: p.comm, Args: p.cmdline,
		IP: ip, SP: sp, BP: bp,
		MemPath: fmt.Sprintf("/proc/%d/mem", pid),
		Maps:    p.maps,
		Seed:    uint64(time.Now().UnixNano()) ^ uint64(pid)<<32,
	}
}

// buildCrashReport describes the crash the way createdump does for an
// unhandled managed exception: the crashing (main) thread is managed and
// carries the exception; the other threads are listed with one frame each.
func buildCrashReport(cfg config, p processFacts) crashReport {
	ip, sp, bp := p.registers()
	exe := filepath.Base(p.comm)
	const coreLib = 0x7f3a10a00000
	const appDll = 0x7f3a0ff40000
	const libcoreclr = 0x7f3a1c000000
	const libc = 0x7f3a1d800000
	r := crashReport{
		Architecture:   currentArch().name,
		RuntimeVersion: cfg.RuntimeVersion,
		ProcessName:    exe,
	}
	for i, tid := range p.tids {
		t := crashThread{NativeThreadID: uint64(tid), IP: ip + uint64(i)*0x40, SP: sp - uint64(i)*0x200000, BP: bp - uint64(i)*0x200000}
		if tid == p.pid {
			t.IsManaged = true
			t.Crashed = true
			t.ManagedExceptionObject = 0x7f3a08c1e2a8
			t.ManagedExceptionType = cfg.ExceptionType
			t.ManagedExceptionHResult = cfg.HResult
			t.Frames = []stackFrame{
				{IsManaged: true, ModuleAddress: coreLib, StackPointer: sp + 0x10, NativeAddress: coreLib + 0x2c4e1a, NativeOffset: 0x3a,
					Token: 0x6000a1c, ILOffset: 0x0, MethodName: "System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw()",
					ModuleName: "System.Private.CoreLib.dll", Timestamp: 0xe0a1c2d3, SizeOfImage: 0xf9a000, GUID: "3f1b6c2e-8d4a-4b7e-9c1f-2a6e5d7b8c90"},
				{IsManaged: true, ModuleAddress: appDll, StackPointer: sp + 0x80, NativeAddress: appDll + 0x1b7c, NativeOffset: 0x4c,
					Token: 0x6000001, ILOffset: 0xb, MethodName: "Program.<Main>$(System.String[])",
					ModuleName: exe + ".dll", Timestamp: 0xb2c3d4e5, SizeOfImage: 0xc000, GUID: "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d"},
				{IsManaged: false, ModuleAddress: libcoreclr, StackPointer: sp + 0x120, NativeAddress: libcoreclr + 0x4a1f2c, NativeOffset: 0x4a1f2c,
					Symbol: "RunMain(MethodDesc*, short, int*, PtrArray**)", ModuleName: "libcoreclr.so"},
			}
		} else {
			t.IsManaged = i%2 == 1
			t.Frames = []stackFrame{
				{IsManaged: false, ModuleAddress: libc, StackPointer: t.SP, NativeAddress: libc + 0x8e2a9, NativeOffset: 0x8e2a9,
					Symbol: "__futex_abstimed_wait_common", ModuleName: "libc.so.6"},
			}
		}
		r.Threads = append(r.Threads, t)
	}
	return r
}
