package collector

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"path"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/crashdump-io/crashdump/collector/dumpfs"
	"github.com/crashdump-io/crashdump/collector/procfs"
	"github.com/crashdump-io/crashdump/collector/staging"
)

// claimBatch bounds how many claims share one process-table scan.
const claimBatch = 256

// maxRejectMemory bounds the set of rejected entries remembered so that
// rescans do not log and count them again; maxRejectDirs the directories
// remembered past it.
const (
	maxRejectMemory = 10000
	maxRejectDirs   = 1000
)

type rejectKey struct {
	dev, ino uint64
	reason   string
}

// dirReason is a directory and a reject reason, for rejects past
// maxRejectMemory ("" as dir: any directory past maxRejectDirs).
type dirReason struct{ dir, reason string }

// evidenceScans bounds the process-table scans that run at once.
const evidenceScans = 4

// claimLoop claims candidates as they come and has who holds them open
// recorded by process-table scans, one per batch, then hands them to the
// scheduler.
//
// The claim (a rename out of the dump directory) never waits for a scan.
// In the seed's shared directory every replica writes the same name, and
// the next crash's createdump truncates a name not yet claimed: under the
// chart's 250m limit a full scan takes hundreds of milliseconds, and
// claims made one after the other behind it lost every dump whose
// successor opened the name in that time. Scans run beside the claims
// instead, up to evidenceScans at once, each started as soon as a batch is
// claimed: a scan goes newest process first, so a new batch's writer is
// found within its first processes, not after the previous scan's tail.
func (a *Agent) claimLoop(ctx context.Context, in <-chan string, recovered []*item) {
	var wg sync.WaitGroup
	done := make(chan struct{}, evidenceScans)
	running := 0
	defer func() {
		wg.Wait()
		a.prio.resume()
	}()
	dispatch := func(batch []*item) {
		running++
		wg.Add(1)
		go func() {
			defer wg.Done()
			a.flushBatch(ctx, batch)
			done <- struct{}{}
		}()
	}
	batch := recovered
	for {
		src := in
		if len(batch) >= claimBatch {
			src = nil // let the scans catch up
		}
		if src != nil {
			// Claim all that has arrived before scanning: one scan
			// serves the whole batch.
			select {
			case rel, ok := <-src:
				a.claimOne(rel, ok, &batch, &in)
				continue
			default:
			}
		}
		if len(batch) > 0 && running < evidenceScans {
			dispatch(batch)
			batch = nil
		}
		if len(batch) == 0 && running == 0 {
			if in == nil {
				return
			}
			a.prio.resume()
		}
		select {
		case rel, ok := <-src:
			a.claimOne(rel, ok, &batch, &in)
		case <-done:
			running--
		case <-ctx.Done():
			return
		}
	}
}

// claimOne claims rel, received with ok from in (false: in is closed, and
// set to nil), adding it to batch.
func (a *Agent) claimOne(rel string, ok bool, batch *[]*item, in *<-chan string) {
	if !ok {
		*in = nil
		return
	}
	// Uploads wait while claims are taken and their writers looked up:
	// the writer may close the file any moment.
	a.prio.pause()
	if it := a.claim(rel); it != nil {
		*batch = append(*batch, it)
	}
}

// flushBatch records the batch's writers with one scan of the process
// table, shelves its crash reports and hands it to the scheduler.
func (a *Agent) flushBatch(ctx context.Context, batch []*item) {
	a.gatherEvidence(batch)
	for _, it := range batch {
		if it.rec.Kind == kindReport {
			a.shelf.add(it)
		}
	}
	if o, ok := a.res.(ClaimObserver); ok {
		for _, it := range batch {
			o.DumpClaimed(Evidence{Path: it.rec.Path, Writers: it.rec.Writers, ClaimedAt: it.rec.ClaimedAt})
		}
	}
	for _, it := range batch {
		select {
		case a.add <- it:
		case <-ctx.Done():
			return
		}
	}
}

// classify returns why an entry cannot be a dump, or "" if it can.
func classify(info dumpfs.Info) string {
	switch {
	case info.Mode&fs.ModeSymlink != 0:
		return DropSymlink
	case !info.IsRegular():
		return DropNotRegular
	case info.Nlink > 1:
		return DropHardlink
	}
	return ""
}

// reject logs and counts an entry that will not be collected, once per
// inode and reason.
//
// Past maxRejectMemory remembered entries (a pod making 10,000 links), a
// new one is no longer remembered by itself: the first of each directory
// and reason is logged, saying so, and every sighting is counted in
// crashdump_rejects_unremembered_total, never again in
// crashdump_dumps_dropped_total: a rescan cannot tell them from new ones,
// and clearing the memory re-logged and re-counted every one of them on
// every rescan (10,001 links gave 40,004 WARN lines in 35 s).
func (a *Agent) reject(rel string, info dumpfs.Info, reason string) {
	a.rejMu.Lock()
	k := rejectKey{info.Dev, info.Ino, reason}
	seen := a.rejected[k]
	full := !seen && len(a.rejected) >= maxRejectMemory
	var dirSeen bool
	switch {
	case full:
		dk := dirReason{path.Dir(rel), reason}
		if _, ok := a.rejectedDirs[dk]; !ok && len(a.rejectedDirs) >= maxRejectDirs {
			dk.dir = ""
		}
		dirSeen = a.rejectedDirs[dk]
		a.rejectedDirs[dk] = true
	case !seen:
		a.rejected[k] = true
	}
	a.rejMu.Unlock()
	if full {
		a.m.rejectsUnremembered.WithLabelValues(reason).Inc()
		if !dirSeen {
			a.log.Warn("not collecting entries: too many rejected to remember each; further ones here are counted, not logged",
				"path", rel, "reason", reason, "remembered", maxRejectMemory)
		}
		return
	}
	if seen {
		return
	}
	a.m.dropped.WithLabelValues(reason).Inc()
	a.log.Warn("not collecting entry", "path", rel, "reason", reason, "mode", info.Mode.String(), "nlink", info.Nlink)
}

// claim moves the dump or crash report at rel into staging. It
// returns nil when there is nothing to collect.
func (a *Agent) claim(rel string) *item {
	info, err := a.root.Lstat(rel)
	if err != nil {
		return nil // claimed already, or gone
	}
	if reason := classify(info); reason != "" {
		a.reject(rel, info, reason)
		return nil
	}
	rec := record{Version: recordVersion, ID: newID(), State: stateClaiming, Path: rel, ClaimedAt: time.Now().UTC()}
	if a.match.Report(info.Name) {
		// A crash report is claimed on its own, the moment it is seen:
		// the next same-name crash would overwrite it in place. It waits
		// in staging for the dump that proves it is its own.
		rec.Kind = kindReport
	}
	e, err := a.stage.Create(rec.ID, &rec)
	if err != nil {
		a.log.Error("create staging entry", "path", rel, "err", err)
		return nil
	}
	dir, err := e.OpenDir()
	if err != nil {
		a.log.Error("open staging entry", "path", rel, "err", err)
		_ = a.stage.Remove(e)
		return nil
	}
	defer dir.Close()
	if _, err := a.root.Claim(rel, dir, staging.DumpName); err != nil {
		_ = a.stage.Remove(e)
		switch {
		case errors.Is(err, fs.ErrNotExist):
		case errors.Is(err, unix.EXDEV):
			a.reject(rel, info, DropCrossDevice)
		case errors.Is(err, unix.ENOTDIR), errors.Is(err, unix.ELOOP):
			// A directory of the path became a file or a link since the
			// look: hostile input (a swap race), not an agent error.
			// Nothing was moved; a rescan sees what is there now.
			a.reject(rel, info, DropPathChanged)
		default:
			a.log.Error("claim dump", "path", rel, "err", err)
			if a.cfg.Once {
				// It stays on the node: a one-shot run must say so.
				a.failed.Add(1)
			}
		}
		return nil
	}
	// A pod can swap the entry between the stat and the move: check what
	// actually arrived. Whatever it is, it is ours now and removing a link
	// or a device node from staging touches nothing else.
	var st unix.Stat_t
	if err := unix.Lstat(e.Path(staging.DumpName), &st); err != nil {
		a.log.Error("stat claimed dump", "path", rel, "err", err)
		_ = a.stage.Remove(e)
		return nil
	}
	got := dumpfs.InfoFromStat(info.Name, &st)
	if reason := classify(got); reason != "" {
		a.reject(rel, got, reason)
		_ = a.stage.Remove(e)
		return nil
	}
	// The record is not rewritten here: recovery knows a claim completed
	// from the file being in the entry (and a report by its record's kind).
	rec.State = stateClaimed
	if rec.Kind == kindReport {
		a.log.Info("claimed crash report", "path", rel, "id", rec.ID, "size", got.Size)
	} else {
		a.m.detected.Inc()
		a.log.Info("claimed dump", "path", rel, "id", rec.ID, "size", got.Size)
	}
	it, err := a.newItem(e, rec)
	if err != nil {
		a.log.Error("track claimed dump", "path", rel, "err", err)
		return nil
	}
	return it
}

// newItem builds the in-memory state of a staged dump.
func (a *Agent) newItem(e *staging.Entry, rec record) (*item, error) {
	info, over, err := stagedInfo(e)
	if err != nil {
		return nil, err
	}
	return &item{entry: e, rec: rec, size: info.Size, disk: info.Allocated + over, overhead: over, mtime: info.Mtime, ctime: info.Ctime,
		file: procfs.FileID{Dev: info.Dev, Ino: info.Ino}}, nil
}

// stagedInfo stats a staged dump, and what its entry uses beside it.
func stagedInfo(e *staging.Entry) (dumpfs.Info, int64, error) {
	var st unix.Stat_t
	if err := unix.Lstat(e.Path(staging.DumpName), &st); err != nil {
		return dumpfs.Info{}, 0, err
	}
	return dumpfs.InfoFromStat(staging.DumpName, &st), e.Overhead(), nil
}

// gatherEvidence records, for every item not yet scanned, the processes
// holding it open — the writer-pid evidence, taken while the writer still
// has the file. One scan of the process table serves the whole batch.
func (a *Agent) gatherEvidence(items []*item) {
	want := map[procfs.FileID]struct{}{}
	for _, it := range items {
		if !it.rec.Scanned {
			want[it.file] = struct{}{}
		}
	}
	if len(want) == 0 {
		return
	}
	a.m.procScans.Inc()
	openers, err := a.proc.Openers(want)
	if err != nil {
		a.log.Warn("scan processes for dump writers", "err", err)
	}
	procs := map[int]procfs.Process{}
	for _, it := range items {
		if it.rec.Scanned {
			it.writers = nil
			for _, w := range it.rec.Writers {
				if w.Writable {
					it.writers = append(it.writers, w.HostPID)
				}
			}
			continue
		}
		it.rec.Writers = nil
		seen := map[int]int{} // PID -> index in it.rec.Writers
		for _, o := range openers[it.file] {
			if i, dup := seen[o.PID]; dup {
				// The same process with several descriptors on the file.
				if o.Writable && !it.rec.Writers[i].Writable {
					it.rec.Writers[i].Writable = true
					it.writers = append(it.writers, o.PID)
				}
				continue
			}
			seen[o.PID] = len(it.rec.Writers)
			w := Writer{HostPID: o.PID, Writable: o.Writable}
			p, ok := procs[o.PID]
			if !ok {
				read := a.proc.Process
				if o.CgroupRead {
					read = a.proc.Identity // its cgroup came with the scan
				}
				if p, err = read(o.PID); err == nil {
					procs[o.PID] = p
					ok = true
				}
			}
			w.StartTime = o.StartTime
			if ok && o.StartTime != 0 && p.StartTime != 0 && p.StartTime != o.StartTime {
				// The PID was recycled between the scan and the read:
				// these facts are another process's.
				ok = false
			}
			cg, haveCgroup := o.Cgroup, o.CgroupRead
			if ok {
				if w.StartTime == 0 {
					w.StartTime = p.StartTime
				}
				w.NSPID, w.Comm, w.Exe = p.NSPID, p.Comm, p.Exe
				if !o.CgroupRead {
					cg, haveCgroup = p.Cgroup, true
				}
			}
			// The cgroup read when the descriptor was found stands when the
			// writer has exited since (createdump closes and exits within
			// milliseconds of its last write).
			if haveCgroup {
				w.ContainerID, w.Runtime, w.PodUID = cg.ContainerID, cg.Runtime, cg.PodUID
				if w.PodUID == "" {
					w.PodUID = cg.StaticPodUID // the UID the kubelet knows a static pod by
				}
			} else {
				w.Unread = true
			}
			it.rec.Writers = append(it.rec.Writers, w)
			if o.Writable {
				it.writers = append(it.writers, o.PID)
			}
		}
		it.rec.Scanned = true
		if a.log.Enabled(context.Background(), slog.LevelDebug) {
			a.log.Debug("writer evidence", "path", it.rec.Path, "id", it.rec.ID, "writers", writerSummary(it.rec.Writers))
		}
		// Only evidence needs persisting now; without writers the next
		// record write (the plan) records the scan.
		if len(it.rec.Writers) > 0 {
			if err := it.entry.Save(&it.rec); err != nil {
				a.log.Error("save writer evidence", "path", it.rec.Path, "err", err)
			}
		}
	}
}

// writerSummary is the evidence of a claim for the debug log: each process
// as "pid(comm) w container=<id12>" or "… host" or "… unread".
func writerSummary(ws []Writer) []string {
	out := make([]string, 0, len(ws))
	for _, w := range ws {
		s := fmt.Sprintf("%d(%s)", w.HostPID, w.Comm)
		if w.Writable {
			s += " w"
		}
		switch {
		case w.Unread:
			s += " unread"
		case w.ContainerID != "":
			s += " container=" + w.ContainerID[:min(len(w.ContainerID), 12)]
		case w.PodUID != "":
			s += " pod=" + w.PodUID
		default:
			s += " host"
		}
		out = append(out, s)
	}
	return out
}
