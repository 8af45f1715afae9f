package inspect

import (
	"bufio"
	"bytes"
	"context"
	"debug/elf"
	"encoding/binary"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// This file holds the machinery the core tests share: building the C helper,
// taking real cores of it (gcore attached, gdb-run, kernel), and taking real
// cores apart and putting them back together.

// helperArgv0 is the argv[0] the helper runs with. It differs from the
// executable's path on purpose, so that tests can tell AT_EXECFN (the path
// given to execve) from the command line.
const helperArgv0 = "helper"

// buildHelper compiles testdata/helper.c into a fresh directory.
func buildHelper(t *testing.T) string {
	t.Helper()
	cc, err := exec.LookPath("gcc")
	if err != nil {
		if cc, err = exec.LookPath("cc"); err != nil {
			t.Fatalf("a C compiler is needed to build the core test helper: %v", err)
		}
	}
	src, err := filepath.Abs("testdata/helper.c")
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "helper")
	if b, err := exec.Command(cc, "-O0", "-o", out, src, "-pthread").CombinedOutput(); err != nil {
		t.Fatalf("compiling helper: %v\n%s", err, b)
	}
	return out
}

func requireGcore(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("gcore")
	if err != nil {
		t.Skip("gcore (from gdb) is not installed; real-core tests need it")
	}
	return p
}

func testContext(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// helperEnv is the whole environment the helper gets: the environment ends
// up in the core's memory, and cores derived from these end up in testdata.
var helperEnv = []string{"LC_ALL=C"}

// liveHelper is a running helper process.
type liveHelper struct {
	path string
	pid  int
	args []string
}

// startHelper starts the helper with args and returns once it has printed
// "ready", i.e. once its second thread exists.
func startHelper(t *testing.T, helper string, args ...string) liveHelper {
	t.Helper()
	ctx := testContext(t)
	cmd := exec.CommandContext(ctx, helper, args...)
	cmd.Args[0] = helperArgv0
	cmd.Env = helperEnv
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatalf("waiting for helper to start: %v", err)
	}
	want := "ready " + strconv.Itoa(cmd.Process.Pid) + "\n"
	if line != want {
		t.Fatalf("helper said %q, want %q", line, want)
	}
	return liveHelper{path: helper, pid: cmd.Process.Pid, args: args}
}

// taskIDs lists the thread IDs of a live process from /proc.
func taskIDs(t *testing.T, pid int) []int {
	t.Helper()
	ents, err := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/task")
	if err != nil {
		t.Fatal(err)
	}
	var ids []int
	for _, e := range ents {
		id, err := strconv.Atoi(e.Name())
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	sort.Ints(ids)
	return ids
}

// gcoreOf dumps a live process with `gcore -o prefix pid`.
func gcoreOf(t *testing.T, gcore string, pid int) string {
	t.Helper()
	prefix := filepath.Join(t.TempDir(), "core")
	cmd := exec.CommandContext(testContext(t), gcore, "-o", prefix, strconv.Itoa(pid))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("gcore: %v\n%s", err, out)
	}
	path := prefix + "." + strconv.Itoa(pid)
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("gcore wrote no %s: %v", path, err)
	}
	return path
}

// kernelCoreOf runs the helper in crash mode in an empty directory and
// returns the core the kernel wrote there. It skips when the kernel is set
// up to send cores elsewhere (systemd-coredump, apport) or not at all.
func kernelCoreOf(t *testing.T, helper string) (path string, pid int) {
	t.Helper()
	dir := t.TempDir()
	cmd := exec.CommandContext(testContext(t), helper, "alpha", "beta", "crash")
	cmd.Args[0] = helperArgv0
	cmd.Env = helperEnv
	cmd.Dir = dir
	err := cmd.Run()
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		t.Fatalf("crashing helper: want it killed by SIGSEGV, got %v", err)
	}
	ws, ok := ee.Sys().(syscall.WaitStatus)
	if !ok || !ws.Signaled() || ws.Signal() != syscall.SIGSEGV {
		t.Fatalf("crashing helper: want SIGSEGV, got %v", err)
	}
	pattern, _ := os.ReadFile("/proc/sys/kernel/core_pattern")
	if !ws.CoreDump() {
		t.Skipf("the kernel wrote no core (core_pattern %q, or RLIMIT_CORE hard limit is 0)", strings.TrimSpace(string(pattern)))
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != 1 {
		t.Skipf("the kernel dumped core, but not as one file in the working directory (core_pattern %q)", strings.TrimSpace(string(pattern)))
	}
	return filepath.Join(dir, ents[0].Name()), cmd.Process.Pid
}

func readCoreFile(t *testing.T, path string) (*CoreSummary, error) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	return ReadCore(f, st.Size())
}

// goMachine is the Machine a core taken on this host reports.
func goMachine() string {
	switch runtime.GOARCH {
	case "amd64":
		return "x86_64"
	case "arm64":
		return "aarch64"
	}
	return runtime.GOARCH
}

// --- Taking real cores apart -------------------------------------------

// byteOrder is what the core builders need from binary.LittleEndian and
// binary.BigEndian.
type byteOrder interface {
	binary.ByteOrder
	binary.AppendByteOrder
}

type testNote struct {
	name string
	typ  uint32
	desc []byte
}

type testLoad struct {
	vaddr uint64
	data  []byte
}

// coreParts is a real core taken apart with debug/elf (the input is
// trusted here).
type coreParts struct {
	class   elf.Class
	order   byteOrder
	machine elf.Machine
	notes   []testNote
	execfn  uint64 // AT_EXECFN from NT_AUXV
	file    *elf.File
}

func splitCore(t *testing.T, core []byte) coreParts {
	t.Helper()
	f, err := elf.NewFile(bytes.NewReader(core))
	if err != nil {
		t.Fatal(err)
	}
	p := coreParts{class: f.Class, order: f.ByteOrder.(byteOrder), machine: f.Machine, file: f}
	for _, prog := range f.Progs {
		if prog.Type != elf.PT_NOTE {
			continue
		}
		data := core[prog.Off : prog.Off+prog.Filesz]
		for len(data) >= 12 {
			namesz := int(f.ByteOrder.Uint32(data[0:]))
			descsz := int(f.ByteOrder.Uint32(data[4:]))
			typ := f.ByteOrder.Uint32(data[8:])
			nameEnd := 12 + (namesz+3)&^3
			descEnd := nameEnd + descsz
			if descEnd > len(data) {
				t.Fatalf("real core has a note running past its segment")
			}
			n := testNote{
				name: strings.TrimRight(string(data[12:12+namesz]), "\x00"),
				typ:  typ,
				desc: data[nameEnd:descEnd],
			}
			p.notes = append(p.notes, n)
			if typ == ntAUXV && p.execfn == 0 {
				for i := 0; i+16 <= len(n.desc); i += 16 {
					if f.ByteOrder.Uint64(n.desc[i:]) == atEXECFN {
						p.execfn = f.ByteOrder.Uint64(n.desc[i+8:])
					}
				}
			}
			data = data[min(len(data), (descEnd+3)&^3):]
		}
	}
	if len(p.notes) == 0 {
		t.Fatal("real core has no notes")
	}
	return p
}

// memString reads the NUL-terminated string at addr from the core's memory
// (via debug/elf, as an independent check of ReadCore).
func (p coreParts) memString(t *testing.T, addr uint64) string {
	t.Helper()
	for _, prog := range p.file.Progs {
		if prog.Type == elf.PT_LOAD && addr >= prog.Vaddr && addr < prog.Vaddr+prog.Filesz {
			buf := make([]byte, min(4096, prog.Vaddr+prog.Filesz-addr))
			n, _ := prog.ReadAt(buf, int64(addr-prog.Vaddr))
			if i := bytes.IndexByte(buf[:n], 0); i >= 0 {
				return string(buf[:i])
			}
		}
	}
	t.Fatalf("address %#x is not in the core", addr)
	return ""
}

// without returns the notes whose type is not in types.
func (p coreParts) without(types ...uint32) []testNote {
	var out []testNote
	for _, n := range p.notes {
		drop := false
		for _, typ := range types {
			drop = drop || n.typ == typ
		}
		if !drop {
			out = append(out, n)
		}
	}
	return out
}

// ntGDBTDESC is gdb's XML target description note: 13 KiB that ReadCore
// ignores, left out of the cores committed to testdata.
const ntGDBTDESC = 0xff000000

// shrink rebuilds a real core with its notes (minus gdb's target
// description) and, as its only memory, the AT_EXECFN string. The result is
// a few KiB, carries no environment strings, and summarises the same as the
// original.
func (p coreParts) shrink(t *testing.T) []byte {
	t.Helper()
	s := coreSpec{class: p.class, order: p.order, machine: p.machine, notes: p.without(ntGDBTDESC)}
	if p.execfn != 0 {
		s.loads = []testLoad{{vaddr: p.execfn, data: append([]byte(p.memString(t, p.execfn)), 0)}}
	}
	return s.build()
}

// --- Putting cores together -------------------------------------------

// coreSpec describes an ELF core to synthesise.
type coreSpec struct {
	class   elf.Class
	order   byteOrder
	machine elf.Machine
	notes   []testNote
	loads   []testLoad
	// extendedPhnum stores the program header count in section header 0,
	// as cores with more than 65534 segments do.
	extendedPhnum bool
	// noteAlign is the PT_NOTE p_align and note padding (default 4).
	noteAlign uint64
}

func (s coreSpec) build() []byte {
	is64 := s.class == elf.ELFCLASS64
	o := s.order
	align := s.noteAlign
	if align == 0 {
		align = 4
	}
	ehsize, phentsize, shentsize := 52, 32, 40
	if is64 {
		ehsize, phentsize, shentsize = 64, 56, 64
	}
	phnum := 1 + len(s.loads)
	phoff := ehsize
	shoff := 0
	if s.extendedPhnum {
		shoff = ehsize
		phoff = ehsize + shentsize
	}

	var notes []byte
	for _, n := range s.notes {
		name := []byte(n.name)
		if len(name) > 0 {
			name = append(name, 0)
		}
		notes = o.AppendUint32(notes, uint32(len(name)))
		notes = o.AppendUint32(notes, uint32(len(n.desc)))
		notes = o.AppendUint32(notes, n.typ)
		notes = append(notes, name...)
		notes = pad(notes, align)
		notes = append(notes, n.desc...)
		notes = pad(notes, align)
	}
	noteOff := phoff + phnum*phentsize
	dataOff := noteOff + len(notes)

	b := make([]byte, ehsize)
	copy(b, elf.ELFMAG)
	b[elf.EI_CLASS] = byte(s.class)
	if o == binary.BigEndian {
		b[elf.EI_DATA] = byte(elf.ELFDATA2MSB)
	} else {
		b[elf.EI_DATA] = byte(elf.ELFDATA2LSB)
	}
	b[elf.EI_VERSION] = byte(elf.EV_CURRENT)
	o.PutUint16(b[16:], uint16(elf.ET_CORE))
	o.PutUint16(b[18:], uint16(s.machine))
	o.PutUint32(b[20:], uint32(elf.EV_CURRENT))
	ephnum := uint16(phnum)
	if s.extendedPhnum {
		ephnum = pnXNUM
	}
	if is64 {
		o.PutUint64(b[32:], uint64(phoff))
		o.PutUint64(b[40:], uint64(shoff))
		o.PutUint16(b[52:], uint16(ehsize))
		o.PutUint16(b[54:], uint16(phentsize))
		o.PutUint16(b[56:], ephnum)
		o.PutUint16(b[58:], uint16(shentsize))
		if s.extendedPhnum {
			o.PutUint16(b[60:], 1)
		}
	} else {
		o.PutUint32(b[28:], uint32(phoff))
		o.PutUint32(b[32:], uint32(shoff))
		o.PutUint16(b[40:], uint16(ehsize))
		o.PutUint16(b[42:], uint16(phentsize))
		o.PutUint16(b[44:], ephnum)
		o.PutUint16(b[46:], uint16(shentsize))
		if s.extendedPhnum {
			o.PutUint16(b[48:], 1)
		}
	}
	if s.extendedPhnum {
		sh := make([]byte, shentsize)
		if is64 {
			o.PutUint64(sh[32:], 1) // sh_size
			o.PutUint32(sh[44:], uint32(phnum))
		} else {
			o.PutUint32(sh[20:], 1)
			o.PutUint32(sh[28:], uint32(phnum))
		}
		b = append(b, sh...)
	}
	b = appendPhdr(b, is64, o, elf.PT_NOTE, uint64(noteOff), 0, uint64(len(notes)), align)
	off := dataOff
	for _, l := range s.loads {
		b = appendPhdr(b, is64, o, elf.PT_LOAD, uint64(off), l.vaddr, uint64(len(l.data)), 1)
		off += len(l.data)
	}
	b = append(b, notes...)
	for _, l := range s.loads {
		b = append(b, l.data...)
	}
	return b
}

func appendPhdr(b []byte, is64 bool, o byteOrder, typ elf.ProgType, off, vaddr, size, align uint64) []byte {
	b = o.AppendUint32(b, uint32(typ))
	if is64 {
		b = o.AppendUint32(b, uint32(elf.PF_R))
		b = o.AppendUint64(b, off)
		b = o.AppendUint64(b, vaddr)
		b = o.AppendUint64(b, 0)
		b = o.AppendUint64(b, size)
		b = o.AppendUint64(b, size)
		return o.AppendUint64(b, align)
	}
	b = o.AppendUint32(b, uint32(off))
	b = o.AppendUint32(b, uint32(vaddr))
	b = o.AppendUint32(b, 0)
	b = o.AppendUint32(b, uint32(size))
	b = o.AppendUint32(b, uint32(size))
	b = o.AppendUint32(b, uint32(elf.PF_R))
	return o.AppendUint32(b, uint32(align))
}

func pad(b []byte, align uint64) []byte {
	for uint64(len(b))%align != 0 {
		b = append(b, 0)
	}
	return b
}

// Descriptor builders for synthetic cores, following the kernel's
// struct layouts (include/uapi/linux/elfcore.h).

func prstatusDesc(is64 bool, o byteOrder, cursig int16, tid int32) []byte {
	size, pidOff := 144, 24 // i386: 17 registers
	if is64 {
		size, pidOff = 336, 32 // x86_64: 27 registers
	}
	d := make([]byte, size)
	o.PutUint32(d[0:], uint32(cursig)) // pr_info.si_signo
	o.PutUint16(d[12:], uint16(cursig))
	o.PutUint32(d[pidOff:], uint32(tid))
	return d
}

// prpsinfoDesc builds elf_prpsinfo; on 32-bit, uid16 selects the i386/arm
// layout with 16-bit pr_uid/pr_gid.
func prpsinfoDesc(is64, uid16 bool, o byteOrder, uid, gid uint32, pid int32, fname, psargs string) []byte {
	var d []byte
	var idOff int
	switch {
	case is64:
		d, idOff = make([]byte, 136), 16
		o.PutUint32(d[idOff:], uid)
		o.PutUint32(d[idOff+4:], gid)
	case uid16:
		d, idOff = make([]byte, 124), 8
		o.PutUint16(d[idOff:], uint16(uid))
		o.PutUint16(d[idOff+2:], uint16(gid))
	default:
		d, idOff = make([]byte, 128), 8
		o.PutUint32(d[idOff:], uid)
		o.PutUint32(d[idOff+4:], gid)
	}
	n := len(d)
	o.PutUint32(d[n-112:], uint32(pid))
	copy(d[n-96:n-80], fname)
	copy(d[n-80:n-1], psargs)
	return d
}

func auxvDesc(is64 bool, o byteOrder, pairs ...uint64) []byte {
	var d []byte
	pairs = append(pairs, atNULL, 0)
	for _, v := range pairs {
		if is64 {
			d = o.AppendUint64(d, v)
		} else {
			d = o.AppendUint32(d, uint32(v))
		}
	}
	return d
}

type fileMapping struct {
	start, end, pgoff uint64
	name              string
}

func ntFileDesc(is64 bool, o byteOrder, maps ...fileMapping) []byte {
	word := func(d []byte, v uint64) []byte {
		if is64 {
			return o.AppendUint64(d, v)
		}
		return o.AppendUint32(d, uint32(v))
	}
	d := word(nil, uint64(len(maps)))
	d = word(d, 4096)
	for _, m := range maps {
		d = word(word(word(d, m.start), m.end), m.pgoff)
	}
	for _, m := range maps {
		d = append(append(d, m.name...), 0)
	}
	return d
}

func siginfoDesc(o byteOrder, signo int32) []byte {
	d := make([]byte, 128)
	o.PutUint32(d, uint32(signo))
	return d
}
