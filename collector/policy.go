package collector

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"sort"
	"strconv"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/crashdump-io/crashdump/uploader/manifest"
)

// Pod annotations (and, with the API-server pod source, namespace labels of
// the same names as namespace-wide defaults) that steer collection. A pod's
// annotation wins over its namespace's label.
const (
	// AnnotationCollect: "false" skips the pod's dumps; "true" selects them
	// when the agent runs with --collect-annotated-only.
	AnnotationCollect = "crashdump.io/collect"
	// AnnotationCompression: "zstd" or "none".
	AnnotationCompression = "crashdump.io/compression"
	// AnnotationMaxPerHour overrides --max-dumps-per-window for the pod's
	// containers ("0" disables the limit).
	AnnotationMaxPerHour = "crashdump.io/max-per-hour"
	// LabelMaxDumpBytes, a namespace label only, overrides
	// --max-dump-bytes-per-namespace for that namespace: a Kubernetes
	// quantity ("2Gi"), "0" for no limit. A pod annotation of the same
	// name is ignored: a tenant must not raise its own budget.
	LabelMaxDumpBytes = "crashdump.io/max-dump-bytes"
)

// namespaceBudget reads LabelMaxDumpBytes from the namespace's labels:
// the budget, -1 for none ("0"), 0 when not set or not valid.
func (a *Agent) namespaceBudget(att Attribution, path string) int64 {
	v, ok := att.NamespaceLabels[LabelMaxDumpBytes]
	if !ok {
		return 0
	}
	q, err := resource.ParseQuantity(v)
	if err != nil || q.Sign() < 0 {
		a.log.Warn("ignoring bad namespace budget", "path", path, "source", "namespace label "+LabelMaxDumpBytes, "value", v)
		return 0
	}
	if q.IsZero() {
		return -1
	}
	return q.Value()
}

// What the agent does with a settled dump.
const (
	actionUpload       = "upload"
	actionManifestOnly = "manifest-only" // rate limited: the crash stays visible
	actionSkip         = "skip"          // not selected
	actionRefused      = "refused"       // a kernel core the handler refused (disk): manifest only
)

// Policy is the collection policy.
type Policy struct {
	// MaxPerWindow is how many dumps of one container (one pod when the
	// container is unknown) are uploaded per Window; later ones get a
	// manifest-only record. 0 means no limit.
	MaxPerWindow int
	Window       time.Duration
	// AnnotatedOnly collects only pods annotated crashdump.io/collect: "true".
	AnnotatedOnly bool
}

// decision is the policy's verdict on one dump.
type decision struct {
	action      string
	reason      string
	compression string // "" keeps the agent's setting
}

// setting returns a pod annotation, else the namespace label, and where it
// came from.
func setting(att Attribution, key string) (value, source string, ok bool) {
	if v, ok := att.Annotations[key]; ok {
		return v, "pod annotation " + key, true
	}
	if v, ok := att.NamespaceLabels[key]; ok {
		return v, "namespace label " + key, true
	}
	return "", "", false
}

// stormKey names the unit of crash-loop limiting: the container, else the
// pod, else the directory the dump landed in.
func stormKey(m *manifest.Manifest) string {
	if p := m.Pod; p != nil && p.Name != "" {
		if p.Container != "" {
			return p.Namespace + "/" + p.Name + "/" + p.Container
		}
		return p.Namespace + "/" + p.Name
	}
	return "dir:" + path.Dir(m.File.Path)
}

// decide applies the policy. It consults (and updates) the storm limiter,
// so it is called once per dump; the verdict is kept in the plan.
func (a *Agent) decide(att Attribution, m *manifest.Manifest, now time.Time) decision {
	var d decision
	if v, src, ok := setting(att, AnnotationCompression); ok {
		switch v {
		case manifest.CompressionZstd, manifest.CompressionNone:
			d.compression = v
		default:
			a.log.Warn("ignoring bad compression setting", "path", m.File.Path, "source", src, "value", v)
		}
	}
	collect, src, _ := setting(att, AnnotationCollect)
	switch {
	case collect == "false":
		return decision{action: actionSkip, reason: src + "=false"}
	case a.policy.AnnotatedOnly && collect != "true":
		if m.Pod == nil {
			return decision{action: actionSkip, reason: "not attributed to a pod (--collect-annotated-only)"}
		}
		return decision{action: actionSkip, reason: "pod not annotated " + AnnotationCollect + `="true" (--collect-annotated-only)`}
	}
	limit := a.policy.MaxPerWindow
	if v, src, ok := setting(att, AnnotationMaxPerHour); ok {
		if n, err := strconv.Atoi(v); err == nil && n >= 0 {
			limit = n
		} else {
			a.log.Warn("ignoring bad rate limit setting", "path", m.File.Path, "source", src, "value", v)
		}
	}
	if limit > 0 {
		key := stormKey(m)
		if !a.storms.allow(key, limit, now) {
			d.action = actionManifestOnly
			d.reason = fmt.Sprintf("more than %d dumps of %s within %s", limit, key, a.policy.Window)
			return d
		}
	}
	d.action = actionUpload
	return d
}

// maxStormKeys bounds the limiter's memory: a node does not run more
// containers than this.
const maxStormKeys = 10000

// stormLimiter remembers when each container's recent dumps were accepted,
// in <state-dir>/ratelimit.json, so the limit holds across restarts. Safe
// for concurrent use.
type stormLimiter struct {
	mu     sync.Mutex
	file   string
	window time.Duration
	seen   map[string][]time.Time
}

func loadStormLimiter(file string, window time.Duration) (*stormLimiter, error) {
	l := &stormLimiter{file: file, window: window, seen: map[string][]time.Time{}}
	b, err := os.ReadFile(file)
	if errors.Is(err, fs.ErrNotExist) {
		return l, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read rate limit state: %w", err)
	}
	if err := json.Unmarshal(b, &l.seen); err != nil {
		// A torn write after a crash: start over rather than refuse to run.
		l.seen = map[string][]time.Time{}
	}
	return l, nil
}

// allow reports whether one more dump of key fits in the window, and
// records it if so.
func (l *stormLimiter) allow(key string, limit int, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.prune(now)
	if len(l.seen[key]) >= limit {
		return false
	}
	l.seen[key] = append(l.seen[key], now)
	if len(l.seen) > maxStormKeys {
		l.dropOldest()
	}
	l.save()
	return true
}

// full reports whether key has used up limit in the window, recording
// nothing.
func (l *stormLimiter) full(key string, limit int, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.prune(now)
	return len(l.seen[key]) >= limit
}

func (l *stormLimiter) prune(now time.Time) {
	for k, ts := range l.seen {
		i := sort.Search(len(ts), func(i int) bool { return now.Sub(ts[i]) < l.window })
		if i == len(ts) {
			delete(l.seen, k)
		} else if i > 0 {
			l.seen[k] = ts[i:]
		}
	}
}

func (l *stormLimiter) dropOldest() {
	var oldest string
	var at time.Time
	for k, ts := range l.seen {
		if last := ts[len(ts)-1]; oldest == "" || last.Before(at) {
			oldest, at = k, last
		}
	}
	delete(l.seen, oldest)
}

// save writes the state atomically; failures only weaken the limit across
// a restart, so they are not fatal.
func (l *stormLimiter) save() {
	b, err := json.Marshal(l.seen)
	if err != nil {
		return
	}
	tmp := l.file + ".tmp"
	if os.WriteFile(tmp, b, 0o600) == nil {
		_ = os.Rename(tmp, l.file)
	}
}
