package pods

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	corev1 "k8s.io/api/core/v1"
)

// CacheOptions tune a Cache. Zero values take the defaults.
type CacheOptions struct {
	// Retention is how long pods and container instances that disappeared
	// from the list stay known (default 1h).
	Retention time.Duration
	// Period is the slow background refresh (default 30s).
	Period time.Duration
	// MinInterval is the least time between two lists (default 1s): on
	// demand refreshes are rate-limited to it. After failures the gap grows
	// (doubling per failure) up to Period.
	MinInterval time.Duration
	// MaxWait is how long Fresh waits for the rate limit to allow a list
	// before it answers with what it has (default 2×MinInterval).
	MaxWait time.Duration
	// ListTimeout bounds one List call including its retries (default 45s).
	ListTimeout time.Duration
	// MaxPods bounds the pods kept (default 5000): a node runs at most a
	// few hundred; retained pods beyond the bound go first, oldest first.
	MaxPods int
	// Now is the clock (tests).
	Now func() time.Time
}

func (o *CacheOptions) setDefaults() {
	if o.Retention <= 0 {
		o.Retention = time.Hour
	}
	if o.Period <= 0 {
		o.Period = 30 * time.Second
	}
	if o.MinInterval <= 0 {
		o.MinInterval = time.Second
	}
	if o.MaxWait <= 0 {
		o.MaxWait = 2 * o.MinInterval
	}
	if o.ListTimeout <= 0 {
		o.ListTimeout = 45 * time.Second
	}
	if o.MaxPods <= 0 {
		o.MaxPods = 5000
	}
	if o.Now == nil {
		o.Now = time.Now
	}
}

// ErrRateLimited is returned by Fresh when no list was allowed within
// MaxWait and no earlier error explains why the data is old.
var ErrRateLimited = errors.New("pod list refresh rate-limited")

// Cache is the node's pod list, kept fresh. Create it with NewCache, run
// Run in a goroutine, read with Snapshot or Fresh, stop with Close. Safe for
// concurrent use.
type Cache struct {
	src  Source
	opts CacheOptions
	log  *slog.Logger
	m    *cacheMetrics

	base   context.Context // lists run under it; Close cancels it
	cancel context.CancelFunc
	kick   chan struct{}

	mu       sync.Mutex
	snap     *Snapshot
	inflight *listCall
	next     time.Time // no list starts before this
	failures int       // consecutive failed lists
	wasDown  bool      // the last list failed (log transitions once)
}

// listCall is one List in flight; waiters block on done.
type listCall struct {
	started time.Time
	done    chan struct{}
	snap    *Snapshot
	err     error
}

// NewCache builds a cache over src. Nothing is listed until Run or Fresh.
func NewCache(src Source, opts CacheOptions, log *slog.Logger, reg prometheus.Registerer) *Cache {
	opts.setDefaults()
	base, cancel := context.WithCancel(context.Background())
	return &Cache{
		src: src, opts: opts, log: log, m: newCacheMetrics(reg),
		base: base, cancel: cancel, kick: make(chan struct{}, 1),
		snap: &Snapshot{},
	}
}

// Close stops lists in flight; Run returns too.
func (c *Cache) Close() { c.cancel() }

// Run lists at once, then every Period and whenever Kick asks, until ctx
// is done or Close is called.
func (c *Cache) Run(ctx context.Context) {
	t := time.NewTicker(c.opts.Period)
	defer t.Stop()
	for {
		_, _ = c.Fresh(ctx, c.opts.Now())
		select {
		case <-ctx.Done():
			return
		case <-c.base.Done():
			return
		case <-t.C:
		case <-c.kick:
		}
	}
}

// Kick asks Run for a refresh without waiting for it (a dump just
// arrived). Rate limiting still applies.
func (c *Cache) Kick() {
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

// Snapshot returns the current pod list without refreshing it.
func (c *Cache) Snapshot() *Snapshot {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.snap
}

// Fresh returns a snapshot listed no earlier than since, listing if
// needed. Lists are rate-limited: Fresh waits up to MaxWait for its turn and
// shares a list already in flight that started at or after since. When no
// fresh list can be had (the source fails, ctx ends, the rate limit) it
// returns the snapshot it has, which may be empty, and the reason.
func (c *Cache) Fresh(ctx context.Context, since time.Time) (*Snapshot, error) {
	waited := false
	for {
		c.mu.Lock()
		s := c.snap
		if s.Loaded() && !s.ListedAt.Before(since) {
			c.mu.Unlock()
			return s, nil
		}
		if call := c.inflight; call != nil {
			c.mu.Unlock()
			select {
			case <-call.done:
			case <-ctx.Done():
				return s, fmt.Errorf("wait for pod list: %w", ctx.Err())
			}
			if !call.started.Before(since) {
				return call.snap, call.err
			}
			continue
		}
		now := c.opts.Now()
		if wait := c.next.Sub(now); wait > 0 {
			c.mu.Unlock()
			if waited || wait > c.opts.MaxWait {
				if s.Err != nil {
					return s, s.Err
				}
				return s, ErrRateLimited
			}
			t := time.NewTimer(wait)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				return s, fmt.Errorf("wait for pod list: %w", ctx.Err())
			}
			waited = true
			continue
		}
		call := &listCall{started: now, done: make(chan struct{})}
		c.inflight = call
		c.next = now.Add(c.opts.MinInterval)
		c.mu.Unlock()
		// The list runs on its own: a caller that gives up does not
		// cancel it for the others waiting.
		go c.list(call)
	}
}

// list runs one List and publishes what it got.
func (c *Cache) list(call *listCall) {
	ctx, cancel := context.WithTimeout(c.base, c.opts.ListTimeout)
	defer cancel()
	items, err := c.src.List(ctx)
	now := c.opts.Now()

	c.mu.Lock()
	defer c.mu.Unlock()
	defer close(call.done)
	c.inflight = nil
	old := c.snap
	if err != nil {
		reason := FailureReason(err)
		if reason == failureCanceled {
			call.snap, call.err = old, err
			return
		}
		c.failures++
		backoff := min(c.opts.MinInterval<<min(c.failures, 16), c.opts.Period)
		c.next = call.started.Add(backoff)
		c.m.requests.WithLabelValues("failure").Inc()
		c.m.failures.WithLabelValues(reason).Inc()
		// The pods known so far stay usable; only the error is new.
		s := *old
		s.Err = err
		c.snap = &s
		call.snap, call.err = c.snap, err
		if !c.wasDown {
			c.log.Warn("pod list unavailable; attribution uses what is cached", "source", c.src.String(), "reason", reason, "err", err)
		} else {
			c.log.Debug("pod list still unavailable", "source", c.src.String(), "reason", reason, "err", err)
		}
		c.wasDown = true
		return
	}
	c.failures = 0
	c.m.requests.WithLabelValues("success").Inc()
	c.m.lastSuccess.Set(float64(now.Unix()))
	if c.wasDown || !old.Loaded() {
		c.log.Info("pod list loaded", "source", c.src.String(), "pods", len(items))
	}
	c.wasDown = false
	c.snap = c.merge(old, items, call.started, now)
	call.snap = c.snap
	c.m.pods.Set(float64(len(c.snap.pods)))
}

// merge builds the next snapshot: the listed pods, with what earlier lists
// knew about them, and the pods no longer listed until their retention
// ends.
func (c *Cache) merge(old *Snapshot, items []corev1.Pod, listedAt, now time.Time) *Snapshot {
	cutoff := now.Add(-c.opts.Retention)
	next := make([]*Pod, 0, len(items)+len(old.pods))
	listed := make(map[string]bool, len(items))
	for i := range items {
		p := FromCore(&items[i], now)
		if listed[p.UID] {
			continue
		}
		listed[p.UID] = true
		if prev, ok := old.byUID[p.UID]; ok && prev.UID == p.UID {
			p.merge(prev, cutoff)
		}
		next = append(next, p)
	}
	var retained []*Pod
	for _, prev := range old.pods {
		if listed[prev.UID] {
			continue
		}
		gone := prev.Gone
		if gone.IsZero() {
			gone = now
			c.log.Debug("pod left the list; remembering it", "namespace", prev.Namespace, "pod", prev.Name, "uid", prev.UID)
		}
		if gone.Before(cutoff) {
			continue
		}
		if gone.Equal(prev.Gone) {
			retained = append(retained, prev) // unchanged: share it
			continue
		}
		cp := *prev
		cp.Gone = gone
		retained = append(retained, &cp)
	}
	if over := len(next) + len(retained) - c.opts.MaxPods; over > 0 {
		sort.Slice(retained, func(i, j int) bool { return retained[i].Gone.Before(retained[j].Gone) })
		retained = retained[min(over, len(retained)):]
	}
	return newSnapshot(append(next, retained...), listedAt)
}

// cacheMetrics are the pod source and cache metrics. Safe for concurrent use.
type cacheMetrics struct {
	requests    *prometheus.CounterVec
	failures    *prometheus.CounterVec
	pods        prometheus.Gauge
	lastSuccess prometheus.Gauge
}

func newCacheMetrics(reg prometheus.Registerer) *cacheMetrics {
	f := promauto.With(reg)
	m := &cacheMetrics{
		requests: f.NewCounterVec(prometheus.CounterOpts{
			Name: "crashdump_pod_source_requests_total",
			Help: "Pod list requests to the pod source (kubelet or API server) by result (success, failure), retries included in one request.",
		}, []string{"result"}),
		failures: f.NewCounterVec(prometheus.CounterOpts{
			Name: "crashdump_pod_source_failures_total",
			Help: "Failed pod list requests by reason (unreachable, unauthorized, server_error, bad_response).",
		}, []string{"reason"}),
		pods: f.NewGauge(prometheus.GaugeOpts{
			Name: "crashdump_pod_cache_pods",
			Help: "Pods known to the attribution cache: listed ones and those remembered after they left the list.",
		}),
		lastSuccess: f.NewGauge(prometheus.GaugeOpts{
			Name: "crashdump_pod_source_last_success_timestamp_seconds",
			Help: "When the pod list was last loaded (Unix time); 0 if never.",
		}),
	}
	for _, r := range []string{"success", "failure"} {
		m.requests.WithLabelValues(r)
	}
	for _, r := range failureReasons {
		m.failures.WithLabelValues(r)
	}
	return m
}
