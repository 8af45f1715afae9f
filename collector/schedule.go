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
	"github.com/crashdump-io/crashdump/collector/pair"
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

	size int64
	// disk is what the dump uses on the node (allocated blocks, its
	// entry's overhead included): what the disk budget counts, as size is
	// not for a sparse file.
	disk     int64
	overhead int64 // the entry's directory, record and crash report
	mtime    time.Time
	ctime    time.Time // the last ctime seen: a change mtime may hide
	// hiddenWrite is when a change the mtime did not show was seen.
	hiddenWrite time.Time
	// tenant is whose dump it is for the disk budget (tenantOf), kept by
	// the scheduler: the record's plan is the worker's while in flight.
	tenant string
	// writers are PIDs that had the file open for writing at the last check.
	writers  []int
	lastScan time.Time
	// settled: ready to upload; incomplete says why it was not waited for.
	settled    bool
	incomplete string
	settledAt  time.Time
	// lingering: stored, node copy watched for one more settle time
	// (errLinger).
	lingering bool

	due time.Time
	idx int

	// proof is what proves a crash report is this dump's (set when the
	// dump is planned). For a crash report: lateFor is the stored dump it
	// was proven to belong to, by lateBasis; reportWait the delay before
	// the next look for one.
	proof      *pair.Dump
	lateFor    *storedDump
	lateBasis  string
	reportWait time.Duration
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

// scheduler owns every staged dump that is not being uploaded: it waits
// for dumps to settle, hands settled ones to workers, re-queues failures with
// backoff, moves dumps that keep failing to failed/, and keeps the disk
// budget. One goroutine; nothing here is shared.
type scheduler struct {
	a        *Agent
	waiting  itemHeap
	ready    []*item
	inflight map[*item]bool
	alive    int
	// reports counts the crash reports among alive.
	reports int
	// pending is the size of every staged dump (waiting, ready, in flight).
	pending int64
	failed  []*failedDump
	// failedBytes is the size of everything in failed/; pendingDisk and
	// failedDisk what the pending and failed dumps use on disk (the
	// budget's measure).
	failedBytes  int64
	pendingDisk  int64
	failedDisk   int64
	budgetWarned bool
	// maxBytes is the byte budget as last computed (a percentage of the
	// filesystem becomes bytes).
	maxBytes int64
	// nsBudgets are the namespaces' own budgets (namespace label
	// crashdump.io/max-dump-bytes, -1: none), learnt from attributed dumps.
	nsBudgets map[string]int64
	// parked are the staged dumps held as 64 bytes each (park.go);
	// parkedLive counts those not evicted. They are in alive and the
	// pending counts too.
	parked     parkedHeap
	parkedLive int
	// tenantIDs and tenantNames intern the tenants of parked dumps.
	tenantIDs   map[string]uint32
	tenantNames []string
	// usage is what each tenant's dumps use on disk (pending, parked and
	// failed), kept as they change: the budget reads it at every claim.
	usage map[string]int64
	// retrying: an upload failed since the last one that succeeded; the
	// next success wakes the dumps waiting out their backoff (wakeRetries).
	retrying bool
	// policyAt is when the core handler's policy snapshot was last
	// written (kernel.go, writePolicy).
	policyAt time.Time
}

func newScheduler(a *Agent) *scheduler {
	return &scheduler{a: a, inflight: map[*item]bool{}, usage: map[string]int64{}}
}

// charge adds disk bytes to a tenant's usage.
func (s *scheduler) charge(tenant string, disk int64) {
	if disk == 0 {
		return
	}
	if v := s.usage[tenant] + disk; v != 0 {
		s.usage[tenant] = v
	} else {
		delete(s.usage, tenant)
	}
}

func (s *scheduler) setPendingGauges() {
	s.a.m.diskBytes.Set(float64(s.pendingDisk + s.failedDisk))
	s.a.m.pendingDumps.Set(float64(s.alive))
	s.a.m.pendingBytes.Set(float64(s.pending))
}

// failedDump is a dump given up on, kept in failed/ until its TTL.
type failedDump struct {
	entry    *staging.Entry
	path     string
	size     int64
	disk     int64 // allocated
	claimed  time.Time
	failedAt time.Time
	tenant   string // tenantOf its record
}

// untrack stops tracking an item that is done, once: a crash report taken
// by its dump may be reported gone from two sides.
func (s *scheduler) untrack(it *item) {
	if it.rec.Kind == kindReport && !s.a.shelf.forget(it) {
		return
	}
	s.track(it, -1)
	if s.a.cfg.Once && s.alive > 0 && s.alive == s.reports {
		// Only reports are left and no dump will come in this run: they
		// need not wait for one.
		for _, w := range s.waiting {
			w.due = time.Now()
		}
		heap.Init(&s.waiting)
	}
}

// dropTaken forgets a crash report its dump took, wherever it is queued.
// One being uploaded comes back from its worker.
func (s *scheduler) dropTaken(it *item) {
	if s.inflight[it] {
		return
	}
	if i := indexOf(s.ready, it); i >= 0 {
		s.ready = append(s.ready[:i], s.ready[i+1:]...)
	} else if it.idx >= 0 && it.idx < len(s.waiting) && s.waiting[it.idx] == it {
		heap.Remove(&s.waiting, it.idx)
	}
	s.untrack(it)
}

// reportReady says whether a settled crash report goes to a worker now: it
// was proven to belong to a stored dump, or its wait for a dump is over.
// Otherwise it sets when to look again.
func (s *scheduler) reportReady(it *item, now time.Time) bool {
	a := s.a
	a.findLateDump(it)
	deadline := it.rec.ClaimedAt.Add(a.cfg.MaxSettleWait)
	if it.lateFor != nil || !now.Before(deadline) || (a.cfg.Once && s.alive == s.reports) {
		return true
	}
	it.reportWait = min(max(2*it.reportWait, reportRecheck), time.Minute)
	it.due = now.Add(it.reportWait)
	if it.due.After(deadline) {
		it.due = deadline
	}
	return false
}

func (s *scheduler) track(it *item, delta int) {
	if it.rec.Kind == kindReport {
		s.reports += delta
	}
	s.alive += delta
	s.pending += int64(delta) * it.size
	s.pendingDisk += int64(delta) * it.disk
	s.charge(it.tenant, int64(delta)*it.disk)
	s.setPendingGauges()
}

func (s *scheduler) resize(it *item, info dumpfs.Info) {
	disk := info.Allocated + it.overhead
	s.pending += info.Size - it.size
	s.pendingDisk += disk - it.disk
	s.charge(it.tenant, disk-it.disk)
	it.size, it.disk = info.Size, disk
	s.a.m.pendingBytes.Set(float64(s.pending))
	s.a.m.diskBytes.Set(float64(s.pendingDisk + s.failedDisk))
}

func (s *scheduler) setFailedGauges() {
	s.a.m.failedDumps.Set(float64(len(s.failed)))
	s.a.m.failedBytes.Set(float64(s.failedBytes))
	s.a.m.diskBytes.Set(float64(s.pendingDisk + s.failedDisk))
}

// schedule runs the scheduler. It returns when ctx ends, or in Once mode
// when everything claimed is done.
func (a *Agent) schedule(ctx context.Context, s *scheduler, claimerDone <-chan struct{}) error {
	s.loadFailed()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	housekeeping := time.NewTicker(a.cfg.BudgetInterval)
	defer housekeeping.Stop()
	s.housekeeping(time.Now())
	for {
		if a.cfg.Once && claimerDone == nil && s.alive == 0 {
			return nil
		}
		var workCh chan *item
		var head *item
		if len(s.ready) > 0 {
			workCh, head = a.work, s.ready[0]
		}
		next := s.unpark(time.Now())
		if len(s.waiting) > 0 && (next.IsZero() || s.waiting[0].due.Before(next)) {
			next = s.waiting[0].due
		}
		if !next.IsZero() {
			timer.Reset(max(0, time.Until(next)))
		}
		select {
		case <-ctx.Done():
			return nil
		case <-claimerDone:
			claimerDone = nil
			// The claimer may have queued dumps just before it finished,
			// and select picks among ready cases at random: take them all
			// before Once mode can conclude that nothing is left.
			for drained := false; !drained; {
				select {
				case it := <-a.add:
					s.added(it)
				default:
					drained = true
				}
			}
		case it := <-a.add:
			s.added(it)
		case workCh <- head:
			s.ready = s.ready[1:]
			s.inflight[head] = true
		case it := <-a.reportGone:
			s.dropTaken(it)
		case r := <-a.results:
			delete(s.inflight, r.it)
			s.result(r)
		case now := <-housekeeping.C:
			s.housekeeping(now)
		case <-timer.C:
			now := time.Now()
			s.unpark(now)
			var due []*item
			for len(s.waiting) > 0 && !s.waiting[0].due.After(now) {
				due = append(due, heap.Pop(&s.waiting).(*item))
			}
			live := due[:0]
			for _, it := range due {
				if it.rec.Kind == kindReport && a.shelf.taken(it) {
					s.untrack(it)
					continue
				}
				if it.lingering && s.lingered(it, now) {
					continue
				}
				live = append(live, it)
			}
			for _, it := range s.check(live, now) {
				if it.settled && it.rec.Kind == kindReport && !s.reportReady(it, now) {
					heap.Push(&s.waiting, it)
					continue
				}
				if it.settled {
					s.ready = append(s.ready, it)
				} else {
					heap.Push(&s.waiting, it)
				}
			}
		}
	}
}

// added tracks a newly claimed dump.
func (s *scheduler) added(it *item) {
	it.tenant = tenantOf(&it.rec)
	s.noteNamespaceBudget(it.rec.Plan)
	s.track(it, +1)
	it.due = time.Now()
	if it.rec.Kind != kindReport && s.resident() > s.a.cfg.MaxResident {
		// A flood: its claim and writers are recorded; it settles when
		// there is room.
		s.park(it, it.due, false)
	} else {
		heap.Push(&s.waiting, it)
	}
	// Every new dump is checked against the budget.
	s.enforceBudget(time.Now())
}

// result takes back an item from a worker.
func (s *scheduler) result(r result) {
	a, it := s.a, r.it
	// The worker may have attributed it: charge it to its namespace now.
	if t := tenantOf(&it.rec); t != it.tenant {
		s.charge(it.tenant, -it.disk)
		s.charge(t, it.disk)
		it.tenant = t
	}
	s.noteNamespaceBudget(it.rec.Plan)
	// Stored (done, or stored with its node copy watched a little longer):
	// after failures, the store is back.
	if s.retrying && (r.done || errors.Is(r.err, errLinger)) {
		s.retrying = false
		s.wakeRetries(time.Now())
	}
	switch {
	case r.done:
		s.untrack(it)
	case errors.Is(r.err, errLinger):
		it.lingering = true
		it.due = time.Now().Add(a.cfg.SettleTime)
		heap.Push(&s.waiting, it)
	case errors.Is(r.err, errChanged):
		it.settled, it.incomplete = false, ""
		it.due = time.Now().Add(a.cfg.SettleTime)
		heap.Push(&s.waiting, it)
	case a.cfg.Once && it.rec.Attempts >= a.cfg.OnceMaxAttempts:
		a.log.Error("giving up on dump for this run", "path", it.rec.Path, "id", it.rec.ID, "attempts", it.rec.Attempts, "err", r.err)
		a.failed.Add(1)
		s.untrack(it)
	case !a.cfg.Once && time.Since(it.rec.ClaimedAt) >= a.cfg.RetryFor:
		s.fail(it, r.err)
	case it.rec.Kind != kindReport:
		// Its record is saved: until the next attempt it costs 64 bytes.
		s.retrying = true
		s.park(it, time.Now().Add(a.backoff(it.rec.Attempts)), true)
	default:
		s.retrying = true
		it.due = time.Now().Add(a.backoff(it.rec.Attempts))
		heap.Push(&s.waiting, it)
	}
}

// wakeRetries makes every dump waiting out a backoff due now: an upload
// just succeeded after failures, so the store is most likely back. Without
// it the backlog of an outage drained at the pace of each dump's own
// backoff, up to --retry-max (5 min) after the store returned; the oldest
// dumps, with the longest backoffs, came last. The workers and
// MaxResident still pace the uploads. O(parked) once per recovery, not per
// success.
func (s *scheduler) wakeRetries(now time.Time) {
	n := 0
	for i := range s.parked {
		if p := &s.parked[i]; !p.dead && p.due > now.UnixNano() {
			p.due = now.UnixNano()
			n++
		}
	}
	heap.Init(&s.parked)
	for _, it := range s.waiting {
		if it.settled && !it.lingering && it.due.After(now) { // not a stored dump's watch
			it.due = now
			n++
		}
	}
	heap.Init(&s.waiting)
	if n > 0 {
		s.a.log.Info("upload succeeded after failures: retrying the waiting dumps now", "dumps", n)
	}
}

// lingered ends the watch of a stored dump (errLinger): unchanged, its node
// copy goes and true is returned; changed, it is to be uploaded again,
// marked incomplete if it grew, and false is returned.
func (s *scheduler) lingered(it *item, now time.Time) bool {
	a := s.a
	it.lingering = false
	var st unix.Stat_t
	err := unix.Lstat(it.entry.Path(staging.DumpName), &st)
	if err == nil && !it.rec.Plan.matches(dumpfs.InfoFromStat(staging.DumpName, &st)) {
		info := dumpfs.InfoFromStat(staging.DumpName, &st)
		a.log.Warn("stored dump changed after its upload; uploading again", "path", it.rec.Path, "id", it.rec.ID,
			"size", info.Size, "planned_size", it.rec.Plan.Size)
		a.m.changedDuringUpload.Inc()
		if info.Size > it.rec.Plan.Size && it.rec.Grew == "" {
			a.markGrew(it, info.Size)
		}
		it.settled, it.incomplete = false, ""
		it.due = now.Add(a.cfg.SettleTime)
		return false
	}
	if err := a.stage.Remove(it.entry); err != nil {
		a.log.Error("remove node copy", "path", it.rec.Path, "id", it.rec.ID, "err", err)
	}
	s.untrack(it)
	return true
}

// fail moves a dump that kept failing for RetryFor out of the retry loop.
func (s *scheduler) fail(it *item, err error) {
	a := s.a
	s.untrack(it)
	if ferr := a.stage.Fail(it.entry); ferr != nil {
		a.log.Error("move dump to failed", "path", it.rec.Path, "id", it.rec.ID, "err", ferr)
		return
	}
	now := time.Now()
	it.rec.FailedAt = now
	if serr := it.entry.Save(&it.rec); serr != nil {
		a.log.Error("save record", "path", it.rec.Path, "err", serr)
	}
	s.failed = append(s.failed, &failedDump{entry: it.entry, path: it.rec.Path, size: it.size, disk: it.disk, claimed: it.rec.ClaimedAt, failedAt: now, tenant: it.tenant})
	s.failedBytes += it.size
	s.failedDisk += it.disk
	s.charge(it.tenant, it.disk)
	s.setFailedGauges()
	a.m.failedTotal.Inc()
	a.log.Error("giving up on dump: moved to failed", "path", it.rec.Path, "id", it.rec.ID, "attempts", it.rec.Attempts,
		"retried_for", a.cfg.RetryFor.String(), "kept_for", a.cfg.FailedTTL.String(), "err", err)
}

// loadFailed reads failed/ at start-up.
func (s *scheduler) loadFailed() {
	a := s.a
	entries, err := a.stage.FailedEntries()
	if err != nil {
		a.log.Warn("failed directory holds unexpected entries", "err", err)
	}
	for _, e := range entries {
		var rec record
		_ = e.Load(&rec)
		var st unix.Stat_t
		size, disk := int64(0), int64(0)
		if unix.Lstat(e.Path(staging.DumpName), &st) == nil {
			size, disk = st.Size, st.Blocks*512
		}
		disk += e.Overhead()
		if rec.FailedAt.IsZero() {
			rec.FailedAt = time.Now()
		}
		f := &failedDump{entry: e, path: rec.Path, size: size, disk: disk, claimed: rec.ClaimedAt, failedAt: rec.FailedAt, tenant: tenantOf(&rec)}
		s.failed = append(s.failed, f)
		s.failedBytes += size
		s.failedDisk += disk
		s.charge(f.tenant, disk)
	}
	s.setFailedGauges()
}

// housekeeping runs periodically: failed dumps past their TTL go, the
// disk budget is checked (dumps grow while being written), and the
// crashdump_last_dump_timestamp_seconds series past their hour go.
func (s *scheduler) housekeeping(now time.Time) {
	a := s.a
	kept := s.failed[:0]
	for _, f := range s.failed {
		if now.Sub(f.failedAt) < a.cfg.FailedTTL {
			kept = append(kept, f)
			continue
		}
		if err := a.stage.Remove(f.entry); err != nil {
			a.log.Error("remove expired failed dump", "path", f.path, "err", err)
			kept = append(kept, f)
			continue
		}
		s.failedBytes -= f.size
		s.failedDisk -= f.disk
		s.charge(f.tenant, -f.disk)
		a.m.dropped.WithLabelValues(DropFailedTTL).Inc()
		a.log.Warn("deleted failed dump after its retention", "path", f.path, "id", f.entry.ID, "size", f.size, "failed_at", f.failedAt)
	}
	s.failed = kept
	s.setFailedGauges()
	s.enforceBudget(now)
	a.m.lastDump.expire()
	if a.cfg.KernelCores && now.Sub(s.policyAt) >= kernelPolicyMaxAge/2 {
		s.writePolicy(now)
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
func (s *scheduler) check(items []*item, now time.Time) []*item {
	a := s.a
	var final []*item // quiet, no known writer: confirm with a full scan
	var knownPIDs []int
	known := map[procfs.FileID]struct{}{}
	for _, it := range items {
		if it.settled {
			continue
		}
		if it.rec.Kernel != nil {
			// The handler renames its entry only when the core is whole
			// and fsynced: nothing writes a staged kernel core.
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
		changed := info.Size != it.size || !info.Mtime.Equal(it.mtime) || !info.Ctime.Equal(it.ctime)
		// Keep the pending bytes honest while dumps are still growing.
		s.resize(it, info)
		if changed && !info.Mtime.After(it.mtime) {
			// Changed, and the mtime does not show it (set back with
			// utimensat): the last write is now, as far as we know.
			it.hiddenWrite = now
		}
		it.mtime, it.ctime = info.Mtime, info.Ctime
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
		quietFor := now.Sub(it.lastWrite())
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
			it.due = it.lastWrite().Add(a.cfg.SettleTime)
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
			case now.Sub(it.lastWrite()) >= a.cfg.SettleTime:
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
			if err != nil && !errors.Is(err, errChanged) && !errors.Is(err, errLinger) {
				it.rec.Attempts++
				it.rec.LastError = err.Error()
				if serr := it.entry.Save(&it.rec); serr != nil {
					a.log.Error("save record", "path", it.rec.Path, "err", serr)
				}
				a.m.uploads.WithLabelValues("failure").Inc()
				a.log.Warn("upload failed; will retry", "path", it.rec.Path, "id", it.rec.ID, "attempts", it.rec.Attempts, "err", err)
			}
			// The scheduler stops taking results when ctx ends: a worker
			// must not wait for it then (with the store failing fast, the
			// results buffer was full and shutdown hung for good). The
			// record is saved; a restart resumes from it.
			select {
			case a.results <- result{it: it, err: err, done: done}:
			case <-ctx.Done():
				return
			}
		}
	}
}

// lastWrite is when the dump was last written, as far as the agent knows:
// its mtime, or later when a change was seen that the mtime hides.
func (it *item) lastWrite() time.Time {
	if it.hiddenWrite.After(it.mtime) {
		return it.hiddenWrite
	}
	return it.mtime
}
