package procfs

import (
	"fmt"
	"os"
	"path"
	"strconv"
	"strings"
)

// CPULimit is the CPU limit, in CPUs, of the cgroup v2 the process at
// procRoot/self runs in: the smallest cpu.max quota/period on the path
// from its cgroup up to the root of cgroupRoot (a container sees its own
// cgroup as the root of its namespace). 0 means no limit, or none that
// can be read (cgroup v1 is not read: 0).
func CPULimit(procRoot, cgroupRoot string) (float64, error) {
	b, err := os.ReadFile(path.Join(procRoot, "self", "cgroup"))
	if err != nil {
		return 0, fmt.Errorf("read own cgroup: %w", err)
	}
	rel := ""
	for _, line := range strings.Split(string(b), "\n") {
		if p, ok := strings.CutPrefix(line, "0::"); ok {
			rel = p
		}
	}
	if rel == "" {
		return 0, nil // cgroup v1 only
	}
	limit := 0.0
	for dir := path.Clean("/" + rel); ; dir = path.Dir(dir) {
		if l, ok := readCPUMax(path.Join(cgroupRoot, dir, "cpu.max")); ok && (limit == 0 || l < limit) {
			limit = l
		}
		if dir == "/" {
			break
		}
	}
	return limit, nil
}

// readCPUMax parses "<quota> <period>" or "max <period>".
func readCPUMax(p string) (float64, bool) {
	b, err := os.ReadFile(p)
	if err != nil {
		return 0, false
	}
	f := strings.Fields(string(b))
	if len(f) != 2 || f[0] == "max" {
		return 0, false
	}
	q, err1 := strconv.ParseFloat(f[0], 64)
	per, err2 := strconv.ParseFloat(f[1], 64)
	if err1 != nil || err2 != nil || q <= 0 || per <= 0 {
		return 0, false
	}
	return q / per, true
}
