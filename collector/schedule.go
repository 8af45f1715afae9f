package collector

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"golang.org/x/sys/unix"

	"github.com/crashdump-io/crashdump/collector/dumpfs"
	"github.com/crashdump-io/crashdump/collector/procfs"
	"github.com/crashdump-io/crashdump/collector/staging"
)

const (
	// writerPoll is how often a known writer is re-checked (cheap: only
	// its own fd table). It bounds the delay between the writer's close
	// and the start of the settle time.
	writerPoll = 50 * time.Millisecond
	// fullScanEvery bounds how often a dump whose writer is not visible is
	// checked against the whole process table while it is still changing.
	fullScanEvery = 2 * time.Second
)

// item is the in-memory state of one staged dump. Owned by the scheduler
// goroutine, or by exactly one worker while it is being uploaded.
type item struct {
	entry *staging.Entry
	rec   record
	file  procfs.FileID

	size  int64
	mtime time.Time
	// writers are PIDs that had the file open for writing at the last check.
	writers  []int
	lastScan time.Time
	// settled: ready to upload; incomplete says why it was not waited for.
	settled    bool
	incomplete string
	settledAt  time.Time

	due time.Time
	idx int
}

type itemHeap []*item

func (h itemHeap) Len() int           { return len(h) }
func (h itemHeap) Less(i, j int) bool { return h[i].due.Before(h[j].due) }
func (h itemHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i]; h[i].idx = i; h[j].idx = j }
func (h *itemHeap) Push(x any)        { it := x.(*item); it.idx = len(*h); *h = append(*h, it) }
func (h *itemHeap) Pop() any {
	old := *h
	it := old[len(old)-1]
	*h = old[:len(old)-1]
	return it
}

// result is what a worker reports about an item.
type result struct {
	it   *item
	err  error
	done bool // uploaded (or dropped) and removed from staging
}

// errChanged means the dump changed while it was being uploaded: a writer
// is still at work, so it goes back to settling.
var errChanged = errors.New("dump changed while uploading")

// schedule owns every staged dump that is not being uploaded: it waits for
// dumps to settle, hands settled ones to workers, and re-queues failures
// with backoff. It returns when ctx ends, or in Once mode when everything
// claimed is done.
func (a *Agent) schedule(ctx context.Context, claimerDone <-chan struct{}) error {
	var (
		waiting itemHeap
		ready   []*item
		alive   int
		timer   = time.NewTimer(time.Hour)
	)
	defer timer.Stop()
	track := func(it *item, delta int) {
		alive += delta
		a.m.pendingDumps.Set(float64(alive))
		a.m.pendingBytes.Add(float64(int64(delta) * it.size))
	}
	for {
		if a.cfg.Once && claimerDone == nil && alive == 0 {
			return nil
		}
		var workCh chan *item
		var head *item
		if len(ready) > 0 {
			workCh, head = a.work, ready[0]
		}
		if len(waiting) > 0 {
			timer.Reset(max(0, time.Until(waiting[0].due)))
		}
		select {
		case <-ctx.Done():
			return nil
		case <-claimerDone:
			claimerDone = nil
		case it := <-a.add:
			track(it, +1)
			it.due = time.Now()
			heap.Push(&waiting, it)
		case workCh <- head:
			ready = ready[1:]
		case r := <-a.results:
			it := r.it
			switch {
			case r.done:
				track(it, -1)
			case errors.Is(r.err, errChanged):
				it.settled, it.incomplete = false, ""
				it.due = time.Now().Add(a.cfg.SettleTime)
				heap.Push(&waiting, it)
			case a.cfg.Once && it.rec.Attempts >= a.cfg.OnceMaxAttempts:
				a.log.Error("giving up on dump for this run", "path", it.rec.Path, "id", it.rec.ID, "attempts", it.rec.Attempts, "err", r.err)
				a.failed.Add(1)
				track(it, -1)
			default:
				it.due = time.Now().Add(a.backoff(it.rec.Attempts))
				heap.Push(&waiting, it)
			}
		case <-timer.C:
			now := time.Now()
			var due []*item
			for len(waiting) > 0 && !waiting[0].due.After(now) {
				due = append(due, heap.Pop(&waiting).(*item))
			}
			for _, it := range a.check(due, now) {
				if it.settled {
					ready = append(ready, it)
				} else {
					heap.Push(&waiting, it)
				}
			}
		}
	}
}

// backoff is the delay before attempt n+1: exponential with full jitter.
func (a *Agent) backoff(attempts int) time.Duration {
	d := a.cfg.RetryBase << min(attempts, 20)
	if d <= 0 || d > a.cfg.RetryMax {
		d = a.cfg.RetryMax
	}
	return time.Duration(rand.Int64N(int64(d)) + 1)
}

// check advances due items: a dump is settled when no process has it open
// for writing and it has not changed for SettleTime; after MaxSettleWait it
// is settled anyway, marked incomplete. Items already settled (retries) pass
// straight through. Returns every item, with due times set for the waiting.
func (a *Agent) check(items []*item, now time.Time) []*item {
	var final []*item // quiet, no known writer: confirm with a full scan
	var knownPIDs []int
	known := map[procfs.FileID]struct{}{}
	for _, it := range items {
		if it.settled || it.rec.Plan != nil {
			it.settled = true
			continue
		}
		var st unix.Stat_t
		if err := unix.Lstat(it.entry.Path(staging.DumpName), &st); err != nil {
			// Staging is ours alone; this should not happen. Try again.
			a.log.Error("stat staged dump", "path", it.rec.Path, "id", it.rec.ID, "err", err)
			it.due = now.Add(time.Second)
			continue
		}
		info := dumpfs.InfoFromStat(staging.DumpName, &st)
		changed := info.Size != it.size || !info.Mtime.Equal(it.mtime)
		// Keep the pending-bytes gauge honest while dumps are still growing.
		a.m.pendingBytes.Add(float64(info.Size - it.size))
		it.size, it.mtime = info.Size, info.Mtime
		if now.Sub(it.rec.ClaimedAt) >= a.cfg.MaxSettleWait {
			it.settled = true
			it.incomplete = fmt.Sprintf("still open or changing after %s", a.cfg.MaxSettleWait)
			continue
		}
		if len(it.writers) > 0 {
			knownPIDs = append(knownPIDs, it.writers...)
			known[it.file] = struct{}{}
			continue
		}
		quietFor := now.Sub(it.mtime)
		if changed || quietFor < a.cfg.SettleTime {
			it.due = now.Add(max(a.cfg.SettleTime-quietFor, 10*time.Millisecond))
			// A writer we could not see at claim time may have appeared
			// (or be invisible): look at the whole table now and then.
			if now.Sub(it.lastScan) >= fullScanEvery {
				final = append(final, it)
			}
			continue
		}
		final = append(final, it)
	}
	if len(known) > 0 {
		open, err := a.proc.OpenersIn(knownPIDs, known)
		if err != nil {
			a.log.Warn("re-check dump writers", "err", err)
		}
		for _, it := range items {
			if len(it.writers) == 0 || it.settled {
				continue
			}
			it.writers = writablePIDs(open[it.file])
			if len(it.writers) > 0 {
				it.due = now.Add(writerPoll)
				continue
			}
			// The writer closed it: wait out the settle time from its
			// last write, then confirm with a full scan.
			it.due = it.mtime.Add(a.cfg.SettleTime)
			if !it.due.After(now) {
				final = append(final, it)
			}
		}
	}
	if len(final) > 0 {
		want := map[procfs.FileID]struct{}{}
		for _, it := range final {
			want[it.file] = struct{}{}
		}
		a.m.procScans.Inc()
		open, err := a.proc.Openers(want)
		if err != nil {
			a.log.Warn("scan processes for dump writers", "err", err)
		}
		for _, it := range final {
			it.lastScan = now
			it.writers = writablePIDs(open[it.file])
			switch {
			case len(it.writers) > 0:
				it.due = now.Add(writerPoll)
			case now.Sub(it.mtime) >= a.cfg.SettleTime:
				it.settled = true
			}
		}
	}
	for _, it := range items {
		if it.settled && it.settledAt.IsZero() {
			it.settledAt = now
			a.m.settleDuration.Observe(now.Sub(it.rec.ClaimedAt).Seconds())
		}
	}
	return items
}

func writablePIDs(os []procfs.Opener) []int {
	var pids []int
	for _, o := range os {
		if o.Writable {
			pids = append(pids, o.PID)
		}
	}
	return pids
}

// worker uploads settled dumps until ctx ends. Uploads run on upCtx, which
// outlives ctx by the shutdown grace period.
func (a *Agent) worker(ctx, upCtx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case it := <-a.work:
			err := a.process(upCtx, it)
			done := err == nil
			if errors.Is(err, errDropped) {
				done, err = true, nil
			}
			if err != nil && !errors.Is(err, errChanged) {
				it.rec.Attempts++
				it.rec.LastError = err.Error()
				if serr := it.entry.Save(&it.rec); serr != nil {
					a.log.Error("save record", "path", it.rec.Path, "err", serr)
				}
				a.m.uploads.WithLabelValues("failure").Inc()
				a.log.Warn("upload failed; will retry", "path", it.rec.Path, "id", it.rec.ID, "attempts", it.rec.Attempts, "err", err)
			}
			a.results <- result{it: it, err: err, done: done}
		}
	}
}
