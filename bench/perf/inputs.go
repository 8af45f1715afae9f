package main

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/klauspost/compress/zstd"
	"golang.org/x/sys/unix"
)

// Bump a generator's version when what it writes changes: cached inputs of
// another version are made again.
const (
	coreGenVersion   = "core-v2"
	randomGenVersion = "random-v1"
	manyGenVersion   = "many-v1"
	sparseGenVersion = "sparse-v1"
)

// Sizes of the generated inputs.
const (
	randomSize    = 1 << 30
	manyCount     = 200
	manySize      = 5 << 20
	sparseSize    = 4 << 30
	sparseRegions = 64
	sparseRegion  = 4 << 20
)

// inputFile is one dump of a scenario: where it lives in the cache, and
// where it goes (relative to the dump directory, or to mc's source
// directory).
type inputFile struct {
	Rel    string `json:"rel"`
	Size   int64  `json:"size"`
	Disk   int64  `json:"disk_bytes"` // allocated (smaller than Size for sparse files)
	SHA256 string `json:"sha256"`
}

// inputSet is the input of one scenario.
type inputSet struct {
	Name        string      `json:"name"`
	Version     string      `json:"version"`
	Description string      `json:"description"`
	Files       []inputFile `json:"files"`
	// Core only: how the core compresses, and the helper it came from.
	Core *coreInfo `json:"core,omitempty"`
	dir  string
}

func (s *inputSet) raw() int64 {
	var n int64
	for _, f := range s.Files {
		n += f.Size
	}
	return n
}

func (s *inputSet) path(f inputFile) string { return filepath.Join(s.dir, f.Rel) }

type coreInfo struct {
	HelperHeapBytes int64   `json:"helper_heap_bytes"`
	HelperRSSBytes  int64   `json:"helper_rss_bytes"`
	HelperReport    string  `json:"helper_report"`
	GcoreSeconds    float64 `json:"gcore_s"`
	// Compressed/raw with the zstd CLI at level 1 (what issue 7 measured
	// on a real Python core: 0.14), and its time on every core.
	Zstd1Ratio float64 `json:"zstd_1_ratio,omitempty"`
	Zstd1S     float64 `json:"zstd_1_s,omitempty"`
	// klauspost zstd SpeedFastest as the agent uses it: independent
	// frames of 1 MiB.
	FastestFramesRatio float64 `json:"klauspost_fastest_1mib_frames_ratio"`
	// The same level as one stream over the whole file.
	FastestStreamRatio float64 `json:"klauspost_fastest_stream_ratio"`
}

type inputs struct {
	sets map[string]*inputSet
}

func (in *inputs) summary() map[string]*inputSet { return in.sets }

// prepareInputs makes (or reuses from cache) the inputs of the scenarios.
func prepareInputs(ctx context.Context, c config, cache string, uploads []string, needCore bool) (*inputs, error) {
	in := &inputs{sets: map[string]*inputSet{}}
	want := map[string]bool{}
	for _, s := range uploads {
		want[s] = true
	}
	if needCore {
		want["core"] = true
	}
	gens := []struct {
		name, version string
		gen           func(ctx context.Context, c config, dir string) (*inputSet, error)
	}{
		{"core", coreGenVersion + fmt.Sprintf("-heap%d", c.coreHeap), genCore},
		{"random", randomGenVersion, genRandom},
		{"many", manyGenVersion, genMany},
		{"sparse", sparseGenVersion, genSparse},
	}
	for _, g := range gens {
		if !want[g.name] {
			continue
		}
		dir := filepath.Join(cache, g.name)
		meta := filepath.Join(cache, g.name+".json")
		if s, ok := loadCached(meta, dir, g.version); ok {
			fmt.Printf("bench-perf: input %s: reusing %d file(s), %s, from %s\n", g.name, len(s.Files), human(s.raw()), dir)
			in.sets[g.name] = s
			continue
		}
		if err := os.RemoveAll(dir); err != nil {
			return nil, err
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, err
		}
		start := time.Now()
		fmt.Printf("bench-perf: input %s: generating in %s\n", g.name, dir)
		s, err := g.gen(ctx, c, dir)
		if err != nil {
			return nil, fmt.Errorf("generate %s: %w", g.name, err)
		}
		s.Name, s.Version, s.dir = g.name, g.version, dir
		for i := range s.Files {
			f := &s.Files[i]
			sum, size, disk, err := hashFile(s.path(*f))
			if err != nil {
				return nil, err
			}
			f.SHA256, f.Size, f.Disk = sum, size, disk
		}
		b, err := json.MarshalIndent(s, "", "  ")
		if err != nil {
			return nil, err
		}
		if err := os.WriteFile(meta, b, 0o644); err != nil {
			return nil, err
		}
		fmt.Printf("bench-perf: input %s: %d file(s), %s, made in %s\n", g.name, len(s.Files), human(s.raw()), time.Since(start).Round(time.Second))
		in.sets[g.name] = s
	}
	return in, nil
}

// loadCached returns the cached set if its files are all there with their
// recorded sizes and it was made by this generator version.
func loadCached(meta, dir, version string) (*inputSet, bool) {
	b, err := os.ReadFile(meta)
	if err != nil {
		return nil, false
	}
	var s inputSet
	if json.Unmarshal(b, &s) != nil || s.Version != version || len(s.Files) == 0 {
		return nil, false
	}
	s.dir = dir
	for _, f := range s.Files {
		st, err := os.Lstat(s.path(f))
		if err != nil || !st.Mode().IsRegular() || st.Size() != f.Size {
			return nil, false
		}
	}
	return &s, true
}

func hashFile(p string) (sum string, size, disk int64, err error) {
	f, err := os.Open(p)
	if err != nil {
		return "", 0, 0, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, bufio.NewReaderSize(f, 4<<20))
	if err != nil {
		return "", 0, 0, err
	}
	var st syscall.Stat_t
	if err := syscall.Fstat(int(f.Fd()), &st); err == nil {
		disk = st.Blocks * 512
	}
	return hex.EncodeToString(h.Sum(nil)), n, disk, nil
}

// repoRoot is the directory holding go.mod, above the working directory.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory: run from the repository")
		}
		dir = parent
	}
}

// genCore builds the heap helper, starts it, waits until it holds its heap,
// takes a real core of it with gcore and measures how it compresses.
func genCore(ctx context.Context, c config, dir string) (*inputSet, error) {
	gcore, err := exec.LookPath("gcore")
	if err != nil {
		return nil, errors.New("gcore not found: install gdb (`make apt-tools`)")
	}
	root, err := repoRoot()
	if err != nil {
		return nil, err
	}
	helper := filepath.Join(c.work, "bin", "heaphog")
	build := exec.CommandContext(ctx, "go", "build", "-o", helper, "./bench/perf/heaphog")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("build heaphog: %w\n%s", err, out)
	}
	cmd := exec.CommandContext(ctx, helper, "-size", strconv.FormatInt(c.coreHeap, 10))
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	ready := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if l := sc.Text(); strings.HasPrefix(l, "ready") {
				ready <- l
			}
		}
		close(ready)
	}()
	var report string
	select {
	case l, ok := <-ready:
		if !ok {
			return nil, errors.New("heaphog exited before it was ready")
		}
		report = l
	case <-time.After(15 * time.Minute):
		return nil, errors.New("heaphog not ready after 15 minutes")
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	pid := cmd.Process.Pid
	rss, _ := procStatus(pid)
	fmt.Printf("bench-perf: helper %d holds its heap (RSS %s): %s; taking its core with gcore\n", pid, human(rss), report)
	start := time.Now()
	prefix := filepath.Join(dir, "gcore")
	if out, err := exec.CommandContext(ctx, gcore, "-o", prefix, strconv.Itoa(pid)).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("gcore %d: %w\n%s", pid, err, out)
	}
	info := &coreInfo{HelperHeapBytes: c.coreHeap, HelperRSSBytes: rss, HelperReport: report, GcoreSeconds: time.Since(start).Seconds()}
	// The file name the kernel would give it (core.<pid>), under a
	// namespace-like directory.
	rel := filepath.Join("bench", "core."+strconv.Itoa(pid))
	if err := os.MkdirAll(filepath.Join(dir, "bench"), 0o755); err != nil {
		return nil, err
	}
	if err := os.Rename(fmt.Sprintf("%s.%d", prefix, pid), filepath.Join(dir, rel)); err != nil {
		return nil, err
	}
	_ = cmd.Process.Kill()
	p := filepath.Join(dir, rel)
	if err := compressionOf(ctx, p, info); err != nil {
		return nil, err
	}
	fmt.Printf("bench-perf: core compresses to %.3f with zstd -1 (%.2f s), %.3f with SpeedFastest in 1 MiB frames, %.3f as one stream\n",
		info.Zstd1Ratio, info.Zstd1S, info.FastestFramesRatio, info.FastestStreamRatio)
	return &inputSet{
		Description: fmt.Sprintf("real ELF core (gcore) of a helper process holding %s of mixed managed-runtime-like heap", human(c.coreHeap)),
		Files:       []inputFile{{Rel: rel}},
		Core:        info,
	}, nil
}

type countWriter struct{ n int64 }

func (w *countWriter) Write(p []byte) (int, error) { w.n += int64(len(p)); return len(p), nil }

// compressionOf measures the core's compressed size with the zstd CLI at
// level 1 (when installed) and with klauspost's SpeedFastest.
func compressionOf(ctx context.Context, p string, info *coreInfo) error {
	st, err := os.Stat(p)
	if err != nil {
		return err
	}
	size := float64(st.Size())
	if z, err := exec.LookPath("zstd"); err == nil {
		var cw countWriter
		cmd := exec.CommandContext(ctx, z, "-1", "-T"+strconv.Itoa(runtime.NumCPU()), "-q", "-c", p)
		cmd.Stdout = &cw
		start := time.Now()
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("zstd -1: %w", err)
		}
		info.Zstd1S = time.Since(start).Seconds()
		info.Zstd1Ratio = float64(cw.n) / size
	}
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(1))
	if err != nil {
		return err
	}
	buf := make([]byte, 1<<20)
	var out []byte
	var frames int64
	for {
		n, err := io.ReadFull(f, buf)
		if n > 0 {
			out = enc.EncodeAll(buf[:n], out[:0])
			frames += int64(len(out))
		}
		if err != nil {
			break
		}
	}
	info.FastestFramesRatio = float64(frames) / size
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return err
	}
	var cw countWriter
	sw, err := zstd.NewWriter(&cw, zstd.WithEncoderLevel(zstd.SpeedFastest))
	if err != nil {
		return err
	}
	if _, err := io.Copy(sw, bufio.NewReaderSize(f, 4<<20)); err != nil {
		return err
	}
	if err := sw.Close(); err != nil {
		return err
	}
	info.FastestStreamRatio = float64(cw.n) / size
	return nil
}

// genRandom writes 1 GiB of incompressible bytes (ChaCha8, fixed seed).
func genRandom(ctx context.Context, c config, dir string) (*inputSet, error) {
	rel := filepath.Join("bench", "random.dmp")
	r := rand.NewChaCha8([32]byte{'c', 'r', 'a', 's', 'h', 'd', 'u', 'm', 'p'})
	if err := writeFile(filepath.Join(dir, rel), randomSize, func(p []byte) { _, _ = r.Read(p) }); err != nil {
		return nil, err
	}
	return &inputSet{Description: "1 GiB of random bytes (incompressible: sent raw)", Files: []inputFile{{Rel: rel}}}, ctx.Err()
}

// genMany writes 200 dumps of 5 MiB of mixed, compressible content.
func genMany(ctx context.Context, c config, dir string) (*inputSet, error) {
	s := &inputSet{Description: fmt.Sprintf("%d dumps of %s, mixed compressible content (text, records, zeros, 8%% random)", manyCount, human(manySize))}
	for i := range manyCount {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		rel := filepath.Join("many", fmt.Sprintf("dump-%03d.dmp", i))
		m := newMixer(uint64(1000 + i))
		if err := writeFile(filepath.Join(dir, rel), manySize, m.fill); err != nil {
			return nil, err
		}
		s.Files = append(s.Files, inputFile{Rel: rel})
	}
	return s, nil
}

// genSparse writes a 4 GiB file that is mostly holes, with 64 data regions
// of 4 MiB of mixed content (256 MiB of data) spread over it.
func genSparse(ctx context.Context, c config, dir string) (*inputSet, error) {
	rel := filepath.Join("bench", "sparse.dmp")
	p := filepath.Join(dir, rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(p, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if err := f.Truncate(sparseSize); err != nil {
		return nil, err
	}
	m := newMixer(4242)
	buf := make([]byte, sparseRegion)
	stride := int64(sparseSize / sparseRegions)
	for i := range int64(sparseRegions) {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		// Spread over the file, 1 MiB-aligned but not at stride starts.
		off := i*stride + (i*7919%int64(stride/sparseRegion-1))*sparseRegion/4
		off &^= 1<<20 - 1
		m.fill(buf)
		if _, err := f.WriteAt(buf, off); err != nil {
			return nil, err
		}
	}
	if err := f.Sync(); err != nil {
		return nil, err
	}
	return &inputSet{Description: fmt.Sprintf("%s sparse file: holes plus %d data regions of %s (mixed content)",
		human(sparseSize), sparseRegions, human(sparseRegion)), Files: []inputFile{{Rel: rel}}}, nil
}

func writeFile(p string, size int64, fill func([]byte)) error {
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	f, err := os.OpenFile(p, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	defer f.Close()
	buf := make([]byte, 4<<20)
	for off := int64(0); off < size; {
		n := min(int64(len(buf)), size-off)
		fill(buf[:n])
		if _, err := f.Write(buf[:n]); err != nil {
			return err
		}
		off += n
	}
	return f.Sync()
}

// mixer fills buffers with dump-like content in 64 KiB blocks: text (log
// lines and JSON), binary records (pointers, small integers, timestamps),
// zero pages, integer arrays and some random bytes.
type mixer struct {
	r *rand.Rand
	t int64
}

func newMixer(seed uint64) *mixer { return &mixer{r: rand.New(rand.NewPCG(seed, 99))} }

var mixWords = strings.Fields(`order customer invoice payment account product cart checkout shipping address region
tenant user session token request response handler service client server cache queue worker job task event
stream batch record entry item price amount currency total status pending active closed failed retry timeout`)

func (m *mixer) fill(p []byte) {
	const block = 64 << 10
	for off := 0; off < len(p); off += block {
		b := p[off:min(off+block, len(p))]
		switch k := m.r.IntN(100); {
		case k < 35:
			m.text(b)
		case k < 60:
			m.records(b)
		case k < 85:
			clear(b)
		case k < 92:
			m.ints(b)
		default:
			for i := 0; i+8 <= len(b); i += 8 {
				binary.LittleEndian.PutUint64(b[i:], m.r.Uint64())
			}
		}
	}
}

func (m *mixer) word() string { return mixWords[m.r.IntN(len(mixWords))] }

func (m *mixer) text(b []byte) {
	var s []byte
	for len(s) < len(b) {
		m.t += int64(m.r.IntN(50))
		if m.r.IntN(2) == 0 {
			s = fmt.Appendf(s, "2026-03-14T09:%02d:%02d.%03dZ INFO [worker-%d] %s /api/v1/%ss/%d status=%d dur=%dms\n",
				m.t/60000%60, m.t/1000%60, m.t%1000, m.r.IntN(8), m.word(), m.word(), m.r.IntN(5000), 200, m.r.IntN(300))
		} else {
			s = fmt.Appendf(s, `{"%s":"%s","%s":%d,"%s":["%s","%s"],"active":true}`+"\n",
				m.word(), m.word(), m.word(), m.r.IntN(1000), m.word(), m.word(), m.word())
		}
	}
	copy(b, s)
}

func (m *mixer) records(b []byte) {
	for i := 0; i+32 <= len(b); i += 32 {
		binary.LittleEndian.PutUint64(b[i:], 0xc000000000+uint64(m.r.IntN(1<<24))*16)
		binary.LittleEndian.PutUint32(b[i+8:], uint32(m.r.IntN(64)))
		binary.LittleEndian.PutUint32(b[i+12:], uint32(m.r.IntN(8)))
		m.t += int64(m.r.IntN(1000))
		binary.LittleEndian.PutUint64(b[i+16:], uint64(1773480000000000+m.t))
		binary.LittleEndian.PutUint64(b[i+24:], 0)
	}
}

func (m *mixer) ints(b []byte) {
	for i := 0; i+4 <= len(b); i += 4 {
		binary.LittleEndian.PutUint32(b[i:], uint32(m.r.IntN(1<<uint(m.r.IntN(16)+1))))
	}
}

// copyInput copies src to dst preserving holes (SEEK_DATA/SEEK_HOLE with
// copy_file_range), then syncs it, so that the timed run starts with the
// data on disk and in the page cache, as a dump just written by its
// runtime is. A hard link would not do: the agent refuses files with more
// than one link.
func copyInput(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	st, err := in.Stat()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	defer out.Close()
	size := st.Size()
	if err := out.Truncate(size); err != nil {
		return err
	}
	rfd, wfd := int(in.Fd()), int(out.Fd())
	for off := int64(0); off < size; {
		data, err := unix.Seek(rfd, off, unix.SEEK_DATA)
		if errors.Is(err, unix.ENXIO) {
			break
		}
		if err != nil {
			return fmt.Errorf("seek data in %s: %w", src, err)
		}
		hole, err := unix.Seek(rfd, data, unix.SEEK_HOLE)
		if err != nil {
			return fmt.Errorf("seek hole in %s: %w", src, err)
		}
		roff, woff := data, data
		for roff < hole {
			n, err := unix.CopyFileRange(rfd, &roff, wfd, &woff, int(min(hole-roff, 1<<30)), 0)
			if err != nil {
				return fmt.Errorf("copy %s: %w", src, err)
			}
			if n == 0 {
				return fmt.Errorf("copy %s: short copy at %d", src, roff)
			}
		}
		off = hole
	}
	if err := out.Sync(); err != nil {
		return err
	}
	return out.Close()
}

func human(n int64) string {
	switch {
	case n >= 1<<30 && n%(1<<30) == 0:
		return fmt.Sprintf("%d GiB", n>>30)
	case n >= 1<<30:
		return fmt.Sprintf("%.2f GiB", float64(n)/(1<<30))
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
