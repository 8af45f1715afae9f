package collector

import (
	"container/heap"
	"fmt"
	"sort"
	"strings"
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
	tenant  string
	evict   func()
}

// enforceBudget keeps what the agent holds on the node within
// --max-dump-bytes and --max-dump-bytes-per-namespace by evicting dumps,
// and reports disk pressure while the filesystem is under --keep-free.
//
// Eviction is per tenant (tenantOf: the dump's namespace, else its
// writer's pod, else the directory it landed in), so that one tenant
// cannot cost another its dump:
//  1. a namespace over its own budget loses its dumps, and only its own;
//  2. while the dumps together are over --max-dump-bytes, the tenant using
//     the most disk loses its dumps. That tenant is always over its fair
//     share (the budget divided by the tenants holding dumps): a tenant
//     within it is never evicted.
//
// Within a tenant a dump that alone is larger than the budget goes first
// (it can never fit), then the oldest not yet uploaded — failed ones and
// pending ones by claim time —, never one being uploaded.
//
// Free space under --keep-free evicts nothing: the pressure comes from
// files the agent does not hold (its own dumps are bounded by the byte
// budgets), and deleting tenants' dumps would pay for another's files.
// It is reported instead (reportPressure: logged, crashdump_disk_pressure)
// and the node copies of dumps already stored are released early. Claiming
// goes on: a claim is a rename on the same filesystem and takes no space,
// and uploading a dump and deleting its node copy is what gives the space
// back. An earlier design paused claims here; on a node that had been 91 %
// full for reasons of its own (the 15 % default floor is above kubelet's
// 10 % eviction threshold) the agent then collected nothing, and a dump
// left unclaimed also lost its writer evidence (exact attribution).
func (s *scheduler) enforceBudget(now time.Time) {
	a := s.a
	cfg := a.cfg
	limitBytes := cfg.MaxDumpBytes > 0 || cfg.MaxDumpPercent > 0
	limitFree := cfg.KeepFreeBytes > 0 || cfg.KeepFreePercent > 0
	limitNS := cfg.MaxDumpBytesPerNamespace > 0 || s.nsOverrides()
	if !limitBytes && !limitFree && !limitNS {
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
	pressure := limitFree && free < need
	a.reportPressure(pressure, free, need, usage)

	used := s.tenantUsage()
	overBudget := func() bool {
		if limitBytes && usage > maxBytes {
			return true
		}
		for t, u := range used {
			if lim := s.nsLimit(t); limitNS && lim > 0 && u > lim {
				return true
			}
		}
		return false
	}
	over := overBudget()
	if over || pressure {
		// Stored dumps whose node copies are only being watched
		// (errLinger) go first, under either pressure: releasing them
		// loses nothing.
		var stored []*item
		for _, it := range s.waiting {
			if it.lingering {
				stored = append(stored, it)
			}
		}
		for _, it := range stored {
			heap.Remove(&s.waiting, it.idx)
			used[it.tenant] -= it.disk
			usage -= it.disk
			s.untrack(it)
			if err := a.stage.Remove(it.entry); err != nil {
				a.log.Error("remove node copy", "path", it.rec.Path, "id", it.rec.ID, "err", err)
			}
			a.log.Info("node copy of a stored dump removed early for disk space", "path", it.rec.Path, "id", it.rec.ID)
		}
		if len(stored) > 0 {
			over = overBudget()
		}
	}
	if !over {
		s.budgetWarned = false
		return
	}
	// Only now the dumps are listed: this runs at every claim.
	vs := s.victims()
	evicted := make([]bool, len(vs))
	evict := func(i int) {
		evicted[i] = true
		vs[i].evict()
		used[vs[i].tenant] -= vs[i].size
		usage -= vs[i].size
		a.m.dropped.WithLabelValues(DropDiskBudget).Inc()
	}
	// 1. Namespaces over their own budget.
	if limitNS {
		for i, v := range vs {
			if lim := s.nsLimit(v.tenant); lim > 0 && used[v.tenant] > lim {
				evict(i)
			}
		}
	}
	// 2. The whole budget, largest tenant first.
	for limitBytes && usage > maxBytes {
		share := maxBytes / int64(max(1, countPositive(used)))
		best := -1
		for i, v := range vs {
			if evicted[i] || used[v.tenant] <= share {
				continue
			}
			if best < 0 || used[v.tenant] > used[vs[best].tenant] {
				best = i // vs is in eviction order: the first of a tenant
			}
		}
		if best < 0 {
			break
		}
		evict(best)
	}
	if f, _, err := cfg.FreeSpace(cfg.StateDir); err == nil {
		a.m.freeBytes.Set(float64(f))
	}
	if limitBytes && usage > maxBytes {
		if !s.budgetWarned {
			s.budgetWarned = true
			a.log.Warn("disk budget still exceeded: only dumps being uploaded or within their tenant's fair share are left",
				"reason", fmt.Sprintf("dumps hold %d bytes, over --max-dump-bytes %d", usage, maxBytes))
		}
	} else {
		s.budgetWarned = false
	}
}

func countPositive(m map[string]int64) int {
	n := 0
	for _, v := range m {
		if v > 0 {
			n++
		}
	}
	return n
}

// tenantUsage is the disk each tenant's dumps use: pending (in flight
// included) and failed.
// A copy of the usage kept as dumps change (charge): walking every dump
// at every claim made a flood's claims quadratic.
func (s *scheduler) tenantUsage() map[string]int64 {
	used := make(map[string]int64, len(s.usage))
	for t, v := range s.usage {
		used[t] = v
	}
	return used
}

// nsLimit is the byte budget of a namespace tenant: its namespace label
// crashdump.io/max-dump-bytes when a dump of it has been attributed, else
// --max-dump-bytes-per-namespace; 0 is none.
func (s *scheduler) nsLimit(tenant string) int64 {
	ns, ok := strings.CutPrefix(tenant, tenantNamespace)
	if !ok {
		return 0
	}
	if v, ok := s.nsBudgets[ns]; ok {
		return max(v, 0)
	}
	return s.a.cfg.MaxDumpBytesPerNamespace
}

// nsOverrides reports whether some namespace has a budget of its own.
func (s *scheduler) nsOverrides() bool {
	for _, v := range s.nsBudgets {
		if v > 0 {
			return true
		}
	}
	return false
}

// noteNamespaceBudget records a namespace's own budget from an attributed
// dump's plan (-1: none, 0: not set).
func (s *scheduler) noteNamespaceBudget(p *plan) {
	if p == nil || p.Manifest == nil || p.Manifest.Pod == nil || p.NamespaceMaxBytes == 0 {
		return
	}
	if s.nsBudgets == nil {
		s.nsBudgets = map[string]int64{}
	}
	s.nsBudgets[p.Manifest.Pod.Namespace] = p.NamespaceMaxBytes
}

// Tenant prefixes (tenantOf).
const (
	tenantNamespace = "namespace:"
	tenantPod       = "pod-uid:"
)

// tenantOf names whose dump rec is, for the budget: the namespace it was
// attributed to, else the pod UID its writer's cgroup names, else the
// first directory of its path (a per-namespace directory), else "" (the
// root of the dump directory: one tenant for all that lands there).
func tenantOf(rec *record) string {
	if p := rec.Plan; p != nil && p.Manifest != nil && p.Manifest.Pod != nil && p.Manifest.Pod.Namespace != "" {
		return tenantNamespace + p.Manifest.Pod.Namespace
	}
	for _, w := range rec.Writers {
		if w.PodUID != "" {
			return tenantPod + w.PodUID
		}
	}
	if dir, _, ok := strings.Cut(rec.Path, "/"); ok && dir != "" {
		return tenantNamespace + dir
	}
	return ""
}

// victims lists what may be evicted, in eviction order (see enforceBudget).
func (s *scheduler) victims() []victim {
	var vs []victim
	for _, f := range s.failed {
		vs = append(vs, victim{claimed: f.claimed, size: f.disk, tenant: f.tenant, evict: func() { s.evictFailed(f) }})
	}
	for _, it := range s.waiting {
		vs = append(vs, victim{claimed: it.rec.ClaimedAt, size: it.disk, tenant: it.tenant, evict: func() { s.evictItem(it) }})
	}
	for _, it := range s.ready {
		vs = append(vs, victim{claimed: it.rec.ClaimedAt, size: it.disk, tenant: it.tenant, evict: func() { s.evictItem(it) }})
	}
	for i, p := range s.parked {
		if !p.dead {
			vs = append(vs, victim{claimed: time.Unix(0, p.claimed), size: p.disk, tenant: s.tenantNames[p.tenant], evict: func() { s.evictParked(i) }})
		}
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
	s.charge(f.tenant, -f.disk)
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

// reportPressure starts or ends the report of disk pressure (free space
// under --keep-free), logging each change once. held is what the agent's
// own dumps use on disk. Safe for concurrent use.
func (a *Agent) reportPressure(on bool, free, need, held int64) {
	if a.diskPressure.Swap(on) == on {
		return
	}
	if on {
		a.m.diskPressure.Set(1)
		a.log.Warn("disk pressure: free space under --keep-free; dumps are still collected and uploaded, which frees their space, and nothing is evicted for it",
			"free", free, "keep_free", need, "held_by_dumps", held)
		return
	}
	a.m.diskPressure.Set(0)
	a.log.Info("free space back above --keep-free", "free", free, "keep_free", need)
}
