package identify

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"path"
	"sort"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/crashdump-io/crashdump/collector"
	"github.com/crashdump-io/crashdump/collector/pods"
	"github.com/crashdump-io/crashdump/uploader/manifest"
)

// Lister is the pod list the Resolver reads: *pods.Cache.
type Lister interface {
	// Snapshot is the list as it is.
	Snapshot() *pods.Snapshot
	// Fresh is a list taken no earlier than since (rate-limited), or the
	// list as it is and why it could not be refreshed.
	Fresh(ctx context.Context, since time.Time) (*pods.Snapshot, error)
	// Kick asks for a refresh without waiting.
	Kick()
}

// Options tune a Resolver. Zero values take the defaults.
type Options struct {
	// Timeout bounds how long one Resolve waits for the pod list
	// (default 20s); after it the cached list is used.
	Timeout time.Duration
	// MaxCandidates bounds the candidate list of an ambiguous answer
	// (default 10).
	MaxCandidates int
	// CreationSlack is how much later than the dump's claim a pod may have
	// been created and still count as its writer: creation timestamps come
	// from the API server's clock and have second precision (default 5s).
	CreationSlack time.Duration
	// Now is the clock (tests).
	Now func() time.Time
	// TerminationWait bounds how long a writer-pid answer waits for the
	// kubelet to report how the writer's container instance ended
	// (default 10s; negative: do not wait). The container of a crashed
	// PID 1 exits right after its dump is written, and the kubelet reports
	// that within a second or two.
	TerminationWait time.Duration
	// NamespaceLabels, when set (API-server pod source), gives the labels of
	// an attributed dump's namespace: namespace-wide collection defaults and
	// routing by namespace selector.
	NamespaceLabels func(ctx context.Context, ns string) map[string]string
}

// Resolver attributes dumps to pods. Safe for concurrent use.
type Resolver struct {
	pods Lister // nil: no pod list (--pod-source none)
	opts Options
	log  *slog.Logger
}

// New returns a Resolver reading l; l nil means there is no pod list and
// only the path can name a namespace and pod.
func New(l Lister, opts Options, log *slog.Logger) *Resolver {
	if opts.Timeout <= 0 {
		opts.Timeout = 20 * time.Second
	}
	if opts.MaxCandidates <= 0 {
		opts.MaxCandidates = 10
	}
	if opts.CreationSlack <= 0 {
		opts.CreationSlack = 5 * time.Second
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.TerminationWait == 0 {
		opts.TerminationWait = 10 * time.Second
	}
	return &Resolver{pods: l, opts: opts, log: log}
}

// DumpClaimed asks for a pod list refresh as soon as a dump is claimed, so
// that a pod deleted while its dump settles has been seen. It does not
// wait.
func (r *Resolver) DumpClaimed(collector.Evidence) {
	if r.pods != nil {
		r.pods.Kick()
	}
}

// Resolve implements collector.PodResolver.
func (r *Resolver) Resolve(ctx context.Context, ev collector.Evidence) collector.Attribution {
	ctx, cancel := context.WithTimeout(ctx, r.opts.Timeout)
	defer cancel()
	s := &resolution{r: r, ev: ev}
	if r.pods != nil {
		// A list taken after the claim knows every pod that could have
		// written the dump, and remembers those deleted since.
		s.snap, s.listErr = r.pods.Fresh(ctx, ev.ClaimedAt)
	}
	a := s.resolve(ctx)
	if a.Method == "" {
		a.Method = manifest.MethodNone
	}
	switch {
	case a.Method == manifest.MethodNone:
		a.Candidates = s.rank(ctx, a.Candidates, "")
		a.Reason = s.reason()
	case a.Pod != nil && a.Pod.Name == "" && a.Pod.Namespace != "":
		a.Candidates = s.rank(ctx, a.Candidates, a.Pod.Namespace)
		a.Reason = s.reason()
	}
	s.policy(ctx, &a)
	log := r.log.With("path", ev.Path, "method", a.Method)
	if a.Pod != nil {
		log = log.With("namespace", a.Pod.Namespace, "pod", a.Pod.Name, "container", a.Pod.Container)
	}
	switch {
	case s.contradiction:
		log.Warn("dump path or name contradicts the writer's pod", "reason", a.Reason)
	case a.Method == manifest.MethodNone:
		log.Info("dump not attributed to a pod", "reason", a.Reason, "candidates", len(a.Candidates))
	default:
		log.Debug("dump attributed", "reason", a.Reason)
	}
	return a
}

// policy adds what steers collection: the pod's crashdump.io/* annotations
// and its namespace's labels.
func (s *resolution) policy(ctx context.Context, a *collector.Attribution) {
	if a.Pod == nil || a.Pod.Namespace == "" {
		return
	}
	if s.snap != nil && a.Pod.Name != "" {
		var p *pods.Pod
		if a.Pod.UID != "" {
			p, _ = s.snap.ByUID(a.Pod.UID)
		} else if ps := s.snap.ByName(a.Pod.Namespace, a.Pod.Name); len(ps) == 1 {
			p = ps[0]
		}
		if p != nil && len(p.Policy) > 0 {
			a.Annotations = maps.Clone(p.Policy)
		}
	}
	if f := s.r.opts.NamespaceLabels; f != nil {
		a.NamespaceLabels = f(ctx, a.Pod.Namespace)
	}
}

// resolution is the state of one Resolve.
type resolution struct {
	r       *Resolver
	ev      collector.Evidence
	snap    *pods.Snapshot // nil without a pod list
	listErr error
	// refreshed is set once the on-demand refresh for an unknown writer
	// has been made.
	refreshed     bool
	listNoted     bool // "pod list unavailable" is in the notes
	notes         []string
	contradiction bool
}

func (s *resolution) note(format string, args ...any) {
	s.notes = append(s.notes, fmt.Sprintf(format, args...))
}

func (s *resolution) reason() string { return strings.Join(s.notes, "; ") }

// haveList reports whether a pod list is there to check against.
func (s *resolution) haveList() bool { return s.snap.Loaded() }

func (s *resolution) resolve(ctx context.Context) collector.Attribution {
	w := s.writers(ctx)
	if w.answer != nil {
		return *w.answer
	}
	if s.ev.Kernel != nil {
		// The kernel named the process; its file name and path are the
		// agent's own: nothing else may name a pod.
		if s.r.pods != nil && !s.haveList() && !s.listNoted {
			s.note("pod list unavailable: %v", s.listErr)
		}
		k := *s.ev.Kernel
		return collector.Attribution{Method: manifest.MethodNone, Reason: s.reason(), Writer: &k}
	}
	if s.r.pods != nil && !s.haveList() && !s.listNoted {
		s.note("pod list unavailable: %v", s.listErr)
	}
	p := s.path()
	if p.name != "" {
		a, ok := s.checkWriter(w, p.pod, manifest.MethodPath, p.ns, p.name)
		if ok {
			a.Pod = s.block(p.pod, p.ns, p.name)
			a.Reason = s.reason()
		}
		return a
	}
	h := s.hostname(p.ns)
	if h.name != "" {
		a, ok := s.checkWriter(w, h.pod, manifest.MethodHostname, h.ns, h.name)
		if ok {
			a.Pod = s.block(h.pod, h.ns, h.name)
			a.Reason = s.reason()
		}
		return a
	}
	if p.ns != "" {
		// Namespace-only attribution: the pod stays unknown.
		a, ok := s.checkWriter(w, nil, manifest.MethodPath, p.ns, "")
		if ok {
			s.note("namespace from the path; pod not determined")
			a.Pod = &manifest.Pod{Namespace: p.ns}
			a.Candidates = s.refs(orPods(h.candidates, s.snap.InNamespace(p.ns)))
			a.Reason = s.reason()
		}
		return a
	}
	return collector.Attribution{Method: manifest.MethodNone, Reason: s.reason(), Candidates: s.refs(h.candidates)}
}

func orPods(a, b []*pods.Pod) []*pods.Pod {
	if len(a) > 0 {
		return a
	}
	return b
}

// checkWriter accepts a path or hostname answer unless writer evidence
// that could not be resolved contradicts it.
func (s *resolution) checkWriter(w writerResult, p *pods.Pod, method, ns, name string) (collector.Attribution, bool) {
	what := ns
	if name != "" {
		what = ns + "/" + name
	}
	if len(w.unknownUIDs) > 0 {
		switch {
		case p != nil && !w.unknownUIDs[p.UID] && !(p.StaticHash != "" && w.unknownUIDs[p.StaticHash]):
			s.contradiction = true
			s.note("%s names pod %s (uid %s) but the dump's writer ran in pod uid %s: not attributed", method, what, p.UID, sortedKeys(w.unknownUIDs))
			return collector.Attribution{Method: manifest.MethodNone, Reason: s.reason(), Candidates: s.refs([]*pods.Pod{p}), Writer: w.writer}, false
		case p == nil:
			s.note("%s %s could not be checked against the writer's pod uid %s", method, what, sortedKeys(w.unknownUIDs))
		}
	}
	return collector.Attribution{Method: method, Reason: s.reason()}, true
}

// block is the manifest pod of p or, without one, of a namespace and name
// taken from the path alone.
func (s *resolution) block(p *pods.Pod, ns, name string) *manifest.Pod {
	if p == nil {
		return &manifest.Pod{Namespace: ns, Name: name}
	}
	mp := podBlock(p)
	if c, ok := onlyContainer(p); ok {
		// The path or host name names the pod and so its only container,
		// but not the instance that crashed: no restart count, no
		// termination (the latest would be another instance's).
		mp.Container, mp.Image, mp.ImageID = c.Name, c.Image, c.ImageID
		s.note("container instance not determined: only writer evidence names it")
	} else {
		s.note("container not determined: pod has %d containers", len(p.Containers))
	}
	return mp
}

// podBlock fills the pod-level fields.
func podBlock(p *pods.Pod) *manifest.Pod {
	return &manifest.Pod{
		Namespace: p.Namespace, Name: p.Name, UID: p.UID,
		Labels:    maps.Clone(p.Labels),
		OwnerKind: p.OwnerKind, OwnerName: p.OwnerName,
	}
}

// onlyContainer is the pod's container when it has exactly one, counting
// init and ephemeral containers: only then does the pod alone say which
// container wrote a dump.
func onlyContainer(p *pods.Pod) (*pods.Container, bool) {
	if len(p.Containers) != 1 {
		return nil, false
	}
	return &p.Containers[0], true
}

// refs turns pods into a bounded, sorted candidate list.
func (s *resolution) refs(ps []*pods.Pod) []manifest.PodRef {
	if len(ps) == 0 {
		return nil
	}
	out := make([]manifest.PodRef, 0, len(ps))
	seen := map[string]bool{}
	for _, p := range ps {
		if seen[p.UID] {
			continue
		}
		seen[p.UID] = true
		out = append(out, manifest.PodRef{Namespace: p.Namespace, Name: p.Name, UID: p.UID})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Namespace != out[j].Namespace {
			return out[i].Namespace < out[j].Namespace
		}
		if out[i].Name != out[j].Name {
			return out[i].Name < out[j].Name
		}
		return out[i].UID < out[j].UID
	})
	if len(out) > s.r.opts.MaxCandidates {
		s.note("%d candidates, %d listed", len(out), s.r.opts.MaxCandidates)
		out = out[:s.r.opts.MaxCandidates]
	}
	return out
}

// existedAtClaim drops pods created after the dump was claimed: they
// cannot have written it.
func (s *resolution) existedAtClaim(ps []*pods.Pod) []*pods.Pod {
	if s.ev.ClaimedAt.IsZero() || len(ps) < 2 {
		return ps
	}
	limit := s.ev.ClaimedAt.Add(s.r.opts.CreationSlack)
	var out []*pods.Pod
	for _, p := range ps {
		if p.Created.IsZero() || !p.Created.After(limit) {
			out = append(out, p)
		}
	}
	return out
}

func sortedKeys(m map[string]bool) string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return strings.Join(ks, ",")
}

// isUIDShaped reports whether s looks like a pod UID: a UUID, or a static
// pod's 32-hex config hash.
func isUIDShaped(s string) bool {
	hex := func(c byte) bool { return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' }
	switch len(s) {
	case 36:
		for i := 0; i < 36; i++ {
			if i == 8 || i == 13 || i == 18 || i == 23 {
				if s[i] != '-' {
					return false
				}
			} else if !hex(s[i]) {
				return false
			}
		}
		return true
	case 32:
		for i := 0; i < 32; i++ {
			if !hex(s[i]) {
				return false
			}
		}
		return true
	}
	return false
}

func isNamespace(s string) bool { return len(validation.IsDNS1123Label(s)) == 0 }
func isPodName(s string) bool   { return len(validation.IsDNS1123Subdomain(s)) == 0 }

// dirs returns the directories of a dump path relative to the dump root,
// or nil when it has none or is not a clean relative path.
func dirs(p string) []string {
	if p == "" || strings.HasPrefix(p, "/") {
		return nil
	}
	c := path.Clean(p)
	if c != p || c == ".." || strings.HasPrefix(c, "../") {
		return nil
	}
	d := path.Dir(c)
	if d == "." {
		return nil
	}
	return strings.Split(d, "/")
}

// NodePods implements collector.NodePodLister from the cached list: the
// pods still listed (a pod gone from the node crashes no more).
func (r *Resolver) NodePods() []collector.NodePod {
	if r.pods == nil {
		return nil
	}
	var out []collector.NodePod
	for _, p := range r.pods.Snapshot().Pods() {
		if !p.Listed() {
			continue
		}
		np := collector.NodePod{UIDs: []string{p.UID}, Namespace: p.Namespace, Name: p.Name, Annotations: maps.Clone(p.Policy),
			NamespaceDefaults: r.opts.NamespaceLabels != nil}
		if p.StaticHash != "" && p.StaticHash != p.UID {
			np.UIDs = append(np.UIDs, p.StaticHash) // the UID a static pod's cgroup names
		}
		for _, c := range p.Containers {
			nc := collector.NodeContainer{Name: c.Name}
			for _, id := range c.IDs {
				nc.IDs = append(nc.IDs, id.ID)
			}
			np.Containers = append(np.Containers, nc)
		}
		out = append(out, np)
	}
	return out
}
