package inspect

import (
	"bufio"
	"bytes"
	"debug/elf"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// Errors returned by ReadCore. Anything else it returns wraps one of these.
var (
	// ErrNotCore means the file is not an ELF core: not ELF at all, or an ELF
	// file whose e_type is not ET_CORE.
	ErrNotCore = errors.New("inspect: not an ELF core file")
	// ErrMalformedCore means the file claims to be an ELF core but its
	// headers or notes cannot be read (damaged, truncated or crafted).
	ErrMalformedCore = errors.New("inspect: malformed ELF core file")
)

// Limits applied by ReadCore. They bound the work and memory spent on one
// core whatever its headers claim.
const (
	// MaxCoreNoteBytes caps how many bytes of PT_NOTE segments are examined.
	// A kernel core carries roughly 4 KiB of notes per thread plus the mapped
	// file list, so this covers thousands of threads.
	MaxCoreNoteBytes = 16 << 20
	// MaxThreads caps CoreSummary.Threads.
	MaxThreads = 4096

	// maxProgHeaders caps how many program headers are scanned. Cores of
	// processes with more than 65535 mappings use PN_XNUM; 2M entries is far
	// beyond vm.max_map_count defaults and still only ~112 MiB to scan.
	maxProgHeaders = 1 << 21
	// maxPhentsize rejects absurd program header entry sizes.
	maxPhentsize = 1024
	// maxNoteSegments caps how many PT_NOTE segments are visited (kernels,
	// gdb and createdump all write one).
	maxNoteSegments = 64
	// maxAuxvBytes caps the auxiliary vector read (a real one is < 1 KiB).
	maxAuxvBytes = 64 << 10
	// maxPrpsinfoBytes caps the process info note read (136 bytes on 64-bit).
	maxPrpsinfoBytes = 1024
	// maxFileEntries caps the NT_FILE entries walked looking for AT_ENTRY.
	maxFileEntries = 1 << 20
	// psargsSize is ELF_PRARGSZ, the size of elf_prpsinfo.pr_psargs.
	psargsSize = 80
	// fnameSize is the size of elf_prpsinfo.pr_fname.
	fnameSize = 16
)

// Note types and auxiliary vector tags that debug/elf does not define.
const (
	ntAUXV    = 6
	ntSIGINFO = 0x53494749 // "SIGI"
	ntFILE    = 0x46494c45 // "FILE"

	atNULL   = 0
	atENTRY  = 9
	atEXECFN = 31

	pnXNUM = 0xffff
)

// CoreSummary is what an ELF core file says about the process it was taken
// from. Every field is best effort; zero values mean "not recorded".
type CoreSummary struct {
	// Signal is the signal that caused the dump: pr_cursig of the first
	// NT_PRSTATUS (the kernel writes the dumping thread first), else si_signo
	// of the first NT_SIGINFO. A core taken with gcore from a running
	// process may report SIGSTOP (gdb's attach stop) or 0.
	Signal     int    `json:"signal"`
	SignalName string `json:"signalName,omitempty"`
	// PID is pr_pid from NT_PRPSINFO: the process ID inside the crashed
	// process's PID namespace (1 for most containers), not the host PID.
	PID int `json:"pid,omitempty"`
	// Exe is the best available path of the executable: the AT_EXECFN string
	// read from the core's memory when it is absolute, else the NT_FILE
	// mapping that contains the entry point, else a relative AT_EXECFN, else
	// pr_fname (the kernel's 15-character comm).
	Exe string `json:"exe,omitempty"`
	// Args is pr_psargs: the command line with NULs turned into spaces. The
	// kernel keeps only the first 79 bytes; gdb attaching to a running
	// process records only argv[0].
	Args string `json:"args,omitempty"`
	// ArgsTruncated is set when pr_psargs was full, so the command line may
	// have continued beyond what the core recorded.
	ArgsTruncated bool `json:"argsTruncated,omitempty"`
	// Threads are the thread IDs (pr_pid) of the NT_PRSTATUS notes, in file
	// order, at most MaxThreads of them.
	Threads []int `json:"threads,omitempty"`
	// ThreadCount is the number of NT_PRSTATUS notes seen, which is more
	// than len(Threads) when the list was capped.
	ThreadCount int `json:"threadCount,omitempty"`
	// Registers are the instruction and stack pointers of each NT_PRSTATUS
	// thread, in file order (at most MaxThreads), on the architectures
	// whose pr_reg layout is known (x86_64, aarch64); empty elsewhere. They
	// prove which crash report belongs to the core: a report names its
	// crashed thread with the same TID, IP and SP.
	Registers []ThreadRegisters `json:"-"`
	// Machine is the architecture in uname -m spelling ("x86_64", "aarch64").
	Machine string `json:"machine,omitempty"`
	// UID and GID are the real user and group IDs from NT_PRPSINFO, as seen
	// in the user namespace of whoever wrote the core.
	UID *int `json:"uid,omitempty"`
	GID *int `json:"gid,omitempty"`
	// Truncated is set when the file ends before data its program headers
	// describe: the dump was cut short (disk full, writer killed).
	Truncated bool `json:"truncated,omitempty"`
}

// ThreadRegisters is one thread's IP and SP as its NT_PRSTATUS recorded
// them. TID is pr_pid, in the crashed process's PID namespace.
type ThreadRegisters struct {
	TID    int
	IP, SP uint64
}

// regOffsets returns where pr_reg's instruction and stack pointers sit in
// an NT_PRSTATUS descriptor (struct elf_prstatus: pr_reg starts at 112 on
// 64-bit Linux), or ok false for an architecture whose layout is not known.
func regOffsets(m elf.Machine, is64 bool) (ip, sp uint64, ok bool) {
	if !is64 {
		return 0, 0, false
	}
	switch m {
	case elf.EM_X86_64:
		// user_regs_struct: r15 … orig_rax (16 registers), rip, cs,
		// eflags, rsp.
		return 112 + 16*8, 112 + 19*8, true
	case elf.EM_AARCH64:
		// user_pt_regs: x0…x30, sp, pc.
		return 112 + 32*8, 112 + 31*8, true
	}
	return 0, 0, false
}

// ReadCore summarises the ELF core file r of the given size. It reads only
// the ELF header, the program headers, at most MaxCoreNoteBytes of notes and
// one short string from the core's memory, so it is cheap even for
// multi-gigabyte dumps.
//
// Errors wrap ErrNotCore when the file is not an ELF core and
// ErrMalformedCore when it is one that cannot be read. A core cut short
// after its notes still yields a summary, with Truncated set.
func ReadCore(r io.ReaderAt, size int64) (*CoreSummary, error) {
	c, err := openCore(r, size)
	if err != nil {
		return nil, err
	}
	sum := &CoreSummary{Machine: machineName(c.machine, c.is64, c.order)}

	var notes []segment
	err = c.progs(func(p segment) bool {
		if p.typ == elf.PT_NOTE && len(notes) < maxNoteSegments {
			notes = append(notes, p)
		}
		if end, ok := addU64(p.off, p.filesz); !ok || end > uint64(c.size) {
			sum.Truncated = true
		}
		return true
	})
	if err != nil {
		return nil, err
	}
	if c.phTruncated {
		sum.Truncated = true
	}

	st := noteState{}
	budget := uint64(MaxCoreNoteBytes)
	for _, seg := range notes {
		if budget == 0 {
			break
		}
		used, cut := c.scanNotes(seg, budget, &st, sum)
		budget -= used
		if cut {
			sum.Truncated = true
		}
	}
	if !st.sawPrstatus && !st.sawPrpsinfo && !st.sawAuxv {
		return nil, fmt.Errorf("%w: no process notes found", ErrMalformedCore)
	}

	sum.Signal = st.cursig
	if sum.Signal == 0 {
		sum.Signal = st.siginfoSigno
	}
	sum.SignalName = signalName(sum.Signal, c.machine)
	sum.Exe = c.exe(&st)
	return sum, nil
}

// coreFile is an opened ELF core: its byte order, word size and where its
// program headers are.
type coreFile struct {
	r       io.ReaderAt
	size    int64
	order   binary.ByteOrder
	is64    bool
	machine elf.Machine

	phoff, phnum, phentsize uint64
	phTruncated             bool // the program header table runs past EOF
}

// segment is the part of a program header ReadCore uses.
type segment struct {
	typ                elf.ProgType
	off, vaddr, filesz uint64
	align              uint64
}

func openCore(r io.ReaderAt, size int64) (*coreFile, error) {
	if size < 0 {
		return nil, fmt.Errorf("%w: negative size", ErrNotCore)
	}
	var hdr [64]byte
	n := readUpTo(r, 0, hdr[:min(int64(len(hdr)), size)])
	h := hdr[:n]
	if !bytes.HasPrefix(h, []byte(elf.ELFMAG)) {
		return nil, fmt.Errorf("%w: no ELF magic", ErrNotCore)
	}
	if len(h) < 18 {
		return nil, fmt.Errorf("%w: ELF header cut short", ErrNotCore)
	}
	c := &coreFile{r: r, size: size}
	switch elf.Data(h[elf.EI_DATA]) {
	case elf.ELFDATA2LSB:
		c.order = binary.LittleEndian
	case elf.ELFDATA2MSB:
		c.order = binary.BigEndian
	default:
		return nil, fmt.Errorf("%w: unknown ELF byte order %d", ErrNotCore, h[elf.EI_DATA])
	}
	if t := elf.Type(c.order.Uint16(h[16:18])); t != elf.ET_CORE {
		return nil, fmt.Errorf("%w: ELF type %v", ErrNotCore, t)
	}

	var minEnt uint64
	var shoff, shentsize uint64
	switch elf.Class(h[elf.EI_CLASS]) {
	case elf.ELFCLASS64:
		if len(h) < 64 {
			return nil, fmt.Errorf("%w: ELF header cut short", ErrMalformedCore)
		}
		c.is64 = true
		c.phoff = c.order.Uint64(h[32:40])
		shoff = c.order.Uint64(h[40:48])
		c.phentsize = uint64(c.order.Uint16(h[54:56]))
		c.phnum = uint64(c.order.Uint16(h[56:58]))
		shentsize = uint64(c.order.Uint16(h[58:60]))
		minEnt = 56
	case elf.ELFCLASS32:
		if len(h) < 52 {
			return nil, fmt.Errorf("%w: ELF header cut short", ErrMalformedCore)
		}
		c.phoff = uint64(c.order.Uint32(h[28:32]))
		shoff = uint64(c.order.Uint32(h[32:36]))
		c.phentsize = uint64(c.order.Uint16(h[42:44]))
		c.phnum = uint64(c.order.Uint16(h[44:46]))
		shentsize = uint64(c.order.Uint16(h[46:48]))
		minEnt = 32
	default:
		return nil, fmt.Errorf("%w: unknown ELF class %d", ErrMalformedCore, h[elf.EI_CLASS])
	}
	c.machine = elf.Machine(c.order.Uint16(h[18:20]))

	if c.phnum == pnXNUM && shoff != 0 {
		// More program headers than e_phnum can hold: the real count is in
		// sh_info of section header 0 (createdump and the kernel both do this
		// for processes with many mappings).
		infoOff, infoEnd := uint64(44), uint64(48) // Elf64_Shdr.sh_info
		if !c.is64 {
			infoOff, infoEnd = 28, 32 // Elf32_Shdr.sh_info
		}
		if shentsize < infoEnd {
			return nil, fmt.Errorf("%w: section header entry size %d", ErrMalformedCore, shentsize)
		}
		b, err := c.read(shoff+infoOff, 4)
		if err != nil {
			return nil, fmt.Errorf("%w: extended program header count: %v", ErrMalformedCore, err)
		}
		c.phnum = uint64(c.order.Uint32(b))
	}
	if c.phnum == 0 {
		return nil, fmt.Errorf("%w: no program headers", ErrMalformedCore)
	}
	if c.phentsize < minEnt || c.phentsize > maxPhentsize {
		return nil, fmt.Errorf("%w: program header entry size %d", ErrMalformedCore, c.phentsize)
	}
	if c.phnum > maxProgHeaders {
		c.phnum = maxProgHeaders
	}
	return c, nil
}

// progs calls fn for each program header that lies inside the file, until
// fn returns false. Entries are streamed, so memory does not depend on the
// number of headers.
func (c *coreFile) progs(fn func(segment) bool) error {
	if c.phoff >= uint64(c.size) {
		c.phTruncated = true
		return fmt.Errorf("%w: program headers beyond end of file", ErrMalformedCore)
	}
	n := c.phnum
	if avail := (uint64(c.size) - c.phoff) / c.phentsize; avail < n {
		n = avail
		c.phTruncated = true
	}
	if n == 0 {
		return fmt.Errorf("%w: program headers beyond end of file", ErrMalformedCore)
	}
	br := sectionReader(c.r, c.phoff, n*c.phentsize, 32<<10)
	var buf [56]byte
	ent := buf[:32]
	if c.is64 {
		ent = buf[:56]
	}
	for i := uint64(0); i < n; i++ {
		if _, err := io.ReadFull(br, ent); err != nil {
			c.phTruncated = true
			return nil
		}
		if _, err := br.Discard(int(c.phentsize) - len(ent)); err != nil {
			c.phTruncated = true
			return nil
		}
		var p segment
		if c.is64 {
			p = segment{
				typ:    elf.ProgType(c.order.Uint32(ent[0:4])),
				off:    c.order.Uint64(ent[8:16]),
				vaddr:  c.order.Uint64(ent[16:24]),
				filesz: c.order.Uint64(ent[32:40]),
				align:  c.order.Uint64(ent[48:56]),
			}
		} else {
			p = segment{
				typ:    elf.ProgType(c.order.Uint32(ent[0:4])),
				off:    uint64(c.order.Uint32(ent[4:8])),
				vaddr:  uint64(c.order.Uint32(ent[8:12])),
				filesz: uint64(c.order.Uint32(ent[16:20])),
				align:  uint64(c.order.Uint32(ent[28:32])),
			}
		}
		if !fn(p) {
			return nil
		}
	}
	return nil
}

// noteState collects what the notes said before it is turned into a
// CoreSummary.
type noteState struct {
	sawPrstatus, sawPrpsinfo, sawAuxv, sawSiginfo bool

	cursig       int
	siginfoSigno int
	fname        string
	execfn       uint64 // AT_EXECFN: address of the execve() path string
	entry        uint64 // AT_ENTRY: the program's entry point
	fileNote     segment
	sawFile      bool
}

// scanNotes walks the notes of one PT_NOTE segment, examining at most budget
// bytes. It returns how many bytes it consumed and whether the segment was
// cut short by the end of the file.
func (c *coreFile) scanNotes(seg segment, budget uint64, st *noteState, sum *CoreSummary) (used uint64, cut bool) {
	start := seg.off
	if start >= uint64(c.size) {
		return 0, true
	}
	length := seg.filesz
	if avail := uint64(c.size) - start; length > avail {
		length = avail
		cut = true
	}
	if length > budget {
		length = budget
	}
	// Linux writes 4-byte aligned notes even in 64-bit cores; honour an
	// explicit 8-byte alignment, which is what the gABI asks for.
	align := uint64(4)
	if seg.align == 8 {
		align = 8
	}
	br := sectionReader(c.r, start, length, 32<<10)
	pos := uint64(0)
	var hdr [12]byte
	var name [16]byte
	for pos+12 <= length {
		if _, err := io.ReadFull(br, hdr[:]); err != nil {
			return pos, cut
		}
		namesz := uint64(c.order.Uint32(hdr[0:4]))
		descsz := uint64(c.order.Uint32(hdr[4:8]))
		typ := c.order.Uint32(hdr[8:12])
		// Offsets are relative to the segment start, which is where the
		// alignment applies. Both sizes are 32-bit, so none of this
		// overflows.
		nameOff := pos + 12
		descOff := alignUp(nameOff+namesz, align)
		descEnd := descOff + descsz
		if descEnd > length {
			// The note does not fit in what is left of the segment: the
			// segment was cut (by the end of the file or the budget) or
			// the note is garbage. Stop either way.
			return length, cut
		}
		nameBytes := name[:0]
		if namesz <= uint64(len(name)) {
			nameBytes = name[:namesz]
			if _, err := io.ReadFull(br, nameBytes); err != nil {
				return length, cut
			}
		}
		if !discard(br, descOff-nameOff-uint64(len(nameBytes))) {
			return length, cut
		}
		consumed := uint64(0)
		if string(bytes.TrimRight(nameBytes, "\x00")) == "CORE" {
			consumed = c.handleNote(br, typ, descsz, start+descOff, st, sum)
		}
		next := alignUp(descEnd, align)
		if next >= length || !discard(br, next-descOff-consumed) {
			return length, cut
		}
		pos = next
	}
	return length, cut
}

// handleNote decodes one CORE note whose descriptor starts at the reader's
// position (file offset fileOff) and returns how many descriptor bytes it
// read.
func (c *coreFile) handleNote(br *bufio.Reader, typ uint32, descsz, fileOff uint64, st *noteState, sum *CoreSummary) uint64 {
	switch {
	case typ == uint32(elf.NT_PRSTATUS):
		// elf_prstatus: elf_siginfo {si_signo, si_code, si_errno int32},
		// pr_cursig int16 at 12, then pr_sigpend and pr_sighold (longs),
		// then pr_pid: offset 32 on 64-bit, 24 on 32-bit.
		pidOff := uint64(24)
		if c.is64 {
			pidOff = 32
		}
		if descsz < pidOff+4 {
			return 0
		}
		var buf [384]byte
		d := buf[:pidOff+4]
		ipOff, spOff, regsKnown := regOffsets(c.machine, c.is64)
		if regsKnown && descsz >= max(ipOff, spOff)+8 {
			d = buf[:max(ipOff, spOff)+8]
		} else {
			regsKnown = false
		}
		if _, err := io.ReadFull(br, d); err != nil {
			return 0
		}
		if !st.sawPrstatus {
			st.cursig = int(int16(c.order.Uint16(d[12:14])))
		}
		st.sawPrstatus = true
		sum.ThreadCount++
		if len(sum.Threads) < MaxThreads {
			tid := int(int32(c.order.Uint32(d[pidOff:])))
			sum.Threads = append(sum.Threads, tid)
			if regsKnown {
				sum.Registers = append(sum.Registers, ThreadRegisters{TID: tid,
					IP: c.order.Uint64(d[ipOff:]), SP: c.order.Uint64(d[spOff:])})
			}
		}
		return uint64(len(d))

	case typ == uint32(elf.NT_PRPSINFO):
		if st.sawPrpsinfo || descsz > maxPrpsinfoBytes {
			return 0
		}
		d := make([]byte, descsz)
		if _, err := io.ReadFull(br, d); err != nil {
			return 0
		}
		if c.decodePrpsinfo(d, st, sum) {
			st.sawPrpsinfo = true
		}
		return descsz

	case typ == ntSIGINFO:
		// siginfo_t starts with si_signo (int32) on every architecture.
		if st.sawSiginfo || descsz < 4 {
			return 0
		}
		var d [4]byte
		if _, err := io.ReadFull(br, d[:]); err != nil {
			return 0
		}
		st.sawSiginfo = true
		st.siginfoSigno = int(int32(c.order.Uint32(d[:])))
		return 4

	case typ == ntAUXV:
		if st.sawAuxv {
			return 0
		}
		n := min(descsz, maxAuxvBytes)
		d := make([]byte, n)
		if _, err := io.ReadFull(br, d); err != nil {
			return 0
		}
		st.sawAuxv = true
		w := c.wordSize()
		for i := uint64(0); i+2*w <= n; i += 2 * w {
			tag, val := c.word(d[i:]), c.word(d[i+w:])
			if tag == atNULL {
				break
			}
			switch tag {
			case atEXECFN:
				st.execfn = val
			case atENTRY:
				st.entry = val
			}
		}
		return n

	case typ == ntFILE:
		// Only remember where it is: it is walked later, and only if the
		// entry point has to be looked up in it.
		if !st.sawFile {
			st.sawFile = true
			st.fileNote = segment{off: fileOff, filesz: descsz}
		}
		return 0
	}
	return 0
}

// decodePrpsinfo reads elf_prpsinfo. pr_psargs[80] is always the last member
// and pr_fname[16] sits right before it, preceded by pr_pid, pr_ppid, pr_pgrp
// and pr_sid; what lies between pr_flag and pr_pid is pr_uid and pr_gid,
// 32-bit on 64-bit ABIs and 16-bit or 32-bit on 32-bit ones. Working from the
// end keeps one decoder for all of these layouts:
//
//	64-bit (136 bytes): pr_flag @8, uid @16, gid @20, pid @24, fname @40, psargs @56
//	32-bit (124 bytes): pr_flag @4, uid16 @8, gid16 @10, pid @12, fname @28, psargs @44
func (c *coreFile) decodePrpsinfo(d []byte, st *noteState, sum *CoreSummary) bool {
	flagEnd := 8
	if c.is64 {
		flagEnd = 16
	}
	n := len(d)
	pidOff := n - psargsSize - fnameSize - 16
	if pidOff < flagEnd {
		return false
	}
	sum.PID = int(int32(c.order.Uint32(d[pidOff:])))
	switch ids := d[flagEnd:pidOff]; len(ids) {
	case 8:
		uid, gid := int(c.order.Uint32(ids[0:4])), int(c.order.Uint32(ids[4:8]))
		sum.UID, sum.GID = &uid, &gid
	case 4:
		uid, gid := int(c.order.Uint16(ids[0:2])), int(c.order.Uint16(ids[2:4]))
		sum.UID, sum.GID = &uid, &gid
	}
	st.fname = cleanString(cString(d[n-psargsSize-fnameSize : n-psargsSize]))

	// The kernel copies at most 79 bytes of the argument area, turns the
	// NULs separating arguments into spaces and terminates the string; gdb
	// does the same with strncpy. A string that fills all 79 bytes may have
	// been cut.
	args := d[n-psargsSize:]
	end := bytes.IndexByte(args, 0)
	if end < 0 {
		end = len(args)
	}
	sum.ArgsTruncated = end >= psargsSize-1
	sum.Args = cleanString(bytes.TrimRight(args[:end], " "))
	return true
}

// exe picks the best available executable path (see CoreSummary.Exe).
func (c *coreFile) exe(st *noteState) string {
	var execfn string
	if st.execfn != 0 {
		execfn = c.readMemString(st.execfn)
	}
	if strings.HasPrefix(execfn, "/") {
		return execfn
	}
	if st.entry != 0 && st.sawFile {
		if p := c.fileForAddress(st.fileNote, st.entry); p != "" {
			return p
		}
	}
	if execfn != "" {
		return execfn
	}
	return st.fname
}

// readMemString reads the NUL-terminated string at virtual address addr from
// the PT_LOAD segment that holds it, or returns "" if the core does not
// contain that memory.
func (c *coreFile) readMemString(addr uint64) string {
	var found segment
	ok := false
	_ = c.progs(func(p segment) bool {
		if p.typ == elf.PT_LOAD && addr >= p.vaddr && addr-p.vaddr < p.filesz {
			found, ok = p, true
			return false
		}
		return true
	})
	if !ok {
		return ""
	}
	rel := addr - found.vaddr
	off, okAdd := addU64(found.off, rel)
	if !okAdd || off >= uint64(c.size) {
		return ""
	}
	n := min(found.filesz-rel, maxString+1, uint64(c.size)-off)
	buf := make([]byte, n)
	buf = buf[:readUpTo(c.r, int64(off), buf)]
	end := bytes.IndexByte(buf, 0)
	if end <= 0 {
		// No terminator within PATH_MAX: not a path.
		return ""
	}
	return cleanString(buf[:end])
}

// fileForAddress walks the NT_FILE note (long count, long page_size,
// count × {start, end, file_ofs}, then count NUL-terminated names) and
// returns the name of the mapping that contains addr.
func (c *coreFile) fileForAddress(note segment, addr uint64) string {
	if note.off >= uint64(c.size) {
		return ""
	}
	length := min(note.filesz, uint64(c.size)-note.off)
	w := c.wordSize()
	if length < 2*w {
		return ""
	}
	br := sectionReader(c.r, note.off, length, 16<<10)
	var buf [24]byte
	if _, err := io.ReadFull(br, buf[:2*w]); err != nil {
		return ""
	}
	count := c.word(buf[:])
	if maxCount := (length - 2*w) / (3 * w); count > maxCount {
		count = maxCount
	}
	count = min(count, maxFileEntries)
	idx := uint64(0)
	found := false
	for ; idx < count; idx++ {
		if _, err := io.ReadFull(br, buf[:3*w]); err != nil {
			return ""
		}
		start, end := c.word(buf[:]), c.word(buf[w:])
		if addr >= start && addr < end {
			found = true
			break
		}
	}
	if !found {
		return ""
	}
	if !discard(br, (count-idx-1)*3*w) {
		return ""
	}
	for i := uint64(0); ; i++ {
		name, err := br.ReadSlice(0)
		if err != nil {
			// No terminator within the buffer (16 KiB, more than PATH_MAX,
			// or the rest of the note) or the note ended: the table is
			// damaged.
			return ""
		}
		if i == idx {
			return cleanString(name[:len(name)-1])
		}
	}
}

func (c *coreFile) wordSize() uint64 {
	if c.is64 {
		return 8
	}
	return 4
}

func (c *coreFile) word(b []byte) uint64 {
	if c.is64 {
		return c.order.Uint64(b)
	}
	return uint64(c.order.Uint32(b))
}

// read reads exactly n bytes (n is always small) at off, or fails.
func (c *coreFile) read(off uint64, n int) ([]byte, error) {
	end, ok := addU64(off, uint64(n))
	if !ok || end > uint64(c.size) {
		return nil, io.ErrUnexpectedEOF
	}
	b := make([]byte, n)
	if readUpTo(c.r, int64(off), b) != n {
		return nil, io.ErrUnexpectedEOF
	}
	return b, nil
}

// readUpTo reads into b at off and returns how many bytes were read,
// treating a short read as the end of the data (the file may be shrinking or
// still being written).
func readUpTo(r io.ReaderAt, off int64, b []byte) int {
	n, _ := r.ReadAt(b, off)
	return n
}

// sectionReader buffers length bytes of r from off, with a buffer of at most
// bufSize bytes (less for short sections: small cores are common in tests
// and in fuzzing, and the buffer is the main allocation).
func sectionReader(r io.ReaderAt, off, length uint64, bufSize int) *bufio.Reader {
	size := bufSize
	if length < uint64(size) {
		size = max(int(length), 16)
	}
	return bufio.NewReaderSize(io.NewSectionReader(r, int64(off), int64(length)), size)
}

func discard(br *bufio.Reader, n uint64) bool {
	for n > 0 {
		step := int(min(n, 1<<30))
		if _, err := br.Discard(step); err != nil {
			return false
		}
		n -= uint64(step)
	}
	return true
}

func alignUp(v, a uint64) uint64 {
	if v > ^uint64(0)-a {
		return ^uint64(0)
	}
	return (v + a - 1) &^ (a - 1)
}

func addU64(a, b uint64) (uint64, bool) {
	s := a + b
	return s, s >= a
}

func cString(b []byte) []byte {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		return b[:i]
	}
	return b
}

// machineName spells an ELF machine the way `uname -m` and container image
// platforms do.
func machineName(m elf.Machine, is64 bool, order binary.ByteOrder) string {
	switch m {
	case elf.EM_X86_64:
		if !is64 {
			return "x32"
		}
		return "x86_64"
	case elf.EM_AARCH64:
		return "aarch64"
	case elf.EM_386:
		return "i386"
	case elf.EM_ARM:
		return "arm"
	case elf.EM_RISCV:
		if is64 {
			return "riscv64"
		}
		return "riscv32"
	case elf.EM_PPC64:
		if order == binary.LittleEndian {
			return "ppc64le"
		}
		return "ppc64"
	case elf.EM_S390:
		if is64 {
			return "s390x"
		}
		return "s390"
	case elf.EM_LOONGARCH:
		return "loongarch64"
	case elf.EM_MIPS:
		if is64 {
			return "mips64"
		}
		return "mips"
	}
	s := m.String()
	if strings.HasPrefix(s, "EM_") {
		return strings.ToLower(strings.TrimPrefix(s, "EM_"))
	}
	return "machine-" + strconv.Itoa(int(m))
}
