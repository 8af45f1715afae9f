package inspect

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// FuzzReadCore feeds ReadCore mutations of real cores (shrunk gcore and
// kernel cores from testdata) and of synthetic 32-bit, big-endian and
// PN_XNUM cores. extra makes the declared size exceed the data, as when a
// file shrinks between stat and read.
func FuzzReadCore(f *testing.F) {
	paths, err := filepath.Glob("testdata/core/*.core")
	if err != nil || len(paths) == 0 {
		f.Fatalf("no seed cores in testdata/core: %v", err)
	}
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, uint16(0))
		f.Add(b[:len(b)/2], uint16(0))
	}
	le, be := byteOrder(binary.LittleEndian), byteOrder(binary.BigEndian)
	for _, s := range []coreSpec{
		{class: elf.ELFCLASS32, order: le, machine: elf.EM_386, extendedPhnum: true, notes: []testNote{
			{"CORE", uint32(elf.NT_PRSTATUS), prstatusDesc(false, le, 11, 7)},
			{"CORE", uint32(elf.NT_PRPSINFO), prpsinfoDesc(false, true, le, 1, 2, 7, "app", "app -x")},
			{"CORE", ntAUXV, auxvDesc(false, le, atENTRY, 0x8048000, atEXECFN, 0xbfff0000)},
			{"CORE", ntFILE, ntFileDesc(false, le, fileMapping{0x8048000, 0x8049000, 0, "/app"})},
		}, loads: []testLoad{{0xbfff0000, []byte("/app\x00")}}},
		{class: elf.ELFCLASS64, order: be, machine: elf.EM_S390, noteAlign: 8, notes: []testNote{
			{"CORE", uint32(elf.NT_PRSTATUS), prstatusDesc(true, be, 6, 9)},
			{"CORE", uint32(elf.NT_PRPSINFO), prpsinfoDesc(true, false, be, 1, 2, 9, "app", "app -y")},
			{"CORE", ntSIGINFO, siginfoDesc(be, 6)},
		}},
	} {
		f.Add(s.build(), uint16(0))
	}
	f.Fuzz(func(t *testing.T, data []byte, extra uint16) {
		_ = Kind(data)
		got, err := ReadCore(bytes.NewReader(data), int64(len(data))+int64(extra))
		if err != nil {
			if got != nil || (!errors.Is(err, ErrNotCore) && !errors.Is(err, ErrMalformedCore)) {
				t.Fatalf("ReadCore = %+v, %v", got, err)
			}
			return
		}
		checkCoreInvariants(t, got)
	})
}

// FuzzParseCrashReport feeds ParseCrashReport mutations of the fixtures,
// which are byte for byte createdump output.
func FuzzParseCrashReport(f *testing.F) {
	for _, fx := range crashReportFixtures() {
		b, err := os.ReadFile(fixturePath(fx.name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
		f.Add(b[:len(b)*2/3])
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := ParseCrashReport(data)
		if err != nil {
			if got != nil || !errors.Is(err, ErrNotCrashReport) {
				t.Fatalf("ParseCrashReport = %+v, %v", got, err)
			}
			return
		}
		checkReportInvariants(t, got)
	})
}
