package corepipe

import (
	"time"

	"github.com/crashdump-io/crashdump/collector/procfs"
)

// EvidenceName and CoreName are the files of an inbox entry.
const (
	EvidenceName = "evidence.json"
	CoreName     = "core"
	// MethodKernel is the correlation method of every kernel core: the
	// kernel named the crashing PID.
	MethodKernel = "kernel"
)

// Outcomes of one invocation.
const (
	OutcomeCore    = "core"    // the core is in the entry (possibly truncated)
	OutcomeRefused = "refused" // manifest-only: no core, Reason says why
	OutcomeChained = "chained" // a host core, given to the previous handler
	OutcomeDropped = "dropped" // a host core, drained and dropped
)

// Refusal and drop reasons.
const (
	ReasonBudget      = "budget"       // the disk budget is used up
	ReasonKeepFree    = "keep-free"    // the filesystem is below its keep-free space
	ReasonRateLimited = "rate-limited" // the container is over its crash-loop limit
	ReasonOptedOut    = "opted-out"    // the pod opted out
	ReasonNotSelected = "not-selected" // the pod's namespace is not selected
	ReasonNoProcess   = "no-process"   // %P is not a process under --proc-root
	ReasonError       = "error"        // the core could not be written
	ReasonHost        = "host-process" // dropped: a host process, no chain configured
	ReasonChainFailed = "chain-failed" // the previous handler could not be run
)

// Evidence is an inbox entry's evidence.json: what the kernel and
// /proc/<pid> said, and what the handler did. The agent trusts it because
// no pod can write to the state directory; only KernelComm is the
// process's own text.
type Evidence struct {
	SchemaVersion int       `json:"schemaVersion"` // 1
	ID            string    `json:"id"`
	Method        string    `json:"method"` // "kernel"
	ReceivedAt    time.Time `json:"receivedAt"`
	Outcome       string    `json:"outcome"`
	Reason        string    `json:"reason,omitempty"`
	Truncated     bool      `json:"truncated,omitempty"`
	// PolicyMode is "snapshot", or "harmless" with HarmlessReason
	// (missing, stale, invalid).
	PolicyMode     string `json:"policyMode"`
	HarmlessReason string `json:"harmlessReason,omitempty"`

	Process EvidenceProcess `json:"process"`
	Cgroup  EvidenceCgroup  `json:"cgroup"`
	InPod   bool            `json:"inPod"`
	Kernel  EvidenceKernel  `json:"kernel"`
	Counts  Counts          `json:"counts"`
	// ProcErrors are the /proc files that could not be read (or were
	// symlinks, which are not followed).
	ProcErrors []string `json:"procErrors,omitempty"`
}

// EvidenceProcess are the facts from /proc/<pid>.
type EvidenceProcess struct {
	HostPID int      `json:"hostPID"`         // %P
	PID     int      `json:"pid,omitempty"`   // innermost NSpid: what the process calls itself
	NSpid   []int    `json:"nspid,omitempty"` // outermost first
	Tgid    int      `json:"tgid,omitempty"`
	UID     int      `json:"uid"` // -1 unknown
	Exe     string   `json:"exe,omitempty"`
	Cmdline []string `json:"cmdline,omitempty"`
}

// EvidenceCgroup is what the cgroup path says.
type EvidenceCgroup struct {
	ContainerID  string `json:"containerID,omitempty"`
	Runtime      string `json:"runtime,omitempty"`
	PodUID       string `json:"podUID,omitempty"`
	StaticPodUID string `json:"staticPodUID,omitempty"`
	QOSClass     string `json:"qosClass,omitempty"`
}

func evidenceCgroup(c procfs.Cgroup) EvidenceCgroup {
	return EvidenceCgroup{ContainerID: c.ContainerID, Runtime: c.Runtime, PodUID: c.PodUID, StaticPodUID: c.StaticPodUID, QOSClass: c.QOSClass}
}

// EvidenceKernel are the kernel's specifiers as given (sanitized).
type EvidenceKernel struct {
	TID        int    `json:"tid,omitempty"`    // %i, in the process's PID namespace
	Signal     int    `json:"signal,omitempty"` // %s
	Time       int64  `json:"time,omitempty"`   // %t
	CoreLimit  string `json:"coreLimit,omitempty"`
	DumpMode   string `json:"dumpMode,omitempty"`
	KernelComm string `json:"kernelComm,omitempty"` // %e: untrusted, sanitized, at most 64 bytes
}

// Counts are the handler's counters for this core, which the agent adds
// to its metrics when it ingests the entry.
type Counts struct {
	BytesReceived   int64   `json:"bytesReceived"`   // read from stdin
	BytesWritten    int64   `json:"bytesWritten"`    // written to the core file
	BytesSparse     int64   `json:"bytesSparse"`     // zero pages skipped (holes)
	BytesDrained    int64   `json:"bytesDrained"`    // read and thrown away (refused, truncated, dropped)
	DiskBytes       int64   `json:"diskBytes"`       // the core's st_blocks*512
	DurationSeconds float64 `json:"durationSeconds"` // start to entry complete
}
