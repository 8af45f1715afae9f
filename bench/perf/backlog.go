package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"
)

// backlogResult is the backlog scenario (issue 20): the store down, 100k
// pending one-byte dumps, the agent's RSS while it claims them and after a
// cold restart, with GOMEMLIMIT as the chart sets it.
type backlogResult struct {
	Dumps      int     `json:"dumps"`
	GoMemLimit string  `json:"gomemlimit"`
	ClaimS     float64 `json:"claim_s"`
	// Peak RSS (VmHWM) of each run: claiming the backlog, then a cold
	// restart that finds it staged; the RSS after it settled.
	FirstPeakRSS   int64   `json:"first_peak_rss_bytes"`
	FirstEndRSS    int64   `json:"first_end_rss_bytes"`
	RestartPeakRSS int64   `json:"restart_peak_rss_bytes"`
	RestartEndRSS  int64   `json:"restart_end_rss_bytes"`
	RestartS       float64 `json:"restart_resume_s"`
	Parked         float64 `json:"parked"`
	StateBytes     int64   `json:"state_dir_bytes"`
	DiskMetric     float64 `json:"crashdump_dump_disk_bytes"`
}

// The chart's limits.memory (192Mi) × goMemLimitPercent (85).
const chartGoMemLimit = "163MiB"

// runBacklog writes c.backlogDumps one-byte dumps in 100 pod directories,
// runs the agent against a store that refuses connections (a closed port
// on 127.0.0.1) until every dump is claimed, stops it, and starts it again
// on the same state directory.
func runBacklog(ctx context.Context, c config, runDir string) (*backlogResult, error) {
	dumps := filepath.Join(runDir, "backlog-dumps")
	state := filepath.Join(runDir, "backlog-state")
	for _, d := range []string{dumps, state} {
		if err := os.RemoveAll(d); err != nil {
			return nil, err
		}
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
	}
	defer os.RemoveAll(dumps)
	defer os.RemoveAll(state)
	const pods = 100
	for i := range c.backlogDumps {
		d := filepath.Join(dumps, fmt.Sprintf("ns-%02d", i%pods%10), fmt.Sprintf("pod-%02d", i%pods))
		if i < pods {
			if err := os.MkdirAll(d, 0o755); err != nil {
				return nil, err
			}
		}
		if err := os.WriteFile(filepath.Join(d, fmt.Sprintf("core.%d", i)), []byte("x"), 0o644); err != nil {
			return nil, err
		}
	}
	res := &backlogResult{Dumps: c.backlogDumps, GoMemLimit: chartGoMemLimit}
	dead, err := freePort() // nothing listens there: the store is down
	if err != nil {
		return nil, err
	}
	run := func(name string, until func(url string) bool) (hwm, end int64, took float64, err error) {
		listen, err := freePort()
		if err != nil {
			return 0, 0, 0, err
		}
		logf, err := os.Create(filepath.Join(c.work, "logs", name+"-agent.log"))
		if err != nil {
			return 0, 0, 0, err
		}
		defer logf.Close()
		cmd := exec.Command(c.crashdump, "agent", "--dump-dir", dumps, "--state-dir", state,
			"--store", "s3://bench-backlog/x", "--s3-endpoint", "http://"+dead, "--listen-address", listen,
			"--keep-free", "0", "--max-dump-bytes", "0", "--max-dumps-per-window", "0", "--pod-source", "none", "--log-format", "json")
		cmd.Env = append(os.Environ(), "AWS_ACCESS_KEY_ID=bench", "AWS_SECRET_ACCESS_KEY=bench-secret", "AWS_REGION=us-east-1",
			"AWS_EC2_METADATA_DISABLED=true", "AWS_CONFIG_FILE="+os.DevNull, "AWS_SHARED_CREDENTIALS_FILE="+os.DevNull, "GOMEMLIMIT="+chartGoMemLimit)
		cmd.Stdout, cmd.Stderr = logf, logf
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		start := time.Now()
		if err := cmd.Start(); err != nil {
			return 0, 0, 0, err
		}
		defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
		url := "http://" + listen + "/metrics"
		deadline := start.Add(10 * time.Minute)
		for !until(url) {
			if time.Now().After(deadline) || ctx.Err() != nil {
				return 0, 0, 0, fmt.Errorf("%s: backlog not reached in 10 minutes (log %s)", name, logf.Name())
			}
			time.Sleep(200 * time.Millisecond)
		}
		took = time.Since(start).Seconds()
		// Settled: a few retry rounds with every dump pending.
		time.Sleep(15 * time.Second)
		m := procMem(cmd.Process.Pid)
		res.Parked = metric(url, "crashdump_pending_parked_dumps")
		res.DiskMetric = metric(url, "crashdump_dump_disk_bytes")
		if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
			return 0, 0, 0, err
		}
		return m.HWM, m.RSS, took, nil
	}
	all := func(url string) bool { return metric(url, "crashdump_pending_dumps") >= float64(c.backlogDumps) }
	if res.FirstPeakRSS, res.FirstEndRSS, res.ClaimS, err = run("backlog", all); err != nil {
		return nil, err
	}
	res.StateBytes = duBytes(state)
	if res.RestartPeakRSS, res.RestartEndRSS, res.RestartS, err = run("backlog-restart", all); err != nil {
		return nil, err
	}
	fmt.Printf("bench-perf: backlog: %d pending dumps, store down, GOMEMLIMIT=%s: claimed in %.1f s, peak RSS %s (settled %s); cold restart: peak %s (settled %s), %.0f parked; state directory %s (crashdump_dump_disk_bytes %s)\n",
		res.Dumps, res.GoMemLimit, res.ClaimS, human(res.FirstPeakRSS), human(res.FirstEndRSS), human(res.RestartPeakRSS), human(res.RestartEndRSS),
		res.Parked, human(res.StateBytes), human(int64(res.DiskMetric)))
	return res, nil
}

// duBytes is what the files under dir use on disk (allocated blocks).
func duBytes(dir string) int64 {
	var total int64
	_ = filepath.Walk(dir, func(_ string, info os.FileInfo, err error) error {
		if err == nil {
			if st, ok := info.Sys().(*syscall.Stat_t); ok {
				total += st.Blocks * 512
			}
		}
		return nil
	})
	return total
}
