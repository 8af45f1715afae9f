package identify

import (
	"context"
	"path"
	"strings"

	"github.com/crashdump-io/crashdump/collector"
	"github.com/crashdump-io/crashdump/collector/pods"
	"github.com/crashdump-io/crashdump/uploader/manifest"
)

// writerResult is what the writer evidence said.
type writerResult struct {
	// answer is final: writer-pid, or none because the writers disagree.
	answer *collector.Attribution
	// unknownUIDs are the pod UIDs of writers the pod list does not know:
	// a later method must not name another known pod.
	unknownUIDs map[string]bool
	writer      *collector.Writer
}

// ident is one writer's identity from its cgroup.
type ident struct {
	w           *collector.Writer
	containerID string
	podUID      string
}

// match is a writer found in the pod list.
type match struct {
	id        ident
	pod       *pods.Pod
	container *pods.Container // nil when only the pod UID matched
	cid       pods.ContainerID
}

// writers applies method writer-pid.
func (s *resolution) writers(ctx context.Context) writerResult {
	var ids []ident
	hostPIDs, readers, unread := 0, 0, 0
	ws := s.ev.Writers
	if s.ev.Kernel != nil {
		ws = []collector.Writer{*s.ev.Kernel}
	}
	for i := range ws {
		w := &ws[i]
		switch {
		case !w.Writable:
			// A reader (a log shipper, a backup) is not the author.
			readers++
		case w.Unread:
			// Gone before its cgroup was read: neither a pod's nor the
			// host's, as far as anyone knows.
			unread++
		case w.ContainerID == "" && w.PodUID == "":
			// A host process, e.g. a core_pattern handler writing on a
			// pod's behalf: it names no pod, the path may.
			hostPIDs++
		default:
			ids = append(ids, ident{w: w, containerID: strings.ToLower(w.ContainerID), podUID: strings.ToLower(w.PodUID)})
		}
	}
	if len(ids) == 0 {
		switch {
		case hostPIDs > 0:
			s.wnote("the process writing the dump is not in a pod")
		case unread > 0:
			s.wnote("the process writing the dump exited before its cgroup could be read")
		case readers > 0:
			s.wnote("the dump was only open for reading when claimed")
		default:
			s.wnote("no process held the dump open when it was claimed")
		}
		return writerResult{}
	}
	if s.r.pods == nil {
		s.wnote("no pod list (--pod-source none)")
		return writerResult{unknownUIDs: uidsOf(ids), writer: ids[0].w}
	}

	matches, unknown, conflict := s.lookup(ids)
	if (len(unknown) > 0 || conflict != nil) && !s.refreshed {
		// The container may be too new for the list we have (the kubelet
		// reports a container's ID only after it started): look once more.
		s.refreshed = true
		snap, err := s.r.pods.Fresh(ctx, s.r.opts.Now())
		s.snap = snap
		if err != nil {
			s.listErr = err
		}
		matches, unknown, conflict = s.lookup(ids)
	}
	if conflict != nil {
		s.wnote("container %s is in pod %s/%s (uid %s) but its cgroup names pod uid %s: not trusted",
			short(conflict.id.containerID), conflict.pod.Namespace, conflict.pod.Name, conflict.pod.UID, conflict.id.podUID)
		a := s.none(matchPods(matches, conflict), conflict.id.w)
		return writerResult{answer: &a}
	}

	byUID := map[string]*pods.Pod{}
	for _, m := range matches {
		byUID[m.pod.UID] = m.pod
	}
	// A writer the list does not know belongs to the matched pod only if
	// its cgroup says so.
	var strangers []ident
	for _, id := range unknown {
		if p, ok := s.snap.ByUID(id.podUID); ok && byUID[p.UID] != nil {
			continue
		}
		strangers = append(strangers, id)
	}

	switch {
	case len(byUID) == 0:
		switch {
		case !s.haveList():
			s.listNoted = true
			s.note("pod list unavailable: %v", s.listErr)
			for _, id := range unknown {
				s.wnote("writer in pod uid %s (container %s) could not be looked up", orNone(id.podUID), short(id.containerID))
			}
			return writerResult{unknownUIDs: uidsOf(unknown), writer: unknown[0].w}
		case s.listErr != nil:
			s.wnote("pod list refresh failed: %v", s.listErr)
		}
		for _, id := range unknown {
			if id.podUID != "" {
				s.wnote("pod uid %s (container %s) is not in the pod list", id.podUID, short(id.containerID))
			} else {
				s.wnote("container %s is not in the pod list", short(id.containerID))
			}
		}
		return writerResult{unknownUIDs: uidsOf(unknown), writer: unknown[0].w}
	case len(byUID) > 1 || len(strangers) > 0:
		if len(strangers) > 0 {
			s.wnote("the dump was open for writing in pod %s and in pod uid %s", matches[0].pod.Key(), uidList(strangers))
		} else {
			s.wnote("the dump was open for writing in %d pods", len(byUID))
		}
		a := s.none(matchPods(matches, nil), matches[0].id.w)
		return writerResult{answer: &a}
	}

	// One pod. The container is the one the container IDs name, if they
	// agree; a pod UID alone names it only in a single-container pod.
	m := matches[0]
	var c *pods.Container
	var cid pods.ContainerID
	agree := true
	for _, x := range matches {
		if x.container == nil {
			continue
		}
		if c != nil && c.Name != x.container.Name {
			agree = false
		}
		if c == nil {
			c, cid, m = x.container, x.cid, x
		}
	}
	mp := podBlock(m.pod)
	switch {
	case !agree:
		s.wnote("writers in several containers of the pod; container not determined")
	case c != nil:
		mp.Container, mp.ContainerID = c.Name, cid.Full
		mp.Image, mp.ImageID = c.Image, c.ImageID
		s.instance(ctx, mp, cid)
	default:
		if only, ok := onlyContainer(m.pod); ok {
			// The container, but not which of its instances: its latest
			// restart count would be another instance's.
			mp.Container, mp.Image, mp.ImageID = only.Name, only.Image, only.ImageID
			s.wnote("container instance %s not in the pod's status; the pod has one container; instance not determined", short(m.id.containerID))
		} else {
			s.wnote("container instance %s not in the pod's status; container not determined", short(m.id.containerID))
		}
	}
	s.pathAgrees(m.pod)
	w := *m.id.w
	a := collector.Attribution{Pod: mp, Method: s.writerMethod(), Reason: s.reason(), Writer: &w}
	return writerResult{answer: &a}
}

// writerMethod is the method writer evidence gives: kernel for the
// crashing process the kernel named, else writer-pid.
func (s *resolution) writerMethod() string {
	if s.ev.Kernel != nil {
		return manifest.MethodKernel
	}
	return manifest.MethodWriterPID
}

// wnote notes what the writer evidence said, prefixed with its method.
func (s *resolution) wnote(format string, args ...any) {
	s.note(s.writerMethod()+": "+format, args...)
}

// lookup finds each writer in the current pod list. A container ID found
// in a pod other than the one the cgroup names is a conflict.
func (s *resolution) lookup(ids []ident) (matches []match, unknown []ident, conflict *match) {
	for _, id := range ids {
		if id.containerID != "" {
			if ref, ok := s.snap.ByContainerID(id.containerID); ok {
				m := match{id: id, pod: ref.Pod, container: ref.Container, cid: ref.ID}
				if id.podUID != "" && id.podUID != ref.Pod.UID && id.podUID != ref.Pod.StaticHash {
					return matches, unknown, &m
				}
				matches = append(matches, m)
				continue
			}
		}
		// An unknown container ID with a known pod: the instance may be
		// newer than the list. Counted as unknown until a refresh.
		if id.podUID != "" && (id.containerID == "" || s.refreshed) {
			if p, ok := s.snap.ByUID(id.podUID); ok {
				matches = append(matches, match{id: id, pod: p})
				continue
			}
		}
		unknown = append(unknown, id)
	}
	return matches, unknown, nil
}

// pathAgrees notes when the dump's directory names another pod than its
// writer's: a pod on a shared volume wrote into a directory that is not
// its own. The writer wins; the contradiction is recorded.
func (s *resolution) pathAgrees(p *pods.Pod) {
	d := dirs(s.ev.Path)
	if len(d) == 0 {
		return
	}
	first := d[0]
	if first == p.UID || (p.StaticHash != "" && first == p.StaticHash) {
		return
	}
	_, knownUID := s.snap.ByUID(first)
	switch {
	case knownUID:
	case !isNamespace(first):
		return // not a layout: it names nothing
	case first == p.Namespace:
		if len(d) < 2 || d[1] == p.Name || len(s.snap.ByName(first, d[1])) == 0 {
			return
		}
	}
	s.contradiction = true
	s.note("path %s does not match the writer's pod %s: the writer wins", path.Dir(s.ev.Path), p.Key())
}

// none is an ambiguous answer with candidates.
func (s *resolution) none(candidates []*pods.Pod, w *collector.Writer) collector.Attribution {
	var wc *collector.Writer
	if w != nil {
		c := *w
		wc = &c
	}
	return collector.Attribution{Method: manifest.MethodNone, Reason: s.reason(), Candidates: s.refs(candidates), Writer: wc}
}

func matchPods(ms []match, extra *match) []*pods.Pod {
	var out []*pods.Pod
	for _, m := range ms {
		out = append(out, m.pod)
	}
	if extra != nil {
		out = append(out, extra.pod)
	}
	return out
}

func uidsOf(ids []ident) map[string]bool {
	m := map[string]bool{}
	for _, id := range ids {
		if id.podUID != "" {
			m[id.podUID] = true
		}
	}
	if len(m) == 0 {
		return nil
	}
	return m
}

func uidList(ids []ident) string {
	m := uidsOf(ids)
	if m == nil {
		return "unknown"
	}
	return sortedKeys(m)
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

// short abbreviates a container ID for messages, as crictl does.
func short(id string) string {
	if id == "" {
		return "(none)"
	}
	if len(id) > 13 {
		return id[:13]
	}
	return id
}
