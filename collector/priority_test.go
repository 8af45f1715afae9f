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

// TestClaimPriorityHeadroom: with a CPU limit, uploads get a CPU budget
// that accrues at the upload share of the limit (0.2 CPU-s/s for 250m) and
// pays for all the CPU the process uses. Within the budget a read does not
// wait; after an expensive read (12 ms, as a 1 MiB read costs, far over
// what 20 ms accrue) the next waits until the debt is repaid (12 ms at 0.2:
// 60 ms), not just to the end of some window.
func TestClaimPriorityHeadroom(t *testing.T) {
	p := NewClaimPriority(0.25)
	var cpu atomic.Int64
	p.cpu = func() time.Duration { return time.Duration(cpu.Load()) }
	ctx := context.Background()
	start := time.Now()
	if err := p.Wait(ctx); err != nil { // starts the budget at 0 CPU
		t.Fatal(err)
	}
	if d := time.Since(start); d > 20*time.Millisecond {
		t.Errorf("the first read waited %v with no CPU used", d)
	}

	cpu.Store(int64(12 * time.Millisecond)) // one expensive read
	start = time.Now()
	if err := p.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < 45*time.Millisecond {
		t.Errorf("after 12 ms of CPU the next read waited only %v, want the ~60 ms that repay it at 0.2 CPU", d)
	}

	// Idle time builds credit, but at most maxCredit: a long pause does
	// not license a burst.
	p.mu.Lock()
	p.last = time.Now().Add(-time.Hour)
	p.mu.Unlock()
	if err := p.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	p.mu.Lock()
	if p.credit > maxCredit {
		t.Errorf("credit %v after an idle hour, want at most %v", p.credit, maxCredit)
	}
	p.mu.Unlock()

	// In debt, a cancelled context ends the wait.
	cpu.Add(int64(time.Hour))
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := p.Wait(cctx); err == nil {
		t.Error("Wait in debt ignored the cancelled context")
	}

	// No limit known: no governor.
	if NewClaimPriority(0).rate != 0 {
		t.Error("a governor without a limit")
	}
}
