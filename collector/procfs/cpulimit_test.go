package procfs

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCPULimit(t *testing.T) {
	for _, tc := range []struct {
		name   string
		self   string            // /proc/self/cgroup
		cpuMax map[string]string // cgroup dir -> cpu.max
		v1     map[string]string // dir under the cpu,cpuacct mount -> "quota period"
		want   float64
	}{
		{"cgroup v1 container: its own cgroup at the mount's root", "12:cpu,cpuacct:/kubepods/burstable/pod1/abc\n1:name=systemd:/kubepods/burstable/pod1/abc\n0::/\n",
			nil, map[string]string{"/": "25000 100000"}, 0.25},
		{"cgroup v1 host view, the limit on the container's path", "4:cpu,cpuacct:/kubepods/burstable/pod1/abc\n",
			nil, map[string]string{"/": "-1 100000", "/kubepods/burstable/pod1": "-1 100000", "/kubepods/burstable/pod1/abc": "50000 100000"}, 0.5},
		{"the chart's 250m, seen from inside the container's namespace", "0::/\n", map[string]string{"/": "25000 100000\n"}, nil, 0.25},
		{"the smallest on the path", "0::/kubepods.slice/pod.slice/cri-containerd-x.scope\n",
			map[string]string{"/kubepods.slice": "400000 100000\n", "/kubepods.slice/pod.slice": "50000 100000\n", "/kubepods.slice/pod.slice/cri-containerd-x.scope": "max 100000\n"}, nil, 0.5},
		{"no limit", "0::/system.slice/x.service\n", map[string]string{"/system.slice": "max 100000\n"}, nil, 0},
		{"cgroup v1 without a quota", "12:cpu,cpuacct:/kubepods/pod1/abc\n", nil, nil, 0},
		{"garbage", "0::/a\n", map[string]string{"/a": "lots\n"}, nil, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			proc, cg := t.TempDir(), t.TempDir()
			if err := os.MkdirAll(filepath.Join(proc, "self"), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(proc, "self", "cgroup"), []byte(tc.self), 0o644); err != nil {
				t.Fatal(err)
			}
			for dir, v := range tc.cpuMax {
				d := filepath.Join(cg, dir)
				if err := os.MkdirAll(d, 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(d, "cpu.max"), []byte(v), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			for dir, v := range tc.v1 {
				d := filepath.Join(cg, "cpu,cpuacct", dir)
				if err := os.MkdirAll(d, 0o755); err != nil {
					t.Fatal(err)
				}
				qp := strings.Fields(v)
				if err := os.WriteFile(filepath.Join(d, "cpu.cfs_quota_us"), []byte(qp[0]+"\n"), 0o644); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(d, "cpu.cfs_period_us"), []byte(qp[1]+"\n"), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			got, err := CPULimit(proc, cg)
			if err != nil || got != tc.want {
				t.Errorf("CPULimit = %v, %v; want %v", got, err, tc.want)
			}
		})
	}
}
