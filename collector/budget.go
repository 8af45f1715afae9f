package collector

import (
	"container/heap"
	"fmt"
	"sort"
	"time"

	"golang.org/x/sys/unix"
)

// FreeSpace reports the free bytes (for unprivileged users: what the agent's
// dumps can actually use) and the total bytes of the filesystem holding p.
func FreeSpace(p string) (free, total uint64, err error) {
	var st unix.Statfs_t
	if err := unix.Statfs(p, &st); err != nil {
		return 0, 0, fmt.Errorf("statfs %s: %w", p, err)
	}
	bs := uint64(st.Bsize)
	return st.Bavail * bs, st.Blocks * bs, nil
}

// victim is a dump the budget may evict.
type victim struct {
	claimed time.Time
	size    int64 // on disk (allocated)
	path    string
	evict   func()
}

// enforceBudget keeps what the agent holds on the node within
// --max-dump-bytes and the filesystem's free space above --keep-free, by
// evicting dumps: first any dump that alone exceeds the budget (it can never
// fit), then the oldest not yet uploaded — failed ones, then pending ones —
// never one being uploaded. A new dump is thus accepted only by evicting
// older ones, or evicted itself when nothing older can go.
func (s *scheduler) enforceBudget(now time.Time) {
	a := s.a
	cfg := a.cfg
	limitBytes := cfg.MaxDumpBytes > 0 || cfg.MaxDumpPercent > 0
	limitFree := cfg.KeepFreeBytes > 0 || cfg.KeepFreePercent > 0
	if !limitBytes && !limitFree {
		return
	}
	// What the dumps use on disk (allocated blocks), not their apparent
	// sizes: a sparse file claims no disk, and charging it st_size let
	// one `truncate -s 1G` evict every other tenant's dump.
	usage := s.pendingDisk + s.failedDisk
	var free, need int64
	maxBytes := cfg.MaxDumpBytes
	f, total, err := cfg.FreeSpace(cfg.StateDir)
	switch {
	case err != nil:
		a.log.Warn("check free space", "err", err)
		limitFree = false
		if maxBytes == 0 {
			limitBytes = false
		}
	default:
		free = int64(f)
		need = max(cfg.KeepFreeBytes, int64(cfg.KeepFreePercent/100*float64(total)))
		if cfg.MaxDumpPercent > 0 {
			maxBytes = int64(cfg.MaxDumpPercent / 100 * float64(total))
		}
		a.m.freeBytes.Set(float64(free))
		a.m.budgetBytes.Set(float64(maxBytes))
	}
	s.maxBytes = maxBytes
	over := func() string {
		switch {
		case limitBytes && usage > maxBytes:
			return fmt.Sprintf("dumps hold %d bytes, over --max-dump-bytes %d", usage, maxBytes)
		case limitFree && free < need:
			return fmt.Sprintf("%d bytes free, under --keep-free %d", free, need)
		}
		return ""
	}
	if over() == "" {
		s.budgetWarned = false
		return
	}
	for _, v := range s.victims() {
		if over() == "" {
			break
		}
		v.evict()
		usage -= v.size
		free += v.size
		a.m.dropped.WithLabelValues(DropDiskBudget).Inc()
	}
	if f, _, err := cfg.FreeSpace(cfg.StateDir); err == nil {
		a.m.freeBytes.Set(float64(f))
	}
	if why := over(); why != "" && !s.budgetWarned {
		s.budgetWarned = true
		a.log.Warn("disk budget still exceeded: only dumps being uploaded are left", "reason", why)
	}
}

// victims lists what may be evicted, in eviction order.
func (s *scheduler) victims() []victim {
	var vs []victim
	for _, f := range s.failed {
		vs = append(vs, victim{claimed: f.claimed, size: f.disk, path: f.path, evict: func() { s.evictFailed(f) }})
	}
	for _, it := range s.waiting {
		vs = append(vs, victim{claimed: it.rec.ClaimedAt, size: it.disk, path: it.rec.Path, evict: func() { s.evictItem(it) }})
	}
	for _, it := range s.ready {
		vs = append(vs, victim{claimed: it.rec.ClaimedAt, size: it.disk, path: it.rec.Path, evict: func() { s.evictItem(it) }})
	}
	tooBig := func(v victim) bool { return s.maxBytes > 0 && v.size > s.maxBytes }
	sort.SliceStable(vs, func(i, j int) bool {
		if bi, bj := tooBig(vs[i]), tooBig(vs[j]); bi != bj {
			return bi
		}
		return vs[i].claimed.Before(vs[j].claimed)
	})
	return vs
}

func (s *scheduler) evictItem(it *item) {
	a := s.a
	if it.rec.Kind == kindReport && !a.shelf.move(it, shelfWaiting, shelfOwned) && !a.shelf.move(it, shelfOwned, shelfOwned) {
		return // its dump took it: those bytes are the dump's now
	}
	if i := indexOf(s.ready, it); i >= 0 {
		s.ready = append(s.ready[:i], s.ready[i+1:]...)
	} else {
		heap.Remove(&s.waiting, it.idx)
	}
	s.untrack(it)
	if err := a.stage.Remove(it.entry); err != nil {
		a.log.Error("evict dump", "path", it.rec.Path, "err", err)
	}
	ns, pod := it.owner()
	a.log.Warn("evicted dump to keep the disk budget", "path", it.rec.Path, "id", it.rec.ID,
		"namespace", ns, "pod", pod, "size", it.size, "disk", it.disk, "reason", DropDiskBudget)
}

func (s *scheduler) evictFailed(f *failedDump) {
	a := s.a
	for i, g := range s.failed {
		if g == f {
			s.failed = append(s.failed[:i], s.failed[i+1:]...)
			break
		}
	}
	s.failedBytes -= f.size
	s.failedDisk -= f.disk
	s.setFailedGauges()
	if err := a.stage.Remove(f.entry); err != nil {
		a.log.Error("evict failed dump", "path", f.path, "err", err)
	}
	a.log.Warn("evicted failed dump to keep the disk budget", "path", f.path, "id", f.entry.ID, "size", f.size, "reason", DropDiskBudget)
}

func indexOf(items []*item, it *item) int {
	for i, x := range items {
		if x == it {
			return i
		}
	}
	return -1
}

// owner names the dump's pod as far as known: from its plan once attributed,
// else the pod UID its writer's cgroup named.
func (it *item) owner() (namespace, pod string) {
	if p := it.rec.Plan; p != nil && p.Manifest != nil && p.Manifest.Pod != nil {
		return p.Manifest.Pod.Namespace, p.Manifest.Pod.Name
	}
	for _, w := range it.rec.Writers {
		if w.PodUID != "" {
			return "", "uid:" + w.PodUID
		}
	}
	return "", ""
}
