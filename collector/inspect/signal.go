package inspect

import (
	"debug/elf"
	"strconv"
)

// signalName names a signal number the way the crashed process's
// architecture numbers it: "SIGSEGV", "SIG34" for real-time and unnamed
// signals, "" for 0 or numbers no kernel uses.
//
// The names are those of the generic Linux ABI (x86, arm, arm64, riscv,
// powerpc, s390, loongarch). MIPS, SPARC, Alpha and PA-RISC number most
// signals differently and share only the ones in portableSignal; for them
// the other numbers stay numeric, because a wrong name is worse than none.
func signalName(sig int, m elf.Machine) string {
	if sig <= 0 || sig > 64 {
		return ""
	}
	switch m {
	case elf.EM_MIPS, elf.EM_MIPS_RS3_LE, elf.EM_SPARC, elf.EM_SPARC32PLUS, elf.EM_SPARCV9, elf.EM_PARISC, elf.EM_ALPHA:
		if !portableSignal(sig) {
			return "SIG" + strconv.Itoa(sig)
		}
	}
	if name := linuxSignal(sig); name != "" {
		return name
	}
	return "SIG" + strconv.Itoa(sig)
}

// portableSignal reports whether sig has the same number on every Linux
// architecture.
func portableSignal(sig int) bool {
	switch sig {
	case 1, 2, 3, 4, 5, 6, 8, 9, 11, 13, 14, 15:
		return true
	}
	return false
}

func linuxSignal(sig int) string {
	switch sig {
	case 1:
		return "SIGHUP"
	case 2:
		return "SIGINT"
	case 3:
		return "SIGQUIT"
	case 4:
		return "SIGILL"
	case 5:
		return "SIGTRAP"
	case 6:
		return "SIGABRT"
	case 7:
		return "SIGBUS"
	case 8:
		return "SIGFPE"
	case 9:
		return "SIGKILL"
	case 10:
		return "SIGUSR1"
	case 11:
		return "SIGSEGV"
	case 12:
		return "SIGUSR2"
	case 13:
		return "SIGPIPE"
	case 14:
		return "SIGALRM"
	case 15:
		return "SIGTERM"
	case 16:
		return "SIGSTKFLT"
	case 17:
		return "SIGCHLD"
	case 18:
		return "SIGCONT"
	case 19:
		return "SIGSTOP"
	case 20:
		return "SIGTSTP"
	case 21:
		return "SIGTTIN"
	case 22:
		return "SIGTTOU"
	case 23:
		return "SIGURG"
	case 24:
		return "SIGXCPU"
	case 25:
		return "SIGXFSZ"
	case 26:
		return "SIGVTALRM"
	case 27:
		return "SIGPROF"
	case 28:
		return "SIGWINCH"
	case 29:
		return "SIGIO"
	case 30:
		return "SIGPWR"
	case 31:
		return "SIGSYS"
	}
	return ""
}

// SignalName names a signal number of this node's kernel (the generic
// Linux numbering: a container's exit code 139 is 128+11, "SIGSEGV").
func SignalName(sig int) string { return signalName(sig, elf.EM_NONE) }
