package collector

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"
	"golang.org/x/sys/unix"

	"github.com/crashdump-io/crashdump/collector/discover"
	"github.com/crashdump-io/crashdump/collector/dumpfs"
	"github.com/crashdump-io/crashdump/collector/procfs"
	"github.com/crashdump-io/crashdump/collector/staging"
	"github.com/crashdump-io/crashdump/uploader"
	"github.com/crashdump-io/crashdump/uploader/manifest"
)

// Config is the agent's configuration (its flags: docs/configuration.md).
type Config struct {
	DumpDir  string
	StateDir string
	ProcRoot string
	Node     string
	// Version is recorded in every manifest.
	Version string
	Include []string
	Exclude []string
	// Compression is manifest.CompressionZstd or manifest.CompressionNone.
	Compression string
	// KeyTemplate renders object keys (default uploader.DefaultKeyTemplate).
	KeyTemplate *uploader.KeyTemplate
	// SettleTime is how long a closed dump must stay unchanged. Zero means
	// the default (2s); negative means no quiet period at all (a dump no
	// process holds open is complete at once).
	SettleTime time.Duration
	// MaxSettleWait is how long a dump may stay open or changing before it
	// is uploaded anyway, marked incomplete.
	MaxSettleWait time.Duration
	// RescanInterval is the safety-net full rescan period.
	RescanInterval time.Duration
	// UploadWorkers is the number of dumps uploaded at the same time.
	UploadWorkers int
	// ShutdownGrace bounds how long in-flight uploads may continue after
	// a stop was requested; what is left is resumed by the next start.
	ShutdownGrace time.Duration
	// RetryBase and RetryMax bound the exponential backoff (with full
	// jitter) between upload attempts of one dump.
	RetryBase, RetryMax time.Duration
	// NamespaceDirs are created (mode NamespaceDirMode) directly under the
	// dump directory at start-up: where per-namespace hostPath
	// PersistentVolumes point, so that pods running as any user can write
	// their dumps there.
	NamespaceDirs    []string
	NamespaceDirMode fs.FileMode
	// Policy is the collection policy: selection and crash-loop limits.
	Policy Policy
	// CoreArgs is what manifests keep of an ELF core's command line:
	// inspect.ArgsRedacted (the default: executable and flag names),
	// inspect.ArgsFull or inspect.ArgsNone. Values on a command line are
	// where secrets are passed (--password=…), and manifests, describe
	// and rate-limited records all show it.
	CoreArgs string
	// MaxDumpBytes (or MaxDumpPercent of the filesystem) bounds what the
	// dumps staged and failed on this node may hold together (0: no limit); KeepFreeBytes / KeepFreePercent is the
	// free space the filesystem must keep for new dumps to be claimed. The
	// budgets are enforced (see enforceBudget) on every new dump and every
	// BudgetInterval.
	MaxDumpBytes    int64
	MaxDumpPercent  float64
	KeepFreeBytes   int64
	KeepFreePercent float64
	// MaxDumpBytesPerNamespace bounds the disk one namespace's dumps may
	// use (0: no limit); a namespace label crashdump.io/max-dump-bytes (a
	// Kubernetes quantity, "0" for none) overrides it for that namespace.
	// Not a pod annotation: a pod must not raise its own budget.
	MaxDumpBytesPerNamespace int64
	// FreeSpace reports a filesystem's free and total bytes (default
	// statfs); tests inject it.
	FreeSpace      func(path string) (free, total uint64, err error)
	BudgetInterval time.Duration
	// RetryFor is how long a dump is retried before it is moved to failed/;
	// FailedTTL how long it is kept there.
	RetryFor  time.Duration
	FailedTTL time.Duration
	// Once processes what is in the dump directory and staging, waits for
	// it to finish, and returns.
	Once bool
	// OnceMaxAttempts is how many attempts a dump gets in --once mode
	// before the run gives up on it (it stays staged for the next run).
	OnceMaxAttempts int
	// MaxResident bounds the staged dumps the scheduler holds in memory
	// (default 512); the others are parked: their record stays on disk
	// and memory keeps 64 bytes of each (park.go).
	MaxResident int
	// KernelCores ingests the cores of `crashdump core-handler` from
	// <state-dir>/corepipe/inbox every KernelPoll (default 1s) and keeps
	// its policy snapshot <state-dir>/corepipe/policy.json (kernel.go).
	KernelCores bool
	KernelPoll  time.Duration
}

func (c *Config) setDefaults() {
	if c.ProcRoot == "" {
		c.ProcRoot = "/proc"
	}
	if c.Include == nil {
		c.Include = discover.DefaultInclude
	}
	if c.Exclude == nil {
		c.Exclude = discover.DefaultExclude
	}
	if c.Compression == "" {
		c.Compression = manifest.CompressionZstd
	}
	switch {
	case c.SettleTime == 0:
		c.SettleTime = 2 * time.Second
	case c.SettleTime < 0:
		c.SettleTime = 0
	}
	if c.MaxSettleWait <= 0 {
		c.MaxSettleWait = 30 * time.Minute
	}
	if c.UploadWorkers <= 0 {
		c.UploadWorkers = 4
	}
	if c.ShutdownGrace <= 0 {
		c.ShutdownGrace = 25 * time.Second
	}
	if c.RetryBase <= 0 {
		c.RetryBase = time.Second
	}
	if c.RetryMax <= 0 {
		c.RetryMax = 5 * time.Minute
	}
	if c.OnceMaxAttempts <= 0 {
		c.OnceMaxAttempts = 3
	}
	if c.KernelPoll <= 0 {
		c.KernelPoll = time.Second
	}
	if c.MaxResident <= 0 {
		c.MaxResident = defaultMaxResident
	}
	if c.Policy.Window <= 0 {
		c.Policy.Window = time.Hour
	}
	if c.FreeSpace == nil {
		c.FreeSpace = FreeSpace
	}
	if c.BudgetInterval <= 0 {
		c.BudgetInterval = 10 * time.Second
	}
	if c.RetryFor <= 0 {
		c.RetryFor = 24 * time.Hour
	}
	if c.FailedTTL <= 0 {
		c.FailedTTL = 7 * 24 * time.Hour
	}
}

// Deps are the agent's collaborators.
type Deps struct {
	// Store is the single destination, unless Destinations routes dumps
	// to several.
	Store        uploader.Store
	Destinations Destinations
	Uploader     *uploader.Uploader
	// Priority, when set, is also the Uploader's Pacer: claims pause
	// uploads while they take writer evidence.
	Priority *ClaimPriority
	Resolver PodResolver
	Notifier Notifier
	// Ping checks the store is reachable (for /readyz); nil means Head of
	// a probe key.
	Ping     func(context.Context) error
	Log      *slog.Logger
	Registry prometheus.Registerer
}

// Agent runs the data flow of docs/architecture.md for one node. Create it
// with New and call Run once.
type Agent struct {
	cfg   Config
	dests Destinations
	up    *uploader.Uploader
	prio  *ClaimPriority // nil: claims do not pause uploads
	// shelf holds claimed crash reports until their dump proves them; a
	// worker that takes one tells the scheduler on reportGone.
	shelf *reportShelf
	// related remembers stored dumps by container instance, to link the
	// dumps of one crash.
	related    *relatedMemory
	reportGone chan *item
	res        PodResolver
	note       Notifier
	ping       func(context.Context) error
	log        *slog.Logger
	reg        prometheus.Registerer
	m          *metrics
	match      discover.Matcher
	proc       procfs.FS

	root  *dumpfs.Root
	stage *staging.Dir
	watch *discover.Watcher

	add     chan *item
	work    chan *item
	results chan result

	storeOK atomic.Bool
	failed  atomic.Int64

	// diskPressure: the filesystem is under --keep-free (enforceBudget).
	diskPressure atomic.Bool

	rejMu    sync.Mutex
	rejected map[rejectKey]bool
	// rejectedDirs: past maxRejectMemory entries, rejects are remembered
	// per directory and reason only (bounded by maxRejectDirs).
	rejectedDirs map[dirReason]bool
	// kernelWarned: inbox problems already logged (kernelWarnOnce).
	kernelWarned map[string]bool

	policy Policy
	storms *stormLimiter
	// suppress holds the open crash-loop records (suppress.go).
	suppress *suppressions
}

// New validates cfg and builds an Agent.
func New(cfg Config, d Deps) (*Agent, error) {
	cfg.setDefaults()
	if cfg.DumpDir == "" || cfg.StateDir == "" {
		return nil, errors.New("dump directory and state directory are required")
	}
	switch cfg.Compression {
	case manifest.CompressionZstd, manifest.CompressionNone:
	default:
		return nil, fmt.Errorf("unknown compression %q (want zstd or none)", cfg.Compression)
	}
	if cfg.KeyTemplate == nil {
		kt, err := uploader.ParseKeyTemplate(uploader.DefaultKeyTemplate)
		if err != nil {
			return nil, err
		}
		cfg.KeyTemplate = kt
	}
	for _, ns := range cfg.NamespaceDirs {
		if !dnsLabel.MatchString(ns) {
			return nil, fmt.Errorf("namespace directory %q: not a Kubernetes namespace name", ns)
		}
	}
	if cfg.NamespaceDirMode == 0 {
		cfg.NamespaceDirMode = fs.ModeSticky | 0o777
	}
	match, err := discover.NewMatcher(cfg.Include, cfg.Exclude)
	if err != nil {
		return nil, err
	}
	if (d.Store == nil && d.Destinations == nil) || d.Uploader == nil || d.Log == nil || d.Registry == nil {
		return nil, errors.New("collector: store, uploader, logger and registry are required")
	}
	if d.Destinations == nil {
		d.Destinations = single{d.Store}
	}
	if _, ok := d.Destinations.Store(DefaultDestination); !ok {
		return nil, errors.New("collector: no default destination")
	}
	if d.Resolver == nil {
		d.Resolver = NoResolver{}
	}
	if d.Notifier == nil {
		d.Notifier = NopNotifier{}
	}
	a := &Agent{
		cfg: cfg, dests: d.Destinations, up: d.Uploader, prio: d.Priority, policy: cfg.Policy, res: d.Resolver, note: d.Notifier, ping: d.Ping,
		log: d.Log, reg: d.Registry, m: newMetrics(d.Registry), match: match,
		proc:         procfs.New(cfg.ProcRoot),
		add:          make(chan *item, 64),
		work:         make(chan *item),
		results:      make(chan result, cfg.UploadWorkers),
		rejected:     map[rejectKey]bool{},
		rejectedDirs: map[dirReason]bool{},
		kernelWarned: map[string]bool{},
		shelf:        newReportShelf(),
		related:      &relatedMemory{},
		reportGone:   make(chan *item, 256),
	}
	if a.ping == nil {
		def, _ := a.dests.Store(DefaultDestination)
		a.ping = func(ctx context.Context) error {
			_, err := def.Head(ctx, ".crashdump-probe")
			if errors.Is(err, uploader.ErrNotExist) {
				return nil
			}
			return err
		}
	}
	return a, nil
}

// Ready reports whether the agent is watching and has reached the store at
// least once (/readyz).
func (a *Agent) Ready() bool {
	return a.storeOK.Load() && a.watch != nil && (a.cfg.Once || a.watch.Watching())
}

// CheckDirs runs the start-up checks of the dump and state directories
// (neither inside the other, one filesystem) without starting anything: for
// `agent --config-check`.
func (a *Agent) CheckDirs() error { return checkDirs(a.cfg.DumpDir, a.cfg.StateDir) }

// checkDirs refuses layouts that would break the claim or hand pods the
// agent's journal.
func checkDirs(dumpDir, stateDir string) error {
	da, err := filepath.Abs(dumpDir)
	if err != nil {
		return err
	}
	sa, err := filepath.Abs(stateDir)
	if err != nil {
		return err
	}
	if da == sa || strings.HasPrefix(sa+"/", da+"/") || strings.HasPrefix(da+"/", sa+"/") {
		return fmt.Errorf("state directory %s and dump directory %s must not contain each other: pods write into the dump directory", sa, da)
	}
	var ds, ss unix.Stat_t
	if err := unix.Stat(da, &ds); err != nil {
		return fmt.Errorf("stat dump directory %s: %w", da, err)
	}
	if err := unix.Stat(sa, &ss); err != nil {
		return fmt.Errorf("stat state directory %s: %w", sa, err)
	}
	if ds.Dev != ss.Dev {
		return fmt.Errorf("state directory %s must be on the same filesystem as the dump directory %s (claiming is an atomic rename)", sa, da)
	}
	return nil
}

// Run collects dumps until ctx ends (or, with Once, until what was there
// is done). Stopping is ordered: discovery stops first, uploads in flight
// get ShutdownGrace to finish, the rest stays journaled for the next start.
// With Once, Run returns an error if any dump could not be uploaded.
func (a *Agent) Run(ctx context.Context) error {
	if err := os.MkdirAll(a.cfg.StateDir, 0o700); err != nil {
		return fmt.Errorf("create state directory: %w", err)
	}
	if err := os.MkdirAll(a.cfg.DumpDir, 0o755); err != nil {
		return fmt.Errorf("create dump directory: %w", err)
	}
	if err := checkDirs(a.cfg.DumpDir, a.cfg.StateDir); err != nil {
		return err
	}
	stage, err := staging.Open(ctx, a.cfg.StateDir, a.log)
	if err != nil {
		return err
	}
	defer stage.Close()
	a.stage = stage
	if a.storms, err = loadStormLimiter(filepath.Join(a.cfg.StateDir, "ratelimit.json"), a.cfg.Policy.Window); err != nil {
		return err
	}
	a.suppress = newSuppressions(a.cfg.Policy.Window)
	root, err := dumpfs.Open(a.cfg.DumpDir)
	if err != nil {
		return err
	}
	defer root.Close()
	a.root = root
	for _, ns := range a.cfg.NamespaceDirs {
		if err := root.EnsureDir(ns, a.cfg.NamespaceDirMode); err != nil {
			return fmt.Errorf("create namespace dump directory: %w", err)
		}
	}
	a.watch = discover.New(root, a.match, discover.Options{RescanInterval: a.cfg.RescanInterval}, a.log, a.reg)

	sched := newScheduler(a)
	recovered := a.recover(sched)

	// runCtx ends discovery, claiming and scheduling; uploads in flight run
	// on upCtx, which ends ShutdownGrace later (or when they are done).
	runCtx, stopRun := context.WithCancel(ctx)
	defer stopRun()
	upCtx, stopUploads := context.WithCancel(context.WithoutCancel(ctx))
	defer stopUploads()

	candidates := make(chan string, 256)
	claimerDone := make(chan struct{})
	var g errgroup.Group
	g.Go(func() error {
		defer close(candidates)
		if a.cfg.Once {
			return a.watch.Scan(runCtx, candidates)
		}
		return a.watch.Run(runCtx, candidates)
	})
	if a.cfg.KernelCores {
		// What the inbox holds now is taken with the first batch, after
		// recovery: an entry whose core an agent killed mid-ingestion had
		// moved is recognised by its staged copy (kernel.go).
		ks := a.ingestInbox()
		a.observeClaims(ks)
		recovered = append(recovered, ks...)
		if !a.cfg.Once {
			g.Go(func() error {
				a.kernelLoop(runCtx)
				return nil
			})
		}
	}
	g.Go(func() error {
		defer close(claimerDone)
		a.claimLoop(runCtx, candidates, recovered)
		return nil
	})
	g.Go(func() error {
		a.pingStore(runCtx)
		return nil
	})
	var workers sync.WaitGroup
	for range a.cfg.UploadWorkers {
		workers.Go(func() { a.worker(runCtx, upCtx) })
	}
	schedErr := a.schedule(runCtx, sched, claimerDone)
	stopRun()
	a.log.Info("stopping: discovery stopped, waiting for uploads in flight", "grace", a.cfg.ShutdownGrace.String())
	done := make(chan struct{})
	go func() { workers.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(a.cfg.ShutdownGrace):
		a.log.Warn("shutdown grace period over: interrupting uploads; they resume at the next start")
		stopUploads()
		<-done
	}
	gerr := g.Wait()
	if schedErr != nil {
		return schedErr
	}
	if gerr != nil {
		return gerr
	}
	if n := a.failed.Load(); a.cfg.Once && n > 0 {
		return fmt.Errorf("%d dump(s) could not be uploaded; they stay on the node (staged in %s, or in the dump directory if they could not be claimed)", n, a.stage.Path())
	}
	return nil
}

// pingStore marks the store reachable once it answers, retrying until then.
func (a *Agent) pingStore(ctx context.Context) {
	for delay := time.Second; ; delay = min(delay*2, 30*time.Second) {
		pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := a.ping(pctx)
		cancel()
		if err == nil {
			a.storeOK.Store(true)
			return
		}
		a.log.Warn("store not reachable yet", "err", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(delay):
		}
	}
}

// dnsLabel is a Kubernetes namespace name (RFC 1123 label).
var dnsLabel = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$`)

func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// recover loads the journal: every staged dump is resumed; entries whose
// claim never completed are discarded (their dump is still in the dump
// directory and is found again).
func (a *Agent) recover(s *scheduler) []*item {
	var out []*item
	resumed := 0
	defer func() {
		if resumed > 0 {
			a.log.Info("resuming staged dumps", "count", resumed, "parked", s.parkedLive)
		}
	}()
	err := a.stage.EachEntry(func(e *staging.Entry) {
		var rec record
		lerr := e.Load(&rec)
		loaded := rec
		hasDump := e.Has(staging.DumpName)
		switch {
		case !hasDump:
			a.log.Info("discarding unfinished claim", "id", e.ID, "path", rec.Path)
			if err := a.stage.Remove(e); err != nil {
				a.log.Error("remove unfinished claim", "id", e.ID, "err", err)
			}
			return
		case lerr != nil || rec.ID != e.ID:
			// The dump is here but its record is not readable (a crash
			// mid-write on a filesystem without ordering guarantees):
			// upload it with what is known rather than lose it.
			a.log.Warn("staged dump has no readable record; uploading without origin", "id", e.ID, "err", lerr)
			rec = record{Version: recordVersion, ID: e.ID, State: stateClaimed, Path: "unknown/dump", ClaimedAt: time.Now()}
		}
		rec.State = stateClaimed
		if rec.Kind != kindReport {
			rec.CrashReport = e.Has(staging.CrashReportName)
		}
		resumed++
		a.log.Debug("resuming staged dump", "id", e.ID, "path", rec.Path, "attempts", rec.Attempts)
		// Dumps whose writers were never looked for are scanned with the
		// claims' first batch, up to MaxResident of them: an agent killed
		// while claiming a flood of 100,000 left most records unscanned,
		// and holding them all for the scan took the restarted agent to
		// 182 MiB. The others are parked and attributed without writer
		// evidence (their writers are long gone when they come up).
		toScan := !rec.Scanned && rec.Plan == nil && len(out) < a.cfg.MaxResident
		if rec.Kind != kindReport && !toScan {
			// Dumps wait parked: a backlog of 100,000 read in whole
			// at start-up was what pushed a restarted agent over its
			// memory limit. Crash reports go to the shelf. A parked
			// dump's record is read again from disk: save what
			// recovery learnt.
			if lerr != nil || loaded.State != rec.State || loaded.CrashReport != rec.CrashReport {
				if err := e.Save(&rec); err != nil {
					a.log.Error("save record", "id", e.ID, "err", err)
				}
			}
			if err := s.parkRecovered(e, &rec); err != nil {
				a.log.Error("resume staged dump", "id", e.ID, "err", err)
			}
			return
		}
		it, err := a.newItem(e, rec)
		if err != nil {
			a.log.Error("resume staged dump", "id", e.ID, "err", err)
			return
		}
		// A planned dump had settled before the restart.
		it.settled = rec.Plan != nil
		out = append(out, it)
	})
	if err != nil {
		a.log.Warn("staging directory holds unexpected entries", "err", err)
	}
	return out
}
