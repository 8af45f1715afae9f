package collector

import (
	"context"
	"sync/atomic"
	"testing"
	"time"
)

func TestClaimPriority(t *testing.T) {
	p := NewClaimPriority(0)
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

// TestClaimPriorityHeadroom: with a CPU limit, a read waits while the
// process has used its upload share of the limit in the current window,
// until the next window; under the share it does not wait.
func TestClaimPriorityHeadroom(t *testing.T) {
	p := NewClaimPriority(0.25) // 4 ms of CPU per 20 ms window
	var cpu atomic.Int64
	p.cpu = func() time.Duration { return time.Duration(cpu.Load()) }
	ctx := context.Background()
	if err := p.Wait(ctx); err != nil { // opens a window at 0 CPU
		t.Fatal(err)
	}
	cpu.Store(int64(3 * time.Millisecond))
	p.mu.Lock()
	p.winStart = time.Now() // a fresh window, so the 3 ms count in it
	p.mu.Unlock()
	if err := p.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	p.mu.Lock()
	if got := p.cpuStart; got != 0 {
		t.Fatalf("under the share a new window opened (cpuStart %v)", got)
	}
	p.mu.Unlock()

	cpu.Store(int64(5 * time.Millisecond)) // over the 4 ms share
	p.mu.Lock()
	end := p.winStart.Add(cpuWindow)
	p.mu.Unlock()
	if err := p.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	if now := time.Now(); now.Before(end) {
		t.Errorf("Wait returned %v before the window's end, over the share", end.Sub(now))
	}

	// Over the share, a cancelled context ends the wait.
	p.mu.Lock()
	p.winStart, p.cpuStart = time.Now().Add(time.Hour), 0 // a window that does not end
	p.mu.Unlock()
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := p.Wait(cctx); err == nil {
		t.Error("Wait over the share ignored the cancelled context")
	}

	// No limit known: no governor.
	if NewClaimPriority(0).allowed != 0 {
		t.Error("a governor without a limit")
	}
}
