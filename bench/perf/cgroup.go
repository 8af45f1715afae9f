package main

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// cgroupMount is one mounted cgroup hierarchy.
type cgroupMount struct {
	Dir string `json:"dir"`
	V2  bool   `json:"v2"`
	// Controllers of a v1 hierarchy ("cpu", "pids", "name=systemd").
	Controllers []string `json:"controllers,omitempty"`
}

func (m cgroupMount) has(ctrl string) bool { return slices.Contains(m.Controllers, ctrl) }

// cgroupMounts lists the cgroup hierarchies mounted on this machine.
func cgroupMounts() ([]cgroupMount, error) {
	f, err := os.Open("/proc/self/mounts")
	if err != nil {
		return nil, fmt.Errorf("list cgroup mounts: %w", err)
	}
	defer f.Close()
	var out []cgroupMount
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fl := strings.Fields(sc.Text())
		if len(fl) < 4 {
			continue
		}
		switch fl[2] {
		case "cgroup2":
			out = append(out, cgroupMount{Dir: fl[1], V2: true})
		case "cgroup":
			var ctrls []string
			for _, o := range strings.Split(fl[3], ",") {
				switch o {
				case "rw", "ro", "relatime", "noatime", "nosuid", "nodev", "noexec", "clone_children", "noprefix", "xattr":
				default:
					ctrls = append(ctrls, o)
				}
			}
			out = append(out, cgroupMount{Dir: fl[1], Controllers: ctrls})
		}
	}
	return out, sc.Err()
}

// cgroupSet creates cgroups and removes them again. Every directory it
// creates is first written to a journal file, so that what a killed run
// left behind is removed by the next one (and nothing it did not create:
// a parent that already existed, such as a real kubelet's kubepods.slice,
// is used and left alone).
type cgroupSet struct {
	journal string
	created []cgroupDir
	// restore undoes controller enabling (v2 subtree_control), last first.
	restore []func() error
}

type cgroupDir struct {
	mount, path string
}

// newCgroupSet removes what the journal of an earlier, interrupted run
// lists, and starts a new journal.
func newCgroupSet(journal string) (*cgroupSet, error) {
	g := &cgroupSet{journal: journal}
	if b, err := os.ReadFile(journal); err == nil {
		var old []cgroupDir
		for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
			if mount, path, ok := strings.Cut(l, "\t"); ok {
				old = append(old, cgroupDir{mount, path})
			}
		}
		stale := &cgroupSet{created: old}
		if err := stale.removeDirs(); err != nil {
			return nil, fmt.Errorf("remove the cgroups an interrupted run left (journal %s): %w", journal, err)
		}
		fmt.Printf("bench-perf: evidence: removed %d cgroup(s) an interrupted run left\n", len(old))
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	if err := os.WriteFile(journal, nil, 0o644); err != nil {
		return nil, fmt.Errorf("start cgroup journal: %w", err)
	}
	return g, nil
}

// mkdirAll creates rel (and its missing parents) under the mount's root.
func (g *cgroupSet) mkdirAll(m cgroupMount, rel string) (string, error) {
	p := m.Dir
	for _, el := range strings.Split(strings.Trim(rel, "/"), "/") {
		p = filepath.Join(p, el)
		if _, err := os.Stat(p); err == nil {
			continue
		}
		jf, err := os.OpenFile(g.journal, os.O_APPEND|os.O_WRONLY, 0)
		if err != nil {
			return "", fmt.Errorf("cgroup journal: %w", err)
		}
		_, err = fmt.Fprintf(jf, "%s\t%s\n", m.Dir, p)
		if cerr := jf.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return "", fmt.Errorf("cgroup journal: %w", err)
		}
		if err := os.Mkdir(p, 0o755); err != nil {
			return "", fmt.Errorf("create cgroup %s: %w", p, err)
		}
		g.created = append(g.created, cgroupDir{m.Dir, p})
	}
	return p, nil
}

// enableV2 enables a controller for the children of a v2 cgroup, and
// disables it again at cleanup if it was not enabled before.
func (g *cgroupSet) enableV2(dir, ctrl string) error {
	b, err := os.ReadFile(filepath.Join(dir, "cgroup.subtree_control"))
	if err != nil {
		return err
	}
	if slices.Contains(strings.Fields(string(b)), ctrl) {
		return nil
	}
	sc := filepath.Join(dir, "cgroup.subtree_control")
	if err := os.WriteFile(sc, []byte("+"+ctrl), 0); err != nil {
		return fmt.Errorf("enable the %s controller in %s: %w", ctrl, sc, err)
	}
	g.restore = append(g.restore, func() error { return os.WriteFile(sc, []byte("-"+ctrl), 0) })
	return nil
}

// cleanup removes every cgroup created, last first, and undoes controller
// changes. Processes still in one (there should be none: every process the
// scenario starts has exited) are moved to the hierarchy's root first.
func (g *cgroupSet) cleanup() error {
	err := g.removeDirs()
	for i := len(g.restore) - 1; i >= 0; i-- {
		err = errors.Join(err, g.restore[i]())
	}
	g.restore = nil
	if err == nil && g.journal != "" {
		err = os.Remove(g.journal)
	}
	return err
}

func (g *cgroupSet) removeDirs() error {
	var errs []error
	for i := len(g.created) - 1; i >= 0; i-- {
		d := g.created[i]
		if _, err := os.Stat(d.path); errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if b, err := os.ReadFile(filepath.Join(d.path, "cgroup.procs")); err == nil {
			for _, pid := range strings.Fields(string(b)) {
				_ = os.WriteFile(filepath.Join(d.mount, "cgroup.procs"), []byte(pid), 0)
			}
		}
		// An exited process leaves its cgroup a moment after it is reaped.
		var err error
		for try := 0; try < 50; try++ {
			if err = syscall.Rmdir(d.path); err == nil || errors.Is(err, fs.ErrNotExist) {
				err = nil
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("remove cgroup %s: %w", d.path, err))
		}
	}
	g.created = nil
	return errors.Join(errs...)
}

// cpuLimit is a CFS bandwidth limit: quota microseconds per period.
type cpuLimit struct {
	QuotaUS  int64 `json:"quota_us"`
	PeriodUS int64 `json:"period_us"`
}

func (l cpuLimit) millicores() int64 {
	if l.PeriodUS == 0 {
		return 0
	}
	return l.QuotaUS * 1000 / l.PeriodUS
}

// String is "250m (CFS quota 25000 µs per 100000 µs)", or "not limited".
func (l cpuLimit) String() string {
	if l.PeriodUS == 0 {
		return "not limited"
	}
	return fmt.Sprintf("%dm (CFS quota %d µs per %d µs)", l.millicores(), l.QuotaUS, l.PeriodUS)
}

// cpuCgroup is a cgroup with a CPU limit that a process can be started in.
type cpuCgroup struct {
	Dir   string `json:"dir"`
	V2    bool   `json:"v2"`
	procs string
}

// makeCPUCgroup creates rel with the limit in the cgroup v2 hierarchy when
// it has the cpu controller, else in the v1 cpu hierarchy.
func (g *cgroupSet) makeCPUCgroup(mounts []cgroupMount, rel string, lim cpuLimit) (*cpuCgroup, error) {
	for _, m := range mounts {
		if !m.V2 {
			continue
		}
		b, err := os.ReadFile(filepath.Join(m.Dir, "cgroup.controllers"))
		if err != nil || !slices.Contains(strings.Fields(string(b)), "cpu") {
			continue // a hybrid machine's unified hierarchy has no controllers
		}
		if err := g.enableV2(m.Dir, "cpu"); err != nil {
			return nil, err
		}
		dir, err := g.mkdirAll(m, rel)
		if err != nil {
			return nil, err
		}
		if err := os.WriteFile(filepath.Join(dir, "cpu.max"), fmt.Appendf(nil, "%d %d", lim.QuotaUS, lim.PeriodUS), 0); err != nil {
			return nil, fmt.Errorf("set cpu.max of %s: %w", dir, err)
		}
		return &cpuCgroup{Dir: dir, V2: true, procs: filepath.Join(dir, "cgroup.procs")}, nil
	}
	for _, m := range mounts {
		if m.V2 || !m.has("cpu") {
			continue
		}
		dir, err := g.mkdirAll(m, rel)
		if err != nil {
			return nil, err
		}
		// The period first: the quota is checked against it.
		for _, kv := range [][2]string{{"cpu.cfs_period_us", strconv.FormatInt(lim.PeriodUS, 10)}, {"cpu.cfs_quota_us", strconv.FormatInt(lim.QuotaUS, 10)}} {
			if err := os.WriteFile(filepath.Join(dir, kv[0]), []byte(kv[1]), 0); err != nil {
				return nil, fmt.Errorf("set %s of %s: %w", kv[0], dir, err)
			}
		}
		return &cpuCgroup{Dir: dir, procs: filepath.Join(dir, "cgroup.procs")}, nil
	}
	return nil, errors.New("no cgroup hierarchy with the cpu controller (cgroup v2 with cpu, or v1 cpu) is mounted")
}

// throttling is the cgroup's CFS statistics.
type throttling struct {
	Periods    int64   `json:"nr_periods"`
	Throttled  int64   `json:"nr_throttled"`
	ThrottledS float64 `json:"throttled_s"`
	// UsageS is the cgroup's CPU time (v2 only; v1 keeps it in cpuacct).
	UsageS float64 `json:"usage_s,omitempty"`
}

func (c *cpuCgroup) stat() throttling {
	var t throttling
	b, err := os.ReadFile(filepath.Join(c.Dir, "cpu.stat"))
	if err != nil {
		return t
	}
	for _, l := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(l, " ")
		if !ok {
			continue
		}
		n, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		switch k {
		case "nr_periods":
			t.Periods = n
		case "nr_throttled":
			t.Throttled = n
		case "throttled_time": // v1, ns
			t.ThrottledS = float64(n) / 1e9
		case "throttled_usec": // v2
			t.ThrottledS = float64(n) / 1e6
		case "usage_usec":
			t.UsageS = float64(n) / 1e6
		}
	}
	return t
}

// podCgroupMounts are the hierarchies a pod's container is placed in: the
// v2 one (on a hybrid machine the unified hierarchy, whose "0::" line in
// /proc/<pid>/cgroup the agent prefers) and the v1 ones whose controllers
// the kubelet sets up for every pod and that take a process without
// configuration. Left out: memory (the bench's processes stay accounted
// where they run), cpuset (a new v1 cpuset takes no process before its cpus
// and mems are set), devices, and anything else the agent does not read.
func podCgroupMounts(mounts []cgroupMount) []cgroupMount {
	var out []cgroupMount
	for _, m := range mounts {
		if m.V2 || m.has("cpu") || m.has("cpuacct") || m.has("pids") || m.has("name=systemd") {
			out = append(out, m)
		}
	}
	return out
}
