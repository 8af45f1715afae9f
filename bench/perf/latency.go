package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"
)

// dist summarizes samples in milliseconds.
type dist struct {
	N    int     `json:"n"`
	Min  float64 `json:"min_ms"`
	P50  float64 `json:"p50_ms"`
	P90  float64 `json:"p90_ms"`
	P99  float64 `json:"p99_ms"`
	Max  float64 `json:"max_ms"`
	Mean float64 `json:"mean_ms"`
}

// percentile is the nearest-rank percentile of sorted samples.
func percentile(sorted []float64, p float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(p*float64(len(sorted)))) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

func newDist(v []float64) dist {
	s := slices.Clone(v)
	slices.Sort(s)
	d := dist{N: len(s)}
	if len(s) == 0 {
		return d
	}
	var sum float64
	for _, x := range s {
		sum += x
	}
	d.Min, d.Max, d.Mean = s[0], s[len(s)-1], sum/float64(len(s))
	d.P50, d.P90, d.P99 = percentile(s, 0.50), percentile(s, 0.90), percentile(s, 0.99)
	return d
}

type latencyResult struct {
	Dumps     int     `json:"dumps"`
	SettleS   float64 `json:"settle_s"`
	IntervalS float64 `json:"interval_s"`
	SizeBytes int64   `json:"size_bytes"`
	// Writer's close → upload start (the agent's "upload started" line,
	// logged just before Send begins), minus the settle time.
	CloseToUploadStart dist `json:"close_to_upload_start_beyond_settle"`
	// Writer's close → "dump uploaded" (object verified with Head, manifest
	// stored and verified), minus the settle time.
	CloseToVerified dist `json:"close_to_verified_beyond_settle"`
	// Writer's create → "claimed dump" (the rename into staging).
	CreateToClaim dist `json:"create_to_claim"`
	// Upload duration as the agent logs it (Send + Head + manifest).
	UploadDuration dist    `json:"upload_duration"`
	AgentPeakRSS   int64   `json:"agent_peak_rss_bytes"`
	AgentCPUS      float64 `json:"agent_cpu_s"`
	Method         string  `json:"method"`
}

// logLine is what the harness reads from the agent's JSON log.
type logLine struct {
	Time     time.Time `json:"time"`
	Msg      string    `json:"msg"`
	Path     string    `json:"path"`
	Duration string    `json:"duration"`
	Err      string    `json:"err"`
}

func freePort() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// runningAgent is an agent in normal (watching) mode.
type runningAgent struct {
	cmd    *exec.Cmd
	listen string
	log    string
	usage  chan usage
	errc   chan error
}

func startAgent(ctx context.Context, c config, srv *minio, name, dumps, state, bucket string, extra ...string) (*runningAgent, error) {
	return startAgentIn(ctx, c, srv, "", name, dumps, state, bucket, append([]string{"--pod-source", "none"}, extra...)...)
}

// startAgentIn starts the agent; with cgroupProcs (a cgroup's cgroup.procs
// file) it runs in that cgroup from its first instruction: a shell writes
// its own PID there and then execs the agent, so the agent's process (the
// same PID) never runs outside it, its runtime's threads included.
func startAgentIn(ctx context.Context, c config, srv *minio, cgroupProcs, name, dumps, state, bucket string, extra ...string) (*runningAgent, error) {
	listen, err := freePort()
	if err != nil {
		return nil, err
	}
	if err := srv.makeBucket(ctx, bucket); err != nil {
		return nil, err
	}
	args := []string{"agent",
		"--dump-dir", dumps, "--state-dir", state,
		"--store", "s3://" + bucket + "/" + name, "--s3-endpoint", srv.endpoint,
		"--listen-address", listen,
		"--keep-free", "0", "--max-dump-bytes", "0", "--max-dumps-per-window", "0",
		"--log-format", "json"}
	args = append(append(args, extra...), c.agentFlags...)
	logPath := filepath.Join(c.work, "logs", name+"-agent.log")
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(c.crashdump, args...)
	if cgroupProcs != "" {
		cmd = exec.Command("/bin/sh", append([]string{"-c", `echo $$ > "$0" && exec "$@"`, cgroupProcs, c.crashdump}, args...)...)
	}
	cmd.Env = srv.agentEnv()
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	a := &runningAgent{cmd: cmd, listen: listen, log: logPath, usage: make(chan usage, 1), errc: make(chan error, 1)}
	started := make(chan struct{})
	go func() {
		defer logf.Close()
		u, errs := measureNotify(srv.pid(), started, cmd)
		a.usage <- u
		a.errc <- errs[0]
	}()
	<-started
	if cmd.Process == nil {
		return nil, fmt.Errorf("agent did not start: %v", <-a.errc)
	}
	// Ready: watching, and the store answered.
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get("http://" + listen + "/readyz")
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return a, nil
			}
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			a.stop()
			return nil, fmt.Errorf("agent not ready after 30s (log: %s)", logPath)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (a *runningAgent) pid() int { return a.cmd.Process.Pid }

// stop sends SIGTERM and returns what the agent cost over its life.
func (a *runningAgent) stop() (usage, error) {
	_ = a.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case u := <-a.usage:
		return u, <-a.errc
	case <-time.After(60 * time.Second):
		_ = a.cmd.Process.Kill()
		u := <-a.usage
		<-a.errc
		return u, fmt.Errorf("agent did not stop within 60s of SIGTERM")
	}
}

func readLog(p string) ([]logLine, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []logLine
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var l logLine
		if json.Unmarshal(sc.Bytes(), &l) == nil {
			out = append(out, l)
		}
	}
	return out, sc.Err()
}

// runLatency measures detection latency: a writer creates a dump, writes
// it, closes it, N times; the agent's JSON log says when it claimed and
// uploaded each one.
func runLatency(ctx context.Context, c config, srv *minio, runDir string) (*latencyResult, error) {
	dumps := filepath.Join(runDir, "lat-dumps")
	state := filepath.Join(runDir, "lat-state")
	for _, d := range []string{dumps, state} {
		if err := os.RemoveAll(d); err != nil {
			return nil, err
		}
	}
	if err := os.MkdirAll(filepath.Join(dumps, "lat"), 0o755); err != nil {
		return nil, err
	}
	a, err := startAgent(ctx, c, srv, "latency", dumps, state, "bench-latency", "--settle-time", c.latencySettle.String())
	if err != nil {
		return nil, err
	}
	fmt.Printf("bench-perf: latency: agent %d watching; writing %d dumps of %s, one every %s, settle time %s\n",
		a.pid(), c.latencyDumps, human(c.latencySize), c.latencyInterval, c.latencySettle)
	created := map[string]time.Time{}
	closed := map[string]time.Time{}
	m := newMixer(77)
	buf := make([]byte, c.latencySize)
	const writes = 8
	for i := range c.latencyDumps {
		if ctx.Err() != nil {
			break
		}
		t0 := time.Now()
		rel := fmt.Sprintf("lat/dump-%03d.dmp", i)
		m.fill(buf)
		f, err := os.OpenFile(filepath.Join(dumps, rel), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
		if err != nil {
			a.stop()
			return nil, err
		}
		created[rel] = time.Now()
		// Written in pieces, a few milliseconds apart, as a runtime's
		// dumper does: the agent claims it while it is still open.
		chunk := (len(buf) + writes - 1) / writes
		for off := 0; off < len(buf); off += chunk {
			if off > 0 {
				time.Sleep(5 * time.Millisecond)
			}
			if _, err := f.Write(buf[off:min(off+chunk, len(buf))]); err != nil {
				f.Close()
				a.stop()
				return nil, err
			}
		}
		if err := f.Close(); err != nil {
			a.stop()
			return nil, err
		}
		closed[rel] = time.Now()
		time.Sleep(time.Until(t0.Add(c.latencyInterval)))
	}
	// Wait for every upload (or give up after a minute).
	deadline := time.Now().Add(60 * time.Second)
	var lines []logLine
	for {
		lines, err = readLog(a.log)
		if err != nil {
			a.stop()
			return nil, err
		}
		n := 0
		for _, l := range lines {
			if l.Msg == "dump uploaded" {
				n++
			}
		}
		if n >= len(closed) || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	u, stopErr := a.stop()
	if lines, err = readLog(a.log); err != nil {
		return nil, err
	}
	res := &latencyResult{Dumps: c.latencyDumps, SettleS: c.latencySettle.Seconds(), IntervalS: c.latencyInterval.Seconds(),
		SizeBytes: c.latencySize, AgentPeakRSS: u.PeakRSS, AgentCPUS: u.CPUS,
		Method: "writer close time taken by the harness right after close(2) returns; claim and upload times from the agent's JSON log " +
			"(\"claimed dump\", \"upload started\", \"dump uploaded\"), same clock; " +
			"settle time subtracted"}
	var start, verified, claim, dur []float64
	seen := map[string]bool{}
	for _, l := range lines {
		tc, ok := closed[l.Path]
		if !ok {
			continue
		}
		switch l.Msg {
		case "claimed dump":
			claim = append(claim, ms(l.Time.Sub(created[l.Path])))
		case "upload started":
			start = append(start, ms(l.Time.Sub(tc)-c.latencySettle))
		case "dump uploaded":
			d, err := time.ParseDuration(l.Duration)
			if err != nil {
				return nil, fmt.Errorf("agent log: duration %q: %w", l.Duration, err)
			}
			seen[l.Path] = true
			settle := c.latencySettle
			verified = append(verified, ms(l.Time.Sub(tc)-settle))
			dur = append(dur, ms(d))
		}
	}
	if len(start) != len(closed) {
		return nil, fmt.Errorf("agent log: %d \"upload started\" lines for %d dumps", len(start), len(closed))
	}
	if len(seen) != len(closed) {
		var missing []string
		for p := range closed {
			if !seen[p] {
				missing = append(missing, p)
			}
		}
		slices.Sort(missing)
		return nil, fmt.Errorf("%d of %d dumps not uploaded (e.g. %s; log: %s; stop: %v)", len(missing), len(closed),
			strings.Join(missing[:min(3, len(missing))], ", "), a.log, stopErr)
	}
	res.CloseToUploadStart, res.CloseToVerified = newDist(start), newDist(verified)
	res.CreateToClaim, res.UploadDuration = newDist(claim), newDist(dur)
	fmt.Printf("bench-perf: latency: close→upload start beyond settle p50 %.0f ms p99 %.0f ms; close→verified p50 %.0f ms p99 %.0f ms\n",
		res.CloseToUploadStart.P50, res.CloseToUploadStart.P99, res.CloseToVerified.P50, res.CloseToVerified.P99)
	return res, nil
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
