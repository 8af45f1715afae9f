package main

import (
	"bufio"
	"context"
	crand "crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/crashdump-io/crashdump/collector/pods/podstest"
	"github.com/crashdump-io/crashdump/collector/procfs"
	"github.com/crashdump-io/crashdump/uploader/manifest"
)

// The evidence scenario: the agent in a CPU-limited cgroup uploads a 1 GiB
// core while createdump-shaped writers in pod cgroups write small dumps
// into the seed's shared directory. Does claim-time evidence (who has the
// file open, and that process's cgroup) survive the CPU quota? Issue
// target: at 250m, ≥ 99 % of the dumps attributed by method writer-pid and
// none to a wrong pod.

// evidenceWriterArg makes the bench binary a writer (see evidenceWriterMain).
const evidenceWriterArg = "evidence-writer"

const (
	evidenceBucket    = "bench-evidence"
	evidenceNamespace = "bench-ev"
	evidenceNode      = "bench-node" // NODE_NAME of agentEnv
	// The agent's cgroup, below the root of the cpu hierarchy.
	evidenceAgentCgroup = "crashdump-bench-evidence-agent"
)

type evidenceResult struct {
	Writers      int           `json:"writers"`
	SizeBytes    int64         `json:"size_bytes"`
	WriteS       float64       `json:"write_s"`
	Chunks       int           `json:"chunks"`
	GapMinS      float64       `json:"gap_min_s"`
	GapMaxS      float64       `json:"gap_max_s"`
	FileName     string        `json:"file_name"`
	CPULimit     cpuLimit      `json:"agent_cpu_limit"`
	AgentCgroup  *cpuCgroup    `json:"agent_cgroup"`
	PodCgroups   []string      `json:"pod_cgroup_examples"`
	CgroupMounts []cgroupMount `json:"pod_cgroup_hierarchies"`
	// WriterPID: writers whose own dump was stored attributed by method
	// writer-pid to their own pod. Wrong: dumps attributed (by any method)
	// to a pod that did not write them, or to a pod when the stored bytes
	// are no single writer's.
	WriterPID     int     `json:"writer_pid"`
	WriterPIDRate float64 `json:"writer_pid_rate"`
	Wrong         int     `json:"wrong"`
	// Stored: writers whose bytes arrived as one object (SHA-256 match).
	Stored int `json:"stored"`
	// Mixed: stored dumps whose bytes match no writer (two writers opened
	// the same inode before the agent renamed it away).
	Mixed int `json:"mixed"`
	// Overwritten: writers whose dump is lost because the next writer
	// opened the same name with O_TRUNC before the agent had claimed it.
	Overwritten int            `json:"overwritten_before_claim"`
	Methods     map[string]int `json:"methods"`
	// Misses says, for each writer not attributed by writer-pid, what the
	// manifest and the agent's evidence said.
	Misses []string `json:"misses,omitempty"`
	// Why counts the misses by cause.
	Why map[string]int `json:"misses_by_cause"`
	// Create → writer found: the writer's create (taken right after its
	// open(2) returns) to the agent's "writer evidence" log line of the
	// claim that found it (FoundFrom says which line was used).
	CreateToFound dist   `json:"create_to_writer_found"`
	FoundFrom     string `json:"found_from"`
	CreateToClaim dist   `json:"create_to_claim"`
	// Claim → "writer evidence": the batch's process-table scan.
	ClaimToFound dist `json:"claim_to_writer_found"`
	// Scan: one process-table scan by the agent's own code (procfs), timed
	// in the harness, unthrottled, on the same machine just before.
	Scan scanCost `json:"proc_scan"`
	// Control: the same run with the agent under no CPU limit (made when
	// a target is missed at the limit, to show what the limit costs).
	Control *evidenceResult `json:"control_unlimited,omitempty"`
	// The core uploads: copies of the 1 GiB core put in the dump directory
	// one after the other while writers ran.
	CoreCopies    int       `json:"core_copies"`
	CoreUploadS   []float64 `json:"core_upload_s"`
	CoreMethod    string    `json:"core_method"`
	CreatesInCore int       `json:"writer_creates_during_core_upload"`
	// Gaps between consecutive creates as they happened, and how late
	// the latest writer was for its scheduled open.
	Gaps           dist       `json:"create_gaps"`
	LateMax        float64    `json:"writer_late_max_ms"`
	WindowS        float64    `json:"writers_window_s"`
	AgentCPUS      float64    `json:"agent_cpu_s"`
	AgentPeakRSS   int64      `json:"agent_peak_rss_bytes"`
	Throttle       throttling `json:"agent_throttling"`
	PodListFetches int64      `json:"pod_list_fetches"`
	LoadStart      []float64  `json:"load_at_start"`
	LoadEnd        []float64  `json:"load_at_end"`
	Method         string     `json:"method"`
}

// writerReport is what a writer prints when it is done.
type writerReport struct {
	PID     int       `json:"pid"`
	Created time.Time `json:"created"`
	Closed  time.Time `json:"closed"`
	SHA256  string    `json:"sha256"`
	// LateMS: how much later than scheduled the writer called open(2)
	// (its start-up, or a late wake-up on a loaded machine).
	LateMS float64 `json:"late_ms,omitempty"`
	Err    string  `json:"err,omitempty"`
}

// evidenceWriterMain is a writer: it joins its pod's cgroups, then writes a
// dump as createdump does (open O_CREAT|O_TRUNC|O_WRONLY, the file written
// in place in pieces, closed, exit) and reports on stdout.
func evidenceWriterMain(args []string) int {
	fl := flag.NewFlagSet(evidenceWriterArg, flag.ContinueOnError)
	cgroups := fl.String("cgroups", "", "cgroup directories to join, comma separated")
	path := fl.String("path", "", "dump path")
	size := fl.Int64("size", 2<<20, "bytes")
	chunks := fl.Int("chunks", 16, "writes")
	dur := fl.Duration("duration", 150*time.Millisecond, "first write to last")
	seed := fl.Uint64("seed", 1, "content seed")
	at := fl.Int64("at", 0, "open the dump at this time (Unix nanoseconds), once ready")
	if err := fl.Parse(args); err != nil {
		return 2
	}
	rep := writerReport{PID: os.Getpid()}
	fail := func(err error) int {
		rep.Err = err.Error()
		_ = json.NewEncoder(os.Stdout).Encode(rep)
		return 1
	}
	// Into the pod before the dump exists: the agent reads the cgroup of
	// whoever holds the file.
	for _, d := range strings.Split(*cgroups, ",") {
		if err := os.WriteFile(filepath.Join(d, "cgroup.procs"), []byte(strconv.Itoa(rep.PID)), 0); err != nil {
			return fail(fmt.Errorf("join cgroup %s: %w", d, err))
		}
	}
	// The content is this writer's alone: its SHA-256 identifies it in
	// the store whatever the agent concluded.
	buf := make([]byte, *size)
	newMixer(*seed).fill(buf)
	sum := sha256.Sum256(buf)
	rep.SHA256 = hex.EncodeToString(sum[:])
	// The crash itself happens on the harness's schedule, not whenever
	// this process got through its start-up.
	if *at != 0 {
		time.Sleep(time.Until(time.Unix(0, *at)))
		rep.LateMS = ms(time.Since(time.Unix(0, *at)))
	}
	f, err := os.OpenFile(*path, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return fail(err)
	}
	rep.Created = time.Now()
	n := max(*chunks, 1)
	chunk := (len(buf) + n - 1) / n
	for k, off := 0, 0; off < len(buf); k, off = k+1, off+chunk {
		if k > 0 && n > 1 {
			time.Sleep(time.Until(rep.Created.Add(*dur * time.Duration(k) / time.Duration(n-1))))
		}
		if _, err := f.Write(buf[off:min(off+chunk, len(buf))]); err != nil {
			f.Close()
			return fail(err)
		}
	}
	if err := f.Close(); err != nil {
		return fail(err)
	}
	rep.Closed = time.Now()
	if err := json.NewEncoder(os.Stdout).Encode(rep); err != nil {
		return 1
	}
	return 0
}

// fakeKubelet serves GET /pods (a real v1.PodList) over HTTPS on 127.0.0.1
// with a bearer-token check, as the kubelet's read-only-by-RBAC endpoint.
// podstest.StartKubelet needs a testing.TB, which a benchmark binary has
// not; the pods are podstest's.
type fakeKubelet struct {
	mu      sync.Mutex
	pods    []podstest.Pod
	token   string
	srv     *httptest.Server
	fetches atomic.Int64
	caFile  string
	tokFile string
}

func startFakeKubelet(dir string, pods []podstest.Pod) (*fakeKubelet, error) {
	tok := make([]byte, 16)
	if _, err := crand.Read(tok); err != nil {
		return nil, err
	}
	k := &fakeKubelet{pods: pods, token: "bench-kubelet-" + hex.EncodeToString(tok)}
	k.srv = httptest.NewUnstartedServer(http.HandlerFunc(k.serve))
	k.srv.StartTLS()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		k.srv.Close()
		return nil, err
	}
	k.caFile, k.tokFile = filepath.Join(dir, "kubelet-ca.crt"), filepath.Join(dir, "token")
	if err := os.WriteFile(k.caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: k.srv.Certificate().Raw}), 0o600); err != nil {
		k.srv.Close()
		return nil, err
	}
	if err := os.WriteFile(k.tokFile, []byte(k.token), 0o600); err != nil {
		k.srv.Close()
		return nil, err
	}
	return k, nil
}

func (k *fakeKubelet) serve(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet || r.URL.Path != "/pods" {
		http.NotFound(w, r)
		return
	}
	k.fetches.Add(1)
	if got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); !ok || got != k.token {
		http.Error(w, "Unauthorized", http.StatusUnauthorized)
		return
	}
	k.mu.Lock()
	list := podstest.List(k.pods...)
	k.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(list)
}

// exited reports pod i's container as ended by SIGABRT (exit 134), waiting
// to restart, as the kubelet does once the crashed runtime has exited after
// createdump: the agent waits for this to record how the instance ended.
func (k *fakeKubelet) exited(i int) {
	k.mu.Lock()
	defer k.mu.Unlock()
	c := &k.pods[i].Containers[0]
	c.Exited, c.BackOff, c.ExitCode = true, true, 134
}

// evLine is what the scenario reads from the agent's JSON log.
type evLine struct {
	Time    time.Time `json:"time"`
	Msg     string    `json:"msg"`
	Path    string    `json:"path"`
	ID      string    `json:"id"`
	Writers []string  `json:"writers"`
	Method  string    `json:"method"`
	Err     string    `json:"err"`
	Level   string    `json:"level"`
}

// logTail reads the lines appended to a JSON log since the last call.
type logTail struct {
	f    *os.File
	r    *bufio.Reader
	part []byte
	all  []evLine
}

func openTail(p string) (*logTail, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	return &logTail{f: f, r: bufio.NewReaderSize(f, 1<<20)}, nil
}

func (t *logTail) poll() []evLine {
	var out []evLine
	for {
		b, err := t.r.ReadBytes('\n')
		t.part = append(t.part, b...)
		if err != nil {
			break // EOF for now; the rest of a partial line comes later
		}
		var l evLine
		if json.Unmarshal(t.part, &l) == nil {
			out = append(out, l)
		}
		t.part = t.part[:0]
	}
	t.all = append(t.all, out...)
	return out
}

func (t *logTail) close() { t.f.Close() }

// evWriter is one writer and its pod.
type evWriter struct {
	i      int
	name   string // the dump's file name
	pod    podstest.Pod
	cid    string
	dirs   []string
	rep    writerReport
	err    error
	stderr strings.Builder
}

// runEvidence runs the scenario with the agent limited to milliCPU (0: no
// limit, the control run).
func runEvidence(ctx context.Context, c config, srv *minio, in *inputs, runDir string, milliCPU int64) (res *evidenceResult, err error) {
	core := in.sets["core"]
	if core == nil || len(core.Files) != 1 {
		return nil, errors.New("the core input is missing")
	}
	if os.Geteuid() != 0 {
		return nil, errors.New("needs root: it creates cgroups and reads every process's /proc")
	}
	var lim cpuLimit
	if milliCPU > 0 {
		lim = cpuLimit{QuotaUS: milliCPU * 100, PeriodUS: 100000}
	}
	res = &evidenceResult{Writers: c.evidenceWriters, SizeBytes: c.evidenceSize, WriteS: c.evidenceWrite.Seconds(), Chunks: 16,
		GapMinS: c.evidenceGapMin.Seconds(), GapMaxS: c.evidenceGapMax.Seconds(), FileName: "coredump.1.dmp", CPULimit: lim,
		Methods: map[string]int{}, Why: map[string]int{}, LoadStart: loadAvg()}
	if c.evidenceDistinct {
		res.FileName = "coredump.<n>.dmp"
	}

	name := "evidence"
	if milliCPU == 0 {
		name = "evidence-unlimited"
	}
	dir := filepath.Join(runDir, name)
	dumps, state, spare := filepath.Join(dir, "dumps"), filepath.Join(dir, "state"), filepath.Join(dir, "spare")
	if err := os.RemoveAll(dir); err != nil {
		return nil, err
	}
	for _, d := range []string{dumps, state, spare} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
	}
	defer os.RemoveAll(dir)

	// Cgroups: removed on every way out (an interrupt cancels ctx, which
	// ends every step below and returns through here; a killed run is
	// cleaned up by the next from the journal).
	mounts, err := cgroupMounts()
	if err != nil {
		return nil, err
	}
	cg, err := newCgroupSet(filepath.Join(c.work, "evidence-cgroups.journal"))
	if err != nil {
		return nil, err
	}
	defer func() {
		if cerr := cg.cleanup(); cerr != nil {
			err = errors.Join(err, fmt.Errorf("cgroup cleanup: %w", cerr))
		}
	}()
	var agentCg *cpuCgroup
	procs := ""
	if milliCPU > 0 {
		if agentCg, err = cg.makeCPUCgroup(mounts, evidenceAgentCgroup, lim); err != nil {
			return nil, err
		}
		res.AgentCgroup, procs = agentCg, agentCg.procs
	}
	podMounts := podCgroupMounts(mounts)
	if len(podMounts) == 0 {
		return nil, errors.New("no cgroup hierarchy to put pods in")
	}
	res.CgroupMounts = podMounts

	// The pods, their containers' cgroups as the kubelet (systemd driver)
	// and containerd name them, and the kubelet that lists them.
	created := time.Now().Add(-time.Hour).UTC().Truncate(time.Second)
	writers := make([]*evWriter, c.evidenceWriters)
	pods := make([]podstest.Pod, c.evidenceWriters)
	for i := range writers {
		seed := fmt.Sprintf("bench-evidence-%03d", i)
		uid, cid := podstest.UID(seed), podstest.Hex64("container "+seed)
		name := fmt.Sprintf("app-%s-%s", podstest.Hex64("rs " + seed)[:10], podstest.Hex64("pod " + seed)[:5])
		pods[i] = podstest.Pod{Namespace: evidenceNamespace, Name: name, UID: uid, Node: evidenceNode,
			Labels: map[string]string{"app": "bench-app"}, OwnerKind: "ReplicaSet", OwnerName: name[:len(name)-6], Created: created,
			Containers: []podstest.Container{{Name: "app", Image: "registry.example.com/bench/app:1.0.0", ID: "containerd://" + cid}}}
		rel := "kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + strings.ReplaceAll(uid, "-", "_") + ".slice/cri-containerd-" + cid + ".scope"
		w := &evWriter{i: i, name: "coredump.1.dmp", pod: pods[i], cid: cid}
		if c.evidenceDistinct {
			w.name = fmt.Sprintf("coredump.%d.dmp", 1000+i)
		}
		for _, m := range podMounts {
			d, err := cg.mkdirAll(m, rel)
			if err != nil {
				return nil, err
			}
			w.dirs = append(w.dirs, d)
		}
		writers[i] = w
	}
	res.PodCgroups = writers[0].dirs
	kub, err := startFakeKubelet(filepath.Join(dir, "kubelet"), pods)
	if err != nil {
		return nil, fmt.Errorf("start the fake kubelet: %w", err)
	}
	defer kub.srv.Close()

	// What one process-table scan costs here (the e2e cluster or whatever
	// else runs on the machine is part of it).
	if res.Scan, err = measureScan(); err != nil {
		return nil, err
	}

	// The core, and spare copies to put in when one is uploaded while
	// writers still run (on the same filesystem: a rename).
	if err := copyInput(core.path(core.Files[0]), filepath.Join(dumps, core.Files[0].Rel)); err != nil {
		return nil, err
	}
	var spares []string
	copies := c.evidenceCores
	if milliCPU == 0 {
		// Unlimited, the agent uploads a copy in about 5 s here: enough
		// copies to cover the writers' 20 s.
		copies = max(copies, 6)
	}
	for k := 1; k < copies; k++ {
		p := filepath.Join(spare, fmt.Sprintf("core.%d", 90000+k))
		if err := copyInput(core.path(core.Files[0]), p); err != nil {
			return nil, err
		}
		spares = append(spares, p)
	}
	syscall.Sync()

	a, err := startAgentIn(ctx, c, srv, procs, name, dumps, state, evidenceBucket,
		"--pod-source", "kubelet", "--kubelet-url", kub.srv.URL, "--kubelet-ca-file", kub.caFile, "--kubelet-token-file", kub.tokFile,
		"--events=false", "--log-level", "debug")
	if err != nil {
		return nil, err
	}
	stopped := false
	defer func() {
		if !stopped {
			if ctx.Err() != nil {
				// Interrupted: no shutdown grace for uploads whose
				// results nobody reads.
				_ = a.cmd.Process.Kill()
			}
			a.stop()
		}
	}()
	tail, err := openTail(a.log)
	if err != nil {
		return nil, err
	}
	defer tail.close()
	fmt.Printf("bench-perf: evidence: agent %d, CPU %s; %d writers in pod cgroups under %s; waiting for the core upload\n",
		a.pid(), lim, len(writers), strings.Join(mountDirs(podMounts), ", "))

	// The core upload first.
	corePath := core.Files[0].Rel
	type span struct{ start, end time.Time }
	cores := map[string]*span{}
	deadline := time.Now().Add(3 * time.Minute)
	for cores[corePath] == nil {
		for _, l := range tail.poll() {
			if l.Msg == "upload started" && l.Path == corePath {
				cores[corePath] = &span{start: l.Time}
			}
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("the core's upload did not start within 3 minutes (log: %s)", a.log)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if kub.fetches.Load() == 0 {
		return nil, fmt.Errorf("the agent has not asked the kubelet for pods (log: %s)", a.log)
	}

	// The writers, one every gap: the bench binary re-executed under the
	// name createdump (its comm, as the agent logs it).
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	bin := filepath.Join(dir, "bin", "createdump")
	if err := os.MkdirAll(filepath.Dir(bin), 0o755); err != nil {
		return nil, err
	}
	if err := os.Symlink(self, bin); err != nil {
		return nil, err
	}
	rng := rand.New(rand.NewPCG(2026, 12))
	var wg sync.WaitGroup
	writersDone := make(chan struct{})
	go func() {
		defer close(writersDone)
		// Each writer starts writerLead before its scheduled open: a Go
		// process's start-up under load would otherwise blur the gaps.
		const writerLead = 500 * time.Millisecond
		next := time.Now().Add(writerLead)
		for _, w := range writers {
			time.Sleep(time.Until(next.Add(-writerLead)))
			if ctx.Err() != nil {
				break
			}
			cmd := exec.CommandContext(ctx, bin, evidenceWriterArg, "-cgroups", strings.Join(w.dirs, ","),
				"-path", filepath.Join(dumps, w.name), "-size", strconv.FormatInt(c.evidenceSize, 10),
				"-chunks", strconv.Itoa(res.Chunks), "-duration", c.evidenceWrite.String(), "-seed", strconv.Itoa(1000+w.i),
				"-at", strconv.FormatInt(next.UnixNano(), 10))
			var out strings.Builder
			cmd.Stdout, cmd.Stderr = &out, &w.stderr
			cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
			if err := cmd.Start(); err != nil {
				w.err = err
			} else {
				wg.Add(1)
				go func() {
					defer wg.Done()
					err := cmd.Wait()
					if jerr := json.Unmarshal([]byte(out.String()), &w.rep); jerr != nil && err == nil {
						err = fmt.Errorf("report %q: %w", out.String(), jerr)
					}
					if err == nil && w.rep.Err != "" {
						err = errors.New(w.rep.Err)
					}
					w.err = err
					kub.exited(w.i)
				}()
			}
			gap := c.evidenceGapMin
			if d := c.evidenceGapMax - c.evidenceGapMin; d > 0 {
				gap += time.Duration(rng.Int64N(int64(d)))
			}
			next = next.Add(gap)
		}
		wg.Wait()
	}()

	// Meanwhile: a new copy of the core each time one is stored, so that a
	// 1 GiB upload is in flight for as long as writers run.
	// Not limited, the agent analyses a copy for about 10 s before its
	// upload starts and uploads it in about 5: there the next copy goes in
	// as soon as one's upload starts.
	current := corePath
	used := 1
	feedOn := "dump uploaded"
	if milliCPU == 0 {
		feedOn = "upload started"
	}
	putCore := func() error {
		p := spares[0]
		spares = spares[1:]
		current = filepath.Base(p)
		if err := os.Rename(p, filepath.Join(dumps, current)); err != nil {
			return fmt.Errorf("put another core copy in: %w", err)
		}
		used++
		return nil
	}
	if milliCPU == 0 && len(spares) > 0 {
		if err := putCore(); err != nil {
			return nil, err
		}
	}
	watchCores := func(lines []evLine, feed bool) error {
		for _, l := range lines {
			s := cores[l.Path]
			switch {
			case l.Msg == "upload started" && s == nil && strings.HasPrefix(filepath.Base(l.Path), "core."):
				cores[l.Path] = &span{start: l.Time}
			case l.Msg == "dump uploaded" && s != nil && s.end.IsZero():
				s.end = l.Time
			}
			if feed && l.Msg == feedOn && l.Path == current && len(spares) > 0 {
				if err := putCore(); err != nil {
					return err
				}
			}
		}
		return nil
	}
	for running := true; running; {
		select {
		case <-writersDone:
			running = false
		case <-ctx.Done():
			<-writersDone
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if err := watchCores(tail.poll(), true); err != nil {
			return nil, err
		}
	}
	for _, w := range writers {
		if w.err != nil {
			return nil, fmt.Errorf("writer %d: %w (%s)", w.i, w.err, strings.TrimSpace(w.stderr.String()))
		}
	}
	fmt.Printf("bench-perf: evidence: %d writers done; waiting for the uploads\n", len(writers))

	// Every dump uploaded: nothing left in the dump directory, nothing
	// pending in the agent.
	deadline = time.Now().Add(10 * time.Minute)
	for quiet := 0; quiet < 3; {
		time.Sleep(200 * time.Millisecond)
		if err := watchCores(tail.poll(), false); err != nil {
			return nil, err
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("dumps still pending after 10 minutes (log: %s)", a.log)
		}
		pending := metric("http://"+a.listen+"/metrics", "crashdump_pending_dumps")
		if left := filesIn(dumps); pending == 0 && left == 0 {
			quiet++
		} else {
			quiet = 0
		}
	}
	if agentCg != nil {
		res.Throttle = agentCg.stat()
	}
	u, stopErr := a.stop()
	stopped = true
	if stopErr != nil {
		return nil, fmt.Errorf("agent: %w (log: %s)", stopErr, a.log)
	}
	_ = watchCores(tail.poll(), false)
	res.AgentCPUS, res.AgentPeakRSS = u.CPUS, u.PeakRSS
	res.PodListFetches = kub.fetches.Load()
	res.CoreCopies = used
	res.LoadEnd = loadAvg()

	// What the agent stored.
	objs, err := srv.list(ctx, evidenceBucket, name+"/")
	if err != nil {
		return nil, err
	}
	var mans []*manifest.Manifest
	for _, o := range objs {
		if !strings.HasSuffix(o.Key, ".json") || strings.HasSuffix(o.Key, ".crashreport.json") {
			continue
		}
		body, err := srv.get(ctx, evidenceBucket, o.Key)
		if err != nil {
			return nil, err
		}
		var m manifest.Manifest
		err = json.NewDecoder(body).Decode(&m)
		body.Close()
		if err != nil {
			return nil, fmt.Errorf("manifest %s: %w", o.Key, err)
		}
		mans = append(mans, &m)
	}
	if err := srv.clear(ctx, evidenceBucket, name+"/"); err != nil {
		return nil, err
	}
	evidence, claims := map[string]evLine{}, map[string]time.Time{}
	for _, l := range tail.all {
		switch l.Msg {
		case "writer evidence":
			evidence[l.ID] = l
		case "claimed dump":
			claims[l.ID] = l.Time
		}
	}
	bySum := map[string]*evWriter{}
	byUID := map[string]*evWriter{}
	for _, w := range writers {
		bySum[w.rep.SHA256], byUID[w.pod.UID] = w, w
	}
	got := map[*evWriter]*manifest.Manifest{}
	var found, claim, scan []float64
	res.FoundFrom = "\"writer evidence\" (debug log, after the claim batch's process scan)"
	for _, m := range mans {
		if m.File.SHA256 == core.Files[0].SHA256 {
			res.CoreMethod = m.Correlation.Method
			continue
		}
		uid := ""
		if m.Pod != nil {
			uid = m.Pod.UID
		}
		res.Methods[m.Correlation.Method]++
		w := bySum[m.File.SHA256]
		if w == nil {
			res.Mixed++
			if uid != "" {
				res.Wrong++
				res.Misses = append(res.Misses, fmt.Sprintf("%s: bytes of no single writer, attributed to pod %s by %s", m.ID, uid, m.Correlation.Method))
			} else {
				res.Misses = append(res.Misses, fmt.Sprintf("%s: bytes of no single writer (two opened one inode), method %s: %s%s",
					m.ID, m.Correlation.Method, m.Correlation.Reason, seenWriters(evidence[m.ID], writers)))
			}
			continue
		}
		if got[w] != nil {
			return nil, fmt.Errorf("writer %d's dump stored twice (%s and %s)", w.i, got[w].ID, m.ID)
		}
		got[w] = m
		if uid != "" && uid != w.pod.UID {
			res.Wrong++
			res.Misses = append(res.Misses, fmt.Sprintf("writer %d (pid %d): attributed to pod %s, not its own %s, by %s", w.i, w.rep.PID, uid, w.pod.UID, m.Correlation.Method))
			continue
		}
		if t, ok := claims[m.ID]; ok {
			claim = append(claim, ms(t.Sub(w.rep.Created)))
		}
		if l, ok := evidence[m.ID]; ok {
			if t, ok := claims[m.ID]; ok {
				scan = append(scan, ms(l.Time.Sub(t)))
			}
		}
		if m.Correlation.Method != "writer-pid" {
			res.Why[missReason(m.Correlation.Reason)]++
			res.Misses = append(res.Misses, fmt.Sprintf("writer %d (pid %d, created %s): method %s: %s%s; closed %s, claimed %s, scanned %s",
				w.i, w.rep.PID, w.rep.Created.Format("15:04:05.000"), m.Correlation.Method, m.Correlation.Reason, seenWriters(evidence[m.ID], writers),
				sinceCreate(w.rep.Closed, w.rep.Created), sinceCreate(claims[m.ID], w.rep.Created), sinceCreate(evidence[m.ID].Time, w.rep.Created)))
			continue
		}
		res.WriterPID++
		if l, ok := evidence[m.ID]; ok {
			found = append(found, ms(l.Time.Sub(w.rep.Created)))
		} else if t, ok := claims[m.ID]; ok {
			// An agent without the debug line: the evidence is taken right
			// after the claim, so the claim time is a lower bound.
			found = append(found, ms(t.Sub(w.rep.Created)))
			res.FoundFrom = "\"claimed dump\" (the agent logs no \"writer evidence\" line: a lower bound)"
		}
	}
	res.Stored = len(got)
	for _, w := range writers {
		if got[w] != nil {
			continue
		}
		// Lost: was the name opened again (O_TRUNC) before the agent
		// renamed this writer's file away?
		why := ""
		var next *evWriter
		for _, o := range writers {
			if o.name == w.name && o.rep.Created.After(w.rep.Created) && (next == nil || o.rep.Created.Before(next.rep.Created)) {
				next = o
			}
		}
		var claimed time.Time
		for _, l := range tail.all {
			if l.Msg == "claimed dump" && l.Path == w.name && l.Time.After(w.rep.Created) {
				claimed = l.Time
				break
			}
		}
		if next != nil && (claimed.IsZero() || next.rep.Created.Before(claimed)) {
			res.Overwritten++
			res.Why["overwritten by the next writer (O_TRUNC) before the claim: lost"]++
			why = fmt.Sprintf(": writer %d opened %s (O_TRUNC) %.0f ms after its create, before the agent's first claim of the name after it (%s)",
				next.i, w.name, ms(next.rep.Created.Sub(w.rep.Created)), sinceCreate(claimed, w.rep.Created))
		}
		res.Misses = append(res.Misses, fmt.Sprintf("writer %d (pid %d, created %s, closed %.0f ms later): its bytes are in no stored dump%s",
			w.i, w.rep.PID, w.rep.Created.Format("15:04:05.000"), ms(w.rep.Closed.Sub(w.rep.Created)), why))
	}
	slices.SortStableFunc(res.Misses, func(a, b string) int { return missOrder(a) - missOrder(b) })
	res.WriterPIDRate = float64(res.WriterPID) / float64(len(writers))
	res.CreateToFound, res.CreateToClaim, res.ClaimToFound = newDist(found), newDist(claim), newDist(scan)

	// Did a core upload run while the writers wrote?
	first, last := writers[0].rep.Created, writers[0].rep.Created
	for _, w := range writers {
		if w.rep.Created.Before(first) {
			first = w.rep.Created
		}
		if w.rep.Created.After(last) {
			last = w.rep.Created
		}
	}
	res.WindowS = last.Sub(first).Seconds()
	var creates []time.Time
	for _, w := range writers {
		creates = append(creates, w.rep.Created)
		res.LateMax = max(res.LateMax, w.rep.LateMS)
	}
	slices.SortFunc(creates, func(a, b time.Time) int { return a.Compare(b) })
	var gaps []float64
	for i := 1; i < len(creates); i++ {
		gaps = append(gaps, ms(creates[i].Sub(creates[i-1])))
	}
	res.Gaps = newDist(gaps)
	var spans []span
	for _, s := range cores {
		spans = append(spans, *s)
		if !s.end.IsZero() {
			res.CoreUploadS = append(res.CoreUploadS, s.end.Sub(s.start).Seconds())
		}
	}
	for _, w := range writers {
		for _, s := range spans {
			if !w.rep.Created.Before(s.start) && (s.end.IsZero() || w.rep.Created.Before(s.end)) {
				res.CreatesInCore++
				break
			}
		}
	}
	res.Method = fmt.Sprintf("The agent (watching, --pod-source kubelet against a fake kubelet on 127.0.0.1 serving a v1.PodList of %d pods over HTTPS with a bearer token, "+
		"--log-level debug, otherwise the defaults of the other scenarios) runs with CPU %s and claims a 1 GiB core "+
		"(the core scenario's gcore); once its upload has started, %d writers (the bench binary run as `createdump`) start %.0f–%.0f ms apart, "+
		"each joining its pod's cgroups (kubelet systemd-driver and containerd names) and then writing %s in %d writes over %.0f ms to %s in the shared dump directory "+
		"(open O_CREAT|O_TRUNC|O_WRONLY, close, exit); when a writer exits its container is reported exited (134). Each writer's bytes are unique: "+
		"a stored dump is matched to its writer by SHA-256, then its manifest's correlation.method and pod.uid are checked. "+
		"Create: the writer's clock right after open(2) returns; writer found: the agent's log line, same clock. "+
		"When a core copy is stored while writers still run, another is put in (rename).",
		len(pods), lim, len(writers), res.GapMinS*1000, res.GapMaxS*1000, human(c.evidenceSize), res.Chunks, res.WriteS*1000, res.FileName)
	fmt.Printf("bench-perf: evidence: writer-pid %d/%d (%.1f %%), wrong %d; create → writer found p50 %.0f ms p99 %.0f ms max %.0f ms; "+
		"agent CPU %.2f s, throttled %d of %d periods; core upload in flight at %d of %d creates\n",
		res.WriterPID, len(writers), 100*res.WriterPIDRate, res.Wrong, res.CreateToFound.P50, res.CreateToFound.P99, res.CreateToFound.Max,
		res.AgentCPUS, res.Throttle.Throttled, res.Throttle.Periods, res.CreatesInCore, len(writers))
	for _, m := range res.Misses[:min(len(res.Misses), 10)] {
		fmt.Println("bench-perf: evidence:   " + m)
	}
	return res, nil
}

func sinceCreate(t, created time.Time) string {
	if t.IsZero() {
		return "none"
	}
	return fmt.Sprintf("+%.0f ms", ms(t.Sub(created)))
}

// seenWriters says which of the writers the agent's evidence line named.
func seenWriters(l evLine, writers []*evWriter) string {
	if l.Msg == "" {
		return ""
	}
	if len(l.Writers) == 0 {
		return "; the agent's scan found no process holding it"
	}
	byPID := map[int]int{}
	for _, w := range writers {
		byPID[w.rep.PID] = w.i
	}
	var s []string
	for _, e := range l.Writers {
		pid, _, _ := strings.Cut(e, "(")
		n, _ := strconv.Atoi(pid)
		if i, ok := byPID[n]; ok {
			s = append(s, fmt.Sprintf("writer %d: %s", i, e))
		} else {
			s = append(s, e)
		}
	}
	return "; the agent saw " + strings.Join(s, ", ")
}

func mountDirs(ms []cgroupMount) []string {
	var out []string
	for _, m := range ms {
		out = append(out, m.Dir)
	}
	return out
}

// filesIn counts the regular files under dir.
func filesIn(dir string) int {
	n := 0
	_ = filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			n++
		}
		return nil
	})
	return n
}

// scanCost is one process-table scan with the agent's own procfs code.
type scanCost struct {
	Processes int     `json:"processes"`
	FDs       int     `json:"fds"`
	CPUMS     float64 `json:"cpu_ms"`  // mean of 25, user+system of the scanning thread
	WallMS    float64 `json:"wall_ms"` // median of 25
}

// measureScan times procfs.OpenersStats over /proc for a file nobody holds
// (every fd is looked at, as in the agent's scan at claim time).
func measureScan() (scanCost, error) {
	var sc scanCost
	f, err := os.CreateTemp("", "bench-scan-")
	if err != nil {
		return sc, err
	}
	var st unix.Stat_t
	err = unix.Fstat(int(f.Fd()), &st)
	f.Close()
	os.Remove(f.Name())
	if err != nil {
		return sc, err
	}
	want := map[procfs.FileID]struct{}{{Dev: uint64(st.Dev), Ino: st.Ino}: {}}
	fs := procfs.New("/proc")
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	// CPU time comes in scheduler ticks on many kernels: the mean over
	// many scans, and the median wall time.
	const scans = 25
	var cpuTotal time.Duration
	var wall []float64
	for range scans {
		var r0, r1 unix.Rusage
		_ = unix.Getrusage(unix.RUSAGE_THREAD, &r0)
		t := time.Now()
		_, stats, err := fs.OpenersStats(want)
		if err != nil {
			return sc, fmt.Errorf("scan /proc: %w", err)
		}
		wall = append(wall, ms(time.Since(t)))
		_ = unix.Getrusage(unix.RUSAGE_THREAD, &r1)
		cpuTotal += time.Duration(r1.Utime.Nano() - r0.Utime.Nano() + r1.Stime.Nano() - r0.Stime.Nano())
		sc.Processes, sc.FDs = stats.Processes, stats.FDs
	}
	sc.CPUMS, sc.WallMS = ms(cpuTotal)/scans, median(wall)
	return sc, nil
}

// missReason is the cause of a writer's dump not being attributed by
// writer-pid, from its manifest's correlation reason.
func missReason(reason string) string {
	switch {
	case strings.Contains(reason, "no process held the dump open"):
		return "writer had closed the file before the claim's scan"
	case strings.Contains(reason, "exited before its cgroup could be read"):
		return "writer exited between the scan finding its fd and reading its cgroup"
	case strings.Contains(reason, "open for writing in"):
		return "the next writer opened the same inode before the claim (several seen: none)"
	}
	return reason
}

// missOrder sorts the misses by writer number, the others last.
func missOrder(m string) int {
	if n, err := strconv.Atoi(strings.Fields(strings.TrimPrefix(m, "writer ") + " x")[0]); err == nil && strings.HasPrefix(m, "writer ") {
		return n
	}
	return 1 << 30
}
