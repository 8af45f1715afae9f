package main

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/klauspost/compress/zstd"
)

const (
	agentBucket = "bench-agent"
	mcBucket    = "bench-mc"
)

// contestant results over the rounds of one scenario.
type side struct {
	Runs []usage `json:"runs"`
	// Medians over the rounds; PeakRSS is the largest of every round.
	MedianWallS     float64 `json:"median_wall_s"`
	MedianCPUS      float64 `json:"median_cpu_s"`
	MedianMinIOCPUS float64 `json:"median_minio_cpu_s"`
	PeakRSS         int64   `json:"peak_rss_bytes"`
	PeakAnon        int64   `json:"peak_rss_anon_bytes"`
	// StoredBytes is what the dump objects hold (manifests apart).
	StoredBytes   int64 `json:"stored_bytes"`
	ManifestBytes int64 `json:"manifest_bytes,omitempty"`
	Objects       int   `json:"objects"`
}

func (s *side) add(u usage) { s.Runs = append(s.Runs, u) }

func (s *side) finish() {
	var wall, cpu, mcpu []float64
	for _, u := range s.Runs {
		wall, cpu, mcpu = append(wall, u.WallS), append(cpu, u.CPUS), append(mcpu, u.MinIOCPUS)
		s.PeakRSS = max(s.PeakRSS, u.PeakRSS)
		s.PeakAnon = max(s.PeakAnon, u.PeakAnon)
	}
	s.MedianWallS, s.MedianCPUS, s.MedianMinIOCPUS = median(wall), median(cpu), median(mcpu)
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

type scenarioResult struct {
	Name        string  `json:"name"`
	Description string  `json:"description"`
	Files       int     `json:"files"`
	RawBytes    int64   `json:"raw_bytes"`
	DiskBytes   int64   `json:"disk_bytes"`
	Agent       side    `json:"agent"`
	MC          side    `json:"mc"`
	Expert      *side   `json:"expert_pipeline,omitempty"`
	Ratio       float64 `json:"agent_over_mc_wall"`
	// PairedRatio is the median over rounds of agent/mc within a round
	// (the two runs are next to each other in time, so slow changes of the
	// machine's load cancel out).
	PairedRatio float64 `json:"agent_over_mc_wall_paired"`
	ExpertRatio float64 `json:"expert_over_mc_wall,omitempty"`
	StoredRatio float64 `json:"agent_stored_over_raw"`
	// Verified: the first round's objects were downloaded, decompressed
	// and matched the inputs' SHA-256.
	Verified  bool      `json:"verified"`
	LoadStart []float64 `json:"load_at_start"`
	// HashPassS (raw uploads, the random scenario) is the wall time of one
	// SHA-256 pass over the input from the page cache: a raw upload cannot
	// start before it ends, because the SHA-256 is object metadata, fixed
	// when the upload is created (docs/manifest.md, "Object metadata").
	HashPassS float64 `json:"sha256_pass_s,omitempty"`
}

// derive computes the ratios from the runs.
func (r *scenarioResult) derive() {
	if r.Expert != nil {
		r.ExpertRatio = r.Expert.MedianWallS / r.MC.MedianWallS
	}
	r.Ratio = r.Agent.MedianWallS / r.MC.MedianWallS
	var paired []float64
	for i := range min(len(r.Agent.Runs), len(r.MC.Runs)) {
		paired = append(paired, r.Agent.Runs[i].WallS/r.MC.Runs[i].WallS)
	}
	r.PairedRatio = median(paired)
	r.StoredRatio = float64(r.Agent.StoredBytes) / float64(r.RawBytes)
}

func (r *scenarioResult) line() string {
	s := fmt.Sprintf("bench-perf: %-6s agent %.2fs  mc %.2fs  ratio %.2f  stored/raw %.3f  agent peak RSS %s  mc peak RSS %s",
		r.Name, r.Agent.MedianWallS, r.MC.MedianWallS, r.Ratio, r.StoredRatio, human(r.Agent.PeakRSS), human(r.MC.PeakRSS))
	if r.Expert != nil {
		s += fmt.Sprintf("  expert %.2fs (%.2f)", r.Expert.MedianWallS, r.ExpertRatio)
	}
	return s
}

// runUploadScenario times the agent, mc (and on the core the expert
// pipeline) on the same input, alternating the order round by round.
func runUploadScenario(ctx context.Context, c config, srv *minio, in *inputs, name, runDir string) (*scenarioResult, error) {
	set := in.sets[name]
	res := &scenarioResult{Name: name, Description: set.Description, Files: len(set.Files), RawBytes: set.raw(), LoadStart: loadAvg()}
	for _, f := range set.Files {
		res.DiskBytes += f.Disk
	}
	for _, b := range []string{agentBucket, mcBucket} {
		if err := srv.makeBucket(ctx, b); err != nil {
			return nil, err
		}
	}
	if name == "random" {
		var err error
		if res.HashPassS, err = hashPass(set.path(set.Files[0])); err != nil {
			return nil, err
		}
	}
	contestants := []string{"agent", "mc"}
	if name == "core" && c.expert {
		if _, err := exec.LookPath("zstd"); err == nil {
			contestants = append(contestants, "expert")
			res.Expert = &side{}
		} else {
			fmt.Println("bench-perf: zstd not installed: no expert-pipeline baseline")
		}
	}
	for r := range c.rounds {
		order := slices.Clone(contestants)
		if r%2 == 1 {
			slices.Reverse(order)
		}
		for _, who := range order {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			var err error
			switch who {
			case "agent":
				err = agentRound(ctx, c, srv, set, res, r, runDir)
			case "mc":
				err = mcRound(ctx, c, srv, set, res, r, runDir)
			case "expert":
				err = expertRound(ctx, c, srv, set, res, r, runDir)
			}
			if err != nil {
				return nil, fmt.Errorf("round %d, %s: %w", r+1, who, err)
			}
		}
	}
	res.Agent.finish()
	res.MC.finish()
	if res.Expert != nil {
		res.Expert.finish()
	}
	res.derive()
	return res, nil
}

// stage copies the scenario's files under dir (made afresh), then flushes
// every dirty page on the machine so that writeback does not run during
// the timed command.
func stage(set *inputSet, dir string) error {
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for _, f := range set.Files {
		if err := copyInput(set.path(f), filepath.Join(dir, f.Rel)); err != nil {
			return err
		}
	}
	syscall.Sync()
	time.Sleep(500 * time.Millisecond)
	return nil
}

func logFile(c config, name string) (*os.File, error) {
	return os.Create(filepath.Join(c.work, "logs", name+".log"))
}

func agentRound(ctx context.Context, c config, srv *minio, set *inputSet, res *scenarioResult, r int, runDir string) error {
	dumps := filepath.Join(runDir, "agent-dumps")
	state := filepath.Join(runDir, "agent-state")
	if err := os.RemoveAll(state); err != nil {
		return err
	}
	if err := stage(set, dumps); err != nil {
		return err
	}
	prefix := fmt.Sprintf("%s/r%d", set.Name, r+1)
	args := []string{"agent", "--once",
		"--dump-dir", dumps, "--state-dir", state,
		"--store", "s3://" + agentBucket + "/" + prefix, "--s3-endpoint", srv.endpoint,
		"--pod-source", "none",
		// --settle-time 0 means the default (2s): 1ms is the minimum.
		"--settle-time", "0s",
		"--keep-free", "0", "--max-dump-bytes", "0", "--max-dumps-per-window", "0",
		"--log-format", "json"}
	args = append(args, c.agentFlags...)
	logf, err := logFile(c, fmt.Sprintf("%s-agent-r%d", set.Name, r+1))
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd := exec.CommandContext(ctx, c.crashdump, args...)
	cmd.Env = srv.agentEnv()
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	u, errs := measure(srv.pid(), cmd)
	if errs[0] != nil {
		return fmt.Errorf("agent: %w (log: %s)", errs[0], logf.Name())
	}
	// The agent moves dumps off the node: nothing may be left.
	var left []string
	_ = filepath.WalkDir(dumps, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			left = append(left, p)
		}
		return nil
	})
	if len(left) > 0 {
		return fmt.Errorf("agent left %d dump(s) on the node, e.g. %s (log: %s)", len(left), left[0], logf.Name())
	}
	objs, err := srv.list(ctx, agentBucket, prefix+"/")
	if err != nil {
		return err
	}
	var dumpsStored []object
	var stored, manifests int64
	for _, o := range objs {
		if strings.HasSuffix(o.Key, ".json") {
			manifests += o.Size
			continue
		}
		dumpsStored = append(dumpsStored, o)
		stored += o.Size
	}
	if len(dumpsStored) != len(set.Files) || len(objs) != 2*len(set.Files) {
		return fmt.Errorf("agent stored %d dump objects and %d manifests, want %d of each (log: %s)",
			len(dumpsStored), len(objs)-len(dumpsStored), len(set.Files), logf.Name())
	}
	if r == 0 && c.verify {
		if err := verifyObjects(ctx, srv, set, dumpsStored); err != nil {
			return err
		}
		res.Verified = true
	}
	res.Agent.add(u)
	res.Agent.StoredBytes, res.Agent.ManifestBytes, res.Agent.Objects = stored, manifests, len(dumpsStored)
	fmt.Printf("bench-perf: %s r%d agent %.2fs cpu %.2fs peak RSS %s (anon %s) stored %s (MinIO cpu %.2fs)\n",
		set.Name, r+1, u.WallS, u.CPUS, human(u.PeakRSS), human(u.PeakAnon), human(stored), u.MinIOCPUS)
	if err := srv.clear(ctx, agentBucket, prefix+"/"); err != nil {
		return err
	}
	return os.RemoveAll(state)
}

// verifyObjects downloads what the agent stored, decompresses it and checks
// that the SHA-256 of every input is among them.
func verifyObjects(ctx context.Context, srv *minio, set *inputSet, objs []object) error {
	want := map[string]int{}
	for _, f := range set.Files {
		want[f.SHA256]++
	}
	dec, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(runtime.NumCPU()), zstd.WithDecoderLowmem(true))
	if err != nil {
		return err
	}
	defer dec.Close()
	for _, o := range objs {
		body, err := srv.get(ctx, agentBucket, o.Key)
		if err != nil {
			return err
		}
		var r io.Reader = bufio.NewReaderSize(body, 1<<20)
		if strings.HasSuffix(o.Key, ".zst") {
			if err := dec.Reset(r); err != nil {
				body.Close()
				return err
			}
			r = dec
		}
		h := sha256.New()
		_, err = io.Copy(h, r)
		body.Close()
		if err != nil {
			return fmt.Errorf("verify %s: %w", o.Key, err)
		}
		sum := hex.EncodeToString(h.Sum(nil))
		if want[sum] == 0 {
			return fmt.Errorf("verify %s: content (sha256 %s) matches no input", o.Key, sum)
		}
		want[sum]--
	}
	return nil
}

func mcRound(ctx context.Context, c config, srv *minio, set *inputSet, res *scenarioResult, r int, runDir string) error {
	src := filepath.Join(runDir, "mc-src")
	if err := stage(set, src); err != nil {
		return err
	}
	prefix := fmt.Sprintf("%s/r%d/", set.Name, r+1)
	args := []string{"--quiet", "--no-color", "cp"}
	if len(set.Files) > 1 {
		// Every file of the scenario is in one directory.
		dir := filepath.Dir(set.Files[0].Rel)
		args = append(args, "--recursive", filepath.Join(src, dir)+"/", mcAlias+"/"+mcBucket+"/"+prefix)
	} else {
		f := set.Files[0]
		args = append(args, filepath.Join(src, f.Rel), mcAlias+"/"+mcBucket+"/"+prefix+filepath.Base(f.Rel))
	}
	logf, err := logFile(c, fmt.Sprintf("%s-mc-r%d", set.Name, r+1))
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd := exec.CommandContext(ctx, c.mc, args...)
	cmd.Env = srv.mcEnv(filepath.Join(runDir, "mc-config"))
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	u, errs := measure(srv.pid(), cmd)
	if errs[0] != nil {
		return fmt.Errorf("mc %s: %w (log: %s)", strings.Join(args, " "), errs[0], logf.Name())
	}
	objs, err := srv.list(ctx, mcBucket, prefix)
	if err != nil {
		return err
	}
	var stored int64
	for _, o := range objs {
		stored += o.Size
	}
	if len(objs) != len(set.Files) || stored != set.raw() {
		return fmt.Errorf("mc stored %d objects, %d bytes; want %d, %d", len(objs), stored, len(set.Files), set.raw())
	}
	res.MC.add(u)
	res.MC.StoredBytes, res.MC.Objects = stored, len(objs)
	fmt.Printf("bench-perf: %s r%d mc    %.2fs cpu %.2fs peak RSS %s (MinIO cpu %.2fs)\n",
		set.Name, r+1, u.WallS, u.CPUS, human(u.PeakRSS), u.MinIOCPUS)
	if err := srv.clear(ctx, mcBucket, prefix); err != nil {
		return err
	}
	return os.RemoveAll(src)
}

// expertRound times what an expert would type: zstd -1 on every core,
// piped into mc pipe.
func expertRound(ctx context.Context, c config, srv *minio, set *inputSet, res *scenarioResult, r int, runDir string) error {
	src := filepath.Join(runDir, "mc-src")
	if err := stage(set, src); err != nil {
		return err
	}
	f := set.Files[0]
	key := fmt.Sprintf("%s-expert/r%d/%s.zst", set.Name, r+1, filepath.Base(f.Rel))
	zstdBin, err := exec.LookPath("zstd")
	if err != nil {
		return err
	}
	logf, err := logFile(c, fmt.Sprintf("%s-expert-r%d", set.Name, r+1))
	if err != nil {
		return err
	}
	defer logf.Close()
	z := exec.CommandContext(ctx, zstdBin, "-1", "-T"+strconv.Itoa(runtime.NumCPU()), "-q", "-c", filepath.Join(src, f.Rel))
	m := exec.CommandContext(ctx, c.mc, "--quiet", "--no-color", "pipe", mcAlias+"/"+mcBucket+"/"+key)
	m.Env = srv.mcEnv(filepath.Join(runDir, "mc-config"))
	// zstd's stdout pipe becomes mc's stdin; the commands start in this
	// order, and our copies of the pipe close when zstd is waited for.
	z.Stderr = logf
	zout, err := z.StdoutPipe()
	if err != nil {
		return err
	}
	m.Stdin, m.Stdout, m.Stderr = zout, logf, logf
	for _, cmd := range []*exec.Cmd{z, m} {
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	}
	u, errs := measure(srv.pid(), z, m)
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("zstd | mc pipe: %w (log: %s)", err, logf.Name())
	}
	objs, err := srv.list(ctx, mcBucket, key)
	if err != nil {
		return err
	}
	if len(objs) != 1 {
		return fmt.Errorf("expert pipeline stored %d objects, want 1", len(objs))
	}
	res.Expert.add(u)
	res.Expert.StoredBytes, res.Expert.Objects = objs[0].Size, 1
	fmt.Printf("bench-perf: %s r%d zstd -1 | mc pipe %.2fs cpu %.2fs peak RSS %s stored %s (MinIO cpu %.2fs)\n",
		set.Name, r+1, u.WallS, u.CPUS, human(u.PeakRSS), human(objs[0].Size), u.MinIOCPUS)
	if err := srv.clear(ctx, mcBucket, key); err != nil {
		return err
	}
	return os.RemoveAll(src)
}

// hashPass times one SHA-256 pass over a file, read in 1 MiB blocks as the
// agent reads it (best of three, so that the page cache is warm).
func hashPass(path string) (float64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	buf := make([]byte, 1<<20)
	best := 0.0
	for range 3 {
		t := time.Now()
		h := sha256.New()
		for {
			n, err := f.Read(buf)
			h.Write(buf[:n])
			if err == io.EOF {
				break
			}
			if err != nil {
				return 0, err
			}
		}
		if d := time.Since(t).Seconds(); best == 0 || d < best {
			best = d
		}
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			return 0, err
		}
	}
	return best, nil
}
