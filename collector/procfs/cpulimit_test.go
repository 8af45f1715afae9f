package procfs

import (
	"os"
	"path/filepath"
	"testing"
)

func TestCPULimit(t *testing.T) {
	for _, tc := range []struct {
		name   string
		self   string            // /proc/self/cgroup
		cpuMax map[string]string // cgroup dir -> cpu.max
		want   float64
	}{
		{"the chart's 250m, seen from inside the container's namespace", "0::/\n", map[string]string{"/": "25000 100000\n"}, 0.25},
		{"the smallest on the path", "0::/kubepods.slice/pod.slice/cri-containerd-x.scope\n",
			map[string]string{"/kubepods.slice": "400000 100000\n", "/kubepods.slice/pod.slice": "50000 100000\n", "/kubepods.slice/pod.slice/cri-containerd-x.scope": "max 100000\n"}, 0.5},
		{"no limit", "0::/system.slice/x.service\n", map[string]string{"/system.slice": "max 100000\n"}, 0},
		{"cgroup v1", "12:cpu,cpuacct:/kubepods/pod1/abc\n", nil, 0},
		{"garbage", "0::/a\n", map[string]string{"/a": "lots\n"}, 0},
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
			got, err := CPULimit(proc, cg)
			if err != nil || got != tc.want {
				t.Errorf("CPULimit = %v, %v; want %v", got, err, tc.want)
			}
		})
	}
}
