// Package discover finds dump files under the dump directory: fsnotify
// watches on the root and every subdirectory give early hints, and full
// rescans (at start-up, after a watcher overflow or error, and on a slow
// ticker) make sure nothing is missed, because events are hints and the
// directory is the truth. It emits relative paths of candidate files; it
// never opens, moves or deletes anything.
package discover

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fsnotify/fsnotify"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/crashdump-io/crashdump/collector/dumpfs"
)

// DefaultInclude are the dump names collected by default (--include;
// docs/architecture.md, "Discover").
var DefaultInclude = []string{"*.dmp", "core", "core.*", "*.core", "*.hprof", "*.heapsnapshot"}

// DefaultExclude keeps companions from being taken for dumps: a crash
// report is claimed as a report (Matcher.Report) and stored with the dump it
// is proven to belong to.
var DefaultExclude = []string{"*" + CrashReportSuffix}

// CrashReportSuffix names the .NET crash report written beside a dump.
const CrashReportSuffix = ".crashreport.json"

// maxDepth bounds how deep the walk goes: a pod can create directories
// faster than the agent should follow them.
const maxDepth = 16

// Matcher decides which file names are dumps. Safe for concurrent use.
type Matcher struct {
	include, exclude []string
}

// NewMatcher validates the glob patterns (path.Match syntax, matched
// against base names).
func NewMatcher(include, exclude []string) (Matcher, error) {
	for _, p := range append(append([]string{}, include...), exclude...) {
		if _, err := path.Match(p, "x"); err != nil {
			return Matcher{}, fmt.Errorf("bad file pattern %q: %w", p, err)
		}
		if strings.Contains(p, "/") {
			return Matcher{}, fmt.Errorf("bad file pattern %q: patterns match base names and cannot contain '/'", p)
		}
	}
	if len(include) == 0 {
		return Matcher{}, errors.New("no include patterns: nothing would be collected")
	}
	return Matcher{include: include, exclude: exclude}, nil
}

// Match reports whether a file with this base name is a dump.
func (m Matcher) Match(name string) bool {
	for _, p := range m.exclude {
		if ok, _ := path.Match(p, name); ok {
			return false
		}
	}
	for _, p := range m.include {
		if ok, _ := path.Match(p, name); ok {
			return true
		}
	}
	return false
}

// Report reports whether a file with this base name is the crash report of
// a dump Match accepts: <dump name>.crashreport.json. Reports are claimed
// on their own (the exclude list keeps them from being taken for dumps),
// because a second crash of the same name overwrites one in place.
func (m Matcher) Report(name string) bool {
	dump, ok := strings.CutSuffix(name, CrashReportSuffix)
	if !ok || dump == "" {
		return false
	}
	return m.Match(dump)
}

// Options tune a Watcher.
type Options struct {
	// RescanInterval is the slow safety-net rescan period (default 1m).
	RescanInterval time.Duration
}

type metrics struct {
	rescans *prometheus.CounterVec
	watched prometheus.Gauge
	events  prometheus.Counter
	tooDeep prometheus.Counter
}

// Watcher discovers candidate dumps. Run it once.
type Watcher struct {
	root    *dumpfs.Root
	match   Matcher
	opts    Options
	log     *slog.Logger
	m       metrics
	ready   atomic.Bool
	mu      sync.Mutex
	watched map[string]bool
	kick    chan struct{} // Rescan's request, buffered 1
	// deep remembers the directories refused for depth, so that each is
	// logged and counted once, not at every rescan; bounded.
	deep map[string]bool
}

// maxDeepMemory bounds Watcher.deep.
const maxDeepMemory = 10000

// Rescan asks Run for a full rescan soon, for files whose events were
// passed over (claiming paused for disk pressure). Requests made before
// the rescan starts coalesce. Safe for concurrent use.
func (w *Watcher) Rescan() {
	select {
	case w.kick <- struct{}{}:
	default:
	}
}

// New builds a Watcher over root.
func New(root *dumpfs.Root, match Matcher, opts Options, log *slog.Logger, reg prometheus.Registerer) *Watcher {
	if opts.RescanInterval <= 0 {
		opts.RescanInterval = time.Minute
	}
	m := metrics{
		rescans: promauto.With(reg).NewCounterVec(prometheus.CounterOpts{
			Name: "crashdump_rescans_total",
			Help: "Full rescans of the dump directory by reason (startup, periodic, overflow, error, requested).",
		}, []string{"reason"}),
		watched: promauto.With(reg).NewGauge(prometheus.GaugeOpts{
			Name: "crashdump_watched_directories",
			Help: "Directories under the dump directory with an inotify watch.",
		}),
		events: promauto.With(reg).NewCounter(prometheus.CounterOpts{
			Name: "crashdump_watch_events_total",
			Help: "Filesystem events received from the dump directory.",
		}),
		tooDeep: promauto.With(reg).NewCounter(prometheus.CounterOpts{
			Name: "crashdump_directories_too_deep_total",
			Help: "Directories more than 16 levels below the dump directory, not walked or watched: nothing in them is collected (each counted once).",
		}),
	}
	for _, r := range []string{"startup", "periodic", "overflow", "error", "requested"} {
		m.rescans.WithLabelValues(r)
	}
	return &Watcher{root: root, match: match, opts: opts, log: log, m: m, watched: map[string]bool{}, kick: make(chan struct{}, 1), deep: map[string]bool{}}
}

// Watching reports whether the watcher is up (for /readyz).
func (w *Watcher) Watching() bool { return w.ready.Load() }

// Scan walks the whole tree once and sends every candidate to out. With a
// non-nil fsnotify watcher it also adds a watch on every directory.
func (w *Watcher) scan(ctx context.Context, fw *fsnotify.Watcher, rel string, depth int, out chan<- string) error {
	if depth > maxDepth {
		w.refuseDeep(rel)
		return nil
	}
	if fw != nil {
		w.addWatch(fw, rel)
	}
	entries, err := w.root.ReadDir(rel)
	if err != nil {
		// The directory may have been removed while walking.
		w.log.Debug("list directory", "path", rel, "err", err)
		return nil
	}
	for _, e := range entries {
		child := e.Name
		if rel != "." {
			child = rel + "/" + e.Name
		}
		switch {
		case e.IsDir():
			if err := w.scan(ctx, fw, child, depth+1, out); err != nil {
				return err
			}
		case w.match.Match(e.Name) || w.match.Report(e.Name):
			select {
			case out <- child:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	}
	return nil
}

// refuseDeep logs and counts, once, a directory too deep to walk: a pod
// can nest directories faster than the agent should follow, and a dump
// down there stays on the node, so it must not go unnoticed.
func (w *Watcher) refuseDeep(rel string) {
	w.mu.Lock()
	seen := w.deep[rel]
	if !seen {
		if len(w.deep) >= maxDeepMemory {
			clear(w.deep)
		}
		w.deep[rel] = true
	}
	w.mu.Unlock()
	if seen {
		return
	}
	w.m.tooDeep.Inc()
	w.log.Warn("not collecting anything below directory: too deep", "path", rel, "max_depth", maxDepth, "reason", "too_deep")
}

// Scan walks the tree once, sending candidates to out (for --once).
func (w *Watcher) Scan(ctx context.Context, out chan<- string) error {
	w.m.rescans.WithLabelValues("startup").Inc()
	return w.scan(ctx, nil, ".", 0, out)
}

func (w *Watcher) addWatch(fw *fsnotify.Watcher, rel string) {
	p := w.abs(rel)
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.watched[p] {
		return
	}
	if err := fw.Add(p); err != nil {
		// ENOSPC (max_user_watches) and friends: the ticker rescan
		// still finds everything, only later.
		w.log.Warn("cannot watch directory; relying on rescans", "path", rel, "err", err)
		return
	}
	w.watched[p] = true
	w.m.watched.Set(float64(len(w.watched)))
}

func (w *Watcher) forget(p string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.watched[p] {
		delete(w.watched, p)
		w.m.watched.Set(float64(len(w.watched)))
	}
}

func (w *Watcher) abs(rel string) string {
	if rel == "." {
		return w.root.Path()
	}
	return w.root.Path() + "/" + rel
}

func (w *Watcher) rel(p string) (string, bool) {
	r, ok := strings.CutPrefix(p, w.root.Path()+"/")
	return r, ok && r != ""
}

// Run watches the tree until ctx ends, sending candidates to out. The first
// full scan happens right away.
func (w *Watcher) Run(ctx context.Context, out chan<- string) error {
	fw, err := fsnotify.NewBufferedWatcher(4096)
	if err != nil {
		return fmt.Errorf("create watcher: %w", err)
	}
	events, errs, overflow, pumpDone := pump(fw)
	defer func() { <-pumpDone }()
	defer fw.Close()
	defer w.ready.Store(false)

	rescan := func(reason string) error {
		w.m.rescans.WithLabelValues(reason).Inc()
		return w.scan(ctx, fw, ".", 0, out)
	}
	w.ready.Store(true)
	if err := rescan("startup"); err != nil {
		return err
	}
	ticker := time.NewTicker(w.opts.RescanInterval)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-ticker.C:
			if err := rescan("periodic"); err != nil {
				return nil
			}
		case <-w.kick:
			if err := rescan("requested"); err != nil {
				return nil
			}
		case <-overflow:
			w.log.Warn("watch events arrived faster than handled; rescanning", "reason", "overflow")
			if err := rescan("overflow"); err != nil {
				return nil
			}
		case err, ok := <-errs:
			if !ok {
				return errors.New("watcher closed")
			}
			reason := "error"
			if errors.Is(err, fsnotify.ErrEventOverflow) {
				reason = "overflow"
			}
			w.log.Warn("watcher error; rescanning", "err", err, "reason", reason)
			if err := rescan(reason); err != nil {
				return nil
			}
		case ev, ok := <-events:
			if !ok {
				return errors.New("watcher closed")
			}
			w.m.events.Inc()
			if err := w.handle(ctx, fw, ev, out); err != nil {
				return nil
			}
		}
	}
}

func (w *Watcher) handle(ctx context.Context, fw *fsnotify.Watcher, ev fsnotify.Event, out chan<- string) error {
	rel, ok := w.rel(ev.Name)
	if !ok {
		return nil
	}
	if ev.Has(fsnotify.Remove) || ev.Has(fsnotify.Rename) {
		w.forget(ev.Name)
		return nil
	}
	info, err := w.root.Lstat(rel)
	if err != nil {
		return nil // gone already (claimed, or removed)
	}
	if info.IsDir() {
		if ev.Has(fsnotify.Create) {
			// Files may have landed before the watch did.
			return w.scan(ctx, fw, rel, strings.Count(rel, "/")+1, out)
		}
		return nil
	}
	if !w.match.Match(info.Name) && !w.match.Report(info.Name) {
		return nil
	}
	select {
	case out <- rel:
	case <-ctx.Done():
		return ctx.Err()
	}
	return nil
}

// pump drains fw's channels on a goroutine of its own, so that fsnotify's
// reader never waits for Run. fsnotify sends some errors while holding the
// lock that Add takes (a watch on a directory swapped away as it was
// created), and Run calls Add when a directory appears: reading the
// channels from Run alone deadlocked discovery under a pod swapping
// directories. Events and errors Run has no room for are dropped and
// overflow is signalled instead: a rescan finds whatever they named. The
// returned channels close when fw does; done when the goroutine ended.
func pump(fw *fsnotify.Watcher) (events <-chan fsnotify.Event, errs <-chan error, overflow <-chan struct{}, done <-chan struct{}) {
	ev := make(chan fsnotify.Event, 4096)
	er := make(chan error, 64)
	of := make(chan struct{}, 1)
	d := make(chan struct{})
	lost := func() {
		select {
		case of <- struct{}{}:
		default:
		}
	}
	go func() {
		defer close(d)
		defer close(ev)
		defer close(er)
		for {
			select {
			case e, ok := <-fw.Events:
				if !ok {
					return
				}
				select {
				case ev <- e:
				default:
					lost()
				}
			case err, ok := <-fw.Errors:
				if !ok {
					return
				}
				select {
				case er <- err:
				default:
					lost()
				}
			}
		}
	}()
	return ev, er, of, d
}
