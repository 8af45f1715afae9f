package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/cobra"

	"github.com/crashdump-io/crashdump/collector"
	"github.com/crashdump-io/crashdump/collector/discover"
	"github.com/crashdump-io/crashdump/collector/inspect"
	"github.com/crashdump-io/crashdump/collector/procfs"
	"github.com/crashdump-io/crashdump/uploader"
	"github.com/crashdump-io/crashdump/uploader/s3store"
	"github.com/crashdump-io/crashdump/uploader/stores"
)

// agentFlags are the agent's settings (docs/configuration.md).
type agentFlags struct {
	dumpDir, stateDir, procRoot string
	store                       string
	s3Endpoint, s3Region        string
	s3SSE, s3SSEKMSKeyID        string
	nodeName                    string
	attribution                 attributionFlags
	listenAddress               string
	compression                 string
	coreArgs                    string
	settleTime, maxSettleWait   time.Duration
	rescanInterval              time.Duration
	shutdownGrace               time.Duration
	once                        bool
	include, exclude            []string
	keyTemplate                 string
	uploadWorkers               int
	partSize, uploadBuffer      byteSize
	uploadSpill                 byteSize
	cpuLimit                    string
	cpuProfile                  string
	heapProfile                 string
	partConcurrency             int
	logLevel, logFormat         string
	namespaceDirs               []string
	namespaceDirMode            string
	protection                  protectionFlags
	kernelCores                 bool
}

func newAgentCmd() *cobra.Command {
	f := agentFlags{partSize: byteSize(s3store.DefaultPartSize), uploadBuffer: 16 << 20, uploadSpill: 256 << 20}
	cmd := &cobra.Command{
		Use:   "agent",
		Short: "Run the node agent: collect crash dumps and upload them",
		Long: `Run the node agent. It watches --dump-dir, claims every dump as soon as it
appears (so a second crash with the same file name cannot overwrite it),
waits until its writer has closed it, attributes it to a pod, uploads it to
--store with its manifest, verifies it, and only then deletes the node copy.`,
		Example: `  # Try it locally: no cluster, no S3, a local directory as the store.
  crashdump agent --dump-dir ./dumps --state-dir ./state \
    --store file://$PWD/store --pod-source none --listen-address 127.0.0.1:9102

  # Process what is there once and exit (non-zero if a dump could not be uploaded).
  crashdump agent --once --dump-dir ./dumps --state-dir ./state --store file://$PWD/store --pod-source none

  # MinIO
  AWS_ACCESS_KEY_ID=... AWS_SECRET_ACCESS_KEY=... crashdump agent \
    --store s3://crashdumps/prod --s3-endpoint http://minio.minio:9000`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !cmd.Flags().Changed("listen-address") && os.Getenv(envName("listen-address")) == "" && f.once {
				f.listenAddress = "" // a one-shot run serves no metrics unless asked
			}
			return runAgent(cmd.Context(), f)
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&f.dumpDir, "dump-dir", "/var/lib/crashdump/dumps", "root directory watched (recursively) for dumps")
	fs.StringVar(&f.stateDir, "state-dir", "/var/lib/crashdump/state", "agent-private staging and journal; same filesystem as --dump-dir, never inside it")
	fs.StringVar(&f.store, "store", "file:///var/lib/crashdump/store", "where dumps go: s3://bucket/prefix or file:///path")
	fs.StringVar(&f.s3Endpoint, "s3-endpoint", "", "custom S3 endpoint such as MinIO (implies path-style addressing); empty for AWS")
	fs.StringVar(&f.s3Region, "s3-region", "", "S3 region (default: from the AWS config, else us-east-1)")
	fs.StringVar(&f.s3SSE, "s3-sse", "", "server-side encryption: AES256 (SSE-S3) or aws:kms (SSE-KMS); empty for the bucket default")
	fs.StringVar(&f.s3SSEKMSKeyID, "s3-sse-kms-key-id", "", "KMS key for --s3-sse aws:kms (default: the account's aws/s3 key)")
	fs.StringVar(&f.nodeName, "node-name", "", "this node's name (default: $NODE_NAME, else the host name)")
	f.attribution.register(fs)
	fs.StringVar(&f.procRoot, "proc-root", "/proc", "host /proc (for writer detection and attribution)")
	fs.StringVar(&f.listenAddress, "listen-address", ":9102", "address for /metrics, /healthz and /readyz (empty: none)")
	fs.StringVar(&f.compression, "compression", "zstd", "zstd or none (incompressible dumps are always sent raw)")
	fs.StringVar(&f.coreArgs, "core-args", inspect.ArgsRedacted, "what manifests keep of an ELF core's command line: redacted (executable and flag names, values replaced by <redacted>), full, or none (see docs/security.md)")
	fs.DurationVar(&f.settleTime, "settle-time", 2*time.Second, "quiet period before a closed dump counts as complete (0s: none, complete as soon as no process holds it open)")
	fs.DurationVar(&f.maxSettleWait, "max-settle-wait", 30*time.Minute, "upload a dump still open or changing after this long anyway, marked incomplete")
	fs.DurationVar(&f.rescanInterval, "rescan-interval", time.Minute, "full rescan of --dump-dir (a safety net under the file watches)")
	fs.DurationVar(&f.shutdownGrace, "shutdown-grace", 25*time.Second, "on SIGTERM, how long uploads in flight may finish; the rest resumes at the next start")
	fs.BoolVar(&f.kernelCores, "kernel-cores", false, "ingest the cores of `crashdump core-handler` (the kernel's core_pattern pipe) from <state-dir>/corepipe/inbox, attributed with method kernel, and keep its policy snapshot <state-dir>/corepipe/policy.json fresh (see docs/java-and-cores.md)")
	fs.BoolVar(&f.once, "once", false, "process what is there, wait for it to finish, exit (non-zero if a dump could not be uploaded)")
	fs.StringSliceVar(&f.include, "include", discover.DefaultInclude, "file name patterns collected as dumps")
	fs.StringSliceVar(&f.exclude, "exclude", discover.DefaultExclude, "file name patterns never collected as dumps (a <dump>.crashreport.json is claimed as a crash report and stored with the dump proven to own it)")
	fs.StringVar(&f.keyTemplate, "key-template", uploader.DefaultKeyTemplate, "object key layout (Go template over .Namespace .Pod .Container .Node .ID .ShortID .FileName .Time .Date .Year .Month .Day); must contain .ID or .ShortID")
	fs.IntVar(&f.uploadWorkers, "upload-workers", 4, "dumps uploaded at the same time (each compresses on every core; more overlap the store's per-request latency of small dumps)")
	fs.Var(&f.partSize, "part-size", "multipart part size of compressed uploads, whose parts wait in --upload-buffer (grows for objects over 10,000 parts); raw uploads read parts of at least 32MiB straight from the file")
	fs.IntVar(&f.partConcurrency, "part-concurrency", 4, "parts of one dump in flight at the same time")
	fs.Var(&f.uploadBuffer, "upload-buffer", "memory for the part buffers of compressed uploads, shared by all uploads (bounds memory whatever the size and number of dumps; raw uploads read parts straight from the file)")
	fs.StringVar(&f.cpuLimit, "cpu-limit", "auto", "the agent's CPU limit (CPUs, e.g. 0.25 or 250m; auto: its cgroup v2 cpu.max; 0: none): uploads keep under 80% of it, so that compression never uses up the CFS quota and a new dump's writer is found before it exits")
	fs.Var(&f.uploadSpill, "upload-spill", "compressed bytes per upload that may wait in an unnamed file in --state-dir while the SHA-256 for the object metadata is still being computed, so that compression does not stop meanwhile (page cache the kernel can write back and reclaim, not agent memory); 0: compression waits")
	fs.StringSliceVar(&f.namespaceDirs, "namespace-dirs", nil, "namespaces whose directory <dump-dir>/<namespace> the agent creates at start-up (for per-namespace hostPath PersistentVolumes)")
	fs.StringVar(&f.namespaceDirMode, "namespace-dir-mode", "1777", "octal mode of --namespace-dirs directories (sticky and world-writable by default, like /tmp: pods run as any user)")
	f.protection.register(fs)
	fs.StringVar(&f.cpuProfile, "cpu-profile", "", "write a CPU profile of the whole run to this file (performance work; see docs/performance.md)")
	fs.StringVar(&f.heapProfile, "heap-profile", "", "write a heap profile (live objects) to this file on every SIGUSR1 (memory work; see docs/performance.md)")
	_ = fs.MarkHidden("cpu-profile")
	fs.StringVar(&f.logLevel, "log-level", "info", "debug, info, warn or error")
	fs.StringVar(&f.logFormat, "log-format", "json", "json or text")
	return cmd
}

func newLogger(level, format string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: %w", level, err)
	}
	opts := &slog.HandlerOptions{Level: l}
	switch format {
	case "json":
		return slog.New(slog.NewJSONHandler(os.Stderr, opts)), nil
	case "text":
		return slog.New(slog.NewTextHandler(os.Stderr, opts)), nil
	}
	return nil, fmt.Errorf("--log-format %q: want json or text", format)
}

func nodeName(flag string) string {
	if flag != "" {
		return flag
	}
	if n := os.Getenv("NODE_NAME"); n != "" {
		return n
	}
	h, _ := os.Hostname()
	return h
}

func runAgent(parent context.Context, f agentFlags) error {
	log, err := newLogger(f.logLevel, f.logFormat)
	if err != nil {
		return err
	}
	if parent == nil {
		parent = context.Background()
	}
	ctx, stop := signal.NotifyContext(parent, syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if f.cpuProfile != "" {
		pf, err := os.Create(f.cpuProfile)
		if err != nil {
			return fmt.Errorf("--cpu-profile: %w", err)
		}
		defer pf.Close()
		if err := pprof.StartCPUProfile(pf); err != nil {
			return fmt.Errorf("--cpu-profile: %w", err)
		}
		defer pprof.StopCPUProfile()
	}
	if f.heapProfile != "" {
		// On SIGUSR1, while the agent holds its state: at exit it has let
		// go of everything.
		usr1 := make(chan os.Signal, 1)
		signal.Notify(usr1, syscall.SIGUSR1)
		defer signal.Stop(usr1)
		go func() {
			for {
				select {
				case <-ctx.Done():
					return
				case <-usr1:
					writeHeapProfile(f.heapProfile, log)
				}
			}
		}()
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	build := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "crashdump_build_info", Help: "Build information.", ConstLabels: prometheus.Labels{"version": version},
	})
	build.Set(1)
	reg.MustRegister(build)

	node := nodeName(f.nodeName)
	s3cfg := s3store.Config{
		Endpoint: f.s3Endpoint, Region: f.s3Region, SSE: f.s3SSE, SSEKMSKeyID: f.s3SSEKMSKeyID,
		PartSize: int64(f.partSize), Concurrency: f.partConcurrency, MaxBufferBytes: int64(f.uploadBuffer),
		UserAgent: "crashdump/" + version,
	}
	opened, err := stores.Open(ctx, f.store, s3cfg, log)
	if err != nil {
		return err
	}
	// Every destination gets its metrics label and shares the node-wide
	// bandwidth limit.
	storeMetrics := uploader.NewStoreMetrics(reg)
	limiter := uploader.NewBandwidthLimiter(int64(f.protection.maxBandwidth))
	wrap := func(s uploader.Store, name string) uploader.Store {
		return storeMetrics.Wrap(uploader.WithBandwidthLimit(s, limiter), name)
	}
	store := wrap(opened.Store, collector.DefaultDestination)
	dests, err := f.protection.destinations(ctx, store, s3cfg, wrap, f.attribution.podSource, log)
	if err != nil {
		return err
	}
	cpus, err := cpuLimit(f.cpuLimit)
	if err != nil {
		return err
	}
	if cpus > 0 {
		log.Info("uploads keep CPU headroom for claims", "cpu_limit", cpus, "upload_share", collector.UploadShare)
	}
	prio := collector.NewClaimPriority(cpus)
	up, err := uploader.New(uploader.Options{SpillDir: f.stateDir, SpillMax: int64(f.uploadSpill), Pacer: prio})
	if err != nil {
		return err
	}
	kt, err := uploader.ParseKeyTemplate(f.keyTemplate)
	if err != nil {
		return err
	}
	attr, err := newAttribution(ctx, f.attribution, node, log, reg)
	if err != nil {
		return err
	}
	defer attr.close()
	dirMode, err := parseDirMode(f.namespaceDirMode)
	if err != nil {
		return err
	}
	switch f.coreArgs {
	case inspect.ArgsRedacted, inspect.ArgsFull, inspect.ArgsNone:
	default:
		return fmt.Errorf("--core-args %q: want redacted, full or none", f.coreArgs)
	}
	cfg := collector.Config{
		CoreArgs:      f.coreArgs,
		NamespaceDirs: f.namespaceDirs, NamespaceDirMode: dirMode,
		DumpDir: f.dumpDir, StateDir: f.stateDir, ProcRoot: f.procRoot, Node: node, Version: version,
		Include: f.include, Exclude: f.exclude, Compression: f.compression, KeyTemplate: kt,
		SettleTime: settleTime(f.settleTime), MaxSettleWait: f.maxSettleWait, RescanInterval: f.rescanInterval,
		UploadWorkers: f.uploadWorkers, ShutdownGrace: f.shutdownGrace, Once: f.once,
		KernelCores: f.kernelCores,
	}
	if err := f.protection.apply(&cfg); err != nil {
		return err
	}
	deps := collector.Deps{
		Store: store, Uploader: up, Priority: prio, Resolver: attr.resolver, Notifier: attr.notifier, Ping: opened.Ping, Log: log, Registry: reg,
	}
	if dests != nil {
		deps.Destinations = dests
		deps.Ping = func(ctx context.Context) error {
			if err := opened.Ping(ctx); err != nil {
				return err
			}
			return dests.Ping(ctx)
		}
	}
	agent, err := collector.New(cfg, deps)
	if err != nil {
		return err
	}
	if f.protection.configCheck {
		if err := agent.CheckDirs(); err != nil {
			return err
		}
		if f.protection.checkStore && deps.Ping != nil {
			ctx, cancel := context.WithTimeout(parent, time.Minute)
			defer cancel()
			if err := deps.Ping(ctx); err != nil {
				return fmt.Errorf("store %s: %w", f.store, err)
			}
			fmt.Printf("store %s reachable\n", f.store)
		}
		fmt.Println("configuration OK")
		if f.protection.routingConfig != "" {
			fmt.Printf("routing config %s OK\n", f.protection.routingConfig)
		}
		return nil
	}

	var srv *http.Server
	if f.listenAddress != "" {
		mux := http.NewServeMux()
		mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
		mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
		mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
			if !agent.Ready() {
				http.Error(w, "not ready: not watching yet or store not reached", http.StatusServiceUnavailable)
				return
			}
			fmt.Fprintln(w, "ok")
		})
		ln, err := net.Listen("tcp", f.listenAddress)
		if err != nil {
			return fmt.Errorf("listen on %s: %w", f.listenAddress, err)
		}
		srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
		go func() {
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				log.Error("http server", "err", err)
			}
		}()
	}
	log.Info("crashdump agent starting", "version", version, "node", node, "dump_dir", f.dumpDir,
		"state_dir", f.stateDir, "store", f.store, "pod_source", f.attribution.podSource, "once", f.once,
		"listen_address", f.listenAddress)

	// Ordered shutdown: the agent stops discovering, finishes or
	// checkpoints uploads in flight, and only then does /metrics go away.
	runErr := agent.Run(ctx)
	if srv != nil {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}
	if runErr != nil {
		log.Error("agent stopped with an error", "err", runErr)
		return runErr
	}
	log.Info("crashdump agent stopped")
	return nil
}

// parseDirMode parses an octal mode such as 1777 or 0755.
func parseDirMode(s string) (fs.FileMode, error) {
	v, err := strconv.ParseUint(s, 8, 32)
	if err != nil || v > 0o7777 {
		return 0, fmt.Errorf("--namespace-dir-mode %q: want an octal mode such as 1777", s)
	}
	m := fs.FileMode(v & 0o777)
	if v&0o1000 != 0 {
		m |= fs.ModeSticky
	}
	return m, nil
}

// settleTime maps the flag to collector.Config, where zero means "default":
// --settle-time 0s asks for no quiet period at all.
func settleTime(d time.Duration) time.Duration {
	if d <= 0 {
		return -1
	}
	return d
}

// cpuLimit parses --cpu-limit: CPUs ("0.25"), millicores ("250m"), "auto"
// (the agent's own cgroup v2 cpu.max; none found is no limit) or "0".
func cpuLimit(v string) (float64, error) {
	switch {
	case v == "auto":
		l, err := procfs.CPULimit("/proc", "/sys/fs/cgroup")
		if err != nil {
			return 0, nil // no cgroup to read: no governor, as without a limit
		}
		return l, nil
	case strings.HasSuffix(v, "m"):
		n, err := strconv.ParseFloat(strings.TrimSuffix(v, "m"), 64)
		if err != nil || n < 0 {
			return 0, fmt.Errorf("--cpu-limit %q: want CPUs (0.25), millicores (250m), auto or 0", v)
		}
		return n / 1000, nil
	default:
		n, err := strconv.ParseFloat(v, 64)
		if err != nil || n < 0 {
			return 0, fmt.Errorf("--cpu-limit %q: want CPUs (0.25), millicores (250m), auto or 0", v)
		}
		return n, nil
	}
}

// writeHeapProfile writes the live heap after a final collection, so the
// profile shows what the agent held, not garbage not yet swept.
func writeHeapProfile(path string, log *slog.Logger) {
	runtime.GC()
	pf, err := os.Create(path)
	if err == nil {
		err = pprof.Lookup("heap").WriteTo(pf, 0)
		if cerr := pf.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		log.Error("write heap profile", "path", path, "err", err)
		return
	}
	log.Info("heap profile written", "path", path)
}
