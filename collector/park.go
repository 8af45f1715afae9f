package collector

import (
	"container/heap"
	"encoding/hex"
	"time"

	"github.com/crashdump-io/crashdump/collector/staging"
)

// defaultMaxResident is how many staged dumps the scheduler holds in
// memory (Config.MaxResident). An item with its record and plan is 2–3 KiB
// on the heap; 512 of them cost about 1.5 MiB, and more are never needed
// at once: four workers upload, and dumps settle seconds after their claim.
const defaultMaxResident = 512

// parked is a staged dump the scheduler keeps no item for: a dump waiting
// for its next upload attempt, one claimed while the resident items were
// at MaxResident, or one found in staging at start-up. Its record stays on
// disk (staging/<id>/record.json, rewritten at every step anyway) and is
// read again when the dump is due.
//
// Pointer-free and 64 bytes, so that a backlog costs memory the garbage
// collector never scans: with the store down for a day, 100,000 pending
// dumps held 2.6 KiB of heap each and the agent's RSS passed the chart's
// 192Mi limit, an OOM-kill loop that stalled every dump of the node.
type parked struct {
	id      [16]byte
	due     int64 // unix nanoseconds
	claimed int64 // unix nanoseconds
	ctime   int64 // the dump's ctime when parked, unix nanoseconds
	size    int64
	disk    int64 // dump and entry, allocated
	tenant  uint32
	settled bool
	// dead: evicted while parked (enforceBudget); dropped when popped.
	dead bool
}

// parkedHeap orders parked dumps by due time. Not safe for concurrent
// use: the scheduler's goroutine owns it.
type parkedHeap []parked

func (h parkedHeap) Len() int           { return len(h) }
func (h parkedHeap) Less(i, j int) bool { return h[i].due < h[j].due }
func (h parkedHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *parkedHeap) Push(x any)        { *h = append(*h, x.(parked)) }
func (h *parkedHeap) Pop() any {
	old := *h
	p := old[len(old)-1]
	*h = old[:len(old)-1]
	return p
}

// tenantIndex interns a tenant name for a parked dump.
func (s *scheduler) tenantIndex(t string) uint32 {
	if i, ok := s.tenantIDs[t]; ok {
		return i
	}
	if s.tenantIDs == nil {
		s.tenantIDs = map[string]uint32{}
	}
	i := uint32(len(s.tenantNames))
	s.tenantNames = append(s.tenantNames, t)
	s.tenantIDs[t] = i
	return i
}

// resident is how many staged dumps are held as items.
func (s *scheduler) resident() int { return s.alive - s.parkedLive }

// park drops it from memory until due; it must be tracked and in no queue.
// Crash reports are never parked: the shelf pairs them by item.
func (s *scheduler) park(it *item, due time.Time, settled bool) {
	var id [16]byte
	if _, err := hex.Decode(id[:], []byte(it.entry.ID)); err != nil {
		// Not an id of ours (cannot happen: staging checks them); keep it.
		it.due = due
		heap.Push(&s.waiting, it)
		return
	}
	heap.Push(&s.parked, parked{
		id: id, due: due.UnixNano(), claimed: it.rec.ClaimedAt.UnixNano(), ctime: it.ctime.UnixNano(),
		size: it.size, disk: it.disk, tenant: s.tenantIndex(it.tenant), settled: settled,
	})
	s.parkedLive++
	s.a.m.parkedDumps.Set(float64(s.parkedLive))
}

// parkRecovered parks a dump found in staging at start-up, due now.
// Reading its record to learn its tenant is transient memory.
func (s *scheduler) parkRecovered(e *staging.Entry, rec *record) error {
	var id [16]byte
	if _, err := hex.Decode(id[:], []byte(e.ID)); err != nil {
		return err
	}
	info, overhead, err := stagedInfo(e)
	if err != nil {
		return err
	}
	p := parked{
		id: id, due: time.Now().UnixNano(), claimed: rec.ClaimedAt.UnixNano(), ctime: info.Ctime.UnixNano(),
		size: info.Size, disk: info.Allocated + overhead, tenant: s.tenantIndex(tenantOf(rec)), settled: rec.Plan != nil,
	}
	heap.Push(&s.parked, p)
	s.parkedLive++
	s.alive++
	s.pending += p.size
	s.pendingDisk += p.disk
	s.charge(s.tenantNames[p.tenant], p.disk)
	s.noteNamespaceBudget(rec.Plan)
	s.a.m.parkedDumps.Set(float64(s.parkedLive))
	s.setPendingGauges()
	return nil
}

// unpark brings due parked dumps back as items while fewer than
// MaxResident are held, and returns when the next parked one is due (zero:
// none, or no room).
func (s *scheduler) unpark(now time.Time) time.Time {
	a := s.a
	for len(s.parked) > 0 {
		top := s.parked[0]
		if top.dead {
			heap.Pop(&s.parked)
			continue
		}
		if s.resident() >= a.cfg.MaxResident {
			return time.Time{}
		}
		if top.due > now.UnixNano() {
			return time.Unix(0, top.due)
		}
		heap.Pop(&s.parked)
		s.parkedLive--
		a.m.parkedDumps.Set(float64(s.parkedLive))
		it, err := s.load(top, now)
		if err != nil {
			a.log.Error("resume parked dump", "id", hex.EncodeToString(top.id[:]), "err", err)
			s.untrackParked(top)
			continue
		}
		it.due = now
		heap.Push(&s.waiting, it)
	}
	return time.Time{}
}

// load rebuilds the item of a parked dump from its entry. The counts it
// was tracked with are brought up to what the file is now.
func (s *scheduler) load(p parked, now time.Time) (*item, error) {
	a := s.a
	e, err := a.stage.Entry(hex.EncodeToString(p.id[:]))
	if err != nil {
		return nil, err
	}
	var rec record
	if err := e.Load(&rec); err != nil {
		return nil, err
	}
	it, err := a.newItem(e, rec)
	if err != nil {
		return nil, err
	}
	it.tenant = s.tenantNames[p.tenant]
	s.pending += it.size - p.size
	s.pendingDisk += it.disk - p.disk
	s.charge(it.tenant, it.disk-p.disk)
	s.setPendingGauges()
	it.settled = p.settled && rec.Plan != nil
	if it.settled {
		it.settledAt = now
	}
	if it.ctime.UnixNano() != p.ctime {
		// Written while parked, perhaps with its mtime set back.
		it.hiddenWrite = now
	}
	for _, w := range rec.Writers {
		if w.Writable {
			it.writers = append(it.writers, w.HostPID)
		}
	}
	return it, nil
}

// untrackParked stops counting a parked dump that is gone (its counts
// were those of track).
func (s *scheduler) untrackParked(p parked) {
	s.alive--
	s.pending -= p.size
	s.pendingDisk -= p.disk
	s.charge(s.tenantNames[p.tenant], -p.disk)
	s.setPendingGauges()
}

// evictParked deletes a parked dump for the disk budget (enforceBudget).
// The heap is not reordered: the entry is marked dead and dropped when it
// comes up.
func (s *scheduler) evictParked(i int) {
	a := s.a
	p := &s.parked[i]
	if p.dead {
		return
	}
	p.dead = true
	s.parkedLive--
	a.m.parkedDumps.Set(float64(s.parkedLive))
	s.untrackParked(*p)
	id := hex.EncodeToString(p.id[:])
	e, err := a.stage.Entry(id)
	if err != nil {
		a.log.Error("evict dump", "id", id, "err", err)
		return
	}
	var rec record
	_ = e.Load(&rec) // for the log line only
	if err := a.stage.Remove(e); err != nil {
		a.log.Error("evict dump", "path", rec.Path, "id", id, "err", err)
	}
	owner := &item{rec: rec}
	ns, pod := owner.owner()
	a.log.Warn("evicted dump to keep the disk budget", "path", rec.Path, "id", id,
		"namespace", ns, "pod", pod, "size", p.size, "disk", p.disk, "reason", DropDiskBudget)
}
