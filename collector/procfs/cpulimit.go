package procfs

import (
	"fmt"
	"os"
	"path"
	"slices"
	"strconv"
	"strings"
)

// CPULimit is the CPU limit, in CPUs, of the cgroup the process at
// procRoot/self runs in, with cgroupRoot where cgroups are mounted
// (/sys/fs/cgroup): the smallest quota/period on the path from its cgroup
// up to the root. cgroup v2 reads cpu.max; cgroup v1 (and hybrid hosts)
// cpu.cfs_quota_us and cpu.cfs_period_us under the cpu controller's mount,
// also at the mount's root, because a container's runtime mounts its own
// cgroup there while /proc/self/cgroup still names the host's path. 0
// means no limit, or none that can be read.
func CPULimit(procRoot, cgroupRoot string) (float64, error) {
	b, err := os.ReadFile(path.Join(procRoot, "self", "cgroup"))
	if err != nil {
		return 0, fmt.Errorf("read own cgroup: %w", err)
	}
	limit := 0.0
	take := func(l float64, ok bool) {
		if ok && (limit == 0 || l < limit) {
			limit = l
		}
	}
	for _, line := range strings.Split(string(b), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			continue
		}
		rel := path.Clean("/" + parts[2])
		switch {
		case parts[0] == "0" && parts[1] == "":
			walkUp(rel, func(dir string) { take(readCPUMax(path.Join(cgroupRoot, dir, "cpu.max"))) })
		case slices.Contains(strings.Split(parts[1], ","), "cpu"):
			for _, m := range []string{"cpu", "cpu,cpuacct", "cpuacct,cpu"} {
				mount := path.Join(cgroupRoot, m)
				if _, err := os.Stat(mount); err != nil {
					continue
				}
				walkUp(rel, func(dir string) { take(readCFSQuota(path.Join(mount, dir))) })
				break
			}
		}
	}
	return limit, nil
}

// walkUp calls f for dir and each of its parents up to "/".
func walkUp(dir string, f func(string)) {
	for ; ; dir = path.Dir(dir) {
		f(dir)
		if dir == "/" {
			return
		}
	}
}

// readCFSQuota reads cgroup v1's quota and period (quota -1: none).
func readCFSQuota(dir string) (float64, bool) {
	q, err1 := os.ReadFile(path.Join(dir, "cpu.cfs_quota_us"))
	per, err2 := os.ReadFile(path.Join(dir, "cpu.cfs_period_us"))
	if err1 != nil || err2 != nil {
		return 0, false
	}
	return readCPUMaxFields(strings.TrimSpace(string(q)), strings.TrimSpace(string(per)))
}

// readCPUMax parses cgroup v2's "<quota> <period>" or "max <period>".
func readCPUMax(p string) (float64, bool) {
	b, err := os.ReadFile(p)
	if err != nil {
		return 0, false
	}
	f := strings.Fields(string(b))
	if len(f) != 2 {
		return 0, false
	}
	return readCPUMaxFields(f[0], f[1])
}

func readCPUMaxFields(quota, period string) (float64, bool) {
	q, err1 := strconv.ParseFloat(quota, 64)
	per, err2 := strconv.ParseFloat(period, 64)
	if err1 != nil || err2 != nil || q <= 0 || per <= 0 {
		return 0, false // "max", -1, garbage
	}
	return q / per, true
}
