// Package events reports verified uploads as Kubernetes Events on the pod
// that crashed, once a dump's object and manifest are stored (the data flow:
// docs/architecture.md), so that `kubectl describe pod` shows that the pod
// left a dump and where it is.
//
// Events are created through the events.k8s.io/v1 API with package kubeapi
// (reason CrashDumpUploaded, type Warning, action Upload, reporting
// controller crashdump.io/agent). The API server stores them as the same
// objects it serves under core/v1, which is what `kubectl describe pod`
// lists: the note appears as the message, the reporting controller and
// instance as "From". RBAC: create events in group events.k8s.io.
//
// Posting never blocks an upload: DumpUploaded only queues the event
// (bounded; when full the event is dropped, logged and counted), one
// goroutine posts the queue under a token-bucket rate limit, and failures
// are logged and counted in crashdump_events_total{result}. Nothing secret
// goes into an event: the object URL, the size, the dump kind and the
// managed exception type.
package events

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"
	"unicode"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/flowcontrol"

	"github.com/crashdump-io/crashdump/collector/kubeapi"
	"github.com/crashdump-io/crashdump/uploader/manifest"
)

// What the events say.
const (
	Reason     = "CrashDumpUploaded"
	Action     = "Upload"
	Controller = "crashdump.io/agent"
)

// Results of the crashdump_events_total counter.
const (
	ResultPosted  = "posted"  // created in the API server
	ResultFailed  = "failed"  // the API server refused or was unreachable
	ResultDropped = "dropped" // queue full, or shutting down
	ResultSkipped = "skipped" // no pod to post on (the dump was not attributed)
)

// Limits of the events.k8s.io/v1 API.
const (
	maxNote     = 1024
	maxInstance = 128
	maxName     = 253
)

// Options tune a Notifier. Zero values take the defaults.
type Options struct {
	// Node is this node's name; it makes the reporting instance.
	Node string
	// QueueSize bounds the events waiting to be posted (default 256).
	QueueSize int
	// QPS and Burst rate-limit posting (default 2 per second, burst 20):
	// a crash-looping fleet must not flood the API server.
	QPS   float32
	Burst int
	// Timeout bounds one post (default 10s).
	Timeout time.Duration
	// Now is the clock (tests).
	Now func() time.Time
}

// Notifier posts events. It implements collector.Notifier and is safe for
// concurrent use. Close it to stop.
type Notifier struct {
	client   *kubeapi.Client
	opts     Options
	instance string
	log      *slog.Logger
	total    *prometheus.CounterVec
	limiter  flowcontrol.RateLimiter

	mu     sync.Mutex
	closed bool
	queue  chan *eventsv1.Event
	stop   context.CancelFunc
	done   chan struct{}
}

// New starts a Notifier posting through client.
func New(client *kubeapi.Client, opts Options, log *slog.Logger, reg prometheus.Registerer) *Notifier {
	if opts.QueueSize <= 0 {
		opts.QueueSize = 256
	}
	if opts.QPS <= 0 {
		opts.QPS = 2
	}
	if opts.Burst <= 0 {
		opts.Burst = 20
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 10 * time.Second
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	instance := "crashdump-agent"
	if opts.Node != "" {
		instance += "-" + opts.Node
	}
	n := &Notifier{
		client: client, opts: opts, log: log,
		instance: truncate(instance, maxInstance),
		total:    NewMetrics(reg),
		limiter:  flowcontrol.NewTokenBucketRateLimiter(opts.QPS, opts.Burst),
		queue:    make(chan *eventsv1.Event, opts.QueueSize),
		done:     make(chan struct{}),
	}
	ctx, cancel := context.WithCancel(context.Background())
	n.stop = cancel
	go n.run(ctx)
	return n
}

// NewMetrics registers crashdump_events_total with its results at zero.
// The wiring calls it also when events are disabled, so the series exist.
func NewMetrics(reg prometheus.Registerer) *prometheus.CounterVec {
	c := promauto.With(reg).NewCounterVec(prometheus.CounterOpts{
		Name: "crashdump_events_total",
		Help: "Kubernetes Events about uploaded dumps by result (posted, failed, dropped, skipped).",
	}, []string{"result"})
	for _, r := range []string{ResultPosted, ResultFailed, ResultDropped, ResultSkipped} {
		c.WithLabelValues(r)
	}
	return c
}

// DumpUploaded queues an event for a verified upload; it never blocks.
func (n *Notifier) DumpUploaded(_ context.Context, m *manifest.Manifest) {
	if m.Pod == nil || m.Pod.Namespace == "" || m.Pod.Name == "" {
		n.total.WithLabelValues(ResultSkipped).Inc()
		return
	}
	ev := n.event(m)
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		n.total.WithLabelValues(ResultDropped).Inc()
		return
	}
	select {
	case n.queue <- ev:
	default:
		n.total.WithLabelValues(ResultDropped).Inc()
		n.log.Warn("event queue full; event dropped", "namespace", m.Pod.Namespace, "pod", m.Pod.Name, "key", m.Object.Key)
	}
}

// Close posts what is queued for at most grace, then stops. Events still
// queued are dropped and counted.
func (n *Notifier) Close(grace time.Duration) {
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return
	}
	n.closed = true
	close(n.queue)
	n.mu.Unlock()
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-n.done:
	case <-t.C:
		n.stop()
		<-n.done
	}
}

func (n *Notifier) run(ctx context.Context) {
	defer close(n.done)
	for ev := range n.queue {
		if ctx.Err() != nil {
			n.total.WithLabelValues(ResultDropped).Inc()
			continue
		}
		if err := n.limiter.Wait(ctx); err != nil {
			n.total.WithLabelValues(ResultDropped).Inc()
			continue
		}
		n.post(ctx, ev)
	}
}

func (n *Notifier) post(ctx context.Context, ev *eventsv1.Event) {
	ctx, cancel := context.WithTimeout(ctx, n.opts.Timeout)
	defer cancel()
	_, err := n.client.CreateEvent(ctx, ev)
	log := n.log.With("namespace", ev.Regarding.Namespace, "pod", ev.Regarding.Name)
	if err != nil {
		n.total.WithLabelValues(ResultFailed).Inc()
		log.Warn("post Kubernetes event", "reason", Reason, "err", fmt.Errorf("create event %s/%s: %w", ev.Namespace, ev.Name, err))
		return
	}
	n.total.WithLabelValues(ResultPosted).Inc()
	log.Debug("posted Kubernetes event", "reason", Reason, "event", ev.Name)
}

// event builds the event for m.
func (n *Notifier) event(m *manifest.Manifest) *eventsv1.Event {
	now := n.opts.Now()
	p := m.Pod
	return &eventsv1.Event{
		ObjectMeta: metav1.ObjectMeta{
			// As client-go's recorders name them: the object's name and a
			// unique suffix.
			Name:      strings.TrimRight(truncate(p.Name, maxName-17), "-.") + "." + fmt.Sprintf("%016x", now.UnixNano()),
			Namespace: p.Namespace,
		},
		EventTime:           metav1.NewMicroTime(now),
		ReportingController: Controller,
		ReportingInstance:   n.instance,
		Action:              Action,
		Reason:              Reason,
		Type:                corev1.EventTypeWarning,
		Regarding: corev1.ObjectReference{
			Kind: "Pod", APIVersion: "v1", Namespace: p.Namespace, Name: p.Name, UID: types.UID(p.UID),
		},
		Note: Note(m),
	}
}

// Note is the event's message: where the dump is, how big, what kind, and
// the managed exception when a crash report came with it.
func Note(m *manifest.Manifest) string {
	var b strings.Builder
	b.WriteString("Crash dump")
	if m.Pod != nil && m.Pod.Container != "" {
		fmt.Fprintf(&b, " of container %s", m.Pod.Container)
	}
	where := m.Object.URL
	if where == "" {
		where = m.Object.Key
	}
	fmt.Fprintf(&b, " uploaded to %s (%s", where, humanBytes(m.File.Size))
	if m.Kind != "" {
		fmt.Fprintf(&b, ", %s", m.Kind)
	}
	if m.Incomplete {
		b.WriteString(", incomplete")
	}
	b.WriteString(")")
	if cr := m.CrashReport; cr != nil && cr.ExceptionType != "" {
		// The exception type comes from a file the pod wrote.
		fmt.Fprintf(&b, "; exception %s", clean(cr.ExceptionType, 200))
	}
	if m.Core != nil && m.Core.SignalName != "" {
		fmt.Fprintf(&b, "; signal %s", clean(m.Core.SignalName, 32))
	}
	if p := m.Pod; p != nil && (p.Termination != nil || p.RestartCount != nil) {
		// "exit 139 SIGSEGV after 2 restarts": how the crashed instance
		// ended, and which instance it was.
		b.WriteString(";")
		if t := p.Termination; t != nil {
			fmt.Fprintf(&b, " exit %d", t.ExitCode)
			if t.SignalName != "" {
				fmt.Fprintf(&b, " %s", clean(t.SignalName, 32))
			}
		}
		if rc := p.RestartCount; rc != nil {
			switch *rc {
			case 0:
				b.WriteString(" before any restart")
			case 1:
				b.WriteString(" after 1 restart")
			default:
				fmt.Fprintf(&b, " after %d restarts", *rc)
			}
		}
	}
	return truncate(b.String(), maxNote)
}

func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// clean keeps a string from a dump on one printable line.
func clean(s string, max int) string {
	s = strings.Map(func(r rune) rune {
		if unicode.IsPrint(r) {
			return r
		}
		return ' '
	}, s)
	return truncate(strings.TrimSpace(s), max)
}

// truncate cuts s to at most max bytes on a rune boundary.
func truncate(s string, max int) string {
	if len(s) <= max {
		return s
	}
	cut := max
	for cut > 0 && !utf8RuneStart(s[cut]) {
		cut--
	}
	return s[:cut]
}

func utf8RuneStart(b byte) bool { return b&0xC0 != 0x80 }
