// Package manifest defines the JSON document stored beside every dump object
// (`<key>.json`). It is the contract between the agent, which writes it, and
// the retrieval CLI and other tools, which read it: field names are stable
// within a schema version and only ever added to.
package manifest

import (
	"encoding/json"
	"fmt"
	"time"
)

// SchemaVersion is the version written into every manifest.
const SchemaVersion = 1

// Correlation methods, in the order the agent tries them (package
// collector/identify; docs/manifest.md, correlation.method).
const (
	MethodWriterPID = "writer-pid"
	// MethodKernel: a core the kernel piped to `crashdump core-handler`,
	// which read the crashing PID's cgroup (exact, like writer-pid).
	MethodKernel   = "kernel"
	MethodPath     = "path"
	MethodHostname = "hostname"
	MethodNone     = "none"
)

// Compression values of Object.Compression.
const (
	CompressionNone = "none"
	CompressionZstd = "zstd"
)

// Manifest describes one collected dump.
type Manifest struct {
	SchemaVersion int       `json:"schemaVersion"`
	ID            string    `json:"id"`
	CollectedAt   time.Time `json:"collectedAt"`
	AgentVersion  string    `json:"agentVersion"`
	Node          string    `json:"node"`
	// Incomplete is true when the dump was uploaded after the maximum settle
	// wait while a writer still held it, or when it changed while uploading.
	Incomplete       bool   `json:"incomplete"`
	IncompleteReason string `json:"incompleteReason,omitempty"`
	// Kind is what the file looks like: elf-core, minidump, hprof,
	// heapsnapshot or unknown; crash-report for a .NET crash report that no
	// dump was proven to own (DOTNET_EnableCrashReportOnly=1, a createdump
	// that failed after the report): then the object is the report itself.
	Kind string `json:"kind,omitempty"`

	File        File         `json:"file"`
	Object      Object       `json:"object"`
	Pod         *Pod         `json:"pod,omitempty"`
	Process     *Process     `json:"process,omitempty"`
	Correlation Correlation  `json:"correlation"`
	CrashReport *CrashReport `json:"crashReport,omitempty"`
	// Related are the other dumps of the same container instance the
	// agent stored within two minutes of this one: one crash can leave two
	// (a .NET PID 1 dumps on SIGABRT and again on SIGSEGV,
	// dotnet/runtime#78956; a kernel core beside createdump's dump). All
	// are kept; this only links them, both ways.
	Related []Related `json:"related,omitempty"`
	Core    *Core     `json:"core,omitempty"`
	// Suppressed is set on the one manifest-only record a crash loop gets
	// per container and window beyond its limit: this manifest describes
	// the first dump not uploaded, Suppressed counts them all.
	Suppressed *Suppressed `json:"suppressed,omitempty"`
}

// Suppressed counts the dumps of one container (else pod, else directory)
// not uploaded within one window because of the crash-loop limit.
type Suppressed struct {
	// Key is the unit limited: namespace/pod/container, namespace/pod, or
	// dir:<path>.
	Key string `json:"key"`
	// Count dumps, Bytes their size, between First and Last; the window
	// began at First and ends at WindowEnd, and the next dump beyond the
	// limit after that starts a new record.
	Count     int       `json:"count"`
	Bytes     int64     `json:"bytes"`
	First     time.Time `json:"first"`
	Last      time.Time `json:"last"`
	WindowEnd time.Time `json:"windowEnd"`
	// Times are the modification times of the last (at most 100) of them,
	// oldest first; TimesDropped says how many earlier ones are not listed.
	Times        []time.Time `json:"times"`
	TimesDropped int         `json:"timesDropped,omitempty"`
}

// File is the dump as it was found on the node.
type File struct {
	// Name is the base name the writer gave the file.
	Name string `json:"name"`
	// Path is the file's path relative to the dump directory, slash-separated.
	Path string `json:"path"`
	Size int64  `json:"size"`
	// SHA256 of the original bytes; empty when the dump was not uploaded
	// (manifest-only records of rate-limited dumps).
	SHA256  string    `json:"sha256,omitempty"`
	ModTime time.Time `json:"modTime"`
	// CrashReport is the name of the .crashreport.json that came with it.
	CrashReport string `json:"crashReport,omitempty"`
}

// Object is where the dump is stored.
type Object struct {
	Store       string `json:"store"` // "s3" or "file"
	Bucket      string `json:"bucket,omitempty"`
	Key         string `json:"key"` // within the bucket, prefix included
	URL         string `json:"url,omitempty"`
	Compression string `json:"compression"`
	StoredSize  int64  `json:"storedSize"`
	// Checksum is the store's checksum of the stored bytes as verified after
	// upload, "<algorithm>:<value>".
	Checksum string `json:"checksum,omitempty"`
	// ManifestOnly is set when the dump itself was not uploaded (for example
	// rate limited); Key then names where it would have been.
	ManifestOnly bool `json:"manifestOnly,omitempty"`
	// NotUploadedReason says why a manifest-only dump was not uploaded,
	// e.g. "crash-loop limit: more than 3 dumps of prod/api-0/app within 1h0m0s".
	NotUploadedReason string `json:"notUploadedReason,omitempty"`
	Destination       string `json:"destination,omitempty"`
}

// Pod is the Kubernetes identity of the process that wrote the dump.
type Pod struct {
	Namespace   string            `json:"namespace"`
	Name        string            `json:"name"`
	UID         string            `json:"uid,omitempty"`
	Container   string            `json:"container,omitempty"`
	ContainerID string            `json:"containerID,omitempty"`
	Image       string            `json:"image,omitempty"`
	ImageID     string            `json:"imageID,omitempty"`
	Labels      map[string]string `json:"labels,omitempty"`
	OwnerKind   string            `json:"ownerKind,omitempty"`
	OwnerName   string            `json:"ownerName,omitempty"`
	// RestartCount is the container's restart count while the crashed
	// instance ran (0: the first instance), nil when the instance is not
	// known: a path or host name names a pod, not an instance, and the
	// container's latest count would be another instance's.
	RestartCount *int32 `json:"restartCount,omitempty"`
	// Termination is how the crashed instance ended, once the kubelet
	// reported it (nil: still running, not reported in time, or instance
	// unknown).
	Termination *Termination `json:"termination,omitempty"`
}

// Termination is how a container instance ended, from its status's
// terminated state.
type Termination struct {
	ExitCode int32 `json:"exitCode"`
	// Signal is the status's signal, else the one an exit code above 128
	// stands for (134: 6, SIGABRT); 0 when neither names one.
	Signal     int32     `json:"signal,omitempty"`
	SignalName string    `json:"signalName,omitempty"`
	Reason     string    `json:"reason,omitempty"`
	StartedAt  time.Time `json:"startedAt,omitzero"`
	FinishedAt time.Time `json:"finishedAt,omitzero"`
}

// ExitSummary says how an instance ended, for people: "exit 139 SIGSEGV
// (Error) at 2026-12-02T16:38:13Z".
func ExitSummary(t *Termination) string {
	s := fmt.Sprintf("exit %d", t.ExitCode)
	if t.SignalName != "" {
		s += " " + t.SignalName
	} else if t.Signal != 0 {
		s += fmt.Sprintf(" signal %d", t.Signal)
	}
	if t.Reason != "" {
		s += " (" + t.Reason + ")"
	}
	if !t.FinishedAt.IsZero() {
		s += " at " + t.FinishedAt.UTC().Format(time.RFC3339)
	}
	return s
}

// Restarts returns a pointer to n, for RestartCount.
func Restarts(n int32) *int32 { return &n }

// Process is the process that wrote the dump, when it was seen.
type Process struct {
	HostPID int    `json:"hostPID,omitempty"`
	PID     int    `json:"pid,omitempty"` // inside its PID namespace
	Exe     string `json:"exe,omitempty"`
}

// Correlation records how the pod was found.
type Correlation struct {
	Method string `json:"method"`
	// Reason explains a "none" or a fallback (kubelet unreachable, ambiguous).
	Reason     string   `json:"reason,omitempty"`
	Candidates []PodRef `json:"candidates,omitempty"`
}

// Related names another dump of the same crash.
type Related struct {
	ID       string `json:"id"`
	Key      string `json:"key"`
	FileName string `json:"fileName,omitempty"`
}

// PodRef names a pod that could have written the dump. A candidate
// ranked by evidence also names the container instance of it that ended
// abnormally within the dump's window, and how: a lead for a person, never
// an attribution.
type PodRef struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	UID       string `json:"uid,omitempty"`
	// Container, ContainerID, RestartCount and Termination: the instance
	// that ended (ranked candidates only).
	Container    string       `json:"container,omitempty"`
	ContainerID  string       `json:"containerID,omitempty"`
	RestartCount *int32       `json:"restartCount,omitempty"`
	Termination  *Termination `json:"termination,omitempty"`
}

// CrashReport summarises a .NET <dump>.crashreport.json.
type CrashReport struct {
	ExceptionType       string  `json:"exceptionType,omitempty"`
	HResult             string  `json:"hresult,omitempty"`
	ProcessName         string  `json:"processName,omitempty"`
	RuntimeVersion      string  `json:"runtimeVersion,omitempty"`
	CrashedThreadID     string  `json:"crashedThreadID,omitempty"`
	CrashedThreadFrames []Frame `json:"crashedThreadFrames,omitempty"`
	// Partial is set when the report was not valid JSON (the runtime does
	// not escape strings) or was truncated and only part could be read.
	Partial bool `json:"partial,omitempty"`
	// Key is the stored report, <dump key>.crashreport.json, uploaded and
	// verified beside the dump with its Size and SHA256 (of the report as
	// written); empty when the report could not be stored.
	Key    string `json:"key,omitempty"`
	Size   int64  `json:"size,omitempty"`
	SHA256 string `json:"sha256,omitempty"`
	// PairedBy is the proof that this report is the dump's own: "writer"
	// (one process, same PID and start time, wrote both) or "thread" (the
	// report's crashed thread, TID, IP and SP, is a thread of the core).
	// Never the file name: replicas share it.
	PairedBy string `json:"pairedBy,omitempty"`
}

// KindCrashReport is the Kind of a manifest whose object is a crash report
// without a dump.
const KindCrashReport = "crash-report"

// CrashReportSuffix is what a crash report's object key adds to its dump's.
const CrashReportSuffix = ".crashreport.json"

// Frame is one stack frame of the crashed thread.
type Frame struct {
	Managed      bool   `json:"managed"`
	Method       string `json:"method,omitempty"`
	Module       string `json:"module,omitempty"`
	ILOffset     string `json:"ilOffset,omitempty"`
	NativeOffset string `json:"nativeOffset,omitempty"`
}

// Core summarises an ELF core file.
type Core struct {
	Signal        int    `json:"signal"`
	SignalName    string `json:"signalName,omitempty"`
	PID           int    `json:"pid,omitempty"`
	Exe           string `json:"exe,omitempty"`
	Args          string `json:"args,omitempty"`
	ArgsTruncated bool   `json:"argsTruncated,omitempty"`
	Threads       int    `json:"threads,omitempty"`
	Machine       string `json:"machine,omitempty"`
}

// Marshal renders m as indented JSON, the form stored in the bucket.
func Marshal(m *Manifest) ([]byte, error) {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("marshal manifest %s: %w", m.ID, err)
	}
	return append(b, '\n'), nil
}

// Unmarshal parses a stored manifest and rejects schema versions this build
// does not understand.
func Unmarshal(data []byte) (*Manifest, error) {
	var m Manifest
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("parse manifest: %w", err)
	}
	if m.SchemaVersion != SchemaVersion {
		return nil, fmt.Errorf("parse manifest %s: unsupported schemaVersion %d (want %d)", m.ID, m.SchemaVersion, SchemaVersion)
	}
	return &m, nil
}
