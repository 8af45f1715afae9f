//go:build !linux

package corepipe

import (
	"io"
	"time"
)

// Host-core actions (Config.HostCores).
const (
	HostAuto  = "auto"
	HostChain = "chain"
	HostDrop  = "drop"
)

// Config is the handler's configuration; see the Linux build.
type Config struct {
	ProcRoot, StateDir, PolicyPath, HostCores, PreviousPattern string
	Logf                                                       func(string)
	Now                                                        func() time.Time
}

// Result is what one invocation did.
type Result struct {
	Evidence Evidence
	EntryID  string
}

// Run only drains stdin: the kernel's core_pattern pipe exists on Linux only.
func Run(cfg Config, args Args, stdin io.Reader) Result {
	n, _ := io.Copy(io.Discard, stdin)
	if cfg.Logf != nil {
		cfg.Logf("crashdump core-handler: only supported on Linux")
	}
	return Result{Evidence: Evidence{Outcome: OutcomeDropped, Reason: ReasonError, Counts: Counts{BytesReceived: n, BytesDrained: n}}}
}
