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
// UploadShare of it, leaving the rest of every period to the claim step.
//
// The share is a CPU budget with debt (a token bucket over the process's
// measured CPU time): it accrues at UploadShare × the limit, at most
// maxCredit ahead, and every CPU second the process used is taken from
// it, whatever did the work. A read waits while the budget is negative,
// for as long as repaying it takes. A per-window allowance did not hold:
// one admitted 1 MiB read costs about 12 ms of CPU (hash, compression,
// HTTP) against a 4 ms allowance per 20 ms, so every window admitted one,
// the agent ran at its full quota, and the bench saw 83 % of CFS periods
// throttled and claims up to 180 ms late.
type ClaimPriority struct {
	mu     sync.Mutex
	paused chan struct{} // closed when the current pause ends; nil when not paused

	// CPU headroom: rate is the CPU seconds per second uploads may use (0:
	// no limit known, no governor); credit the budget left (negative: a
	// debt) as of last, when the process had used lastCPU.
	rate    float64
	credit  time.Duration
	last    time.Time
	lastCPU time.Duration
	cpu     func() time.Duration
}

// UploadShare is the part of the agent's CPU limit uploads may use; the
// rest stays free for claims.
const UploadShare = 0.8

// maxCredit bounds how far the budget may run ahead while uploads are idle
// or light: a burst after it is at most this much CPU, a fifth of a 250m
// quota's period.
const maxCredit = 5 * time.Millisecond

// maxDebtWait bounds one wait, so that a stalled clock or a huge debt is
// re-measured rather than slept through.
const maxDebtWait = 100 * time.Millisecond

// NewClaimPriority returns a ClaimPriority that pauses nothing yet. With
// cpuLimit > 0 (CPUs, the agent's cgroup limit) it also keeps uploads
// under UploadShare of that limit.
func NewClaimPriority(cpuLimit float64) *ClaimPriority {
	p := &ClaimPriority{cpu: processCPU}
	if cpuLimit > 0 {
		p.rate = cpuLimit * UploadShare
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

// headroom waits while the CPU budget is in debt (see ClaimPriority).
func (p *ClaimPriority) headroom(ctx context.Context) error {
	if p.rate <= 0 {
		return nil
	}
	for {
		now, cpu := time.Now(), p.cpu()
		p.mu.Lock()
		if p.last.IsZero() {
			p.last, p.lastCPU = now, cpu
		}
		p.credit += time.Duration(float64(now.Sub(p.last))*p.rate) - (cpu - p.lastCPU)
		p.credit = min(p.credit, maxCredit)
		p.last, p.lastCPU = now, cpu
		debt := -p.credit
		p.mu.Unlock()
		if debt <= 0 {
			return nil
		}
		t := time.NewTimer(min(time.Duration(float64(debt)/p.rate)+time.Millisecond, maxDebtWait))
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		}
	}
}
