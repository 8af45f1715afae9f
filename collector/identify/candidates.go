package identify

import (
	"context"
	"sort"
	"time"

	"github.com/crashdump-io/crashdump/collector/inspect"
	"github.com/crashdump-io/crashdump/collector/pods"
	"github.com/crashdump-io/crashdump/uploader/manifest"
)

// The window, around a dump's last write, in which a container's abnormal
// end makes it a ranked candidate. A crashed process ends after its last
// write (createdump writes, then the runtime aborts; the kernel writes a
// core, then the process is gone), and the kubelet's timestamps have
// second precision: a little before, up to a minute after.
const (
	windowBefore = 3 * time.Second
	windowAfter  = time.Minute
)

// ended is one container instance that ended abnormally within a dump's
// window.
type ended struct {
	pod  *pods.Pod
	c    *pods.Container
	id   pods.ContainerID
	dist time.Duration // from the dump's last write to the end
}

// rank orders an unattributed dump's candidates by evidence: first the
// container instances on this node that ended abnormally (non-zero exit,
// a signal, OOM-killed) within the dump's window, nearest the dump's last
// write first, each with how it ended; then the other candidates as
// before. With ns set (the path named the namespace) only that
// namespace's containers count. The ranking is a lead for a person: it
// never changes the method or the pod. When nothing has ended yet and the
// dump is recent, it waits (bounded by TerminationWait) for the kubelet to
// report an end, the way a writer-pid answer waits for its instance's.
func (s *resolution) rank(ctx context.Context, cands []manifest.PodRef, ns string) []manifest.PodRef {
	if s.ev.Written.IsZero() || s.snap == nil {
		return cands
	}
	es := s.endedAround(ns)
	if len(es) == 0 {
		es = s.awaitEnded(ctx, ns)
	}
	if len(es) == 0 {
		return cands
	}
	out := make([]manifest.PodRef, 0, len(es)+len(cands))
	ranked := map[string]bool{}
	for _, e := range es {
		t := e.id.Termination
		ref := manifest.PodRef{Namespace: e.pod.Namespace, Name: e.pod.Name, UID: e.pod.UID,
			Container: e.c.Name, ContainerID: e.id.Full,
			Termination: &manifest.Termination{ExitCode: t.ExitCode, Signal: t.Signal,
				SignalName: inspect.SignalName(int(t.Signal)), Reason: t.Reason,
				StartedAt: t.StartedAt, FinishedAt: t.FinishedAt}}
		if e.id.RestartKnown {
			ref.RestartCount = manifest.Restarts(e.id.RestartCount)
		}
		out = append(out, ref)
		ranked[e.pod.UID] = true
	}
	for _, c := range cands {
		if !ranked[c.UID] {
			out = append(out, c)
		}
	}
	s.note("candidates ranked by containers that ended abnormally within %s before to %s after the dump's last write (never used to attribute)", windowBefore, windowAfter)
	if len(out) > s.r.opts.MaxCandidates {
		out = out[:s.r.opts.MaxCandidates]
	}
	return out
}

// endedAround finds the abnormal ends within the dump's window in the
// current snapshot, nearest first.
func (s *resolution) endedAround(ns string) []ended {
	w := s.ev.Written
	var out []ended
	for _, p := range s.snap.Pods() {
		if ns != "" && p.Namespace != ns {
			continue
		}
		for i := range p.Containers {
			c := &p.Containers[i]
			for _, id := range c.IDs {
				t := id.Termination
				if t == nil || !abnormal(t) || t.FinishedAt.IsZero() {
					continue
				}
				if t.FinishedAt.Before(w.Add(-windowBefore)) || t.FinishedAt.After(w.Add(windowAfter)) {
					continue
				}
				if !id.StartedAt.IsZero() && id.StartedAt.After(w.Add(windowBefore)) {
					continue // started after the dump was written: not its writer
				}
				out = append(out, ended{pod: p, c: c, id: id, dist: absDur(t.FinishedAt.Sub(w))})
			}
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].dist != out[j].dist {
			return out[i].dist < out[j].dist
		}
		if out[i].pod.Key() != out[j].pod.Key() {
			return out[i].pod.Key() < out[j].pod.Key()
		}
		return out[i].id.ID < out[j].id.ID
	})
	return out
}

// awaitEnded polls fresh pod lists for an abnormal end within the window,
// while one could still be reported: up to TerminationWait, and not past
// the window's end.
func (s *resolution) awaitEnded(ctx context.Context, ns string) []ended {
	wait := s.r.opts.TerminationWait
	if wait < 0 || s.r.pods == nil {
		return nil
	}
	if until := s.ev.Written.Add(windowAfter).Sub(s.r.opts.Now()); until < wait {
		wait = until
	}
	if wait <= 0 {
		return nil
	}
	var es []ended
	s.pollFresh(ctx, wait, func(snap *pods.Snapshot) bool {
		s.snap = snap
		es = s.endedAround(ns)
		return len(es) > 0
	})
	return es
}

// abnormal reports whether a termination is a failure: a non-zero exit, a
// signal, or an OOM kill.
func abnormal(t *pods.Termination) bool {
	return t.ExitCode != 0 || t.Signal != 0 || t.Reason == "OOMKilled"
}

func absDur(d time.Duration) time.Duration {
	if d < 0 {
		return -d
	}
	return d
}
