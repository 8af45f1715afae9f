package collector

import (
	"context"
	"time"

	"github.com/crashdump-io/crashdump/uploader"
	"github.com/crashdump-io/crashdump/uploader/manifest"
)

// Writer is a process seen holding a dump open when it was claimed: the
// evidence for writer-pid attribution, captured while the writer still
// held the file and kept in the journal across restarts.
type Writer struct {
	HostPID     int    `json:"hostPID"`
	NSPID       int    `json:"nsPID,omitempty"`
	Writable    bool   `json:"writable"`
	Comm        string `json:"comm,omitempty"`
	Exe         string `json:"exe,omitempty"`
	ContainerID string `json:"containerID,omitempty"`
	Runtime     string `json:"runtime,omitempty"`
	PodUID      string `json:"podUID,omitempty"`
	// StartTime is the process's start time (clock ticks after boot), 0
	// if unknown: with HostPID it names one process, not a recycled PID.
	StartTime uint64 `json:"startTime,omitempty"`
	// Unread: the process was gone before its cgroup could be read, so
	// it is not known to be in a pod or on the host.
	Unread bool `json:"unread,omitempty"`
}

// Evidence is what the agent knows about a dump's origin.
type Evidence struct {
	// Path is where the dump was found, relative to the dump directory,
	// slash-separated.
	Path string
	// Writers are the processes that held the file open at claim time.
	Writers   []Writer
	ClaimedAt time.Time
	// Kernel, when set, is the crashing process the kernel named for a
	// core of the core_pattern handler (method kernel): Writers is empty,
	// and neither the path nor the file name may name a pod.
	Kernel *Writer
	// Written is the dump's last modification: a crashed process ends
	// after its last write, so an unattributed dump's candidates are the
	// containers that ended abnormally around it.
	Written time.Time
}

// Attribution is a PodResolver's answer.
type Attribution struct {
	// Pod is nil when the dump is not attributed; for method "path" with no
	// pod list it may hold only a namespace and name.
	Pod *manifest.Pod
	// Method is one of manifest.Method*.
	Method string
	// Reason explains a fallback or a "none".
	Reason     string
	Candidates []manifest.PodRef
	// Writer is the evidence the answer rests on, when there was one.
	Writer *Writer
	// Annotations are the pod's crashdump.io/* annotations (selection,
	// compression, rate limit overrides). Only that prefix: other
	// annotations may hold secrets (last-applied-configuration) and are
	// never read or recorded.
	Annotations map[string]string
	// NamespaceLabels are the labels of the pod's namespace when the pod
	// source can see them (the API server), for namespace defaults and
	// routing by label selector.
	NamespaceLabels map[string]string
}

// PodResolver attributes a dump to the pod that wrote it. It must never
// guess: an ambiguous answer is method "none" with the candidates. It must
// not fail either: trouble (the kubelet down) is a "none" with a reason.
// Implementations are safe for concurrent use.
type PodResolver interface {
	Resolve(ctx context.Context, ev Evidence) Attribution
}

// ClaimObserver is optional on a PodResolver: it is told about each claimed
// dump once its writer evidence is taken, so it can refresh its pod list
// while the pod surely still exists. It must not block.
type ClaimObserver interface {
	DumpClaimed(ev Evidence)
}

// NodePodLister is optional on a PodResolver: this node's pods as the
// core handler's policy snapshot needs them (kernel.go). It returns the
// cached list without waiting (nil when there is none) and must not block.
type NodePodLister interface {
	NodePods() []NodePod
}

// NodePod is one pod of this node for the policy snapshot.
type NodePod struct {
	Namespace, Name string
	// UIDs are the UIDs its cgroups may name: its UID, and a static pod's
	// config hash.
	UIDs []string
	// Annotations are its crashdump.io/* annotations only.
	Annotations map[string]string
	// NamespaceDefaults: its namespace's labels may set collection
	// defaults (API-server pod source) that a pod annotation overrides;
	// they are not in NodePod, so without an annotation the snapshot must
	// not judge the pod.
	NamespaceDefaults bool
	// Containers are its containers with the IDs of their instances, bare
	// as a cgroup names them.
	Containers []NodeContainer
}

// NodeContainer is one container of a NodePod.
type NodeContainer struct {
	Name string
	IDs  []string
}

// NoResolver attributes nothing: node-level facts only.
type NoResolver struct{}

// Resolve implements PodResolver.
func (NoResolver) Resolve(_ context.Context, ev Evidence) Attribution {
	a := Attribution{Method: manifest.MethodNone, Reason: "pod attribution disabled"}
	if len(ev.Writers) > 0 {
		w := ev.Writers[0]
		a.Writer = &w
	}
	if ev.Kernel != nil {
		w := *ev.Kernel
		a.Writer = &w
	}
	return a
}

// Notifier is told about every verified upload (Kubernetes Events). It must
// not block for long and its failures never fail an upload.
type Notifier interface {
	DumpUploaded(ctx context.Context, m *manifest.Manifest)
}

// NopNotifier tells no one.
type NopNotifier struct{}

// DumpUploaded implements Notifier.
func (NopNotifier) DumpUploaded(context.Context, *manifest.Manifest) {}

// Destinations chooses where a dump goes (docs/routing.md: destinations per
// tenant).
// Implementations are safe for concurrent use.
type Destinations interface {
	// Route names the destination for a dump from namespace (empty when
	// unattributed) with the namespace's labels (nil when unknown).
	Route(namespace string, labels map[string]string) string
	// Store returns the named destination's store.
	Store(name string) (uploader.Store, bool)
}

// DefaultDestination is the name of the destination given by --store.
const DefaultDestination = "default"

// single is one store for everything.
type single struct{ s uploader.Store }

func (d single) Route(string, map[string]string) string { return DefaultDestination }

func (d single) Store(name string) (uploader.Store, bool) {
	return d.s, name == DefaultDestination
}
