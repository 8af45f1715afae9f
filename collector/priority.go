package collector

import (
	"context"
	"sync"
	"time"
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
type ClaimPriority struct {
	mu     sync.Mutex
	paused chan struct{} // closed when the current pause ends; nil when not paused
}

// NewClaimPriority returns a ClaimPriority that pauses nothing yet.
func NewClaimPriority() *ClaimPriority { return &ClaimPriority{} }

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
	if ch == nil {
		return nil
	}
	t := time.NewTimer(maxClaimPause)
	defer t.Stop()
	select {
	case <-ch:
	case <-t.C:
	case <-ctx.Done():
		return ctx.Err()
	}
	return nil
}
