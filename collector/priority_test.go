package collector

import (
	"context"
	"testing"
	"time"
)

func TestClaimPriority(t *testing.T) {
	p := NewClaimPriority()
	ctx := context.Background()
	if err := p.Wait(ctx); err != nil {
		t.Fatalf("Wait without a pause: %v", err)
	}

	// A pause holds Wait until resume.
	p.pause()
	p.pause() // idempotent
	done := make(chan error, 1)
	go func() { done <- p.Wait(ctx) }()
	select {
	case err := <-done:
		t.Fatalf("Wait returned %v during a pause", err)
	case <-time.After(50 * time.Millisecond):
	}
	p.resume()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Wait after resume: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Wait still blocked after resume")
	}
	p.resume() // resuming twice is harmless

	// A pause never holds a read longer than maxClaimPause.
	p.pause()
	start := time.Now()
	if err := p.Wait(ctx); err != nil {
		t.Fatalf("bounded Wait: %v", err)
	}
	if d := time.Since(start); d < maxClaimPause/2 {
		t.Fatalf("Wait returned after %v during a pause, want about %v", d, maxClaimPause)
	}

	// A cancelled context ends the wait with its error.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := p.Wait(cctx); err == nil {
		t.Fatal("Wait with a cancelled context returned nil")
	}
	p.resume()

	// A nil ClaimPriority (no Deps.Priority) is a no-op for the agent.
	var nilp *ClaimPriority
	nilp.pause()
	nilp.resume()
}
