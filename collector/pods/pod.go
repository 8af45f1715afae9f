package pods

import (
	"maps"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// Container kinds, as in the pod spec's three lists.
const (
	KindContainer = "container"
	KindInit      = "init"
	KindEphemeral = "ephemeral"
)

// Annotations that carry a static pod's config hash. The kubelet runs a
// static pod under that hash as its UID (so its cgroup names the hash); the
// API server's mirror pod has another UID and the hash in config.mirror.
const (
	annotationConfigHash   = "kubernetes.io/config.hash"
	annotationConfigMirror = "kubernetes.io/config.mirror"
)

// PolicyPrefix marks the annotations (and namespace labels) that steer
// collection; nothing else of a pod's annotations is kept.
const PolicyPrefix = "crashdump.io/"

// maxHostnameLen is the kubelet's limit for a pod's host name: longer pod
// names are truncated (kubelet truncatePodHostnameIfNeeded).
const maxHostnameLen = 63

// maxContainerIDLen bounds a container ID taken from a status.
const maxContainerIDLen = 128

// Pod is what attribution needs to know about one pod: a compact copy of
// part of a corev1.Pod, plus what the cache remembers. Pods inside a
// Snapshot are never modified; callers must not modify them either.
type Pod struct {
	Namespace string
	Name      string
	UID       string
	// StaticHash is a static pod's config hash (32 hex), "" otherwise.
	StaticHash string
	// Hostname is what %h expands to in the pod: spec.hostname, else the pod
	// name, truncated as the kubelet does.
	Hostname string
	Labels   map[string]string
	// Policy holds the pod's crashdump.io/* annotations only: other
	// annotations may hold secrets (last-applied-configuration).
	Policy    map[string]string
	OwnerKind string
	OwnerName string
	Created   time.Time
	// Containers are the spec's containers, init containers and ephemeral
	// containers, with what their statuses said.
	Containers []Container
	// LastSeen is when a list last contained the pod.
	LastSeen time.Time
	// Gone is when the pod was first missing from a list; zero while it is
	// listed.
	Gone time.Time
}

// Container is one container of a pod.
type Container struct {
	Name         string
	Kind         string // KindContainer, KindInit or KindEphemeral
	Image        string // status image, else spec image
	ImageID      string
	RestartCount int32
	// IDs are the container instances the statuses named, current and
	// earlier ones, until they are older than the cache's retention.
	IDs []ContainerID
}

// ContainerID is one container instance.
type ContainerID struct {
	ID       string // bare lowercase ID, as in the writer's cgroup
	Full     string // as in the status: "containerd://<id>"
	LastSeen time.Time
	// RestartCount is the container's restart count while this instance
	// ran (0 for the first instance), valid when RestartKnown: a status
	// names at most two instances, the latest (status.restartCount) and the
	// one before it in lastState.terminated (one less). An instance seen
	// only as an earlier list's memory keeps what that list said.
	RestartCount int32
	RestartKnown bool
	// StartedAt is when the instance started, when a status said so.
	StartedAt time.Time
	// Termination is how the instance ended, nil while it runs or until
	// the kubelet reports it.
	Termination *Termination
}

// Termination is how one container instance ended, as its status's
// terminated state says.
type Termination struct {
	ExitCode int32
	// Signal is the status's signal, else the one a shell-style exit code
	// above 128 stands for (containerd reports 139, not signal 11); 0 when
	// neither names one.
	Signal     int32
	Reason     string
	StartedAt  time.Time
	FinishedAt time.Time
}

// terminationOf is the Termination of a terminated state, nil otherwise.
func terminationOf(t *corev1.ContainerStateTerminated) *Termination {
	if t == nil {
		return nil
	}
	sig := t.Signal
	if sig == 0 && t.ExitCode > 128 && t.ExitCode < 128+65 {
		sig = t.ExitCode - 128
	}
	return &Termination{ExitCode: t.ExitCode, Signal: sig, Reason: t.Reason,
		StartedAt: t.StartedAt.Time.UTC(), FinishedAt: t.FinishedAt.Time.UTC()}
}

// Listed reports whether the pod was in the latest list.
func (p *Pod) Listed() bool { return p.Gone.IsZero() }

// Key is "namespace/name".
func (p *Pod) Key() string { return p.Namespace + "/" + p.Name }

// Container returns the container named name.
func (p *Pod) Container(name string) (*Container, bool) {
	for i := range p.Containers {
		if p.Containers[i].Name == name {
			return &p.Containers[i], true
		}
	}
	return nil, false
}

// SplitContainerID splits a status container ID ("containerd://<id>") into
// its runtime scheme and its bare, lower-cased ID. ok is false for an empty
// or oversized ID.
func SplitContainerID(s string) (runtime, id string, ok bool) {
	runtime, id, found := strings.Cut(s, "://")
	if !found {
		runtime, id = "", s
	}
	id = strings.ToLower(strings.TrimSpace(id))
	if id == "" || len(id) > maxContainerIDLen {
		return "", "", false
	}
	return runtime, id, true
}

// FromCore makes the compact Pod of p, seen at now.
func FromCore(p *corev1.Pod, now time.Time) *Pod {
	out := &Pod{
		Namespace: p.Namespace,
		Name:      p.Name,
		UID:       string(p.UID),
		Hostname:  Hostname(p),
		Labels:    maps.Clone(p.Labels),
		Created:   p.CreationTimestamp.Time,
		LastSeen:  now,
	}
	for _, k := range []string{annotationConfigHash, annotationConfigMirror} {
		if h := p.Annotations[k]; isStaticHash(h) {
			out.StaticHash = h
			break
		}
	}
	for k, v := range p.Annotations {
		if strings.HasPrefix(k, PolicyPrefix) {
			if out.Policy == nil {
				out.Policy = map[string]string{}
			}
			out.Policy[k] = v
		}
	}
	out.OwnerKind, out.OwnerName = Owner(p)

	add := func(name, kind, image string) {
		out.Containers = append(out.Containers, Container{Name: name, Kind: kind, Image: image})
	}
	for _, c := range p.Spec.InitContainers {
		add(c.Name, KindInit, c.Image)
	}
	for _, c := range p.Spec.Containers {
		add(c.Name, KindContainer, c.Image)
	}
	for _, c := range p.Spec.EphemeralContainers {
		add(c.Name, KindEphemeral, c.Image)
	}
	status := func(statuses []corev1.ContainerStatus, kind string) {
		for i := range statuses {
			s := &statuses[i]
			c, ok := out.Container(s.Name)
			if !ok {
				// A status without a spec entry should not exist; keep
				// what it says rather than lose a container ID.
				out.Containers = append(out.Containers, Container{Name: s.Name, Kind: kind})
				c = &out.Containers[len(out.Containers)-1]
			}
			if s.Image != "" {
				c.Image = s.Image
			}
			c.ImageID, c.RestartCount = s.ImageID, s.RestartCount
			c.addStatus(s, now)
		}
	}
	status(p.Status.InitContainerStatuses, KindInit)
	status(p.Status.ContainerStatuses, KindContainer)
	status(p.Status.EphemeralContainerStatuses, KindEphemeral)
	return out
}

// addStatus records the instances a container status names, each with
// the restart count it ran under and how it ended:
//   - status.containerID is the latest instance, and restartCount is its
//     count, whether it runs, has terminated, or waits in a crash-loop
//     back-off (the kubelet then copies its terminated state into
//     lastState and keeps its ID);
//   - lastState.terminated.containerID, when it is another instance, is the
//     one before it: one restart less.
func (c *Container) addStatus(s *corev1.ContainerStatus, seen time.Time) {
	_, cur, _ := SplitContainerID(s.ContainerID)
	if cur != "" {
		inst := ContainerID{ID: cur, Full: s.ContainerID, LastSeen: seen, RestartCount: s.RestartCount, RestartKnown: true}
		switch {
		case s.State.Running != nil:
			inst.StartedAt = s.State.Running.StartedAt.Time.UTC()
		case s.State.Terminated != nil:
			inst.StartedAt = s.State.Terminated.StartedAt.Time.UTC()
			inst.Termination = terminationOf(s.State.Terminated)
		}
		if lt := s.LastTerminationState.Terminated; inst.Termination == nil && lt != nil && sameID(lt.ContainerID, cur) {
			inst.StartedAt = lt.StartedAt.Time.UTC()
			inst.Termination = terminationOf(lt)
		}
		c.addID(inst)
	}
	for _, t := range []*corev1.ContainerStateTerminated{s.State.Terminated, s.LastTerminationState.Terminated} {
		if t == nil {
			continue
		}
		_, id, ok := SplitContainerID(t.ContainerID)
		if !ok || id == cur {
			continue
		}
		inst := ContainerID{ID: id, Full: t.ContainerID, LastSeen: seen,
			StartedAt: t.StartedAt.Time.UTC(), Termination: terminationOf(t)}
		if cur != "" && t == s.LastTerminationState.Terminated && s.RestartCount > 0 {
			inst.RestartCount, inst.RestartKnown = s.RestartCount-1, true
		}
		c.addID(inst)
	}
}

func sameID(full, bare string) bool {
	_, id, ok := SplitContainerID(full)
	return ok && id == bare
}

// addID records a container instance once, completing what is already
// known of it: a count or termination once learned is kept.
func (c *Container) addID(inst ContainerID) {
	for i := range c.IDs {
		if c.IDs[i].ID == inst.ID {
			c.IDs[i].Complete(inst)
			return
		}
	}
	c.IDs = append(c.IDs, inst)
}

// Complete folds what other knows of the same instance into id: the later
// sighting, and facts id lacks.
func (id *ContainerID) Complete(other ContainerID) {
	if other.LastSeen.After(id.LastSeen) {
		id.LastSeen = other.LastSeen
	}
	if !id.RestartKnown && other.RestartKnown {
		id.RestartCount, id.RestartKnown = other.RestartCount, true
	}
	if id.StartedAt.IsZero() {
		id.StartedAt = other.StartedAt
	}
	if id.Termination == nil && other.Termination != nil {
		t := *other.Termination
		id.Termination = &t
	}
}

// Hostname is what the pod's processes see as their host name, and so
// what %h in a dump name expands to: spec.hostname if set, else the pod
// name, cut to 63 characters without a trailing '-' or '.' as the kubelet
// does. (spec.subdomain does not change the short host name.)
func Hostname(p *corev1.Pod) string {
	h := p.Spec.Hostname
	if h == "" {
		h = p.Name
	}
	if len(h) > maxHostnameLen {
		h = strings.TrimRight(h[:maxHostnameLen], "-.")
	}
	return h
}

// Owner returns the kind and name of the pod's controller, a ReplicaSet
// resolved to its Deployment when the pod's own labels prove it: the
// Deployment controller names a ReplicaSet "<deployment>-<pod-template-hash>"
// and puts that hash on the pod as a label. No API call is made; a
// ReplicaSet that does not follow the pattern stays a ReplicaSet.
func Owner(p *corev1.Pod) (kind, name string) {
	var ref *corev1.ObjectReference
	for i := range p.OwnerReferences {
		o := p.OwnerReferences[i]
		r := &corev1.ObjectReference{Kind: o.Kind, Name: o.Name, APIVersion: o.APIVersion}
		if o.Controller != nil && *o.Controller {
			ref = r
			break
		}
		if ref == nil {
			ref = r
		}
	}
	if ref == nil {
		return "", ""
	}
	if ref.Kind == "ReplicaSet" {
		gv, err := schema.ParseGroupVersion(ref.APIVersion)
		hash := p.Labels["pod-template-hash"]
		if err == nil && gv.Group == "apps" && hash != "" {
			if d, ok := strings.CutSuffix(ref.Name, "-"+hash); ok && d != "" {
				return "Deployment", d
			}
		}
	}
	return ref.Kind, ref.Name
}

func isStaticHash(s string) bool {
	if len(s) != 32 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// merge folds what an earlier list knew about the same pod into p: the
// container instances it saw that the new status no longer names (a
// container restarted twice), until they are older than cutoff.
func (p *Pod) merge(old *Pod, cutoff time.Time) {
	for _, oc := range old.Containers {
		var recent []ContainerID
		for _, id := range oc.IDs {
			if !id.LastSeen.Before(cutoff) {
				recent = append(recent, id)
			}
		}
		if len(recent) == 0 {
			continue
		}
		c, ok := p.Container(oc.Name)
		if !ok {
			// A container the spec no longer names (rare): keep it while
			// its instances are recent.
			p.Containers = append(p.Containers, Container{Name: oc.Name, Kind: oc.Kind, Image: oc.Image, ImageID: oc.ImageID, RestartCount: oc.RestartCount})
			c = &p.Containers[len(p.Containers)-1]
		}
		for _, id := range recent {
			// The new list's view wins; what only the old one knew (the
			// count of an instance two restarts back) is kept.
			c.addID(id)
		}
	}
}
