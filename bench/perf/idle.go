package main

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

type idleResult struct {
	Dirs      int     `json:"dirs"`
	Watched   int     `json:"watched_directories"`
	DurationS float64 `json:"duration_s"`
	WarmupS   float64 `json:"warmup_s"`
	// CPU over the window from /proc/<pid>/stat utime+stime (10 ms ticks),
	// and from the threads' schedstat (ns), as a % of one core.
	CPUSeconds      float64 `json:"cpu_s"`
	CPUPercent      float64 `json:"cpu_percent_of_one_core"`
	SchedCPUPercent float64 `json:"schedstat_cpu_percent_of_one_core"`
	// RSS during the window (sampled every second), at its end, and the
	// process's lifetime peak (VmHWM, start-up included).
	RSSMax int64 `json:"rss_max_bytes"`
	RSSEnd int64 `json:"rss_end_bytes"`
	HWM    int64 `json:"vmhwm_bytes"`
	// At the end: anonymous memory (heap, stacks) and the executable's
	// file pages, which together make RSS.
	AnonEnd int64 `json:"rss_anon_end_bytes"`
	FileEnd int64 `json:"rss_file_end_bytes"`
	// The Go runtime's view at the end (from /metrics).
	GoHeapInuse float64 `json:"go_memstats_heap_inuse_bytes"`
	GoSys       float64 `json:"go_memstats_sys_bytes"`
	Rescans     int     `json:"periodic_rescans_in_window"`
	MinIOCPU    float64 `json:"minio_cpu_s"`
}

// runIdle measures an agent watching a tree of c.idleDirs empty
// directories: its RSS and CPU over c.idleDuration.
func runIdle(ctx context.Context, c config, srv *minio, runDir string) (*idleResult, error) {
	dumps := filepath.Join(runDir, "idle-dumps")
	state := filepath.Join(runDir, "idle-state")
	for _, d := range []string{dumps, state} {
		if err := os.RemoveAll(d); err != nil {
			return nil, err
		}
	}
	// Namespaces with pod directories: <ns>/ and <ns>/<pod>/.
	const pods = 19
	made := 0
	for ns := 0; made < c.idleDirs; ns++ {
		nsDir := filepath.Join(dumps, fmt.Sprintf("ns-%03d", ns))
		if err := os.MkdirAll(nsDir, 0o755); err != nil {
			return nil, err
		}
		made++
		for p := 0; p < pods && made < c.idleDirs; p++ {
			if err := os.Mkdir(filepath.Join(nsDir, fmt.Sprintf("pod-%02d", p)), 0o755); err != nil {
				return nil, err
			}
			made++
		}
	}
	a, err := startAgent(ctx, c, srv, "idle", dumps, state, "bench-idle")
	if err != nil {
		return nil, err
	}
	res := &idleResult{Dirs: made, DurationS: c.idleDuration.Seconds(), WarmupS: 5}
	// Every directory (and the root) must be watched before it counts as
	// idle.
	deadline := time.Now().Add(60 * time.Second)
	for {
		res.Watched = int(metric("http://"+a.listen+"/metrics", "crashdump_watched_directories"))
		if res.Watched >= made+1 || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if res.Watched < made+1 {
		a.stop()
		return nil, fmt.Errorf("agent watches %d directories, want %d (log: %s)", res.Watched, made+1, a.log)
	}
	fmt.Printf("bench-perf: idle: agent %d watches %d directories; measuring for %s after %gs\n", a.pid(), res.Watched, c.idleDuration, res.WarmupS)
	time.Sleep(time.Duration(res.WarmupS * float64(time.Second)))
	pid := a.pid()
	rescans0 := metric("http://"+a.listen+"/metrics", `crashdump_rescans_total{reason="periodic"}`)
	cpu0, sched0, m0 := procCPU(pid), procSchedNS(pid), procCPU(srv.pid())
	start := time.Now()
	for time.Since(start) < c.idleDuration && ctx.Err() == nil {
		time.Sleep(time.Second)
		rss, _ := procStatus(pid)
		res.RSSMax = max(res.RSSMax, rss)
	}
	el := time.Since(start).Seconds()
	cpu1, sched1, m1 := procCPU(pid), procSchedNS(pid), procCPU(srv.pid())
	mem := procMem(pid)
	res.RSSEnd, res.HWM, res.AnonEnd, res.FileEnd = mem.RSS, mem.HWM, mem.Anon, mem.File
	res.GoHeapInuse = metric("http://"+a.listen+"/metrics", "go_memstats_heap_inuse_bytes")
	res.GoSys = metric("http://"+a.listen+"/metrics", "go_memstats_sys_bytes")
	res.Rescans = int(metric("http://"+a.listen+"/metrics", `crashdump_rescans_total{reason="periodic"}`) - rescans0)
	res.CPUSeconds = cpu1 - cpu0
	res.CPUPercent = 100 * res.CPUSeconds / el
	res.SchedCPUPercent = 100 * float64(sched1-sched0) / 1e9 / el
	res.MinIOCPU = m1 - m0
	res.DurationS = el
	if _, err := a.stop(); err != nil {
		return nil, err
	}
	fmt.Printf("bench-perf: idle: RSS max %s (at the end: anon %s, file %s), CPU %.3f%% of one core (schedstat %.3f%%), VmHWM %s\n",
		human(res.RSSMax), human(res.AnonEnd), human(res.FileEnd), res.CPUPercent, res.SchedCPUPercent, human(res.HWM))
	return res, nil
}

// metric reads one sample from a Prometheus text endpoint (the line that
// starts with name followed by a space), or -1.
func metric(url, name string) float64 {
	resp, err := http.Get(url)
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err == nil {
				return f
			}
		}
	}
	return -1
}
