package pods

import (
	"context"
	"log/slog"
	"maps"
	"sync"
	"time"

	"github.com/crashdump-io/crashdump/collector/kubeapi"
)

// NamespaceLabels answers a namespace's labels from the API server, cached
// for a while: namespace-wide collection defaults and routing by namespace
// selector need them, and they change rarely. Safe for concurrent use.
type NamespaceLabels struct {
	client *kubeapi.Client
	ttl    time.Duration
	log    *slog.Logger
	mu     sync.Mutex
	cache  map[string]nsEntry
}

type nsEntry struct {
	labels map[string]string
	at     time.Time
}

// NewNamespaceLabels builds the lookup (ttl default 1 min).
func NewNamespaceLabels(c *kubeapi.Client, ttl time.Duration, log *slog.Logger) *NamespaceLabels {
	if ttl <= 0 {
		ttl = time.Minute
	}
	return &NamespaceLabels{client: c, ttl: ttl, log: log, cache: map[string]nsEntry{}}
}

// Labels returns ns's labels, or nil when they cannot be read (then
// namespace defaults and selector routes simply do not apply).
func (n *NamespaceLabels) Labels(ctx context.Context, ns string) map[string]string {
	n.mu.Lock()
	e, ok := n.cache[ns]
	n.mu.Unlock()
	if ok && time.Since(e.at) < n.ttl {
		return maps.Clone(e.labels)
	}
	obj, err := n.client.GetNamespace(ctx, ns)
	if err != nil {
		n.log.Warn("read namespace labels", "namespace", ns, "err", err)
		if ok {
			return maps.Clone(e.labels) // stale beats nothing
		}
		return nil
	}
	labels := maps.Clone(obj.Labels)
	if labels == nil {
		labels = map[string]string{}
	}
	n.mu.Lock()
	n.cache[ns] = nsEntry{labels: labels, at: time.Now()}
	n.mu.Unlock()
	return maps.Clone(labels)
}
