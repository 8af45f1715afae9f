package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// machine describes where the numbers come from, so runs can be compared.
type machine struct {
	CPUModel     string `json:"cpu_model"`
	Cores        int    `json:"cores"`
	MemTotal     int64  `json:"mem_total_bytes"`
	Kernel       string `json:"kernel"`
	GoVersion    string `json:"go_version"`
	MinIOVersion string `json:"minio_version"`
	MCVersion    string `json:"mc_version"`
	ZstdVersion  string `json:"zstd_version,omitempty"`
	AgentVersion string `json:"agent_version"`
	GitDescribe  string `json:"git_describe"`
	// AgentSHA256 identifies the binary measured (a dirty tree's version
	// string does not say which uncommitted changes it holds).
	AgentSHA256 string `json:"agent_sha256"`
	Hostname    string `json:"hostname"`
	WorkFS      fsInfo `json:"work_filesystem"`
	ClockTicks  int    `json:"clock_ticks_per_second"`
	// PageReportingOrder is set when the guest reports free memory to its
	// hypervisor (free page reporting, in blocks of 2^order pages): pages
	// freed by deleting files go back to the host, and the next writes
	// into the page cache fault them in again there, which shows as
	// MinIO's system CPU growing once gigabytes were written and deleted.
	PageReportingOrder string `json:"page_reporting_order,omitempty"`
}

type fsInfo struct {
	Path       string `json:"path"`
	Device     string `json:"device"`
	Type       string `json:"type"`
	MountPoint string `json:"mount_point"`
}

func describeMachine(c config) machine {
	m := machine{Cores: runtime.NumCPU(), GoVersion: runtime.Version(), ClockTicks: clockTicks}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPUModel = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if f := strings.Fields(l); len(f) >= 2 && f[0] == "MemTotal:" {
				kb, _ := strconv.ParseInt(f[1], 10, 64)
				m.MemTotal = kb << 10
			}
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	m.Hostname, _ = os.Hostname()
	if out, err := exec.Command("go", "env", "GOVERSION").Output(); err == nil {
		m.GoVersion = strings.TrimSpace(string(out))
	}
	// Binaries built with `go install` call themselves DEVELOPMENT.GOGET:
	// the Makefile's pinned module versions say more.
	m.MinIOVersion, m.MCVersion = c.minioVersion, c.mcVersion
	if m.MinIOVersion == "" {
		m.MinIOVersion = versionOf(c.minio, "--version")
	}
	if m.MCVersion == "" {
		m.MCVersion = versionOf(c.mc, "--version")
	}
	if p, err := exec.LookPath("zstd"); err == nil {
		m.ZstdVersion = versionOf(p, "--version")
	}
	m.AgentVersion = versionOf(c.crashdump, "version")
	if out, err := exec.Command("git", "describe", "--tags", "--always", "--dirty").Output(); err == nil {
		m.GitDescribe = strings.TrimSpace(string(out))
	}
	if sum, _, _, err := hashFile(c.crashdump); err == nil {
		m.AgentSHA256 = sum
	}
	m.WorkFS = filesystemOf(c.work)
	if b, err := os.ReadFile("/sys/module/page_reporting/parameters/page_reporting_order"); err == nil {
		m.PageReportingOrder = strings.TrimSpace(string(b))
	}
	return m
}

// versionOf is the first line of `bin args...`.
func versionOf(bin string, args ...string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, args...).CombinedOutput()
	if err != nil && len(out) == 0 {
		return "unknown"
	}
	line, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
	return strings.TrimSpace(line)
}

// filesystemOf finds the mount that holds p (longest mount point prefix).
func filesystemOf(p string) fsInfo {
	_ = os.MkdirAll(p, 0o755)
	abs, _ := filepath.Abs(p)
	if r, err := filepath.EvalSymlinks(abs); err == nil {
		abs = r
	}
	info := fsInfo{Path: abs}
	f, err := os.Open("/proc/self/mounts")
	if err != nil {
		return info
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		if len(fs) < 3 {
			continue
		}
		mp := fs[1]
		if (abs == mp || strings.HasPrefix(abs, strings.TrimSuffix(mp, "/")+"/")) && len(mp) >= len(info.MountPoint) {
			info.Device, info.MountPoint, info.Type = fs[0], mp, fs[2]
		}
	}
	return info
}

// loadAvg is the 1, 5 and 15 minute load average.
func loadAvg() []float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return nil
	}
	var out []float64
	for _, f := range strings.Fields(string(b))[:3] {
		v, _ := strconv.ParseFloat(f, 64)
		out = append(out, v)
	}
	return out
}

// quiet records the wait for a quiet machine.
type quiet struct {
	Threshold float64 `json:"threshold_load1"`
	WaitedS   float64 `json:"waited_s"`
	Reached   bool    `json:"reached"`
	MaxWaitS  float64 `json:"max_wait_s"`
}

// waitQuiet waits (up to max) until the 1-minute load average is below
// threshold, polling every 30 s.
func waitQuiet(ctx context.Context, threshold float64, max time.Duration) quiet {
	q := quiet{Threshold: threshold, MaxWaitS: max.Seconds()}
	start := time.Now()
	for {
		l := loadAvg()
		if len(l) > 0 && l[0] < threshold {
			q.Reached = true
			break
		}
		if time.Since(start) >= max || ctx.Err() != nil {
			break
		}
		fmt.Printf("bench-perf: load average %.2f, waiting for < %.1f (%s of %s)\n", l[0], threshold,
			time.Since(start).Round(time.Second), max)
		select {
		case <-ctx.Done():
		case <-time.After(30 * time.Second):
		}
	}
	q.WaitedS = time.Since(start).Seconds()
	return q
}
