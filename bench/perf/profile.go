package main

import (
	"context"
	"crypto/sha256"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"runtime/pprof"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/klauspost/compress/zstd"
	"golang.org/x/sys/unix"

	"github.com/crashdump-io/crashdump/uploader"
	"github.com/crashdump-io/crashdump/uploader/s3store"
)

type profileResult struct {
	File     string  `json:"pprof_file"`
	Bytes    int64   `json:"bytes"`
	AnalyzeS float64 `json:"analyze_s"`
	SendS    float64 `json:"send_s"`
	HeadS    float64 `json:"head_s"`
	// CPU seconds of this process (the upload path) and of MinIO.
	CPUS      float64 `json:"cpu_s"`
	MinIOCPUS float64 `json:"minio_cpu_s"`
	Compress  bool    `json:"compressed"`
	Stored    int64   `json:"stored_bytes"`
	// Groups is the profile's time by what it is spent on (whole stacks
	// classified), in % of the samples.
	Groups []group `json:"groups"`
	// Top is `go tool pprof -top` (flat, by function).
	Top []string `json:"top"`
	// Floor is the CPU the work itself costs, one core, no overlap lost.
	Floor *cpuFloor `json:"cpu_floor,omitempty"`
}

// cpuFloor is what the unavoidable work on the core costs in CPU seconds on
// one core of this machine, measured in this process one pass at a time:
// reading the file from the page cache, SHA-256 (the object metadata needs
// it), zstd SpeedFastest in 1 MiB frames, CRC32C of the compressed bytes,
// and MinIO's CPU to store them (from the profiled upload). Divided by the
// cores it is a lower bound of any upload's wall time that hashes and
// compresses every byte on this machine.
type cpuFloor struct {
	ReadS      float64 `json:"read_s"`
	SHA256S    float64 `json:"sha256_s"`
	ZstdS      float64 `json:"zstd_fastest_s"`
	CRC32CS    float64 `json:"crc32c_compressed_s"`
	MinIOS     float64 `json:"minio_s"`
	Cores      int     `json:"cores"`
	WallFloorS float64 `json:"wall_floor_s"`
	// RemoveS is the wall time of removing a fresh, synced copy of the
	// core (best of 3): the agent must delete the node copy once the
	// upload is verified; mc cp leaves its source. It comes after the
	// upload, so it adds to the floor.
	RemoveS float64 `json:"remove_s,omitempty"`

	// For the strict lower bound (report: strictBound). ZstdRatio is what
	// SpeedFastest stores (compressed / raw); ZstdNoEntropyS and
	// ZstdNoEntropyRatio the same pass without entropy coding, cheaper
	// and a little larger.
	ZstdRatio          float64 `json:"zstd_fastest_ratio,omitempty"`
	ZstdNoEntropyS     float64 `json:"zstd_no_entropy_s,omitempty"`
	ZstdNoEntropyRatio float64 `json:"zstd_no_entropy_ratio,omitempty"`
	// DropCacheS is the CPU of dropping a fresh, synced copy's page cache
	// (POSIX_FADV_DONTNEED: work an agent could do while it uploads) and
	// UnlinkS the wall time of unlinking it afterwards (the filesystem
	// freeing the blocks, which can only follow the verified upload):
	// best of 3 each. Together they are RemoveS split in two.
	DropCacheS float64 `json:"drop_cache_s,omitempty"`
	UnlinkS    float64 `json:"unlink_after_drop_s,omitempty"`
	// UnlinkCPUS is the CPU of that unlink (the calling thread): the rest
	// of UnlinkS is waiting for the filesystem.
	UnlinkCPUS float64 `json:"unlink_after_drop_cpu_s,omitempty"`
	// ZstdCLI is the reference C zstd at its cheapest levels that may
	// still store little enough (-1 and --fast=1), on one thread: a C
	// encoder is cheaper per byte than klauspost's, and the bound must
	// allow any implementation.
	ZstdCLI []zstdCLI `json:"zstd_cli,omitempty"`
}

// zstdCLI is one level of the zstd CLI on the core: its user CPU seconds
// (the compression itself; reading the file and writing the output are
// system time, left out so that the bound stays a bound), best of 2, and
// compressed / raw.
type zstdCLI struct {
	Level string  `json:"level"`
	UserS float64 `json:"user_s"`
	Ratio float64 `json:"ratio"`
}

// measureZstdCLI times the zstd CLI on p at the levels of zstdCLI, one
// thread, best of 2 (nothing when zstd is not installed).
func measureZstdCLI(ctx context.Context, p string, size int64, fl *cpuFloor) error {
	z, err := exec.LookPath("zstd")
	if err != nil {
		return nil
	}
	for _, level := range []string{"-1", "--fast=1"} {
		m := zstdCLI{Level: level}
		for i := range 2 {
			var cw countWriter
			// --no-check: no content checksum, as the agent (an
			// adversary to the bound would skip it too).
			cmd := exec.CommandContext(ctx, z, level, "--no-check", "-T1", "-q", "-c", p)
			cmd.Stdout = &cw
			if err := cmd.Run(); err != nil {
				return fmt.Errorf("zstd %s -T1: %w", level, err)
			}
			ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage)
			if !ok {
				return nil
			}
			if u := time.Duration(ru.Utime.Nano()).Seconds(); i == 0 || u < m.UserS {
				m.UserS = u
			}
			m.Ratio = float64(cw.n) / float64(size)
		}
		fl.ZstdCLI = append(fl.ZstdCLI, m)
	}
	return nil
}

type group struct {
	Name    string  `json:"name"`
	Percent float64 `json:"percent"`
}

// runProfile runs the agent's upload code path on the core in this process,
// exactly as the agent wires it (uploader.New with the defaults, s3store
// with the agent's default part size, concurrency and buffer), under the CPU
// profiler: Analyze (sampling), Send (hashing, compressing and uploading in
// one pass), Head.
func runProfile(ctx context.Context, c config, srv *minio, in *inputs) (*profileResult, error) {
	set := in.sets["core"]
	p := set.path(set.Files[0])
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	for k, v := range map[string]string{"AWS_ACCESS_KEY_ID": accessKey, "AWS_SECRET_ACCESS_KEY": secretKey,
		"AWS_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true", "AWS_CONFIG_FILE": os.DevNull,
		"AWS_SHARED_CREDENTIALS_FILE": os.DevNull} {
		os.Setenv(k, v)
	}
	const bucket = "bench-profile"
	if err := srv.makeBucket(ctx, bucket); err != nil {
		return nil, err
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	// The agent's defaults: --part-size 8MiB, --part-concurrency 4,
	// --upload-buffer 16MiB, --upload-spill 256MiB.
	store, err := s3store.New(ctx, s3store.Config{Bucket: bucket, Endpoint: srv.endpoint, PartSize: s3store.DefaultPartSize,
		Concurrency: 4, MaxBufferBytes: 16 << 20, UserAgent: "crashdump/bench"}, log)
	if err != nil {
		return nil, err
	}
	// --upload-spill 256MiB into the agent's state directory.
	spill := filepath.Join(c.work, "run", "profile-state")
	if err := os.MkdirAll(spill, 0o700); err != nil {
		return nil, err
	}
	defer os.RemoveAll(spill)
	up, err := uploader.New(uploader.Options{SpillDir: spill, SpillMax: 256 << 20})
	if err != nil {
		return nil, err
	}
	out := filepath.Join(c.work, "profile-core.pprof")
	pf, err := os.Create(out)
	if err != nil {
		return nil, err
	}
	defer pf.Close()
	syscall.Sync()
	res := &profileResult{File: out, Bytes: st.Size()}
	var ru0 syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru0)
	m0 := procCPU(srv.pid())
	if err := pprof.StartCPUProfile(pf); err != nil {
		return nil, err
	}
	t0 := time.Now()
	// As the agent: the hash starts once the dump is to be uploaded and
	// runs while it is sampled.
	hashing := up.StartHash(ctx, f, st.Size())
	defer hashing.Stop()
	an, err := up.Analyze(ctx, f, st.Size())
	if err != nil {
		pprof.StopCPUProfile()
		return nil, err
	}
	t1 := time.Now()
	key := "core/" + filepath.Base(p)
	if an.Compress {
		key += ".zst"
	}
	obj, err := up.SendHashed(ctx, store, key, f, st.Size(), an.Compress, uploader.PutOptions{
		Metadata: map[string]string{uploader.MetaOriginalSize: strconv.FormatInt(st.Size(), 10)},
	}, hashing)
	if err != nil {
		pprof.StopCPUProfile()
		return nil, err
	}
	t2 := time.Now()
	if _, err := store.Head(ctx, key); err != nil {
		pprof.StopCPUProfile()
		return nil, err
	}
	t3 := time.Now()
	pprof.StopCPUProfile()
	var ru1 syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru1)
	res.AnalyzeS, res.SendS, res.HeadS = t1.Sub(t0).Seconds(), t2.Sub(t1).Seconds(), t3.Sub(t2).Seconds()
	res.CPUS = time.Duration(ru1.Utime.Nano() + ru1.Stime.Nano() - ru0.Utime.Nano() - ru0.Stime.Nano()).Seconds()
	res.MinIOCPUS = procCPU(srv.pid()) - m0
	res.Compress, res.Stored = an.Compress, obj.Size
	if err := srv.clear(ctx, bucket, ""); err != nil {
		return nil, err
	}
	if err := pf.Close(); err != nil {
		return nil, err
	}
	top, err := exec.CommandContext(ctx, "go", "tool", "pprof", "-top", "-nodecount=30", out).Output()
	if err != nil {
		return nil, fmt.Errorf("go tool pprof -top: %w", err)
	}
	traces, err := exec.CommandContext(ctx, "go", "tool", "pprof", "-traces", out).Output()
	if err != nil {
		return nil, fmt.Errorf("go tool pprof -traces: %w", err)
	}
	res.Top, res.Groups = topLines(string(top)), classify(string(traces))
	if res.Floor, err = measureFloor(f, st.Size(), res.Stored, res.MinIOCPUS); err != nil {
		return nil, err
	}
	if err := measureZstdCLI(ctx, p, st.Size(), res.Floor); err != nil {
		return nil, err
	}
	if err := measureRemove(p, filepath.Join(c.work, "run"), res.Floor); err != nil {
		return nil, err
	}
	fmt.Printf("bench-perf: profile: analyze %.2fs, send %.2fs, head %.3fs; %.2f CPU s here, %.2f in MinIO (GOMAXPROCS %d); %s\n",
		res.AnalyzeS, res.SendS, res.HeadS, res.CPUS, res.MinIOCPUS, runtime.GOMAXPROCS(0), out)
	for _, g := range res.Groups {
		fmt.Printf("bench-perf: profile: %5.1f%%  %s\n", g.Percent, g.Name)
	}
	fl := res.Floor
	fmt.Printf("bench-perf: CPU floor on the core: read %.2fs + SHA-256 %.2fs + zstd %.2fs + CRC32C %.2fs + MinIO %.2fs = %.2f CPU s, / %d cores = %.2f s wall; + removing the node copy %.2fs\n",
		fl.ReadS, fl.SHA256S, fl.ZstdS, fl.CRC32CS, fl.MinIOS, fl.ReadS+fl.SHA256S+fl.ZstdS+fl.CRC32CS+fl.MinIOS, fl.Cores, fl.WallFloorS, fl.RemoveS)
	fmt.Printf("bench-perf: zstd SpeedFastest %.2fs (stores %.3f), without entropy coding %.2fs (stores %.3f); dropping the page cache %.3fs CPU, unlink after it %.2fs (%.3fs CPU)\n",
		fl.ZstdS, fl.ZstdRatio, fl.ZstdNoEntropyS, fl.ZstdNoEntropyRatio, fl.DropCacheS, fl.UnlinkS, fl.UnlinkCPUS)
	for _, z := range fl.ZstdCLI {
		fmt.Printf("bench-perf: zstd %s (C, one thread): %.2fs user (stores %.3f)\n", z.Level, z.UserS, z.Ratio)
	}
	return res, nil
}

// measureRemove times the removal of a fresh copy of src (made and synced
// like every run's input), best of 3; then, on three more copies, dropping
// the copy's page cache (CPU of the calling thread) and the unlink that
// follows (wall), best of 3 each.
func measureRemove(src, dir string, fl *cpuFloor) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	dst := filepath.Join(dir, "remove-probe")
	best := func(cur *float64, i int, d float64) {
		if i == 0 || d < *cur {
			*cur = d
		}
	}
	for i := range 6 {
		if err := copyInput(src, dst); err != nil {
			return err
		}
		syscall.Sync()
		if i < 3 {
			t0 := time.Now()
			if err := os.Remove(dst); err != nil {
				return err
			}
			best(&fl.RemoveS, i, time.Since(t0).Seconds())
			continue
		}
		f, err := os.Open(dst)
		if err != nil {
			return err
		}
		c0 := threadCPU()
		err = unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED)
		c1 := threadCPU()
		f.Close()
		if err != nil {
			return fmt.Errorf("fadvise %s: %w", dst, err)
		}
		t0, u0 := time.Now(), threadCPU()
		if err := os.Remove(dst); err != nil {
			return err
		}
		wall, ucpu := time.Since(t0).Seconds(), (threadCPU() - u0).Seconds()
		if i == 3 || wall < fl.UnlinkS {
			fl.UnlinkS, fl.UnlinkCPUS = wall, ucpu
		}
		best(&fl.DropCacheS, i-3, (c1 - c0).Seconds())
	}
	return nil
}

// threadCPU is the CPU time of the calling thread.
func threadCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(1 /* RUSAGE_THREAD */, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func measureFloor(f *os.File, size, stored int64, minio float64) (*cpuFloor, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	buf := make([]byte, 1<<20)
	pass := func(fn func([]byte)) (float64, error) {
		c0 := threadCPU()
		for off := int64(0); off < size; off += int64(len(buf)) {
			n := int(min(int64(len(buf)), size-off))
			if _, err := f.ReadAt(buf[:n], off); err != nil && err != io.EOF {
				return 0, err
			}
			fn(buf[:n])
		}
		return (threadCPU() - c0).Seconds(), nil
	}
	// best is the least of n passes: noise (another process, the
	// hypervisor) only ever adds time, and the bound must not carry it.
	best := func(n int, fn func([]byte)) (float64, error) {
		var least float64
		for i := range n {
			t, err := pass(fn)
			if err != nil {
				return 0, err
			}
			if i == 0 || t < least {
				least = t
			}
		}
		return least, nil
	}
	fl := &cpuFloor{MinIOS: minio, Cores: runtime.NumCPU()}
	var err error
	if fl.ReadS, err = best(3, func([]byte) {}); err != nil {
		return nil, err
	}
	h := sha256.New()
	if fl.SHA256S, err = best(3, func(b []byte) { h.Write(b) }); err != nil {
		return nil, err
	}
	agentOpts := []zstd.EOption{zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(1),
		zstd.WithEncoderCRC(false), zstd.WithZeroFrames(true), zstd.WithWindowSize(1 << 20), zstd.WithLowerEncoderMem(true)} // as the agent
	enc, err := zstd.NewWriter(nil, agentOpts...)
	if err != nil {
		return nil, err
	}
	defer enc.Close()
	out := make([]byte, 0, 2<<20)
	var compressed [][]byte
	// Each zstd pass adds its output to total; the ratio is one pass's.
	const zstdPasses = 2
	var total int64
	zs, err := best(zstdPasses, func(b []byte) {
		out = enc.EncodeAll(b, out[:0])
		total += int64(len(out))
		if len(compressed) < 64 {
			compressed = append(compressed, append([]byte(nil), out...))
		}
	})
	total /= zstdPasses
	if err != nil {
		return nil, err
	}
	fl.ZstdS = zs - fl.ReadS
	fl.ZstdRatio = float64(total) / float64(size)
	// The same without entropy coding: less CPU, a little more stored.
	noEnt, err := zstd.NewWriter(nil, append(agentOpts, zstd.WithNoEntropyCompression(true))...)
	if err != nil {
		return nil, err
	}
	defer noEnt.Close()
	total = 0
	zs, err = best(zstdPasses, func(b []byte) {
		out = noEnt.EncodeAll(b, out[:0])
		total += int64(len(out))
	})
	total /= zstdPasses
	if err != nil {
		return nil, err
	}
	fl.ZstdNoEntropyS = zs - fl.ReadS
	fl.ZstdNoEntropyRatio = float64(total) / float64(size)
	fl.SHA256S -= fl.ReadS
	// CRC32C of the stored bytes, timed on a sample of compressed frames.
	var sampled int
	table := crc32.MakeTable(crc32.Castagnoli)
	c0 := threadCPU()
	for range 20 {
		for _, c := range compressed {
			crc32.Update(0, table, c)
			sampled += len(c)
		}
	}
	fl.CRC32CS = (threadCPU() - c0).Seconds() / float64(max(sampled, 1)) * float64(stored)
	fl.WallFloorS = (fl.ReadS + fl.SHA256S + fl.ZstdS + fl.CRC32CS + fl.MinIOS) / float64(fl.Cores)
	return fl, nil
}

// Where CPU time goes: every sampled stack is put in the first class whose
// pattern matches one of its frames (so time the profiler charges to
// runtime.asyncPreempt or memmove counts for the work it interrupted or
// served).
var classes = []struct{ name, re string }{
	{"GC (background mark, sweep)", `^runtime\.(gcBgMarkWorker|bgsweep|bgscavenge)`},
	{"SHA-256 (Send, own goroutine)", `sha256`},
	{"file reads for the hash (Send)", `\(\*Uploader\)\.Hash`},
	{"compressibility sample (Analyze)", `\(\*compressor\)\.sample`},
	{"file reads (Analyze)", `\(\*Uploader\)\.Analyze`},
	{"zstd compression (Send)", `\(\*compressor\)\.compress\.func1|klauspost/compress`},
	{"file reads (Send)", `\(\*compressor\)\.compress$|exactReaderAt|syscall\.Pread`},
	{"CRC32C (part checksums)", `hash/crc32`},
	{"HTTP: request bodies to the socket", `^net/http|^net\.|internal/poll|aws-sdk-go-v2|smithy-go`},
	{"part buffers, pipe (s3store)", `s3store|^io\.`},
}

// classify reads `go tool pprof -traces` and sums sample time per class, in
// % of all samples.
func classify(traces string) []group {
	res := make([]*regexp.Regexp, len(classes))
	for i, c := range classes {
		res[i] = regexp.MustCompile(c.re)
	}
	sums := map[string]float64{}
	var total float64
	for _, block := range strings.Split(traces, "-----------+") {
		lines := strings.Split(block, "\n")
		var v float64
		var frames []string
		for _, l := range lines {
			l = strings.TrimSpace(l)
			if l == "" || strings.HasPrefix(l, "---") {
				continue
			}
			if v == 0 {
				f := strings.Fields(l)
				if len(f) < 2 {
					continue
				}
				d, err := time.ParseDuration(f[0])
				if err != nil {
					continue
				}
				v = d.Seconds()
				frames = append(frames, strings.TrimSuffix(strings.Join(f[1:], " "), " (inline)"))
				continue
			}
			frames = append(frames, strings.TrimSuffix(l, " (inline)"))
		}
		if v == 0 {
			continue
		}
		total += v
		name := "other (runtime scheduler, timers, allocation)"
	match:
		for i, re := range res {
			for _, fr := range frames {
				if re.MatchString(fr) {
					name = classes[i].name
					break match
				}
			}
		}
		sums[name] += v
	}
	var gs []group
	for n, v := range sums {
		gs = append(gs, group{Name: n, Percent: 100 * v / total})
	}
	sort.Slice(gs, func(i, j int) bool { return gs[i].Percent > gs[j].Percent })
	return gs
}

// topLines keeps the header and the first functions of `pprof -top`.
func topLines(top string) []string {
	var lines []string
	for _, l := range strings.Split(top, "\n") {
		if strings.TrimSpace(l) == "" {
			continue
		}
		lines = append(lines, l)
		if len(lines) >= 40 {
			break
		}
	}
	return lines
}
