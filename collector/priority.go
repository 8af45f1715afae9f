package collector

import (
	"context"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// maxClaimPause bounds how long one upload read waits for the claim step:
// a flood of new files must slow uploads down, never stop them.
const maxClaimPause = 500 * time.Millisecond

// ClaimPriority gives the claim step the CPU before the uploads. A
// createdump Mini dump is written in about 200 ms; an agent held to 250m
// CPU that compresses a large dump meanwhile can take longer than that to
// list who holds the new file open, and the writer-pid evidence is lost.
// While a claim batch is being taken (rename plus process scan) the upload
// engine's reads wait (it is the uploader.Pacer), at most maxClaimPause per
// read. Safe for concurrent use; the zero value is not usable, use
// NewClaimPriority.
//
// A pause only helps once the claim step runs. Under a CFS quota (the
// chart's 250m: 25 ms of CPU per 100 ms period) compression alone can use
// up a period's quota, and then every thread of the agent, the inotify
// reader and the process scan included, waits for the next period: the
// twenty-crash e2e saw claims 75–150 ms late, and writers gone. So with a
// CPU limit known, uploads also keep the agent's CPU use under
// uploadShare of it, measured over cpuWindow, leaving the rest of every
// period to the claim step.
type ClaimPriority struct {
	mu     sync.Mutex
	paused chan struct{} // closed when the current pause ends; nil when not paused

	// CPU headroom: allowed is the CPU time per cpuWindow uploads may
	// use (0: no limit known, no governor).
	allowed  time.Duration
	winStart time.Time
	cpuStart time.Duration
	cpu      func() time.Duration
}

// uploadShare is the part of the agent's CPU limit uploads may use; the
// rest stays free for claims.
const uploadShare = 0.8

// cpuWindow is the governor's accounting window: a fifth of the CFS
// period, so that a period sees at most about one window's overshoot.
const cpuWindow = 20 * time.Millisecond

// NewClaimPriority returns a ClaimPriority that pauses nothing yet. With
// cpuLimit > 0 (CPUs, the agent's cgroup limit) it also keeps uploads
// under uploadShare of that limit.
func NewClaimPriority(cpuLimit float64) *ClaimPriority {
	p := &ClaimPriority{cpu: processCPU}
	if cpuLimit > 0 {
		p.allowed = time.Duration(cpuLimit * uploadShare * float64(cpuWindow))
	}
	return p
}

// processCPU is the CPU time the whole process has used.
func processCPU() time.Duration {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// pause starts a pause; it is idempotent until resume.
func (p *ClaimPriority) pause() {
	if p == nil {
		return
	}
	p.mu.Lock()
	if p.paused == nil {
		p.paused = make(chan struct{})
	}
	p.mu.Unlock()
}

// resume ends the pause, if any.
func (p *ClaimPriority) resume() {
	if p == nil {
		return
	}
	p.mu.Lock()
	if p.paused != nil {
		close(p.paused)
		p.paused = nil
	}
	p.mu.Unlock()
}

// Wait implements uploader.Pacer: it returns at once unless a claim is
// being taken, then when it is done, after maxClaimPause, or when ctx ends.
func (p *ClaimPriority) Wait(ctx context.Context) error {
	p.mu.Lock()
	ch := p.paused
	p.mu.Unlock()
	if ch != nil {
		t := time.NewTimer(maxClaimPause)
		select {
		case <-ch:
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		}
		t.Stop()
	}
	return p.headroom(ctx)
}

// headroom waits while the process has used its upload share of the CPU
// in the current window.
func (p *ClaimPriority) headroom(ctx context.Context) error {
	if p.allowed <= 0 {
		return nil
	}
	for {
		now, cpu := time.Now(), p.cpu()
		p.mu.Lock()
		if now.Sub(p.winStart) >= cpuWindow {
			p.winStart, p.cpuStart = now, cpu
		}
		used, next := cpu-p.cpuStart, p.winStart.Add(cpuWindow)
		p.mu.Unlock()
		if used < p.allowed {
			return nil
		}
		t := time.NewTimer(time.Until(next))
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		}
	}
}
