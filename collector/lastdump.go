package collector

import (
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/crashdump-io/crashdump/uploader/manifest"
)

// Bounds of crashdump_last_dump_timestamp_seconds: the only agent metric
// with labels naming an app's pod, so its cardinality is capped here.
const (
	lastDumpMaxSeries = 32
	lastDumpTTL       = time.Hour
)

// dumpOwner is one series of crashdump_last_dump_timestamp_seconds: the
// container a dump was attributed to, or a namespace alone, or nothing.
type dumpOwner struct{ namespace, pod, container string }

// lastDumps keeps crashdump_last_dump_timestamp_seconds{dump_namespace,
// dump_pod, dump_container}: when this agent last attributed a dump of each
// container. At most lastDumpMaxSeries series (a new container deletes the
// series with the oldest timestamp) and none older than lastDumpTTL (checked
// on every set and by the scheduler's housekeeping). The series are in memory
// only: a restarted agent starts with none. Safe for concurrent use.
type lastDumps struct {
	gauge *prometheus.GaugeVec
	now   func() time.Time // time.Now; tests set a clock

	mu   sync.Mutex
	seen map[dumpOwner]time.Time // the series and the time each holds
}

func newLastDumps(g *prometheus.GaugeVec) *lastDumps {
	return &lastDumps{gauge: g, now: time.Now, seen: map[dumpOwner]time.Time{}}
}

// ownerOf names the series of a dump attributed to pod (nil: not
// attributed). A namespace-only attribution (a per-namespace directory)
// keeps its namespace. Label values must be UTF-8: a resolver's strings
// are made so rather than panic in the registry.
func ownerOf(pod *manifest.Pod) dumpOwner {
	if pod == nil {
		return dumpOwner{}
	}
	v := func(s string) string { return strings.ToValidUTF8(s, "\uFFFD") }
	return dumpOwner{namespace: v(pod.Namespace), pod: v(pod.Name), container: v(pod.Container)}
}

// set records a dump of pod (nil: not attributed) at the current time.
func (l *lastDumps) set(pod *manifest.Pod) {
	o := ownerOf(pod)
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.expireLocked(now)
	if _, ok := l.seen[o]; !ok {
		for len(l.seen) >= lastDumpMaxSeries {
			l.deleteLocked(l.oldestLocked())
		}
	}
	l.seen[o] = now
	l.gauge.WithLabelValues(o.namespace, o.pod, o.container).Set(float64(now.UnixNano()) / 1e9)
}

// expire deletes the series older than lastDumpTTL.
func (l *lastDumps) expire() {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.expireLocked(now)
}

func (l *lastDumps) expireLocked(now time.Time) {
	for o, t := range l.seen {
		if now.Sub(t) >= lastDumpTTL {
			l.deleteLocked(o)
		}
	}
}

func (l *lastDumps) oldestLocked() dumpOwner {
	var oldest dumpOwner
	var at time.Time
	first := true
	for o, t := range l.seen {
		if first || t.Before(at) {
			oldest, at, first = o, t, false
		}
	}
	return oldest
}

func (l *lastDumps) deleteLocked(o dumpOwner) {
	delete(l.seen, o)
	l.gauge.DeleteLabelValues(o.namespace, o.pod, o.container)
}
