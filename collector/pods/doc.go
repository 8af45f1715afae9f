// Package pods knows which pods run on this node: it serves attribution
// (package identify; docs/architecture.md, "Prepare"), where a dump's writer
// evidence (a container ID and pod UID read from the writer's cgroup) or its
// path must be turned into a namespace, pod and container.
//
// A [Source] lists the node's pods, as client-go types: [Kubelet] asks the
// node's kubelet (GET <kubelet-url>/pods, RBAC nodes/pods or nodes/proxy),
// [APIServer] asks the API server (pods with fieldSelector
// spec.nodeName=<node>). Both retry transient failures with backoff.
//
// A [Cache] keeps a compact copy of what the source said, indexed by pod UID
// (and a static pod's config hash), by every container ID the pod's status
// has ever mentioned (containerID, state.terminated.containerID and
// lastState.terminated.containerID of containers, init containers and
// ephemeral containers: after a restart the crashed instance's ID is only in
// lastState, after a second restart nowhere, so IDs are remembered), and by
// namespace/name. It refreshes on a slow period and on demand when a dump
// needs it, rate-limited, and remembers pods and container IDs that disappear
// for a retention time, so that a dump that settles after its pod was deleted
// is still attributed. Readers get an immutable [Snapshot].
//
// Nothing here decides attribution; package identify does. Nothing here logs
// or counts secrets: the bearer token is read by client-go's transport and
// never appears in errors, logs or metrics.
package pods
