package main

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// The dump is an ELF core file (ET_CORE), as createdump writes on Linux:
//
//	ELF header | program headers | PT_NOTE data | zero pad to 4 KiB | PT_LOAD data ...
//
// The PT_NOTE segment holds NT_PRSTATUS (signal SIGABRT, the crashing PID as
// the process sees it, registers) and NT_PRPSINFO (pid, fname = comm,
// psargs = command line), so tools that summarise cores (readelf -n, the
// agent's ELF summary, debug/elf) read real facts. The PT_LOAD segments are
// the crashing process's own readable memory (from /proc/<pid>/mem, like
// gcore) up to the size budget of the dump type, then deterministic filler
// (a quarter of each page pseudo-random, the rest zero: it compresses like a
// real dump) so that the file has exactly the requested size.

const (
	pageSize      = 4096
	elfHeaderSize = 64
	phdrSize      = 56
	ntPRSTATUS    = 1
	ntPRPSINFO    = 3
	sigABRT       = 6
	maxRealSegs   = 40
	maxFillerSeg  = 64 << 20
	fillerVAddr   = 0x7e0000000000
)

type arch struct {
	machine   uint16 // e_machine
	prstatus  int    // sizeof(struct elf_prstatus)
	regOffset int    // offset of pr_reg in elf_prstatus
	nregs     int
	ipReg     int // index of the instruction pointer in pr_reg
	spReg     int
	bpReg     int
	name      string // crash report "architecture"
}

func currentArch() arch {
	switch runtime.GOARCH {
	case "arm64":
		// user_pt_regs: x0..x30, sp, pc, pstate; fp is x29
		return arch{machine: 183, prstatus: 392, regOffset: 112, nregs: 34, ipReg: 32, spReg: 31, bpReg: 29, name: "arm64"}
	default:
		// user_regs_struct: r15 r14 r13 r12 rbp rbx r11 r10 r9 r8 rax rcx rdx rsi rdi orig_rax rip cs eflags rsp ss fs_base gs_base ds es fs gs
		return arch{machine: 62, prstatus: 336, regOffset: 112, nregs: 27, ipReg: 16, spReg: 19, bpReg: 4, name: "amd64"}
	}
}

// coreProcess is what the core describes.
type coreProcess struct {
	PID, PPID, PGRP, SID int32 // as seen inside the process's PID namespace
	UID, GID             uint32
	Comm                 string // fname (at most 15 bytes are kept)
	Args                 string // psargs (at most 79 bytes are kept)
	IP, SP, BP           uint64
	MemPath              string    // /proc/<pid>/mem to copy memory from; "" for filler only
	Maps                 []mapping // readable mappings of the process
	Seed                 uint64    // filler seed; different crashes give different files
}

type mapping struct {
	Start, End uint64
	Flags      uint32 // PF_R=4 PF_W=2 PF_X=1
}

type segment struct {
	vaddr, size uint64
	flags       uint32
	real        bool // copied from MemPath, else filler
}

// readMaps parses /proc/<pid>/maps and keeps the mappings a core would hold:
// readable, not [vvar]/[vsyscall]-like kernel pages.
func readMaps(path string) ([]mapping, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []mapping
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 {
			continue
		}
		perms := fields[1]
		if perms[0] != 'r' {
			continue
		}
		if len(fields) >= 6 && strings.HasPrefix(fields[5], "[v") { // [vvar] [vdso] [vsyscall] [vvar_vclock]
			continue
		}
		lo, hi, ok := strings.Cut(fields[0], "-")
		if !ok {
			continue
		}
		start, err1 := strconv.ParseUint(lo, 16, 64)
		end, err2 := strconv.ParseUint(hi, 16, 64)
		if err1 != nil || err2 != nil || end <= start {
			continue
		}
		var fl uint32 = 4
		if perms[1] == 'w' {
			fl |= 2
		}
		if perms[2] == 'x' {
			fl |= 1
		}
		out = append(out, mapping{Start: start, End: end, Flags: fl})
	}
	return out, sc.Err()
}

// planSegments chooses PT_LOAD segments whose sizes add up to exactly budget
// bytes: the process's own mappings first, then filler.
func planSegments(maps []mapping, budget uint64) []segment {
	var segs []segment
	left := budget
	for _, m := range maps {
		if left == 0 || len(segs) >= maxRealSegs {
			break
		}
		n := m.End - m.Start
		if n > left {
			n = left
		}
		segs = append(segs, segment{vaddr: m.Start, size: n, flags: m.Flags, real: true})
		left -= n
	}
	va := uint64(fillerVAddr)
	for left > 0 {
		n := uint64(maxFillerSeg)
		if n > left {
			n = left
		}
		segs = append(segs, segment{vaddr: va, size: n, flags: 6})
		va += n + pageSize // leave a hole between filler segments
		left -= n
	}
	return segs
}

func (p coreProcess) notes(a arch) []byte {
	le := binary.LittleEndian
	st := make([]byte, a.prstatus)
	le.PutUint32(st[0:], sigABRT)  // pr_info.si_signo
	le.PutUint16(st[12:], sigABRT) // pr_cursig
	le.PutUint32(st[32:], uint32(p.PID))
	le.PutUint32(st[36:], uint32(p.PPID))
	le.PutUint32(st[40:], uint32(p.PGRP))
	le.PutUint32(st[44:], uint32(p.SID))
	reg := func(i int, v uint64) { le.PutUint64(st[a.regOffset+8*i:], v) }
	reg(a.ipReg, p.IP)
	reg(a.spReg, p.SP)
	reg(a.bpReg, p.BP)

	ps := make([]byte, 136)        // struct elf_prpsinfo (x86_64 and arm64)
	ps[0] = 0                      // pr_state: running
	ps[1] = 'R'                    // pr_sname
	le.PutUint64(ps[8:], 0x400600) // pr_flag
	le.PutUint32(ps[16:], p.UID)
	le.PutUint32(ps[20:], p.GID)
	le.PutUint32(ps[24:], uint32(p.PID))
	le.PutUint32(ps[28:], uint32(p.PPID))
	le.PutUint32(ps[32:], uint32(p.PGRP))
	le.PutUint32(ps[36:], uint32(p.SID))
	copy(ps[40:40+15], p.Comm)
	copy(ps[56:56+79], p.Args)

	var out []byte
	out = appendNote(out, "CORE", ntPRSTATUS, st)
	out = appendNote(out, "CORE", ntPRPSINFO, ps)
	return out
}

func appendNote(b []byte, name string, typ uint32, desc []byte) []byte {
	le := binary.LittleEndian
	var h [12]byte
	le.PutUint32(h[0:], uint32(len(name)+1))
	le.PutUint32(h[4:], uint32(len(desc)))
	le.PutUint32(h[8:], typ)
	b = append(b, h[:]...)
	b = append(b, name...)
	b = append(b, 0)
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	b = append(b, desc...)
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

// coreLayout is a fully planned core file.
type coreLayout struct {
	header []byte // ELF header + program headers + notes + padding, len is a page multiple
	segs   []segment
}

// planCore lays out a core file of exactly size bytes (rounded up to a page
// multiple and to at least two pages).
func planCore(p coreProcess, size uint64) coreLayout {
	a := currentArch()
	notes := p.notes(a)
	if size < 2*pageSize {
		size = 2 * pageSize
	}
	size = (size + pageSize - 1) / pageSize * pageSize
	// The header must fit in the first page(s); planSegments bounds the phnum.
	var segs []segment
	var hdrLen uint64
	for phnum := 2; ; {
		hdrLen = uint64(elfHeaderSize + phdrSize*phnum + len(notes))
		hdrLen = (hdrLen + pageSize - 1) / pageSize * pageSize
		budget := uint64(0)
		if size > hdrLen {
			budget = size - hdrLen
		}
		segs = planSegments(p.Maps, budget)
		if 1+len(segs) <= phnum {
			break
		}
		phnum = 1 + len(segs)
	}
	phnum := 1 + len(segs)
	le := binary.LittleEndian
	h := make([]byte, hdrLen)
	copy(h, []byte{0x7f, 'E', 'L', 'F', 2 /*64-bit*/, 1 /*LE*/, 1 /*EV_CURRENT*/, 0 /*SYSV*/})
	le.PutUint16(h[16:], 4) // ET_CORE
	le.PutUint16(h[18:], a.machine)
	le.PutUint32(h[20:], 1)
	le.PutUint64(h[32:], elfHeaderSize) // e_phoff
	le.PutUint16(h[52:], elfHeaderSize)
	le.PutUint16(h[54:], phdrSize)
	le.PutUint16(h[56:], uint16(phnum))
	notesOff := uint64(elfHeaderSize + phdrSize*phnum)
	ph := func(i int, typ, flags uint32, off, vaddr, filesz, align uint64) {
		o := elfHeaderSize + phdrSize*i
		le.PutUint32(h[o:], typ)
		le.PutUint32(h[o+4:], flags)
		le.PutUint64(h[o+8:], off)
		le.PutUint64(h[o+16:], vaddr)
		le.PutUint64(h[o+24:], 0) // p_paddr
		le.PutUint64(h[o+32:], filesz)
		le.PutUint64(h[o+40:], filesz) // p_memsz
		le.PutUint64(h[o+48:], align)
	}
	ph(0, 4 /*PT_NOTE*/, 0, notesOff, 0, uint64(len(notes)), 4)
	off := hdrLen
	for i, s := range segs {
		ph(i+1, 1 /*PT_LOAD*/, s.flags, off, s.vaddr, s.size, pageSize)
		off += s.size
	}
	copy(h[notesOff:], notes)
	return coreLayout{header: h, segs: segs}
}

// Size is the size of the file the layout describes.
func (l coreLayout) Size() uint64 {
	n := uint64(len(l.header))
	for _, s := range l.segs {
		n += s.size
	}
	return n
}

// pacer writes in chunks of chunk bytes, sleeping delay after each.
type pacer struct {
	w     io.Writer
	chunk int
	delay time.Duration
	buf   []byte
	// abortAfter, when > 0, makes write fail once that many bytes went out
	// (the writer is "killed" mid-dump).
	abortAfter uint64
	written    uint64
	// onFirstChunk runs once, after the first chunk reached the file.
	onFirstChunk func()
}

var errAbortedMidDump = fmt.Errorf("dump writing interrupted on purpose")

func (p *pacer) flush() error {
	if len(p.buf) == 0 {
		return nil
	}
	n, err := p.w.Write(p.buf)
	p.written += uint64(n)
	p.buf = p.buf[:0]
	if err != nil {
		return err
	}
	if p.onFirstChunk != nil {
		p.onFirstChunk()
		p.onFirstChunk = nil
	}
	if p.abortAfter > 0 && p.written >= p.abortAfter {
		return errAbortedMidDump
	}
	if p.delay > 0 {
		time.Sleep(p.delay)
	}
	return nil
}

func (p *pacer) Write(b []byte) (int, error) {
	total := len(b)
	for len(b) > 0 {
		room := p.chunk - len(p.buf)
		n := min(room, len(b))
		p.buf = append(p.buf, b[:n]...)
		b = b[n:]
		if len(p.buf) == p.chunk {
			if err := p.flush(); err != nil {
				return total - len(b), err
			}
		}
	}
	return total, nil
}

// writeCore streams the layout to w.
func writeCore(w io.Writer, l coreLayout, p coreProcess) error {
	if _, err := w.Write(l.header); err != nil {
		return err
	}
	var mem *os.File
	if p.MemPath != "" {
		mem, _ = os.Open(p.MemPath) // unreadable memory falls back to filler
		if mem != nil {
			defer mem.Close()
		}
	}
	fill := filler{state: p.Seed | 1}
	page := make([]byte, pageSize)
	for _, s := range l.segs {
		for off := uint64(0); off < s.size; off += pageSize {
			n := min(uint64(pageSize), s.size-off)
			ok := false
			if s.real && mem != nil {
				if k, err := mem.ReadAt(page[:n], int64(s.vaddr+off)); err == nil && uint64(k) == n {
					ok = true
				}
			}
			if !ok {
				fill.page(page[:n])
			}
			if _, err := w.Write(page[:n]); err != nil {
				return err
			}
		}
	}
	return nil
}

// filler makes pages whose first quarter is xorshift64* output and the rest
// zeros.
type filler struct{ state uint64 }

func (f *filler) page(b []byte) {
	clear(b)
	q := len(b) / 4
	for i := 0; i+8 <= q; i += 8 {
		f.state ^= f.state >> 12
		f.state ^= f.state << 25
		f.state ^= f.state >> 27
		binary.LittleEndian.PutUint64(b[i:], f.state*2685821657736338717)
	}
}
