package main

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestCoreLayoutExactSizesAndELF(t *testing.T) {
	self := gatherProcess(os.Getpid())
	for _, size := range []uint64{8 << 10, 1 << 20, 2 << 20, 16 << 20, 32<<20 + 4096} {
		proc := self.core(os.Getpid())
		l := planCore(proc, size)
		if l.Size() != size {
			t.Fatalf("planned %d bytes, want %d", l.Size(), size)
		}
		var buf bytes.Buffer
		if err := writeCore(&buf, l, proc); err != nil {
			t.Fatal(err)
		}
		if uint64(buf.Len()) != size {
			t.Fatalf("wrote %d bytes, want %d", buf.Len(), size)
		}
		f, err := elf.NewFile(bytes.NewReader(buf.Bytes()))
		if err != nil {
			t.Fatalf("size %d: not ELF: %v", size, err)
		}
		if f.Type != elf.ET_CORE || f.Class != elf.ELFCLASS64 {
			t.Fatalf("type %v class %v", f.Type, f.Class)
		}
		var loads uint64
		var note *elf.Prog
		for _, p := range f.Progs {
			switch p.Type {
			case elf.PT_LOAD:
				loads += p.Filesz
				if p.Off%pageSize != 0 {
					t.Fatalf("PT_LOAD at unaligned offset %#x", p.Off)
				}
			case elf.PT_NOTE:
				note = p
			}
		}
		if note == nil || loads+uint64(len(l.header)) != size {
			t.Fatalf("note %v, loads %d", note, loads)
		}
	}
}

func TestCoreNotes(t *testing.T) {
	proc := coreProcess{PID: 1, PPID: 0, UID: 1000, GID: 1000, Comm: "crashapp", Args: "/app/crashapp --flag", IP: 0x401000, SP: 0x7ffc0000, BP: 0x7ffc0060}
	var buf bytes.Buffer
	l := planCore(proc, 64<<10)
	if err := writeCore(&buf, l, proc); err != nil {
		t.Fatal(err)
	}
	f, err := elf.NewFile(bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	var data []byte
	for _, p := range f.Progs {
		if p.Type == elf.PT_NOTE {
			data = make([]byte, p.Filesz)
			p.ReadAt(data, 0)
		}
	}
	notes := map[uint32][]byte{}
	for len(data) >= 12 {
		le := binary.LittleEndian
		nsz, dsz, typ := le.Uint32(data), le.Uint32(data[4:]), le.Uint32(data[8:])
		name := string(data[12 : 12+nsz-1])
		off := 12 + (nsz+3)/4*4
		if name != "CORE" {
			t.Fatalf("note name %q", name)
		}
		notes[typ] = data[off : off+dsz]
		data = data[off+(dsz+3)/4*4:]
	}
	a := currentArch()
	st, ps := notes[ntPRSTATUS], notes[ntPRPSINFO]
	if len(st) != a.prstatus || len(ps) != 136 {
		t.Fatalf("prstatus %d bytes, prpsinfo %d bytes", len(st), len(ps))
	}
	le := binary.LittleEndian
	if le.Uint32(st[0:]) != 6 || le.Uint16(st[12:]) != 6 || le.Uint32(st[32:]) != 1 {
		t.Fatalf("prstatus signo %d cursig %d pid %d", le.Uint32(st[0:]), le.Uint16(st[12:]), le.Uint32(st[32:]))
	}
	if got := le.Uint64(st[a.regOffset+8*a.ipReg:]); got != 0x401000 {
		t.Fatalf("ip %#x", got)
	}
	if le.Uint32(ps[24:]) != 1 || le.Uint32(ps[16:]) != 1000 {
		t.Fatalf("prpsinfo pid %d uid %d", le.Uint32(ps[24:]), le.Uint32(ps[16:]))
	}
	if fname := strings.TrimRight(string(ps[40:56]), "\x00"); fname != "crashapp" {
		t.Fatalf("fname %q", fname)
	}
	if args := strings.TrimRight(string(ps[56:136]), "\x00"); args != "/app/crashapp --flag" {
		t.Fatalf("psargs %q", args)
	}
}

// createDump in "self" mode: report first, then a dump of the exact size,
// both 0600, written in place.
func TestCreateDumpSelf(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("DOTNET_DbgEnableMiniDump", "1")
	t.Setenv("DOTNET_DbgMiniDumpType", "3")
	t.Setenv("DOTNET_EnableCrashReport", "1")
	t.Setenv("DOTNET_DbgMiniDumpName", filepath.Join(dir, "coredump.%p.dmp"))
	t.Setenv("CRASHDUMP_EMULATOR_CHUNK_SIZE", "256KiB")
	t.Setenv("CRASHDUMP_EMULATOR_CHUNK_DELAY", "1ms")
	cfg, err := loadConfig()
	if err != nil {
		t.Fatal(err)
	}
	if !createDump(cfg, os.Getpid(), false, nil) {
		t.Fatal("createDump failed")
	}
	dump := filepath.Join(dir, "coredump."+itoa(os.Getpid())+".dmp")
	di, err := os.Stat(dump)
	if err != nil {
		t.Fatal(err)
	}
	ri, err := os.Stat(dump + ".crashreport.json")
	if err != nil {
		t.Fatal(err)
	}
	if di.Size() != 1<<20 {
		t.Fatalf("triage dump is %d bytes, want 1MiB", di.Size())
	}
	if di.Mode().Perm() != 0o600&^umask() || ri.Mode().Perm() != 0o600&^umask() {
		t.Fatalf("modes %v %v", di.Mode(), ri.Mode())
	}
	if ri.ModTime().After(di.ModTime().Add(time.Millisecond)) {
		t.Fatalf("crash report (%v) written after the dump (%v)", ri.ModTime(), di.ModTime())
	}
	if _, err := elf.Open(dump); err != nil {
		t.Fatal(err)
	}
}

func TestLoadConfigDefaultsAndSizes(t *testing.T) {
	for _, k := range []string{"DOTNET_DbgEnableMiniDump", "DOTNET_DbgMiniDumpType", "DOTNET_DbgMiniDumpName", "COMPlus_DbgMiniDumpType", "TMPDIR"} {
		t.Setenv(k, "")
		os.Unsetenv(k)
	}
	cfg, err := loadConfig()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.EnableDump || cfg.DumpType != dumpHeap || cfg.DumpNamePattern != "/tmp/coredump.%p" || cfg.DumpSize != 16<<20 {
		t.Fatalf("defaults: %+v", cfg)
	}
	tests := []struct {
		env  map[string]string
		want uint64
		typ  int
	}{
		{map[string]string{"DOTNET_DbgMiniDumpType": "1"}, 2 << 20, dumpMini},
		{map[string]string{"COMPlus_DbgMiniDumpType": "3"}, 1 << 20, dumpTriage},
		{map[string]string{"DOTNET_DbgMiniDumpType": "4"}, 64 << 20, dumpFull},
		{map[string]string{"DOTNET_DbgMiniDumpType": "4", "CRASHDUMP_EMULATOR_FULL_SIZE": "1GiB"}, 1 << 30, dumpFull},
		{map[string]string{"DOTNET_DbgMiniDumpType": "1", "CRASHDUMP_EMULATOR_DUMP_SIZE": "500MB"}, 500e6, dumpMini},
		{map[string]string{"DOTNET_DbgMiniDumpType": "9"}, 16 << 20, dumpHeap},
	}
	for _, tt := range tests {
		for k, v := range tt.env {
			t.Setenv(k, v)
		}
		cfg, err := loadConfig()
		if err != nil {
			t.Fatal(err)
		}
		if cfg.DumpSize != tt.want || cfg.DumpType != tt.typ {
			t.Errorf("%v: size %d type %d, want %d %d", tt.env, cfg.DumpSize, cfg.DumpType, tt.want, tt.typ)
		}
		for k := range tt.env {
			os.Unsetenv(k)
		}
	}
	t.Setenv("DOTNET_DbgEnableMiniDump", "true")
	if cfg, _ := loadConfig(); cfg.EnableDump {
		t.Error(`DbgEnableMiniDump="true" must not enable dumps (the runtime wants 1)`)
	}
	t.Setenv("DOTNET_DbgEnableMiniDump", "1")
	if cfg, _ := loadConfig(); !cfg.EnableDump {
		t.Error(`DbgEnableMiniDump=1 must enable dumps`)
	}
}

func TestParseSize(t *testing.T) {
	for in, want := range map[string]uint64{"0": 0, "4096": 4096, "2MiB": 2 << 20, "1GiB": 1 << 30, "500MB": 500e6, "10k": 10240, "1.5GiB": 3 << 29} {
		if got, err := parseSize(in); err != nil || got != want {
			t.Errorf("parseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "MiB", "1XB", "-1"} {
		if _, err := parseSize(bad); err == nil {
			t.Errorf("parseSize(%q) should fail", bad)
		}
	}
}
