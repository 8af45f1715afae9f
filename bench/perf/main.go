// Command perf is the `make bench-perf` benchmark of the agent's upload path
// (issue 7). It starts its own MinIO on 127.0.0.1, generates the inputs once
// into a cache under bench/work (a real gcore of a helper process holding
// about 1 GiB of mixed heap, 1 GiB of random bytes, 200 dumps of 5 MiB and a
// 4 GiB sparse-plus-data dump), and for each scenario runs the real agent
// binary in --once mode and `mc cp` on the same input against the same
// server, alternating the order over several rounds. It reports the median
// wall time of each, the ratio agent/mc, the bytes stored, peak RSS and CPU
// seconds, then measures detection latency (writer's close to upload start
// and to the verified object), claim-time evidence under a CPU limit (the
// agent in a 250m cgroup uploading the core while 100 createdump-shaped
// writers in pod cgroups write dumps: how many are attributed by writer
// PID, how many wrongly, and how long from create to writer found), the
// idle footprint of an agent watching 1,000 directories, and profiles the
// agent's upload code path on the core.
//
// Results go to stdout, bench/results.md and bench/results.json (with a
// description of the machine, so runs can be compared). See
// docs/performance.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"
)

// Every scenario, in the order they run.
var allScenarios = []string{"core", "random", "many", "sparse", "latency", "evidence", "idle", "backlog", "profile"}

type config struct {
	crashdump, minio, mc string
	minioVersion         string
	mcVersion            string
	work                 string
	rounds               int
	scenarios            []string
	agentFlags           []string
	expert               bool
	verify               bool
	coreHeap             int64

	latencyDumps    int
	latencyInterval time.Duration
	latencySettle   time.Duration
	latencySize     int64

	evidenceWriters  int
	evidenceSize     int64
	evidenceWrite    time.Duration
	evidenceGapMin   time.Duration
	evidenceGapMax   time.Duration
	evidenceMilliCPU int64
	evidenceCores    int
	evidenceDistinct bool
	evidenceControl  bool

	idleDirs     int
	backlogDumps int
	idleDuration time.Duration

	quietLoad float64
	quietWait time.Duration

	jsonOut, mdOut string
	strict         bool
}

func main() {
	// The evidence scenario's writers are this binary, re-executed.
	if len(os.Args) > 1 && os.Args[1] == evidenceWriterArg {
		os.Exit(evidenceWriterMain(os.Args[2:]))
	}
	var c config
	var scen, agentFlags string
	flag.StringVar(&c.crashdump, "crashdump", "bin/crashdump", "agent binary (make build)")
	flag.StringVar(&c.minio, "minio", "bin/minio", "MinIO server binary (make tools)")
	flag.StringVar(&c.mc, "mc", "bin/mc", "MinIO client binary (make tools), the baseline")
	flag.StringVar(&c.minioVersion, "minio-version", "", "MinIO version pinned by the Makefile (for the report)")
	flag.StringVar(&c.mcVersion, "mc-version", "", "mc version pinned by the Makefile (for the report)")
	flag.StringVar(&c.work, "work", "bench/work", "work directory: input cache, MinIO data, logs (gitignored)")
	flag.IntVar(&c.rounds, "rounds", 5, "A/B rounds per upload scenario (env BENCH_ROUNDS in make)")
	flag.StringVar(&scen, "scenarios", strings.Join(allScenarios, ","), "scenarios to run: "+strings.Join(allScenarios, ","))
	flag.StringVar(&agentFlags, "agent-flags", "", "extra flags for every agent run, space separated (e.g. '--part-size 16MiB')")
	flag.BoolVar(&c.expert, "expert", true, "also time the expert pipeline `zstd -1 -T<cores> | mc pipe` on the core (needs zstd)")
	flag.BoolVar(&c.verify, "verify", true, "in the first round, download and check every object the agent stored (decompressed SHA-256)")
	flag.Int64Var(&c.coreHeap, "core-heap", 1<<30, "heap the core's helper process holds, in bytes")
	flag.IntVar(&c.latencyDumps, "latency-dumps", 50, "dumps written in the detection-latency scenario")
	flag.DurationVar(&c.latencyInterval, "latency-interval", time.Second, "time between two dumps of the latency scenario")
	flag.DurationVar(&c.latencySettle, "latency-settle", 200*time.Millisecond, "--settle-time of the latency scenario's agent")
	flag.Int64Var(&c.latencySize, "latency-size", 2<<20, "size of each latency dump, in bytes")
	flag.IntVar(&c.evidenceWriters, "evidence-writers", 100, "createdump-shaped writers of the evidence scenario")
	flag.Int64Var(&c.evidenceSize, "evidence-size", 2<<20, "bytes each evidence writer writes")
	flag.DurationVar(&c.evidenceWrite, "evidence-write", 150*time.Millisecond, "time each evidence writer takes from its first write to its last")
	flag.DurationVar(&c.evidenceGapMin, "evidence-gap-min", 100*time.Millisecond, "least time between two evidence writers' starts")
	flag.DurationVar(&c.evidenceGapMax, "evidence-gap-max", 300*time.Millisecond, "most time between two evidence writers' starts (uniform in between)")
	flag.Int64Var(&c.evidenceMilliCPU, "evidence-cpu", 250, "CPU limit of the evidence scenario's agent, in millicores (CFS quota per 100 ms period)")
	flag.IntVar(&c.evidenceCores, "evidence-cores", 2, "copies of the 1 GiB core the evidence agent may upload one after the other while writers run")
	flag.BoolVar(&c.evidenceDistinct, "evidence-distinct", false, "evidence writers write coredump.<n>.dmp instead of all coredump.1.dmp (the seed's shared name)")
	flag.BoolVar(&c.evidenceControl, "evidence-control", true, "when an evidence target is missed, run the scenario again with the agent not CPU-limited, for comparison")
	flag.IntVar(&c.backlogDumps, "backlog-dumps", 100000, "pending one-byte dumps of the backlog scenario (store down, then a cold restart)")
	flag.IntVar(&c.idleDirs, "idle-dirs", 1000, "subdirectories watched by the idle agent")
	flag.DurationVar(&c.idleDuration, "idle-duration", 60*time.Second, "how long the idle agent is measured")
	flag.Float64Var(&c.quietLoad, "quiet-load", 1.5, "with -quiet-wait: start when the 1-minute load average is below this")
	flag.DurationVar(&c.quietWait, "quiet-wait", 0, "wait up to this long for a quiet machine before measuring (0: do not wait)")
	flag.StringVar(&c.jsonOut, "json", "bench/results.json", "JSON results file (empty: none)")
	flag.StringVar(&c.mdOut, "md", "bench/results.md", "Markdown results file (empty: none)")
	flag.BoolVar(&c.strict, "strict", false, "exit 1 when a target of issue 7 is missed (measurement errors always exit 1)")
	renderFile := flag.String("render", "", "only print the Markdown report of an existing results JSON file")
	flag.Parse()
	if *renderFile != "" {
		md, err := render(*renderFile)
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench-perf:", err)
			os.Exit(1)
		}
		fmt.Print(md)
		return
	}
	for _, s := range strings.Split(scen, ",") {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		if !slices.Contains(allScenarios, s) {
			fmt.Fprintf(os.Stderr, "bench-perf: unknown scenario %q (want %s)\n", s, strings.Join(allScenarios, ","))
			os.Exit(2)
		}
		c.scenarios = append(c.scenarios, s)
	}
	c.agentFlags = strings.Fields(agentFlags)
	if c.rounds < 1 {
		c.rounds = 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ok, err := run(ctx, c)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench-perf:", err)
		os.Exit(1)
	}
	if !ok && c.strict {
		fmt.Fprintln(os.Stderr, "bench-perf: targets missed (-strict)")
		os.Exit(1)
	}
}

func (c config) want(s string) bool { return slices.Contains(c.scenarios, s) }

func run(ctx context.Context, c config) (bool, error) {
	began := time.Now()
	for _, p := range []*string{&c.crashdump, &c.minio, &c.mc, &c.work} {
		a, err := filepath.Abs(*p)
		if err != nil {
			return false, err
		}
		*p = a
	}
	for _, b := range []string{c.crashdump, c.minio, c.mc} {
		if _, err := os.Stat(b); err != nil {
			return false, fmt.Errorf("%s missing: run `make build tools`", b)
		}
	}
	res := &results{Rounds: c.rounds, AgentFlags: c.agentFlags, Scenarios: []*scenarioResult{}}
	res.Quiet = waitQuiet(ctx, c.quietLoad, c.quietWait)
	res.Machine = describeMachine(c)
	res.LoadBefore = loadAvg()
	res.Date = time.Now().UTC().Format(time.RFC3339)
	fmt.Printf("bench-perf: %s, %d cores, kernel %s, load %.2f; work dir %s on %s (%s)\n",
		res.Machine.CPUModel, res.Machine.Cores, res.Machine.Kernel, res.LoadBefore[0], c.work,
		res.Machine.WorkFS.Device, res.Machine.WorkFS.Type)

	cache := filepath.Join(c.work, "cache")
	runDir := filepath.Join(c.work, "run")
	if err := os.RemoveAll(runDir); err != nil {
		return false, err
	}
	if err := os.MkdirAll(runDir, 0o755); err != nil {
		return false, err
	}
	defer os.RemoveAll(runDir)
	if err := os.MkdirAll(filepath.Join(c.work, "logs"), 0o755); err != nil {
		return false, err
	}

	var uploads []string
	for _, s := range []string{"core", "random", "many", "sparse"} {
		if c.want(s) {
			uploads = append(uploads, s)
		}
	}
	needCore := c.want("core") || c.want("profile") || c.want("evidence")
	in, err := prepareInputs(ctx, c, cache, uploads, needCore)
	if err != nil {
		return false, err
	}
	res.Inputs = in.summary()

	srv, err := startMinIO(c.minio, filepath.Join(runDir, "minio"))
	if err != nil {
		return false, err
	}
	defer srv.stop()
	fmt.Printf("bench-perf: MinIO %s at %s, data in %s\n", res.Machine.MinIOVersion, srv.endpoint, srv.dataDir)

	for _, name := range uploads {
		sr, err := runUploadScenario(ctx, c, srv, in, name, runDir)
		if err != nil {
			return false, fmt.Errorf("scenario %s: %w", name, err)
		}
		res.Scenarios = append(res.Scenarios, sr)
		fmt.Println(sr.line())
	}
	if c.want("latency") {
		lr, err := runLatency(ctx, c, srv, runDir)
		if err != nil {
			return false, fmt.Errorf("latency: %w", err)
		}
		res.Latency = lr
	}
	if c.want("evidence") {
		er, err := runEvidence(ctx, c, srv, in, runDir, c.evidenceMilliCPU)
		if err != nil {
			return false, fmt.Errorf("evidence: %w", err)
		}
		if c.evidenceControl && (er.WriterPIDRate < 0.99 || er.Wrong > 0) {
			fmt.Println("bench-perf: evidence: a target is missed at the limit; the same run without a CPU limit, for comparison")
			if er.Control, err = runEvidence(ctx, c, srv, in, runDir, 0); err != nil {
				return false, fmt.Errorf("evidence (control, no CPU limit): %w", err)
			}
		}
		res.Evidence = er
	}
	if c.want("idle") {
		ir, err := runIdle(ctx, c, srv, runDir)
		if err != nil {
			return false, fmt.Errorf("idle: %w", err)
		}
		res.Idle = ir
	}
	if c.want("backlog") {
		br, err := runBacklog(ctx, c, runDir)
		if err != nil {
			return false, fmt.Errorf("backlog: %w", err)
		}
		res.Backlog = br
	}
	if c.want("profile") {
		pr, err := runProfile(ctx, c, srv, in)
		if err != nil {
			return false, fmt.Errorf("profile: %w", err)
		}
		res.Profile = pr
	}
	if ctx.Err() != nil {
		return false, errors.New("interrupted")
	}
	res.LoadAfter = loadAvg()
	res.DurationS = time.Since(began).Seconds()
	res.evaluate()
	md := res.markdown()
	fmt.Println()
	fmt.Print(md)
	if c.mdOut != "" {
		if err := os.WriteFile(c.mdOut, []byte(md), 0o644); err != nil {
			return false, err
		}
	}
	if c.jsonOut != "" {
		if err := res.writeJSON(c.jsonOut); err != nil {
			return false, err
		}
	}
	fmt.Printf("bench-perf: done in %s; results in %s and %s\n", time.Since(began).Round(time.Second), c.mdOut, c.jsonOut)
	return res.allMet(), nil
}
