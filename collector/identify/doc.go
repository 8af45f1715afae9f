// Package identify attributes a dump to the pod that wrote it, while the
// dump is prepared for upload (docs/architecture.md, "Prepare"); the answer
// is the manifest's pod and correlation (docs/manifest.md). Its Resolver
// implements collector.PodResolver over the pod cache of package pods. It
// never guesses: an answer it cannot prove is method "none", with the
// candidate pods when there were several. A wrong pod is a bug; an unknown
// one is acceptable.
//
// The methods, in order; the first unambiguous answer wins:
//
//  1. writer-pid. Evidence.Writers are the processes that held the dump
//     open when the agent claimed it, with the container ID and pod UID read
//     from their cgroups. Only writers that held it open for writing count
//     (a log shipper reading the file is not its author); writers outside any
//     pod (host processes) give no pod. The container ID is looked up among
//     every container instance the pod list has named (current,
//     state.terminated and lastState.terminated, for containers, init and
//     ephemeral containers), then the pod UID. When one is unknown the pod
//     list is refreshed once (rate-limited) before giving up. All writers
//     must agree on one pod, else the answer is "none" with the candidates.
//     The container comes from the container ID match; image, imageID and
//     restartCount from that container's status. A container ID whose pod
//     UID contradicts the cgroup's is not trusted.
//
//     kernel. A core of `crashdump core-handler` carries the crashing
//     process the kernel named (Evidence.Kernel), with the container ID
//     and pod UID read from /proc/%P/cgroup while the kernel held it. It
//     is looked up exactly as a writer is, and the answer's method is
//     kernel. Nothing else can name its pod: its path and file name are
//     the agent's own, so when the container is not in the pod list the
//     answer is "none" with the ranked candidates.
//
//  2. path. The dump's directory relative to the dump root:
//
//     <pod-uid>/...          the pod with that UID, when the pod list knows it
//     <namespace>/<pod>/...  namespace and pod
//     <namespace>/<file>     the namespace only (see below)
//
//     Directory names are validated first: a namespace must be a DNS-1123
//     label, a pod name a DNS-1123 subdomain; anything else is not a layout
//     and gives nothing (a hostile pod controls the directory names). A
//     first element shaped like a UID is a pod UID only if the pod list
//     knows such a pod, else it is read as a namespace. Deeper directories
//     below <namespace>/<pod>/ are the pod's own and are ignored.
//
//     With a pod list, <namespace>/<pod> is looked up and the attribution
//     completed with the UID, labels and owner; the container (with its
//     image, imageID and restart count, but no container ID, since the path
//     cannot say which instance crashed) only when the pod has exactly one
//     container counting init and ephemeral ones. If the pod list does not
//     know <namespace>/<pod>, the second directory is not taken as a pod
//     name (it may be any directory the application made) and the answer is
//     the namespace only. A name that several pods had (a StatefulSet pod
//     deleted and created again) gives namespace and name without UID unless
//     only one of them existed when the dump was claimed.
//
//     With --pod-source none (no pod list) namespace and pod name come from
//     the path alone, validated but unchecked.
//
//     <namespace>/ alone: the answer is namespace-only attribution (method
//     "path", pod name empty, so the object lands under <namespace>/_unknown/)
//     with the pods of that namespace on this node as candidates; it is never
//     widened to "the only pod of that namespace on this node", because
//     another pod of the namespace may have run and gone. The hostname method
//     may still name the pod, restricted to that namespace.
//
//  3. hostname. %h in a dump name is the pod's host name (spec.hostname, else
//     the pod name truncated to 63 characters). It counts when it appears in
//     the file name as a whole token (the characters around it are not
//     letters or digits) and exactly one known pod matches, within the
//     namespace the path names if it names one. Two pods matching (same name
//     in two namespaces, or "web" and "web-1") give "none" with both as
//     candidates.
//
//  4. none. Node-level facts only; the dump is still uploaded. Reason says
//     why, including a pod list failure (kubelet down, 401, 500, garbage).

// An answer without a pod ("none", or namespace-only) ranks its candidates
// by evidence: the container instances on this node (of that namespace,
// for namespace-only) that ended abnormally (non-zero exit, a signal, OOM)
// from 3 s before to 1 min after the dump's last write, nearest first,
// each with its container ID, restart count and termination; then the
// other candidates. A recent dump waits for such an end up to
// TerminationWait. The ranking is a lead for a person: it never sets the
// method or the pod, because two crashes in one minute are common (a
// crash-looping Deployment) and the nearest end is not proof.
//
// Writer evidence outranks the path: a pod that shares a hostPath volume can
// write into another namespace's directory. When the writer's pod is known
// and the path names another, the writer wins and Reason records the
// contradiction. When the writer's pod UID is known but not in the pod list,
// a path or hostname answer naming a known pod with another UID is a
// contradiction and gives "none"; a path-only answer (no pod list) cannot be
// checked and says so in Reason.
//
// A Resolver is safe for concurrent use.
package identify
