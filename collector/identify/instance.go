package identify

import (
	"context"
	"time"

	"github.com/crashdump-io/crashdump/collector/inspect"
	"github.com/crashdump-io/crashdump/collector/pods"
	"github.com/crashdump-io/crashdump/uploader/manifest"
)

// terminationPoll is the least gap between two looks for a termination:
// the pod cache rate-limits lists on its own, this only keeps a failing
// source from being asked in a tight loop.
const terminationPoll = 500 * time.Millisecond

// instance fills what the crashed container instance itself says: the
// restart count it ran under and how it ended. It waits, bounded by
// TerminationWait and ctx, for the kubelet to report the termination.
func (s *resolution) instance(ctx context.Context, mp *manifest.Pod, id pods.ContainerID) {
	if id.Termination == nil {
		id = s.awaitTermination(ctx, id)
	}
	if id.RestartKnown {
		mp.RestartCount = manifest.Restarts(id.RestartCount)
	} else {
		s.note("restart count of container instance %s not known: the pod's status no longer names it", short(id.ID))
	}
	if t := id.Termination; t != nil {
		mp.Termination = &manifest.Termination{ExitCode: t.ExitCode, Signal: t.Signal,
			SignalName: inspect.SignalName(int(t.Signal)), Reason: t.Reason,
			StartedAt: t.StartedAt, FinishedAt: t.FinishedAt}
	}
}

// awaitTermination looks the instance up in fresh pod lists until one
// reports how it ended, the wait is over, or ctx ends. It returns the
// latest it knows of the instance.
func (s *resolution) awaitTermination(ctx context.Context, id pods.ContainerID) pods.ContainerID {
	wait := s.r.opts.TerminationWait
	if wait < 0 || s.r.pods == nil {
		return id
	}
	start := s.r.opts.Now()
	ended := s.pollFresh(ctx, wait, func(snap *pods.Snapshot) bool {
		ref, ok := snap.ByContainerID(id.ID)
		if !ok {
			return false
		}
		ref.ID.Complete(id)
		id = ref.ID
		s.snap = snap
		return id.Termination != nil
	})
	if !ended {
		s.note("container instance %s: no termination reported within %s", short(id.ID), s.r.opts.Now().Sub(start).Round(100*time.Millisecond))
	}
	return id
}

// pollFresh takes a fresh pod list every terminationPoll and hands it to
// done, until done reports it has what it waited for (true), wait is
// over or ctx ends (false).
func (s *resolution) pollFresh(ctx context.Context, wait time.Duration, done func(*pods.Snapshot) bool) bool {
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	for {
		t := time.NewTimer(terminationPoll)
		select {
		case <-ctx.Done():
			t.Stop()
			return false
		case <-t.C:
		}
		snap, err := s.r.pods.Fresh(ctx, s.r.opts.Now())
		if err != nil || snap == nil {
			continue
		}
		if done(snap) {
			return true
		}
	}
}
