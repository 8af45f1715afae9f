package collector

import (
	"context"
	"sync"
	"time"

	"github.com/crashdump-io/crashdump/uploader"
	"github.com/crashdump-io/crashdump/uploader/manifest"
)

// Beyond the crash-loop limit a dump is not uploaded, and neither does it
// get a manifest of its own: one pod writing 2,000 one-byte dumps made
// 2,000 objects. The first dump over the limit in a window gets a
// manifest-only record; every later one of the same container (else pod,
// else directory) within the window rewrites that record with the new
// count, size and times (manifest.Suppressed). So a crash loop costs one
// object per container and window, however fast it crashes.
//
// The open records are kept in memory only: after a restart the next dump
// over the limit opens a new record for the rest of the window (counts are
// then split over two records, never lost, since a dump's node copy goes
// only after the record counting it is stored).

// maxSuppressTimes bounds manifest.Suppressed.Times.
const maxSuppressTimes = 100

// maxSuppressOpen bounds the open records: beyond it the one updated
// longest ago is forgotten (its next dump opens a new record).
const maxSuppressOpen = 1000

// suppressions are the open crash-loop records. Safe for concurrent use:
// one mutex, held across the store's PUT so that two workers never write
// one record with each other's count missing.
type suppressions struct {
	mu     sync.Mutex
	window time.Duration
	open   map[string]*suppressed
}

type suppressed struct {
	key  string // the record's object key (the first dump's), without .json
	dest string // destination it was stored in
	m    *manifest.Manifest
	seen time.Time // last update, for eviction
}

func newSuppressions(window time.Duration) *suppressions {
	return &suppressions{window: window, open: map[string]*suppressed{}}
}

// opens reports whether m would open a new record (its container has no
// open one in dest): the dump's crash report is stored only then.
func (s *suppressions) opens(m *manifest.Manifest, dest string, now time.Time) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	o := s.open[stormKey(m)]
	return o == nil || o.dest != dest || !now.Before(o.m.Suppressed.WindowEnd)
}

// record counts the rate-limited dump m (planned under key in dest) into
// its container's open record, or opens one, and stores the record. first
// says the record was opened by this dump: only then do the dump's own
// crash report and Event go out.
func (s *suppressions) record(ctx context.Context, a *Agent, store uploader.Store, dest, key string, m *manifest.Manifest, now time.Time) (rec *manifest.Manifest, first bool, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	unit := stormKey(m)
	o := s.open[unit]
	if o != nil && (o.dest != dest || !now.Before(o.m.Suppressed.WindowEnd)) {
		o = nil
	}
	at := m.File.ModTime
	if at.IsZero() {
		at = now
	}
	at = at.UTC() // manifests hold UTC times
	if o == nil {
		c := *m
		c.Suppressed = &manifest.Suppressed{Key: unit, Count: 1, Bytes: m.File.Size, First: at, Last: at,
			WindowEnd: now.Add(s.window).UTC(), Times: []time.Time{at}}
		if err := a.putManifest(ctx, store, key, &c); err != nil {
			return nil, false, err
		}
		s.remember(unit, &suppressed{key: key, dest: dest, m: &c, seen: now})
		return &c, true, nil
	}
	c := *o.m
	sp := *o.m.Suppressed
	sp.Count++
	sp.Bytes += m.File.Size
	if at.Before(sp.First) {
		sp.First = at
	}
	if at.After(sp.Last) {
		sp.Last = at
	}
	sp.Times = append(append(make([]time.Time, 0, maxSuppressTimes), sp.Times...), at)
	if n := len(sp.Times) - maxSuppressTimes; n > 0 {
		sp.Times = sp.Times[n:]
		sp.TimesDropped += n
	}
	c.Suppressed = &sp
	if err := a.putManifest(ctx, store, o.key, &c); err != nil {
		return nil, false, err
	}
	o.m, o.seen = &c, now
	return &c, false, nil
}

// remember adds an open record, forgetting closed ones first and then, at
// the bound, the one updated longest ago.
func (s *suppressions) remember(unit string, o *suppressed) {
	if len(s.open) >= maxSuppressOpen {
		var oldest string
		for k, v := range s.open {
			if !o.seen.Before(v.m.Suppressed.WindowEnd) {
				delete(s.open, k)
				continue
			}
			if oldest == "" || v.seen.Before(s.open[oldest].seen) {
				oldest = k
			}
		}
		if len(s.open) >= maxSuppressOpen {
			delete(s.open, oldest)
		}
	}
	s.open[unit] = o
}
