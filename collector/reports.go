package collector

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/crashdump-io/crashdump/collector/inspect"
	"github.com/crashdump-io/crashdump/collector/pair"
	"github.com/crashdump-io/crashdump/collector/staging"
	"github.com/crashdump-io/crashdump/uploader"
	"github.com/crashdump-io/crashdump/uploader/manifest"
)

// Crash reports are claimed on their own (claim.go) and wait on the shelf
// for the dump that proves it owns them (package pair). A dump looks for its
// report when it is planned and again just before its manifest is stored; a
// report that appears after its dump was stored is attached late, to the
// dumps the shelf remembers; one that nothing proves is stored with a
// manifest of its own after --max-settle-wait.

const (
	// maxStoredDumps bounds the dumps remembered for late reports, and
	// maxProofThreads the threads kept per dump: a hostile core with
	// thousands of threads must not grow the agent.
	maxStoredDumps  = 256
	maxProofThreads = 1024
	// reportRecheck is the first delay between looks for a late report's
	// stored dump; it doubles up to the report's deadline.
	reportRecheck = time.Second
)

// Shelf states of a claimed report.
const (
	shelfWaiting = iota // may be taken by a dump
	shelfTaken          // moved into its dump's entry; the item is gone
	shelfOwned          // being stored by a worker (own manifest or late)
)

// reportShelf holds the claimed crash reports and the recently stored dumps
// without one. Safe for concurrent use: the scheduler, the claimer and the
// workers all use it.
type reportShelf struct {
	mu      sync.Mutex
	reports map[*item]int
	stored  []*storedDump
	// contested: reports a dump of their name was checked against and not
	// proven to be (counted "unproven" when stored on their own).
	contested map[*item]bool
}

// storedDump is a dump stored without a crash report: a late report proven
// to be its own is added to it.
type storedDump struct {
	path    string
	sm      *storedManifest
	ev      pair.Dump
	at      time.Time
	claimed bool // a late report is being attached
}

func newReportShelf() *reportShelf {
	return &reportShelf{reports: map[*item]int{}, contested: map[*item]bool{}}
}

// contest marks reports a same-name dump did not prove to be its own.
func (s *reportShelf) contest(its []*item) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, it := range its {
		if _, ok := s.reports[it]; ok {
			s.contested[it] = true
		}
	}
}

// ownOutcome is the metric outcome of a report stored on its own:
// "unproven" when a dump of its name came and did not prove it,
// "own_manifest" when none came.
func (s *reportShelf) ownOutcome(it *item) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.contested[it] {
		return ReportUnproven
	}
	return ReportOwn
}

func (s *reportShelf) add(it *item) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.reports[it]; !ok {
		s.reports[it] = shelfWaiting
	}
}

// candidates are the waiting reports found under the name a report of the
// dump at path would have. The name only narrows the search: it is shared
// by replicas and proves nothing.
func (s *reportShelf) candidates(dumpPath string) []*item {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*item
	for it, st := range s.reports {
		if st == shelfWaiting && it.rec.Path == dumpPath+manifest.CrashReportSuffix {
			out = append(out, it)
		}
	}
	return out
}

// move changes a report's state from one to another, reporting whether it
// was in the first.
func (s *reportShelf) move(it *item, from, to int) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, ok := s.reports[it]
	if !ok || st != from {
		return false
	}
	s.reports[it] = to
	return true
}

func (s *reportShelf) taken(it *item) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.reports[it] == shelfTaken
}

// forget drops a report; it reports whether it was on the shelf, so that
// the scheduler stops tracking it exactly once.
func (s *reportShelf) forget(it *item) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.reports[it]
	delete(s.reports, it)
	delete(s.contested, it)
	return ok
}

// remember keeps a stored dump for late reports, for at most window.
func (s *reportShelf) remember(d *storedDump, window time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.expire(time.Now(), window)
	if len(s.stored) >= maxStoredDumps {
		s.stored = s.stored[1:]
	}
	s.stored = append(s.stored, d)
}

func (s *reportShelf) expire(now time.Time, window time.Duration) {
	i := 0
	for i < len(s.stored) && now.Sub(s.stored[i].at) > window {
		i++
	}
	s.stored = s.stored[i:]
}

// lateMatch returns the one remembered dump that r proves, marked claimed,
// or nil.
func (s *reportShelf) lateMatch(it *item, reportPath string, r pair.Report, window time.Duration) (*storedDump, string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.expire(time.Now(), window)
	var found *storedDump
	basis := ""
	for _, d := range s.stored {
		if d.claimed || d.path+manifest.CrashReportSuffix != reportPath {
			continue
		}
		b := pair.Prove(r, d.ev)
		if b == "" {
			if _, ok := s.reports[it]; ok {
				s.contested[it] = true
			}
			continue
		}
		if found != nil {
			return nil, "" // two dumps prove it: no proof
		}
		found, basis = d, b
	}
	if found != nil {
		found.claimed = true
	}
	return found, basis
}

// dropStored forgets a remembered dump once its late report is attached.
func (s *reportShelf) dropStored(d *storedDump) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, x := range s.stored {
		if x == d {
			s.stored = append(s.stored[:i], s.stored[i+1:]...)
			return
		}
	}
}

// processes turns writer evidence into process identities.
func processes(ws []Writer) []pair.Process {
	var out []pair.Process
	for _, w := range ws {
		if w.Writable && w.StartTime != 0 {
			out = append(out, pair.Process{PID: w.HostPID, StartTime: w.StartTime})
		}
	}
	return out
}

// dumpEvidence is what proves a report belongs to the dump: its writers and
// the registers of its core's threads (cs may be nil).
func dumpEvidence(rec *record, cs *inspect.CoreSummary) pair.Dump {
	d := pair.Dump{Writers: processes(rec.Writers), Threads: pair.CoreThreads(cs)}
	if len(d.Threads) > maxProofThreads {
		d.Threads = d.Threads[:maxProofThreads]
	}
	return d
}

// reportEvidence reads a staged report: its summary for the manifest and
// what proves whose it is.
func reportEvidence(p string, writers []Writer) (*manifest.CrashReport, pair.Report, error) {
	cr, parsed, err := readCrashReport(p)
	if err != nil {
		return nil, pair.Report{Writers: processes(writers)}, err
	}
	th, ok := pair.ReportThread(parsed)
	return cr, pair.Report{Writers: processes(writers), Thread: th, ThreadOK: ok}, nil
}

// takeReport looks for the dump's own crash report on the shelf and, when
// exactly one is proven, moves it into the dump's entry. It reports whether
// the dump has its report now. Called by the worker that owns the dump.
func (a *Agent) takeReport(it *item, ev pair.Dump) bool {
	rec := &it.rec
	if rec.CrashReport {
		return true
	}
	cands := a.shelf.candidates(rec.Path)
	if len(cands) == 0 {
		return false
	}
	reps := make([]pair.Report, len(cands))
	for i, c := range cands {
		_, reps[i], _ = reportEvidence(c.entry.Path(staging.DumpName), c.rec.Writers)
	}
	i, basis := pair.One(ev, reps)
	if i < 0 {
		a.log.Info("crash report of the same name not proven to be this dump's; not attached",
			"path", rec.Path, "id", rec.ID, "reports", len(cands))
		a.shelf.contest(cands)
		return false
	}
	c := cands[i]
	if !a.shelf.move(c, shelfWaiting, shelfTaken) {
		return false // stored on its own, or evicted, meanwhile
	}
	if err := os.Rename(c.entry.Path(staging.DumpName), it.entry.Path(staging.CrashReportName)); err != nil {
		a.log.Error("attach crash report", "path", rec.Path, "id", rec.ID, "report_id", c.rec.ID, "err", err)
		a.shelf.move(c, shelfTaken, shelfWaiting)
		return false
	}
	if err := a.stage.Remove(c.entry); err != nil {
		a.log.Error("remove attached crash report's entry", "report_id", c.rec.ID, "err", err)
	}
	select {
	case a.reportGone <- c:
	default: // the scheduler notices when the report comes due
	}
	rec.CrashReport, rec.ReportBasis = true, basis
	a.m.crashReports.WithLabelValues(ReportAttached).Inc()
	a.log.Info("crash report attached", "path", rec.Path, "id", rec.ID, "report_id", c.rec.ID, "paired_by", basis)
	return true
}

// storeReport uploads the dump's own crash report beside it, verified, and
// records it in the manifest. A report already stored by an earlier
// attempt is not sent again. Before that, it looks once more for a report
// that arrived while the dump was uploading.
func (a *Agent) storeReport(ctx context.Context, it *item, store uploader.Store, key string, m *manifest.Manifest) error {
	rec := &it.rec
	if !rec.CrashReport {
		if it.proof == nil || !a.takeReport(it, *it.proof) {
			return nil
		}
		if err := it.entry.Save(rec); err != nil {
			return err
		}
	}
	if m.CrashReport != nil && m.CrashReport.Key != "" {
		return nil
	}
	p := it.entry.Path(staging.CrashReportName)
	cr, _, err := reportEvidence(p, nil)
	if err != nil {
		// Unreadable as a report, but it is the proven one: keep the bytes.
		a.log.Info("crash report unreadable", "path", rec.Path, "err", err)
		cr = &manifest.CrashReport{}
	}
	if m.CrashReport != nil {
		cr = m.CrashReport
	}
	m.File.CrashReport = m.File.Name + manifest.CrashReportSuffix
	obj, sum, err := a.putReport(ctx, store, key+manifest.CrashReportSuffix, p, m)
	if err != nil {
		return err
	}
	cr.Key, cr.Size, cr.SHA256, cr.PairedBy = obj.Key, obj.Size, sum, rec.ReportBasis
	m.CrashReport = cr
	return nil
}

// putReport stores the report file at p under key and verifies size and
// SHA-256 metadata, like a dump. It streams the file twice (hash, then
// send) so memory does not grow with a hostile report's size.
func (a *Agent) putReport(ctx context.Context, store uploader.Store, key, p string, m *manifest.Manifest) (uploader.Object, string, error) {
	f, info, err := openStaged(p)
	if err != nil {
		return uploader.Object{}, "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, io.NewSectionReader(f, 0, info.Size)); err != nil {
		return uploader.Object{}, "", fmt.Errorf("hash crash report %s: %w", key, err)
	}
	sum := hex.EncodeToString(h.Sum(nil))
	md := objectMetadata(m, a.cfg.Node)
	md[uploader.MetaSHA256] = sum
	md[uploader.MetaOriginalSize] = strconv.FormatInt(info.Size, 10)
	md[uploader.MetaCompression] = manifest.CompressionNone
	if _, err := store.Put(ctx, key, io.NewSectionReader(f, 0, info.Size), info.Size,
		uploader.PutOptions{Metadata: md, ContentType: "application/json"}); err != nil {
		return uploader.Object{}, "", fmt.Errorf("store crash report %s: %w", key, err)
	}
	stored, err := store.Head(ctx, key)
	if err != nil {
		return uploader.Object{}, "", fmt.Errorf("verify crash report %s: %w", key, err)
	}
	if stored.Size != info.Size {
		return uploader.Object{}, "", fmt.Errorf("verify crash report %s: stored size %d, sent %d", key, stored.Size, info.Size)
	}
	if got := lowerKeys(stored.Metadata)[uploader.MetaSHA256]; got != "" && got != sum {
		return uploader.Object{}, "", fmt.Errorf("verify crash report %s: stored sha256 metadata %s, sent %s", key, got, sum)
	}
	return stored, sum, nil
}

// rememberStored keeps a dump stored without a report for late reports.
func (a *Agent) rememberStored(it *item, sm *storedManifest) {
	if it.rec.CrashReport || it.proof == nil || (len(it.proof.Writers) == 0 && len(it.proof.Threads) == 0) {
		return
	}
	a.shelf.remember(&storedDump{path: it.rec.Path, sm: sm, ev: *it.proof, at: time.Now()}, a.cfg.MaxSettleWait)
}

// findLateDump looks for the stored dump a settled report belongs to.
func (a *Agent) findLateDump(it *item) {
	if it.lateFor != nil {
		return
	}
	_, r, err := reportEvidence(it.entry.Path(staging.DumpName), it.rec.Writers)
	if err != nil && len(r.Writers) == 0 {
		return
	}
	if d, basis := a.shelf.lateMatch(it, it.rec.Path, r, a.cfg.MaxSettleWait); d != nil {
		it.lateFor, it.lateBasis = d, basis
	}
}

// errReportTaken: the report went to its dump while it was queued.
var errReportTaken = errors.New("crash report attached to its dump")

// processReport stores a crash report that waited on the shelf: added to
// the stored dump it was proven to belong to, or on its own.
func (a *Agent) processReport(ctx context.Context, it *item) (own bool, err error) {
	if !a.shelf.move(it, shelfWaiting, shelfOwned) && !a.shelf.move(it, shelfOwned, shelfOwned) {
		return false, errReportTaken
	}
	d := it.lateFor
	if d == nil {
		return true, nil
	}
	store, ok := a.dests.Store(d.sm.dest)
	if !ok {
		store, _ = a.dests.Store(DefaultDestination)
	}
	cr, _, rerr := reportEvidence(it.entry.Path(staging.DumpName), nil)
	if rerr != nil {
		cr = &manifest.CrashReport{}
	}
	obj, sum, err := a.putReport(ctx, store, d.sm.key+manifest.CrashReportSuffix, it.entry.Path(staging.DumpName), d.sm.current())
	if err != nil {
		return false, err
	}
	cr.Key, cr.Size, cr.SHA256, cr.PairedBy = obj.Key, obj.Size, sum, it.lateBasis
	if err := a.rewriteManifest(ctx, d.sm, func(m *manifest.Manifest) {
		m.CrashReport = cr
		m.File.CrashReport = m.File.Name + manifest.CrashReportSuffix
	}); err != nil {
		return false, err
	}
	a.shelf.dropStored(d)
	a.m.crashReports.WithLabelValues(ReportAttachedLate).Inc()
	a.log.Info("crash report attached late", "path", d.path, "key", d.sm.key, "report_id", it.rec.ID,
		"paired_by", it.lateBasis, "waited_ms", time.Since(it.rec.ClaimedAt).Milliseconds())
	if err := a.stage.Remove(it.entry); err != nil {
		a.log.Error("remove attached crash report", "id", it.rec.ID, "err", err)
	}
	return false, nil
}
