// Command ls is the `make bench-ls` benchmark of the retrieval CLI: it fills
// a local MinIO with what a busy cluster's agents would have written (by
// default 20,000 dumps across 200 namespaces: small dump objects with the
// agent's metadata and real manifests, under the agent's key layout), then
// times the real binary answering `crashdump ls -n ns-042` and reports the
// wall time (best and median of several runs), the number of manifests it
// read (from its --verbose summary), its peak RSS, and the ratio to
// `mc ls --recursive` of the same namespace on the same server in the same
// run (the floor: one listing, no manifests).
//
// It fails (exit 1) when the median is over the 2 s budget or when the run
// read any manifest outside the namespace: the acceptance of issue 5.
package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/klauspost/compress/zstd"
	"golang.org/x/sync/errgroup"

	"github.com/crashdump-io/crashdump/uploader"
	"github.com/crashdump-io/crashdump/uploader/manifest"
)

const (
	accessKey = "crashdump-bench"
	secretKey = "crashdump-bench-secret"
	bucket    = "crashdumps"
	prefix    = "bench"
)

type config struct {
	crashdump, minio, mc string
	dumps, namespaces    int
	namespace            string
	runs                 int
	dataDir              string
	budget               time.Duration
	writers              int
}

func main() {
	var c config
	flag.StringVar(&c.crashdump, "crashdump", "bin/crashdump", "crashdump binary to time")
	flag.StringVar(&c.minio, "minio", "bin/minio", "MinIO server binary")
	flag.StringVar(&c.mc, "mc", "bin/mc", "MinIO client, for the baseline (empty: no baseline)")
	flag.IntVar(&c.dumps, "dumps", 20000, "dumps in the bucket")
	flag.IntVar(&c.namespaces, "namespaces", 200, "namespaces they are spread over")
	flag.StringVar(&c.namespace, "n", "ns-042", "namespace to list")
	flag.IntVar(&c.runs, "runs", 7, "timed runs of each command")
	flag.StringVar(&c.dataDir, "data", "", "MinIO data directory to keep between runs (default: a temporary one; an already filled one is reused)")
	flag.DurationVar(&c.budget, "budget", 2*time.Second, "fail if the median ls is slower")
	flag.IntVar(&c.writers, "writers", 32, "concurrent PUTs while filling")
	flag.Parse()
	if err := run(c); err != nil {
		fmt.Fprintln(os.Stderr, "bench-ls:", err)
		os.Exit(1)
	}
}

func run(c config) error {
	ctx := context.Background()
	if c.dataDir == "" {
		d, err := os.MkdirTemp("", "crashdump-bench-ls-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(d)
		c.dataDir = d
	}
	srv, err := startMinIO(c.minio, c.dataDir)
	if err != nil {
		return err
	}
	defer srv.stop()
	client := s3.New(s3.Options{
		Region: "us-east-1", BaseEndpoint: aws.String(srv.endpoint), UsePathStyle: true,
		Credentials: credentials.NewStaticCredentialsProvider(accessKey, secretKey, ""),
		HTTPClient:  &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: c.writers + 4}},
	})

	if err := waitS3(ctx, client); err != nil {
		return err
	}
	have, err := countKeys(ctx, client)
	if err != nil {
		return err
	}
	want := 2 * c.dumps
	switch {
	case have == want:
		fmt.Printf("bench-ls: reusing %d objects in %s\n", have, c.dataDir)
	case have == 0:
		start := time.Now()
		perNS, err := fill(ctx, client, c)
		if err != nil {
			return err
		}
		el := time.Since(start)
		fmt.Printf("bench-ls: filled %d dumps (%d objects) in %d namespaces in %s (%.0f objects/s); %s holds %d\n",
			c.dumps, want, c.namespaces, el.Round(time.Millisecond), float64(want)/el.Seconds(), c.namespace, perNS[c.namespace])
	default:
		return fmt.Errorf("%s holds %d objects, want 0 or %d: use another -data directory", c.dataDir, have, want)
	}
	nsDumps, err := countPrefix(ctx, client, prefix+"/"+c.namespace+"/")
	if err != nil {
		return err
	}
	nsDumps /= 2

	env := append(os.Environ(),
		"AWS_ACCESS_KEY_ID="+accessKey, "AWS_SECRET_ACCESS_KEY="+secretKey, "AWS_REGION=us-east-1",
		"AWS_EC2_METADATA_DISABLED=true", "AWS_CONFIG_FILE="+os.DevNull, "AWS_SHARED_CREDENTIALS_FILE="+os.DevNull,
		"KUBECONFIG="+os.DevNull)
	store := []string{"--store", "s3://" + bucket + "/" + prefix, "--s3-endpoint", srv.endpoint}

	lsArgs := append([]string{"ls", "-n", c.namespace, "-v"}, store...)
	ls, err := timeRuns(c.runs, c.crashdump, lsArgs, env)
	if err != nil {
		return err
	}
	rowsN := strings.Count(ls.stdout, "\n") - 1
	manifests, requests := parseVerbose(ls.stderr)
	fmt.Printf("\ncrashdump ls -n %s   (%d dumps in the namespace, %d in the bucket)\n", c.namespace, nsDumps, c.dumps)
	fmt.Printf("  rows %d, manifests read %d, list requests %d, peak RSS %.1f MiB\n", rowsN, manifests, requests, float64(ls.maxRSS)/(1<<20))
	fmt.Printf("  runs: %s\n  best %s   median %s\n", ms(ls.times), ls.best().Round(time.Millisecond), ls.median().Round(time.Millisecond))

	allArgs := append([]string{"ls", "-A", "--limit", "20", "-v"}, store...)
	all, err := timeRuns(max(1, c.runs/2), c.crashdump, allArgs, env)
	if err != nil {
		return err
	}
	am, ar := parseVerbose(all.stderr)
	fmt.Printf("\ncrashdump ls -A --limit 20   (every namespace listed, newest 20 shown; for information)\n")
	fmt.Printf("  manifests read %d, list requests %d, peak RSS %.1f MiB, median %s\n", am, ar, float64(all.maxRSS)/(1<<20), all.median().Round(time.Millisecond))

	if c.mc != "" {
		mcEnv := append(os.Environ(), "MC_HOST_bench=http://"+accessKey+":"+secretKey+"@"+srv.addr,
			"MC_CONFIG_DIR="+filepath.Join(c.dataDir, ".mc"))
		mc, err := timeRuns(c.runs, c.mc, []string{"ls", "--recursive", "bench/" + bucket + "/" + prefix + "/" + c.namespace + "/"}, mcEnv)
		if err != nil {
			return err
		}
		fmt.Printf("\nmc ls --recursive %s/   (baseline: the same listing, no manifests)\n", c.namespace)
		fmt.Printf("  runs: %s\n  best %s   median %s   peak RSS %.1f MiB\n", ms(mc.times), mc.best().Round(time.Millisecond),
			mc.median().Round(time.Millisecond), float64(mc.maxRSS)/(1<<20))
		fmt.Printf("\nratio crashdump ls / mc ls (median): %.2fx\n", float64(ls.median())/float64(mc.median()))
	}

	var problems []string
	if ls.median() > c.budget {
		problems = append(problems, fmt.Sprintf("median %s over the %s budget", ls.median().Round(time.Millisecond), c.budget))
	}
	if manifests != nsDumps {
		problems = append(problems, fmt.Sprintf("read %d manifests, want exactly the namespace's %d", manifests, nsDumps))
	}
	if rowsN != nsDumps {
		problems = append(problems, fmt.Sprintf("listed %d dumps, want %d", rowsN, nsDumps))
	}
	if len(problems) > 0 {
		return errors.New(strings.Join(problems, "; "))
	}
	fmt.Printf("\nPASS: ls -n %s in %s (budget %s), %d manifests read of %d in the bucket\n",
		c.namespace, ls.median().Round(time.Millisecond), c.budget, manifests, c.dumps)
	return nil
}

// fill writes the dumps concurrently, each exactly as the agent stores it:
// the (zstd) object with the agent's metadata, then its manifest.
func fill(ctx context.Context, client *s3.Client, c config) (map[string]int, error) {
	if _, err := client.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(bucket)}); err != nil {
		return nil, fmt.Errorf("create bucket: %w", err)
	}
	kt, err := uploader.ParseKeyTemplate(uploader.DefaultKeyTemplate)
	if err != nil {
		return nil, err
	}
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderCRC(true))
	if err != nil {
		return nil, err
	}
	defer enc.Close()
	perNS := map[string]int{}
	for i := range c.dumps {
		perNS[fmt.Sprintf("ns-%03d", i%c.namespaces)]++
	}
	now := time.Now().UTC()
	var done atomic.Int64
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(c.writers)
	for i := range c.dumps {
		g.Go(func() error {
			key, obj, meta, m, err := dump(i, c, kt, enc, now)
			if err != nil {
				return err
			}
			if _, err := client.PutObject(gctx, &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(key),
				Body: bytes.NewReader(obj), ContentType: aws.String("application/zstd"), Metadata: meta}); err != nil {
				return fmt.Errorf("put %s: %w", key, err)
			}
			body, err := manifest.Marshal(m)
			if err != nil {
				return err
			}
			if _, err := client.PutObject(gctx, &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(key + ".json"),
				Body: bytes.NewReader(body), ContentType: aws.String("application/json")}); err != nil {
				return fmt.Errorf("put %s.json: %w", key, err)
			}
			if n := done.Add(1); n%5000 == 0 {
				fmt.Printf("bench-ls: %d/%d dumps written\n", n, c.dumps)
			}
			return nil
		})
	}
	return perNS, g.Wait()
}

// dump builds dump number i: a small ELF-core-like object (compressible,
// distinct), its key, metadata and manifest. Half are .NET dumps with a
// crash report, half native cores with a signal.
func dump(i int, c config, kt *uploader.KeyTemplate, enc *zstd.Encoder, now time.Time) (string, []byte, map[string]string, *manifest.Manifest, error) {
	var idb [16]byte
	if _, err := rand.Read(idb[:]); err != nil {
		return "", nil, nil, nil, err
	}
	id := hex.EncodeToString(idb[:])
	ns := fmt.Sprintf("ns-%03d", i%c.namespaces)
	pod := fmt.Sprintf("api-7d9f8c6b5-%05d", (i/c.namespaces)%10)
	container := "api"
	if i%7 == 0 {
		container = "sidecar"
	}
	node := fmt.Sprintf("ip-10-0-%d-%d", i%4, i%250)
	at := now.Add(-time.Duration(i) * 30 * time.Second)
	name := "coredump.1.dmp"
	if i%2 == 1 {
		name = "core.1"
	}
	original := make([]byte, 16<<10)
	copy(original, "\x7fELF\x02\x01\x01")
	copy(original[64:], fmt.Sprintf("dump %d %s %s/%s", i, id, ns, pod))
	sum := sha256.Sum256(original)
	obj := enc.EncodeAll(original, nil)
	key, err := kt.Key(uploader.KeyFields{Namespace: ns, Pod: pod, Container: container, Node: node, ID: id, FileName: name, Time: at})
	if err != nil {
		return "", nil, nil, nil, err
	}
	key = prefix + "/" + key + ".zst"
	m := &manifest.Manifest{
		SchemaVersion: manifest.SchemaVersion, ID: id, CollectedAt: at, AgentVersion: "bench", Node: node, Kind: "elf-core",
		File: manifest.File{Name: name, Path: ns + "/" + pod + "/" + name, Size: int64(len(original)), SHA256: hex.EncodeToString(sum[:]), ModTime: at},
		Object: manifest.Object{Store: "s3", Bucket: bucket, Key: key, URL: "s3://" + bucket + "/" + key,
			Compression: manifest.CompressionZstd, StoredSize: int64(len(obj))},
		Pod: &manifest.Pod{Namespace: ns, Name: pod, UID: id[:8] + "-0000-4000-8000-" + id[20:], Container: container,
			ContainerID: "containerd://" + id, Image: "registry.example/" + ns + "/api:1.4.2", OwnerKind: "ReplicaSet",
			OwnerName: "api-7d9f8c6b5", Labels: map[string]string{"app": "api"}},
		Process:     &manifest.Process{HostPID: 4000 + i%1000, PID: 1, Exe: "/usr/share/dotnet/dotnet"},
		Correlation: manifest.Correlation{Method: manifest.MethodWriterPID},
		Core:        &manifest.Core{Signal: 6, SignalName: "SIGABRT", PID: 1, Exe: "/usr/share/dotnet/dotnet", Args: "dotnet Api.dll", Threads: 24, Machine: "x86_64"},
	}
	if i%2 == 0 {
		m.File.CrashReport = name + ".crashreport.json"
		m.CrashReport = &manifest.CrashReport{ExceptionType: "System.NullReferenceException", HResult: "0x80004003",
			ProcessName: "Api", RuntimeVersion: "8.0.1125.51716", CrashedThreadID: "0x1a2b",
			CrashedThreadFrames: []manifest.Frame{
				{Managed: true, Method: "Api.Controllers.OrdersController.Get(System.Int32)", Module: "Api.dll", ILOffset: "0x10", NativeOffset: "0x4f"},
				{Managed: true, Method: "Microsoft.AspNetCore.Mvc.Infrastructure.ActionMethodExecutor.Execute()", Module: "Microsoft.AspNetCore.Mvc.Core.dll", ILOffset: "0x2a", NativeOffset: "0x88"},
				{Managed: false, Method: "abort", Module: "libc.so.6", NativeOffset: "0x12"},
			}}
	}
	// The agent's objectMetadata: core facts, made safe.
	meta := map[string]string{
		uploader.MetaNamespace: ns, uploader.MetaPod: pod, uploader.MetaContainer: container, uploader.MetaNode: node,
		uploader.MetaSHA256: m.File.SHA256, uploader.MetaOriginalSize: strconv.FormatInt(m.File.Size, 10),
		uploader.MetaCompression: manifest.CompressionZstd, uploader.MetaDumpID: id,
	}
	return key, obj, meta, m, nil
}

// waitS3 waits until the server answers S3 requests, which comes a little
// after its health endpoint says ready.
func waitS3(ctx context.Context, client *s3.Client) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, err := client.ListBuckets(ctx, &s3.ListBucketsInput{})
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("minio does not answer S3 requests: %w", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func countKeys(ctx context.Context, client *s3.Client) (int, error) {
	if _, err := client.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String(bucket)}); err != nil {
		return 0, nil // no bucket yet
	}
	return countPrefix(ctx, client, prefix+"/")
}

func countPrefix(ctx context.Context, client *s3.Client, p string) (int, error) {
	n := 0
	pg := s3.NewListObjectsV2Paginator(client, &s3.ListObjectsV2Input{Bucket: aws.String(bucket), Prefix: aws.String(p)})
	for pg.HasMorePages() {
		out, err := pg.NextPage(ctx)
		if err != nil {
			return 0, fmt.Errorf("list %s: %w", p, err)
		}
		n += len(out.Contents)
	}
	return n, nil
}

// runs are the timings of one command.
type runs struct {
	times          []time.Duration
	stdout, stderr string
	maxRSS         int64 // bytes
}

func (r runs) sorted() []time.Duration { s := slices.Clone(r.times); slices.Sort(s); return s }
func (r runs) best() time.Duration     { return r.sorted()[0] }
func (r runs) median() time.Duration   { s := r.sorted(); return s[len(s)/2] }

// timeRuns runs the command n times (after one untimed warm-up: the first
// exec of a binary pays for the page cache) and records wall times.
func timeRuns(n int, bin string, args, env []string) (runs, error) {
	var r runs
	for i := -1; i < n; i++ {
		cmd := exec.Command(bin, args...)
		cmd.Env = env
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		start := time.Now()
		err := cmd.Run()
		el := time.Since(start)
		if err != nil {
			return r, fmt.Errorf("%s %s: %w\n%s", bin, strings.Join(args, " "), err, stderr.String())
		}
		if i < 0 {
			continue
		}
		r.times = append(r.times, el)
		r.stdout, r.stderr = stdout.String(), stderr.String()
		if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
			r.maxRSS = max(r.maxRSS, ru.Maxrss*1024)
		}
	}
	return r, nil
}

// parseVerbose reads the counters of `crashdump --verbose`.
func parseVerbose(stderr string) (manifests, requests int) {
	manifestsRe := regexp.MustCompile(`(\d+) manifests read`)
	requestsRe := regexp.MustCompile(`(\d+) list request`)
	if m := manifestsRe.FindStringSubmatch(stderr); m != nil {
		manifests, _ = strconv.Atoi(m[1])
	}
	if m := requestsRe.FindStringSubmatch(stderr); m != nil {
		requests, _ = strconv.Atoi(m[1])
	}
	return manifests, requests
}

func ms(ds []time.Duration) string {
	var parts []string
	for _, d := range ds {
		parts = append(parts, strconv.FormatInt(d.Milliseconds(), 10)+"ms")
	}
	return strings.Join(parts, " ")
}

// minio is a MinIO server process on 127.0.0.1.
type minio struct {
	cmd      *exec.Cmd
	addr     string
	endpoint string
}

func startMinIO(bin, dataDir string) (*minio, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	addr := ln.Addr().String()
	ln.Close()
	logf, err := os.Create(filepath.Join(os.TempDir(), "crashdump-bench-ls-minio.log"))
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, "server", "--quiet", "--address", addr, dataDir)
	cmd.Env = append(os.Environ(), "MINIO_ROOT_USER="+accessKey, "MINIO_ROOT_PASSWORD="+secretKey,
		"MINIO_BROWSER=off", "MINIO_UPDATE=off", "MINIO_CI_CD=1")
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s (run `make tools`): %w", bin, err)
	}
	m := &minio{cmd: cmd, addr: addr, endpoint: "http://" + addr}
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get(m.endpoint + "/minio/health/ready")
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return m, nil
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	m.stop()
	return nil, errors.New("minio did not become ready within 60s")
}

func (m *minio) stop() {
	_ = m.cmd.Process.Kill()
	_ = m.cmd.Wait()
}
