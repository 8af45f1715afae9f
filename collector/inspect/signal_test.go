package inspect

import (
	"debug/elf"
	"testing"
)

func TestSignalName(t *testing.T) {
	tests := []struct {
		sig  int
		m    elf.Machine
		want string
	}{
		{0, elf.EM_X86_64, ""},
		{-1, elf.EM_X86_64, ""},
		{65, elf.EM_X86_64, ""},
		{6, elf.EM_X86_64, "SIGABRT"},
		{7, elf.EM_AARCH64, "SIGBUS"},
		{11, elf.EM_AARCH64, "SIGSEGV"},
		{31, elf.EM_RISCV, "SIGSYS"},
		{34, elf.EM_X86_64, "SIG34"},
		{11, elf.EM_MIPS, "SIGSEGV"},
		{10, elf.EM_MIPS, "SIG10"},  // SIGBUS on MIPS, SIGUSR1 elsewhere
		{7, elf.EM_SPARCV9, "SIG7"}, // SIGEMT on SPARC
	}
	for _, tc := range tests {
		if got := signalName(tc.sig, tc.m); got != tc.want {
			t.Errorf("signalName(%d, %v) = %q, want %q", tc.sig, tc.m, got, tc.want)
		}
	}
}
