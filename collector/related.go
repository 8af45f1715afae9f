package collector

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/crashdump-io/crashdump/uploader"
	"github.com/crashdump-io/crashdump/uploader/manifest"
)

// relatedWindow is how far apart two dumps of one container instance may
// be claimed and still be one crash's: a .NET PID 1 dumps on SIGABRT and
// again on the SIGSEGV its abort turns into (dotnet/runtime#78956), and a
// kernel core can land beside createdump's dump, seconds apart.
const relatedWindow = 2 * time.Minute

// maxRelatedMemory bounds how many stored dumps the agent remembers for
// linking; older ones fall out first.
const maxRelatedMemory = 256

// storedManifest is a stored dump's manifest, as last written. Every
// rewrite after the first PUT (a late crash report, a related dump) goes
// through rewriteManifest, so no rewrite loses another's change. Safe for
// concurrent use; mu is held by the dump's own worker from the moment
// others can see it until its first manifest is stored.
type storedManifest struct {
	key, dest string
	mu        sync.Mutex
	m         *manifest.Manifest
}

// current is a copy of the manifest as last written.
func (sm *storedManifest) current() *manifest.Manifest {
	sm.mu.Lock()
	defer sm.mu.Unlock()
	c := *sm.m
	return &c
}

// rewriteManifest applies change to a copy of the stored manifest and
// stores it; the copy becomes the manifest as last written.
func (a *Agent) rewriteManifest(ctx context.Context, sm *storedManifest, change func(*manifest.Manifest)) error {
	store, ok := a.dests.Store(sm.dest)
	if !ok {
		store, _ = a.dests.Store(DefaultDestination)
	}
	sm.mu.Lock()
	defer sm.mu.Unlock()
	c := *sm.m
	change(&c)
	if err := a.putManifest(ctx, store, sm.key, &c); err != nil {
		return err
	}
	sm.m = &c
	return nil
}

// relatedMemory remembers recently stored dumps by container instance.
// Safe for concurrent use.
type relatedMemory struct {
	mu     sync.Mutex
	recent []relatedEntry
}

type relatedEntry struct {
	instance string // pod.containerID
	at       time.Time
	id       string
	sm       *storedManifest
}

// join records a dump of instance claimed at at, and returns the dumps of
// the same instance claimed within relatedWindow of it. Joining and
// looking are one step, so of two dumps stored at once the second always
// sees the first.
func (r *relatedMemory) join(e relatedEntry) []relatedEntry {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []relatedEntry
	for _, x := range r.recent {
		if x.instance == e.instance && x.id != e.id && absDuration(x.at.Sub(e.at)) <= relatedWindow {
			out = append(out, x)
		}
	}
	r.recent = slices.DeleteFunc(r.recent, func(x relatedEntry) bool { return x.id == e.id })
	if len(r.recent) >= maxRelatedMemory {
		r.recent = r.recent[1:]
	}
	r.recent = append(r.recent, e)
	return out
}

// leave forgets a dump whose manifest could not be stored.
func (r *relatedMemory) leave(sm *storedManifest) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.recent = slices.DeleteFunc(r.recent, func(x relatedEntry) bool { return x.sm == sm })
}

func absDuration(d time.Duration) time.Duration {
	if d < 0 {
		return -d
	}
	return d
}

// storeManifest stores a dump's first manifest, linked to the dumps of the
// same container instance stored within relatedWindow (both are kept:
// either may be the one that explains the crash), and adds the link to
// theirs. Without a container instance (not writer-pid) nothing is linked:
// a pod or path names no instance.
func (a *Agent) storeManifest(ctx context.Context, store uploader.Store, it *item, key, dest string, m *manifest.Manifest) (*storedManifest, error) {
	sm := &storedManifest{key: key, dest: dest, m: m}
	instance := ""
	if m.Pod != nil && m.Pod.ContainerID != "" && m.Kind != manifest.KindCrashReport {
		instance = m.Pod.ContainerID
	}
	if instance == "" {
		if err := a.putManifest(ctx, store, key, m); err != nil {
			return nil, err
		}
		return sm, nil
	}
	sm.mu.Lock()
	earlier := a.related.join(relatedEntry{instance: instance, at: it.rec.ClaimedAt, id: m.ID, sm: sm})
	for _, e := range earlier {
		em := e.sm.current()
		m.Related = appendRelated(m.Related, em)
	}
	err := a.putManifest(ctx, store, key, m)
	sm.mu.Unlock()
	if err != nil {
		a.related.leave(sm)
		return nil, err
	}
	for _, e := range earlier {
		if err := a.rewriteManifest(ctx, e.sm, func(em *manifest.Manifest) { em.Related = appendRelated(em.Related, m) }); err != nil {
			// This dump's manifest names the other; only the back link
			// is missing.
			a.log.Warn("link related dump", "key", e.sm.key, "related_key", key, "err", err)
			continue
		}
		a.log.Info("dumps of one container instance linked", "id", m.ID, "key", key, "related_id", e.id, "related_key", e.sm.key)
	}
	return sm, nil
}

// appendRelated adds other to a copy of list, once.
func appendRelated(list []manifest.Related, other *manifest.Manifest) []manifest.Related {
	for _, r := range list {
		if r.ID == other.ID {
			return list
		}
	}
	return append(slices.Clone(list), manifest.Related{ID: other.ID, Key: other.Object.Key, FileName: other.File.Name})
}
