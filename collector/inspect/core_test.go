package inspect

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"
)

var updateTestdata = flag.Bool("update-testdata", false, "rewrite testdata/core/* from cores taken in this run")

// checkCoreInvariants asserts what must hold for any summary, however
// damaged the input: the caps and the cleanliness of strings.
func checkCoreInvariants(t *testing.T, s *CoreSummary) {
	t.Helper()
	if len(s.Threads) > MaxThreads || s.ThreadCount < len(s.Threads) {
		t.Fatalf("threads: %d listed, count %d", len(s.Threads), s.ThreadCount)
	}
	for name, v := range map[string]string{"Exe": s.Exe, "Args": s.Args, "Machine": s.Machine, "SignalName": s.SignalName} {
		if len(v) > maxString || !utf8.ValidString(v) || strings.ContainsFunc(v, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
			t.Fatalf("%s is not a clean string: %q", name, v)
		}
	}
	// Invalid bytes become U+FFFD (3 bytes), so count characters.
	if utf8.RuneCountInString(s.Args) > psargsSize {
		t.Fatalf("Args longer than pr_psargs: %q", s.Args)
	}
}

// writeTestdataCore stores a shrunk real core and the facts known about the
// process it came from, for TestReadCoreTestdata and FuzzReadCore.
func writeTestdataCore(t *testing.T, name string, core []byte, want *CoreSummary) {
	t.Helper()
	if !*updateTestdata {
		return
	}
	if err := os.MkdirAll("testdata/core", 0o755); err != nil {
		t.Fatal(err)
	}
	js, err := json.MarshalIndent(want, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join("testdata/core", name+".core"), core, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join("testdata/core", name+".json"), append(js, '\n'), 0o644); err != nil {
		t.Fatal(err)
	}
}

func intPtr(v int) *int { return &v }

// TestReadCoreGcoreAttached dumps a running process with `gcore -o prefix
// pid`, the way an SRE snapshots a live pod, and checks the summary against
// what /proc says about the process.
func TestReadCoreGcoreAttached(t *testing.T) {
	t.Parallel()
	gcore := requireGcore(t)
	helper := buildHelper(t)
	h := startHelper(t, helper, "alpha", "beta")
	tids := taskIDs(t, h.pid)
	if len(tids) < 2 {
		t.Fatalf("helper has threads %v, want 2", tids)
	}
	path := gcoreOf(t, gcore, h.pid)

	got, err := readCoreFile(t, path)
	if err != nil {
		t.Fatalf("ReadCore: %v", err)
	}
	checkCoreInvariants(t, got)
	// gdb attached to a running process stops it with SIGSTOP and records
	// that in NT_SIGINFO with pr_cursig 0; versions without NT_SIGINFO
	// leave 0.
	if got.Signal != 0 && (got.Signal != 19 || got.SignalName != "SIGSTOP") {
		t.Errorf("signal = %d %q, want SIGSTOP (19) or 0", got.Signal, got.SignalName)
	}
	want := &CoreSummary{
		Signal:      got.Signal,
		SignalName:  got.SignalName,
		PID:         h.pid,
		Exe:         helper,
		Args:        helperArgv0, // gdb records only argv[0] when attaching
		Threads:     tids,
		ThreadCount: len(tids),
		Machine:     goMachine(),
		UID:         intPtr(os.Getuid()),
		GID:         intPtr(os.Getgid()),
	}
	sorted := slices.Clone(got.Threads)
	slices.Sort(sorted)
	gotCmp := *got
	gotCmp.Threads = sorted
	assertCore(t, &gotCmp, want)
	if !slices.Contains(got.Threads, h.pid) {
		t.Errorf("Threads %v do not include the process %d", got.Threads, h.pid)
	}

	core, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	small := splitCore(t, core).shrink(t)
	gotSmall, err := ReadCore(bytes.NewReader(small), int64(len(small)))
	if err != nil {
		t.Fatalf("ReadCore(shrunk core): %v", err)
	}
	assertCore(t, gotSmall, got)
	writeTestdataCore(t, "gcore-attached", small, got)
}

// TestReadCoreGdbRun takes a core with gdb's gcore of a process that gdb
// started and that stopped on SIGSEGV: gdb then records the signal in
// pr_cursig and the full command line in pr_psargs.
func TestReadCoreGdbRun(t *testing.T) {
	t.Parallel()
	requireGcore(t)
	gdb, err := exec.LookPath("gdb")
	if err != nil {
		t.Skip("gdb is not installed")
	}
	helper := buildHelper(t)
	path := filepath.Join(t.TempDir(), "gdbrun.core")
	cmd := exec.CommandContext(testContext(t), gdb, "-nx", "-batch",
		"-ex", "run", "-ex", "gcore "+path, "-ex", "kill",
		"--args", helper, "alpha", "beta", "crash")
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH")}, helperEnv...)
	out, err := cmd.CombinedOutput()
	if _, statErr := os.Stat(path); statErr != nil {
		t.Fatalf("gdb wrote no core: %v %v\n%s", err, statErr, out)
	}

	got, err := readCoreFile(t, path)
	if err != nil {
		t.Fatalf("ReadCore: %v", err)
	}
	checkCoreInvariants(t, got)
	if got.Signal != 11 || got.SignalName != "SIGSEGV" {
		t.Errorf("signal = %d %q, want 11 SIGSEGV", got.Signal, got.SignalName)
	}
	if got.Exe != helper {
		t.Errorf("Exe = %q, want %q", got.Exe, helper)
	}
	// gdb starts the program through a shell, with its path as argv[0], and
	// keeps 79 bytes like the kernel.
	wantArgs := helper + " alpha beta crash"
	if len(wantArgs) >= psargsSize-1 {
		if !got.ArgsTruncated || got.Args != strings.TrimRight(wantArgs[:psargsSize-1], " ") {
			t.Errorf("Args = %q truncated=%v, want the first 79 bytes of %q, truncated", got.Args, got.ArgsTruncated, wantArgs)
		}
	} else if got.Args != wantArgs || got.ArgsTruncated {
		t.Errorf("Args = %q truncated=%v, want %q", got.Args, got.ArgsTruncated, wantArgs)
	}
	if got.PID <= 0 || !slices.Contains(got.Threads, got.PID) || len(got.Threads) < 2 {
		t.Errorf("PID %d, Threads %v: want the PID among at least 2 threads", got.PID, got.Threads)
	}
	if got.Truncated {
		t.Error("complete core reported as truncated")
	}
}

// TestReadCoreKernel lets the kernel write the core of a helper that
// dereferences NULL. The kernel puts the notes first and is the reference
// for every field.
func TestReadCoreKernel(t *testing.T) {
	t.Parallel()
	helper := buildHelper(t)
	path, pid := kernelCoreOf(t, helper)

	got, err := readCoreFile(t, path)
	if err != nil {
		t.Fatalf("ReadCore: %v", err)
	}
	checkCoreInvariants(t, got)
	want := &CoreSummary{
		Signal:     11,
		SignalName: "SIGSEGV",
		PID:        pid,
		Exe:        helper,
		// The kernel turns the NULs between arguments into spaces,
		// including the last one; the trailing space is trimmed.
		Args:        helperArgv0 + " alpha beta crash",
		Threads:     got.Threads, // checked below: the crashing thread comes first
		ThreadCount: 2,
		Machine:     goMachine(),
		UID:         intPtr(os.Getuid()),
		GID:         intPtr(os.Getgid()),
	}
	assertCore(t, got, want)
	if len(got.Threads) != 2 || got.Threads[0] != pid {
		t.Errorf("Threads = %v, want the crashing main thread %d first, then one more", got.Threads, pid)
	}

	core, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	small := splitCore(t, core).shrink(t)
	writeTestdataCore(t, "kernel-segv", small, got)
}

// TestReadCoreTestdata checks the committed cores (real cores, shrunk, see
// coreParts.shrink) against the facts recorded when they were taken. It runs
// everywhere, gdb or not.
func TestReadCoreTestdata(t *testing.T) {
	t.Parallel()
	paths, err := filepath.Glob("testdata/core/*.core")
	if err != nil {
		t.Fatal(err)
	}
	if len(paths) == 0 {
		t.Fatal("no testdata/core/*.core")
	}
	for _, path := range paths {
		t.Run(filepath.Base(path), func(t *testing.T) {
			js, err := os.ReadFile(strings.TrimSuffix(path, ".core") + ".json")
			if err != nil {
				t.Fatal(err)
			}
			var want CoreSummary
			if err := json.Unmarshal(js, &want); err != nil {
				t.Fatal(err)
			}
			got, err := readCoreFile(t, path)
			if err != nil {
				t.Fatalf("ReadCore: %v", err)
			}
			assertCore(t, got, &want)
			if st, _ := os.Stat(path); st.Size() > 200<<10 {
				t.Errorf("%s is %d bytes; keep committed cores small", path, st.Size())
			}
		})
	}
}

// TestReadCoreExeFallbacks removes, from a real core, the sources of the
// executable path one by one: AT_EXECFN's memory, then NT_FILE.
func TestReadCoreExeFallbacks(t *testing.T) {
	t.Parallel()
	core, err := os.ReadFile("testdata/core/gcore-attached.core")
	if err != nil {
		t.Fatal(err)
	}
	var facts CoreSummary
	js, err := os.ReadFile("testdata/core/gcore-attached.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(js, &facts); err != nil {
		t.Fatal(err)
	}
	p := splitCore(t, core)
	if p.execfn == 0 {
		t.Fatal("testdata core has no AT_EXECFN")
	}
	relative := append([]byte("./"+filepath.Base(facts.Exe)), 0)
	spec := func(notes []testNote, loads ...testLoad) []byte {
		return coreSpec{class: p.class, order: p.order, machine: p.machine, notes: notes, loads: loads}.build()
	}
	tests := []struct {
		name string
		core []byte
		want string
	}{
		{"AT_EXECFN in memory", core, facts.Exe},
		{"no memory: NT_FILE mapping of AT_ENTRY", spec(p.notes), facts.Exe},
		{"relative AT_EXECFN loses to NT_FILE", spec(p.notes, testLoad{p.execfn, relative}), facts.Exe},
		{"relative AT_EXECFN without NT_FILE", spec(p.without(ntFILE), testLoad{p.execfn, relative}), string(relative[:len(relative)-1])},
		{"AT_EXECFN not terminated: NT_FILE", spec(p.notes, testLoad{p.execfn, bytes.Repeat([]byte("x"), 5000)}), facts.Exe},
		{"no memory, no NT_FILE: pr_fname", spec(p.without(ntFILE)), filepath.Base(facts.Exe)},
		{"no memory, no NT_FILE, no auxv: pr_fname", spec(p.without(ntFILE, ntAUXV)), filepath.Base(facts.Exe)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ReadCore(bytes.NewReader(tc.core), int64(len(tc.core)))
			if err != nil {
				t.Fatalf("ReadCore: %v", err)
			}
			if got.Exe != tc.want {
				t.Errorf("Exe = %q, want %q", got.Exe, tc.want)
			}
			if got.PID != facts.PID {
				t.Errorf("PID = %d, want %d", got.PID, facts.PID)
			}
		})
	}
}

// TestReadCoreTruncated cuts real cores at many offsets. Whatever is left,
// ReadCore must return quickly without panicking; once the notes are
// complete it must still report them, flagged as truncated.
func TestReadCoreTruncated(t *testing.T) {
	t.Parallel()
	cores := map[string][]byte{}
	for _, name := range []string{"gcore-attached", "kernel-segv"} {
		b, err := os.ReadFile("testdata/core/" + name + ".core")
		if err != nil {
			t.Fatal(err)
		}
		cores[name] = b
	}
	if gcore, err := exec.LookPath("gcore"); err == nil {
		// A full-size live core too: notes at the end, megabytes of memory.
		h := startHelper(t, buildHelper(t), "alpha", "beta")
		b, err := os.ReadFile(gcoreOf(t, gcore, h.pid))
		if err != nil {
			t.Fatal(err)
		}
		cores["gcore-live"] = b
	}
	for name, core := range cores {
		t.Run(name, func(t *testing.T) {
			full, err := ReadCore(bytes.NewReader(core), int64(len(core)))
			if err != nil {
				t.Fatalf("ReadCore(full): %v", err)
			}
			notesEnd, dataEnd := segmentEnds(t, core)
			var offsets []int
			for off := 0; off < min(len(core), 8192); off++ {
				offsets = append(offsets, off)
			}
			for off := 8192; off < len(core); off += max(1, len(core)/500) {
				offsets = append(offsets, off)
			}
			offsets = append(offsets, notesEnd, len(core)-1)
			for _, off := range offsets {
				got, err := ReadCore(bytes.NewReader(core[:off]), int64(off))
				switch {
				case off < 18:
					if !errors.Is(err, ErrNotCore) {
						t.Fatalf("cut at %d: err = %v, want ErrNotCore", off, err)
					}
				case err != nil:
					if !errors.Is(err, ErrMalformedCore) {
						t.Fatalf("cut at %d: err = %v, want ErrMalformedCore", off, err)
					}
					if off >= notesEnd {
						t.Fatalf("cut at %d, after the notes (%d): %v", off, notesEnd, err)
					}
				default:
					checkCoreInvariants(t, got)
					if got.Truncated != (off < dataEnd) {
						t.Fatalf("cut at %d, segments end at %d: Truncated = %v", off, dataEnd, got.Truncated)
					}
					if off >= notesEnd && (got.PID != full.PID || got.Signal != full.Signal || !slices.Equal(got.Threads, full.Threads) || got.Args != full.Args) {
						t.Fatalf("cut at %d after the notes: got %+v, want the notes of %+v", off, got, full)
					}
				}
			}
		})
	}
}

// segmentEnds returns where the (only) PT_NOTE segment of a real core ends
// and where the last of its segments ends (gcore puts section headers after
// that).
func segmentEnds(t *testing.T, core []byte) (notesEnd, dataEnd int) {
	t.Helper()
	f, err := elf.NewFile(bytes.NewReader(core))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range f.Progs {
		end := int(p.Off + p.Filesz)
		if p.Type == elf.PT_NOTE {
			notesEnd = end
		}
		dataEnd = max(dataEnd, end)
	}
	if notesEnd == 0 {
		t.Fatal("no PT_NOTE")
	}
	return notesEnd, dataEnd
}

// TestReadCoreBitFlips flips bits in the parts of real cores that ReadCore
// interprets (ELF header, program headers, notes) and checks it neither
// panics nor returns anything unclean.
func TestReadCoreBitFlips(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(1, 2))
	for _, name := range []string{"gcore-attached", "kernel-segv"} {
		core, err := os.ReadFile("testdata/core/" + name + ".core")
		if err != nil {
			t.Fatal(err)
		}
		notesEnd, _ := segmentEnds(t, core)
		ok := 0
		for i := 0; i < 5000; i++ {
			mutated := slices.Clone(core)
			for n := 1 + rng.IntN(4); n > 0; n-- {
				pos := rng.IntN(notesEnd)
				mutated[pos] ^= 1 << rng.IntN(8)
			}
			got, err := ReadCore(bytes.NewReader(mutated), int64(len(mutated)))
			if err != nil {
				if !errors.Is(err, ErrNotCore) && !errors.Is(err, ErrMalformedCore) {
					t.Fatalf("%s flip %d: error %v wraps neither ErrNotCore nor ErrMalformedCore", name, i, err)
				}
				continue
			}
			ok++
			checkCoreInvariants(t, got)
		}
		// Most flips land in register dumps and padding, which ReadCore
		// ignores; if almost nothing parses, it is too strict.
		if ok < 2500 {
			t.Errorf("%s: only %d of 5000 bit-flipped cores summarised", name, ok)
		}
	}
}

// TestReadCoreNotCore checks the inputs that are not cores at all.
func TestReadCoreNotCore(t *testing.T) {
	t.Parallel()
	self, err := os.Executable() // an ELF executable, not a core
	if err != nil {
		t.Fatal(err)
	}
	exe, err := os.ReadFile(self)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(3, 4))
	random := make([]byte, 4096)
	for i := range random {
		random[i] = byte(rng.Uint32())
	}
	tests := []struct {
		name string
		data []byte
		want error
	}{
		{"empty", nil, ErrNotCore},
		{"random", random, ErrNotCore},
		{"minidump", append([]byte("MDMP"), random...), ErrNotCore},
		{"ELF executable", exe[:4096], ErrNotCore},
		{"ELF magic only", []byte("\x7fELF"), ErrNotCore},
		{"bad byte order", append([]byte("\x7fELF\x02\x07\x01"), make([]byte, 57)...), ErrNotCore},
		{"core header, no program headers", coreSpec{class: elf.ELFCLASS64, order: binary.LittleEndian, machine: elf.EM_X86_64}.build()[:64], ErrMalformedCore},
		{"core without process notes", coreSpec{class: elf.ELFCLASS64, order: binary.LittleEndian, machine: elf.EM_X86_64,
			notes: []testNote{{"LINUX", 0x202, make([]byte, 64)}}}.build(), ErrMalformedCore},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ReadCore(bytes.NewReader(tc.data), int64(len(tc.data)))
			if !errors.Is(err, tc.want) || got != nil {
				t.Fatalf("ReadCore = %+v, %v; want nil, %v", got, err, tc.want)
			}
		})
	}
}

// TestReadCoreLayouts covers the layouts no test machine produces: 32-bit
// (with 16- and 32-bit IDs), big-endian, PN_XNUM program header counts and
// 8-byte aligned notes, plus caps on hostile counts.
func TestReadCoreLayouts(t *testing.T) {
	t.Parallel()
	le, be := byteOrder(binary.LittleEndian), byteOrder(binary.BigEndian)
	const execfn = 0x7ffc0000
	const entry = 0x401000
	build := func(class elf.Class, o byteOrder, m elf.Machine, uid16 bool, mutate func(*coreSpec)) []byte {
		is64 := class == elf.ELFCLASS64
		s := coreSpec{class: class, order: o, machine: m, notes: []testNote{
			{"CORE", uint32(elf.NT_PRSTATUS), prstatusDesc(is64, o, 6, 4242)},
			{"CORE", uint32(elf.NT_PRPSINFO), prpsinfoDesc(is64, uid16, o, 1000, 2000, 4242, "app", "/usr/bin/app --serve")},
			{"CORE", ntSIGINFO, siginfoDesc(o, 6)},
			{"CORE", ntAUXV, auxvDesc(is64, o, atENTRY, entry, atEXECFN, execfn)},
			{"CORE", ntFILE, ntFileDesc(is64, o, fileMapping{0x400000, 0x402000, 0, "/usr/bin/app"})},
			{"CORE", uint32(elf.NT_PRSTATUS), prstatusDesc(is64, o, 0, 4243)},
		}, loads: []testLoad{{vaddr: execfn, data: []byte("/usr/bin/app\x00")}}}
		if mutate != nil {
			mutate(&s)
		}
		return s.build()
	}
	want := func(machine string) *CoreSummary {
		return &CoreSummary{Signal: 6, SignalName: "SIGABRT", PID: 4242, Exe: "/usr/bin/app", Args: "/usr/bin/app --serve",
			Threads: []int{4242, 4243}, ThreadCount: 2, Machine: machine, UID: intPtr(1000), GID: intPtr(2000)}
	}
	tests := []struct {
		name string
		core []byte
		want *CoreSummary
	}{
		{"x86_64", build(elf.ELFCLASS64, le, elf.EM_X86_64, false, nil), want("x86_64")},
		{"aarch64", build(elf.ELFCLASS64, le, elf.EM_AARCH64, false, nil), want("aarch64")},
		{"i386 16-bit ids", build(elf.ELFCLASS32, le, elf.EM_386, true, nil), want("i386")},
		{"arm 32-bit ids", build(elf.ELFCLASS32, le, elf.EM_ARM, false, nil), want("arm")},
		{"s390x big-endian", build(elf.ELFCLASS64, be, elf.EM_S390, false, nil), want("s390x")},
		{"ppc 32-bit big-endian", build(elf.ELFCLASS32, be, elf.EM_PPC, false, nil), want("ppc")},
		{"PN_XNUM", build(elf.ELFCLASS64, le, elf.EM_X86_64, false, func(s *coreSpec) { s.extendedPhnum = true }), want("x86_64")},
		{"PN_XNUM 32-bit", build(elf.ELFCLASS32, le, elf.EM_386, true, func(s *coreSpec) { s.extendedPhnum = true }), want("i386")},
		{"8-byte aligned notes", build(elf.ELFCLASS64, le, elf.EM_X86_64, false, func(s *coreSpec) { s.noteAlign = 8 }), want("x86_64")},
		{"siginfo when pr_cursig is 0", build(elf.ELFCLASS64, le, elf.EM_X86_64, false, func(s *coreSpec) {
			s.notes[0].desc = prstatusDesc(true, le, 0, 4242)
		}), want("x86_64")},
		{"MIPS numbers SIGBUS differently", build(elf.ELFCLASS32, be, elf.EM_MIPS, false, func(s *coreSpec) {
			s.notes[0].desc = prstatusDesc(false, be, 10, 4242)
		}), func() *CoreSummary { w := want("mips"); w.Signal, w.SignalName = 10, "SIG10"; return w }()},
		{"full pr_psargs", build(elf.ELFCLASS64, le, elf.EM_X86_64, false, func(s *coreSpec) {
			s.notes[1].desc = prpsinfoDesc(true, false, le, 1000, 2000, 4242, "app", strings.Repeat("a", 100))
		}), func() *CoreSummary {
			w := want("x86_64")
			w.Args, w.ArgsTruncated = strings.Repeat("a", 79), true
			return w
		}()},
		{"control characters in names", build(elf.ELFCLASS64, le, elf.EM_X86_64, false, func(s *coreSpec) {
			s.notes[1].desc = prpsinfoDesc(true, false, le, 1000, 2000, 4242, "app", "/usr/bin/app \x1b[31m\n\xff")
			s.loads[0].data = []byte("/usr/bin/app\x00")
		}), func() *CoreSummary { w := want("x86_64"); w.Args = "/usr/bin/app \ufffd[31m\ufffd\ufffd"; return w }()},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ReadCore(bytes.NewReader(tc.core), int64(len(tc.core)))
			if err != nil {
				t.Fatalf("ReadCore: %v", err)
			}
			checkCoreInvariants(t, got)
			assertCore(t, got, tc.want)
		})
	}
}

// TestReadCoreHostileCounts gives ReadCore headers that claim huge sizes and
// counts; it must stay within its caps rather than trust them.
func TestReadCoreHostileCounts(t *testing.T) {
	t.Parallel()
	le := binary.LittleEndian
	manyThreads := make([]testNote, 0, MaxThreads+10)
	for i := range MaxThreads + 10 {
		manyThreads = append(manyThreads, testNote{"CORE", uint32(elf.NT_PRSTATUS), prstatusDesc(true, le, 11, int32(i+1))})
	}
	base := coreSpec{class: elf.ELFCLASS64, order: le, machine: elf.EM_X86_64, notes: manyThreads}.build()

	t.Run("threads capped", func(t *testing.T) {
		got, err := ReadCore(bytes.NewReader(base), int64(len(base)))
		if err != nil {
			t.Fatal(err)
		}
		if len(got.Threads) != MaxThreads || got.ThreadCount != MaxThreads+10 || got.Threads[MaxThreads-1] != MaxThreads {
			t.Fatalf("got %d threads (count %d), want the first %d of %d", len(got.Threads), got.ThreadCount, MaxThreads, MaxThreads+10)
		}
	})
	t.Run("descriptor size near 4 GiB", func(t *testing.T) {
		core := coreSpec{class: elf.ELFCLASS64, order: le, machine: elf.EM_X86_64, notes: []testNote{
			{"CORE", uint32(elf.NT_PRSTATUS), prstatusDesc(true, le, 11, 7)},
			{"CORE", uint32(elf.NT_PRPSINFO), make([]byte, 136)},
		}}.build()
		// Patch the second note's n_descsz to 0xfffffff0.
		second := bytes.LastIndex(core, []byte("CORE\x00")) - 12
		le.PutUint32(core[second+4:], 0xfffffff0)
		got, err := ReadCore(bytes.NewReader(core), int64(len(core)))
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got.Threads, []int{7}) || got.PID != 0 {
			t.Fatalf("got %+v, want the first thread only", got)
		}
	})
	t.Run("program header count and offsets beyond the file", func(t *testing.T) {
		core := slices.Clone(base)
		le.PutUint16(core[56:], pnXNUM)
		le.PutUint64(core[40:], 64) // e_shoff pointing at the phdrs: sh_info is garbage
		got, err := ReadCore(bytes.NewReader(core), int64(len(core)))
		if err == nil {
			checkCoreInvariants(t, got)
		} else if !errors.Is(err, ErrMalformedCore) {
			t.Fatal(err)
		}
	})
	t.Run("size larger than the data", func(t *testing.T) {
		// A file that shrank between stat and read: ReadAt comes up short.
		got, err := ReadCore(bytes.NewReader(base), int64(len(base))*1000)
		if err != nil {
			t.Fatal(err)
		}
		if got.ThreadCount != MaxThreads+10 {
			t.Fatalf("ThreadCount = %d", got.ThreadCount)
		}
	})
}

func assertCore(t *testing.T, got, want *CoreSummary) {
	t.Helper()
	g, _ := json.Marshal(got)
	w, _ := json.Marshal(want)
	if !bytes.Equal(g, w) {
		t.Errorf("ReadCore mismatch\n got: %s\nwant: %s", g, w)
	}
}

// TestCoreRegistersMatchGDB: the IP and SP ReadCore takes from every
// NT_PRSTATUS of a real gcore are the ones gdb shows for that thread.
func TestCoreRegistersMatchGDB(t *testing.T) {
	gcore := requireGcore(t)
	gdb, err := exec.LookPath("gdb")
	if err != nil {
		t.Skip("gdb is not installed")
	}
	ipReg, spReg := "rip", "rsp"
	switch runtime.GOARCH {
	case "amd64":
	case "arm64":
		ipReg, spReg = "pc", "sp"
	default:
		t.Skipf("no pr_reg layout for %s", runtime.GOARCH)
	}
	h := startHelper(t, buildHelper(t))
	path := gcoreOf(t, gcore, h.pid)
	sum, err := readCoreFile(t, path)
	if err != nil {
		t.Fatal(err)
	}
	if len(sum.Registers) != len(sum.Threads) || len(sum.Registers) < 2 {
		t.Fatalf("%d register sets for threads %v", len(sum.Registers), sum.Threads)
	}
	out, err := exec.CommandContext(testContext(t), gdb, "-nx", "-batch", "-ex", "set pagination off",
		"-ex", "thread apply all info registers "+ipReg+" "+spReg, h.path, path).CombinedOutput()
	if err != nil {
		t.Fatalf("gdb: %v\n%s", err, out)
	}
	// "Thread 2 (LWP 1234):" then "rip  0x401136  0x401136 <main+22>".
	lwp := regexp.MustCompile(`\(LWP (\d+)\)`)
	want := map[int]ThreadRegisters{}
	tid := 0
	for _, line := range strings.Split(string(out), "\n") {
		if m := lwp.FindStringSubmatch(line); m != nil {
			tid, _ = strconv.Atoi(m[1])
			continue
		}
		f := strings.Fields(line)
		if tid == 0 || len(f) < 2 {
			continue
		}
		v, err := strconv.ParseUint(strings.TrimPrefix(f[1], "0x"), 16, 64)
		if err != nil {
			continue
		}
		r := want[tid]
		r.TID = tid
		switch f[0] {
		case ipReg:
			r.IP = v
		case spReg:
			r.SP = v
		}
		want[tid] = r
	}
	if len(want) != len(sum.Registers) {
		t.Fatalf("gdb shows %d threads, ReadCore %d\n%s", len(want), len(sum.Registers), out)
	}
	for _, got := range sum.Registers {
		if w := want[got.TID]; w != got || got.IP == 0 || got.SP == 0 {
			t.Errorf("thread %d: ReadCore IP %#x SP %#x, gdb IP %#x SP %#x", got.TID, got.IP, got.SP, w.IP, w.SP)
		}
	}
}
