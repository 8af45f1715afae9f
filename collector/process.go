package collector

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/crashdump-io/crashdump/collector/corepipe"
	"github.com/crashdump-io/crashdump/collector/dumpfs"
	"github.com/crashdump-io/crashdump/collector/inspect"
	"github.com/crashdump-io/crashdump/collector/staging"
	"github.com/crashdump-io/crashdump/uploader"
	"github.com/crashdump-io/crashdump/uploader/manifest"
)

// maxCrashReport bounds how much of a crash report is read.
const maxCrashReport = 8 << 20

// errDropped means the dump was not uploaded on purpose (logged and counted)
// and its staging entry is gone.
var errDropped = errors.New("dump dropped")

// openStaged opens a staged file for reading without following links and
// without blocking (a FIFO swapped in must not hang the agent), and checks
// it is still a regular file with one name.
func openStaged(p string) (*os.File, dumpfs.Info, error) {
	fd, err := unix.Open(p, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, dumpfs.Info{}, fmt.Errorf("open %s: %w", p, err)
	}
	f := os.NewFile(uintptr(fd), p)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		f.Close()
		return nil, dumpfs.Info{}, fmt.Errorf("stat %s: %w", p, err)
	}
	info := dumpfs.InfoFromStat(path.Base(p), &st)
	if reason := classify(info); reason != "" {
		f.Close()
		return nil, info, fmt.Errorf("%s is %s", p, reason)
	}
	return f, info, nil
}

// process uploads one settled dump, verifies it, writes its manifest and
// removes the node copy.
func (a *Agent) process(ctx context.Context, it *item) error {
	rec := &it.rec
	if rec.Kind == kindReport {
		own, err := a.processReport(ctx, it)
		switch {
		case errors.Is(err, errReportTaken):
			return errDropped // its dump has it; the entry is gone
		case err != nil:
			return err
		case !own:
			return nil // attached late to its stored dump
		}
	}
	f, info, err := openStaged(it.entry.Path(staging.DumpName))
	if err != nil {
		a.m.dropped.WithLabelValues(DropUnreadable).Inc()
		a.log.Error("staged dump unreadable", "path", rec.Path, "id", rec.ID, "err", err)
		return err
	}
	defer f.Close()

	// An empty file holds nothing to lose, unless a crash report came with
	// it (createdump failed after writing the report): then the manifest
	// still tells what crashed.
	if info.Size == 0 && !rec.CrashReport && rec.Kernel == nil {
		a.m.dropped.WithLabelValues(DropEmpty).Inc()
		a.log.Warn("not collecting empty dump", "path", rec.Path, "id", rec.ID, "reason", DropEmpty)
		if err := a.stage.Remove(it.entry); err != nil {
			return err
		}
		return errDropped
	}

	p := rec.Plan
	justPlanned := false
	var hashing *uploader.Hashing
	if !p.matches(info) {
		justPlanned = true
		if p != nil {
			a.log.Warn("staged dump changed since it was planned; planning again", "path", rec.Path, "id", rec.ID)
		}
		np, h, err := a.prepare(ctx, it, f, info, p)
		if err != nil {
			return err
		}
		if h != nil {
			hashing = h
			defer hashing.Stop()
		}
		p = np
		rec.Plan = p
		// Saved together with the plan: a restart after this point must
		// first abandon any unfinished upload of the key.
		rec.UploadStarted = true
		if err := it.entry.Save(rec); err != nil {
			return err
		}
	}
	m := p.Manifest
	log := a.log.With("path", rec.Path, "id", rec.ID, "key", p.Key)
	if m.Pod != nil {
		log = log.With("namespace", m.Pod.Namespace, "pod", m.Pod.Name, "container", m.Pod.Container)
	}
	store, ok := a.dests.Store(p.Destination)
	if !ok {
		// The routing changed since the plan was made (a restart with a
		// new config): the default destination is always there.
		log.Warn("destination no longer configured; using the default", "destination", p.Destination)
		p.Destination = DefaultDestination
		store, _ = a.dests.Store(DefaultDestination)
	}
	m.Object.Destination = p.Destination
	switch p.Action {
	case actionSkip:
		a.m.dropped.WithLabelValues(DropNotSelected).Inc()
		log.Info("not collecting dump", "reason", DropNotSelected, "why", p.ActionReason)
		if err := a.stage.Remove(it.entry); err != nil {
			return err
		}
		return errDropped
	case actionManifestOnly:
		// Over the crash-loop limit: the dump is not uploaded, but its
		// manifest is, so the crash stays visible.
		// One record per container and window counts them all.
		m.Object.ManifestOnly = true
		m.Object.NotUploadedReason = "crash-loop limit: " + p.ActionReason
		m.Object.Compression = manifest.CompressionNone
		if a.suppress.opens(m, p.Destination, time.Now()) {
			if err := a.storeReport(ctx, it, store, p.Key, m); err != nil {
				return err
			}
		}
		sm, first, err := a.suppress.record(ctx, a, store, p.Destination, p.Key, m, time.Now())
		if err != nil {
			return err
		}
		a.m.dropped.WithLabelValues(DropRateLimited).Inc()
		log.Warn("dump not uploaded: manifest only", "reason", DropRateLimited, "why", p.ActionReason, "size", p.Size,
			"record", sm.Object.Key+".json", "suppressed", sm.Suppressed.Count)
		if first {
			a.note.DumpUploaded(ctx, sm)
		}
		if err := a.stage.Remove(it.entry); err != nil {
			return err
		}
		return errDropped
	case actionRefused:
		// The core handler wrote no core (disk budget, keep-free, an
		// error): the manifest keeps the crash visible.
		m.Object.ManifestOnly = true
		m.Object.NotUploadedReason = "core handler refused the core: " + p.ActionReason
		m.Object.Compression = manifest.CompressionNone
		if err := a.putManifest(ctx, store, p.Key, m); err != nil {
			return err
		}
		a.m.dropped.WithLabelValues(DropKernelRefused).Inc()
		log.Warn("kernel core not written by the core handler: manifest only", "reason", DropKernelRefused, "why", p.ActionReason,
			"record", m.Object.Key+".json")
		a.note.DumpUploaded(ctx, m)
		if err := a.stage.Remove(it.entry); err != nil {
			return err
		}
		return errDropped
	}

	start := time.Now()
	var obj *uploader.Object
	if !justPlanned {
		// An earlier attempt, maybe by an agent that was killed, may have
		// left an unfinished upload or even a complete object.
		if obj, err = a.alreadyStored(ctx, store, it, f); err != nil {
			return err
		}
	}
	var spilled int64
	if obj == nil {
		log.Info("upload started", "size", p.Size, "compression", m.Object.Compression,
			"destination", p.Destination, "waited_ms", time.Since(rec.ClaimedAt).Milliseconds())
		sent, err := a.up.SendHashed(ctx, store, p.Key, f, p.Size, p.Compress, uploader.PutOptions{
			Metadata:    objectMetadata(m, a.cfg.Node),
			ContentType: contentType(p.Compress),
		}, hashing)
		if errors.Is(err, uploader.ErrSourceChanged) {
			// Shorter than planned, or the upload read other bytes than
			// the hash did: nothing is reported with a wrong hash.
			log.Warn("staged dump changed during the upload; uploading again", "err", err)
			a.m.changedDuringUpload.Inc()
			a.noteGrowth(it, f, p)
			return errChanged
		}
		if err != nil {
			return err
		}
		if sent.SpillErr != nil {
			// Not a failure: the compressor waited for the hash instead.
			log.Warn("spill file unavailable, upload went on without it", "err", sent.SpillErr)
		}
		spilled = sent.Spilled
		a.m.spilledBytes.Add(float64(spilled))
		stored, err := store.Head(ctx, p.Key)
		if err != nil {
			return fmt.Errorf("verify %s: %w", p.Key, err)
		}
		if err := verify(sent.Object, stored); err != nil {
			return err
		}
		if got := lowerKeys(stored.Metadata)[uploader.MetaSHA256]; got != "" && got != sent.SHA256 {
			return fmt.Errorf("verify %s: stored sha256 metadata %s, sent %s", p.Key, got, sent.SHA256)
		}
		p.SHA256 = sent.SHA256
		obj = &stored
	}
	m.File.SHA256 = p.SHA256
	// Did a writer we could not see change the file while we read it?
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return fmt.Errorf("stat %s: %w", rec.Path, err)
	}
	if now := dumpfs.InfoFromStat("", &st); !p.matches(now) {
		// The object may hold bytes the hash did not see: upload again,
		// and keep the node copy until an upload is verified.
		log.Warn("staged dump changed during the upload; uploading again", "size", now.Size, "planned_size", p.Size)
		a.m.changedDuringUpload.Inc()
		a.noteGrowth(it, f, p)
		return errChanged
	}

	m.Object.Store, m.Object.Bucket, m.Object.Key, m.Object.URL = obj.Store, obj.Bucket, obj.Key, obj.URL
	m.Object.StoredSize, m.Object.Checksum = obj.Size, obj.Checksum
	if rec.Kind != kindReport {
		if err := a.storeReport(ctx, it, store, p.Key, m); err != nil {
			return err
		}
	}
	sm, err := a.storeManifest(ctx, store, it, p.Key, p.Destination, m)
	if err != nil {
		return err
	}
	if rec.Kind == kindReport {
		a.m.crashReports.WithLabelValues(a.shelf.ownOutcome(it)).Inc()
	} else {
		a.rememberStored(it, sm)
	}

	elapsed := time.Since(start)
	a.m.uploads.WithLabelValues("success").Inc()
	a.m.uploadBytes.Add(float64(obj.Size))
	a.m.dumpBytes.Add(float64(p.Size))
	a.m.uploadDuration.Observe(elapsed.Seconds())
	a.m.lastUpload.SetToCurrentTime()
	log.Info("dump uploaded", "url", obj.URL, "size", p.Size, "stored_size", obj.Size,
		"compression", m.Object.Compression, "method", m.Correlation.Method, "incomplete", m.Incomplete,
		"duration", elapsed.Round(time.Millisecond).String(), "spilled", spilled)
	a.note.DumpUploaded(ctx, m)
	if lingers(it, a.cfg.SettleTime) {
		// No writer was ever seen: quiet for the settle time is all that
		// said it was complete. Watch it a settle time longer (linger).
		return errLinger
	}
	// Only now, with the object and its manifest confirmed, does the node
	// copy go.
	if err := a.stage.Remove(it.entry); err != nil {
		log.Error("remove node copy", "err", err)
	}
	return nil
}

// errLinger means the dump is stored and its manifest too, but the node
// copy stays for one more settle time: its writer was never seen, so it
// may only have paused (hardened mode, podSource none, sees no process).
// If it grows meanwhile it is uploaded again, marked incomplete
// (record.Grew); if not, the node copy goes then.
var errLinger = errors.New("stored; node copy watched for one more settle time")

// lingers reports whether a stored dump's node copy is watched before it
// goes: a dump (not a crash report) with no writer ever seen.
func lingers(it *item, settle time.Duration) bool {
	return settle > 0 && it.rec.Kind != kindReport && it.rec.Kernel == nil && len(it.rec.Writers) == 0 && len(it.writers) == 0
}

// noteGrowth records in the item's record that the dump grew beyond its
// plan after an upload of it started (see record.Grew).
func (a *Agent) noteGrowth(it *item, f *os.File, p *plan) {
	var st unix.Stat_t
	if unix.Fstat(int(f.Fd()), &st) != nil || st.Size <= p.Size || it.rec.Grew != "" {
		return
	}
	a.markGrew(it, st.Size)
}

func (a *Agent) markGrew(it *item, size int64) {
	it.rec.Grew = fmt.Sprintf("grew after its upload had started (%d bytes planned, %d now): its writer, never seen, paused longer than the settle time; it may not be whole", it.rec.Plan.Size, size)
	if err := it.entry.Save(&it.rec); err != nil {
		a.log.Error("save record", "path", it.rec.Path, "id", it.rec.ID, "err", err)
	}
}

// putManifest stores the manifest beside key. No Head afterwards: a
// manifest is one PUT whose CRC32C the store verifies before it answers, and
// the extra round trip per dump was a tenth of the time of a small dump.
func (a *Agent) putManifest(ctx context.Context, store uploader.Store, key string, m *manifest.Manifest) error {
	body, err := manifest.Marshal(m)
	if err != nil {
		return err
	}
	mkey := key + ".json"
	o, err := store.Put(ctx, mkey, bytes.NewReader(body), int64(len(body)), uploader.PutOptions{ContentType: "application/json"})
	if err != nil {
		return fmt.Errorf("store manifest: %w", err)
	}
	if o.Size != int64(len(body)) {
		return fmt.Errorf("store manifest %s: stored %d bytes, want %d", mkey, o.Size, len(body))
	}
	if m.Object.ManifestOnly {
		// The object is not there: the manifest names where it would be.
		m.Object.Store, m.Object.Bucket, m.Object.Key = o.Store, o.Bucket, strings.TrimSuffix(o.Key, ".json")
	}
	return nil
}

// alreadyStored handles a dump whose upload may have been started by an
// earlier run: it abandons unfinished multipart uploads and returns the
// stored object if a complete upload of these exact bytes exists (the agent
// died after the store confirmed it). nil means: upload.
func (a *Agent) alreadyStored(ctx context.Context, store uploader.Store, it *item, f *os.File) (*uploader.Object, error) {
	p := it.rec.Plan
	if !it.rec.UploadStarted {
		return nil, nil
	}
	if err := store.AbortIncomplete(ctx, p.Key); err != nil {
		a.log.Warn("abandon earlier upload", "key", p.Key, "err", err)
	}
	o, err := store.Head(ctx, p.Key)
	if errors.Is(err, uploader.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("check earlier upload %s: %w", p.Key, err)
	}
	meta := lowerKeys(o.Metadata)
	if meta[uploader.MetaDumpID] != it.rec.ID || meta[uploader.MetaOriginalSize] != strconv.FormatInt(p.Size, 10) {
		return nil, nil
	}
	// The object is this dump's; are its bytes the file's bytes? (The file
	// may have been re-planned after a change of the same size.) Rare
	// enough that a hashing pass is the right price. f is the staged dump
	// process already opened (and checked).
	sum, err := a.up.Hash(ctx, f, p.Size)
	if errors.Is(err, uploader.ErrSourceChanged) {
		return nil, errChanged
	}
	if err != nil {
		return nil, fmt.Errorf("hash %s: %w", it.rec.Path, err)
	}
	if meta[uploader.MetaSHA256] != sum {
		return nil, nil
	}
	p.SHA256 = sum
	a.log.Info("dump already stored by an earlier run", "path", it.rec.Path, "key", o.Key)
	return &o, nil
}

// verify compares what was sent with what the store holds.
func verify(sent, stored uploader.Object) error {
	if sent.Size != stored.Size {
		return fmt.Errorf("verify %s: stored size %d, sent %d", sent.Key, stored.Size, sent.Size)
	}
	if sent.Checksum != "" && stored.Checksum != "" && sent.Checksum != stored.Checksum {
		return fmt.Errorf("verify %s: stored checksum %s, sent %s", sent.Key, stored.Checksum, sent.Checksum)
	}
	return nil
}

func lowerKeys(m map[string]string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[strings.ToLower(k)] = v
	}
	return out
}

func contentType(compressed bool) string {
	if compressed {
		return "application/zstd"
	}
	return "application/octet-stream"
}

// objectMetadata is the S3 user metadata of a dump object: the core facts,
// ASCII only (header values).
func objectMetadata(m *manifest.Manifest, node string) map[string]string {
	md := map[string]string{
		uploader.MetaNode:         node,
		uploader.MetaOriginalSize: strconv.FormatInt(m.File.Size, 10),
		uploader.MetaCompression:  m.Object.Compression,
		uploader.MetaDumpID:       m.ID,
	}
	if m.Pod != nil {
		md[uploader.MetaNamespace] = m.Pod.Namespace
		md[uploader.MetaPod] = m.Pod.Name
		md[uploader.MetaContainer] = m.Pod.Container
	}
	for k, v := range md {
		if v == "" {
			delete(md, k)
			continue
		}
		md[k] = uploader.SafeSegment(v)
	}
	return md
}

// prepare reads what the settled dump says about itself and its crash
// report, attributes it, decides what to do with it, samples it for
// compressibility when it is to be uploaded, and fixes its key. It does not
// read the whole file: the SHA-256 is computed by the upload itself.
// A dump re-planned because it changed keeps its earlier key and compression:
// the key never changes once chosen.
// When the dump is to be uploaded, prepare also starts its SHA-256, which
// runs while the dump is sampled and the plan saved (the caller stops it).
func (a *Agent) prepare(ctx context.Context, it *item, f *os.File, info dumpfs.Info, earlier *plan) (_ *plan, hashing *uploader.Hashing, err error) {
	rec := &it.rec
	m := &manifest.Manifest{
		SchemaVersion: manifest.SchemaVersion,
		ID:            rec.ID,
		CollectedAt:   rec.ClaimedAt,
		AgentVersion:  a.cfg.Version,
		Node:          a.cfg.Node,
		File: manifest.File{
			Name:    path.Base(rec.Path),
			Path:    rec.Path,
			Size:    info.Size,
			ModTime: info.Mtime.UTC(),
		},
	}
	if it.incomplete != "" {
		m.Incomplete, m.IncompleteReason = true, it.incomplete
	}
	if rec.Grew != "" && !m.Incomplete {
		m.Incomplete, m.IncompleteReason = true, rec.Grew
	}
	header := make([]byte, inspect.HeaderSize)
	n, _ := f.ReadAt(header, 0)
	m.Kind = inspect.Kind(header[:n])
	var cs *inspect.CoreSummary
	if m.Kind == "elf-core" {
		if cs, err = inspect.ReadCore(f, info.Size); err == nil {
			m.Core = &manifest.Core{Signal: cs.Signal, SignalName: cs.SignalName, PID: cs.PID, Exe: cs.Exe,
				Args: inspect.ArgsFor(cs.Args, a.cfg.CoreArgs), Threads: len(cs.Threads), Machine: cs.Machine}
			m.Core.ArgsTruncated = cs.ArgsTruncated && m.Core.Args != ""
		} else {
			a.log.Info("no ELF core summary", "path", rec.Path, "err", err)
			cs, err = nil, nil
		}
	}
	if rec.Kind == kindReport {
		// A report no dump was proven to own: the report is the object.
		m.Kind = manifest.KindCrashReport
		if cr, _, err := readCrashReport(it.entry.Path(staging.DumpName)); err == nil {
			m.CrashReport = cr
		} else {
			a.log.Info("crash report unreadable", "path", rec.Path, "err", err)
		}
	} else {
		ev := dumpEvidence(rec, cs)
		it.proof = &ev
		a.takeReport(it, ev)
	}
	if rec.CrashReport {
		m.File.CrashReport = m.File.Name + manifest.CrashReportSuffix
		if cr, _, err := readCrashReport(it.entry.Path(staging.CrashReportName)); err == nil {
			cr.PairedBy = rec.ReportBasis
			m.CrashReport = cr
		} else {
			a.log.Info("crash report unreadable", "path", rec.Path, "err", err)
		}
	}
	att := a.res.Resolve(ctx, Evidence{Path: rec.Path, Writers: rec.Writers, Kernel: kernelWriter(rec.Kernel), ClaimedAt: rec.ClaimedAt, Written: info.Mtime})
	m.Pod = att.Pod
	m.Correlation = manifest.Correlation{Method: att.Method, Reason: att.Reason, Candidates: att.Candidates}
	if m.Correlation.Method == "" {
		m.Correlation.Method = manifest.MethodNone
	}
	a.m.correlations.WithLabelValues(m.Correlation.Method).Inc()
	a.m.lastDump.set(m.Pod)
	w := att.Writer
	if w == nil && len(rec.Writers) > 0 {
		w = &rec.Writers[0]
	}
	if w != nil {
		m.Process = &manifest.Process{HostPID: w.HostPID, PID: w.NSPID, Exe: w.Exe}
	}
	if rec.Kernel != nil {
		a.kernelManifest(rec.Kernel, m)
	}
	var d decision
	switch {
	case earlier != nil:
		d = decision{action: earlier.Action, reason: earlier.ActionReason}
	case rec.Kernel != nil && rec.Kernel.Outcome == corepipe.OutcomeRefused:
		d = kernelRefusal(rec.Kernel.Reason)
	default:
		d = a.decide(att, m, time.Now())
	}
	compression := a.cfg.Compression
	if d.compression != "" {
		compression = d.compression
	}
	if d.action == actionUpload {
		h := a.up.StartHash(ctx, f, info.Size)
		hashing = h
		defer func() {
			if err != nil {
				h.Stop()
			}
		}()
	}
	var compress bool
	switch {
	case earlier != nil:
		compress = earlier.Compress
	case compression == manifest.CompressionZstd && d.action == actionUpload:
		an, err := a.up.Analyze(ctx, f, info.Size)
		if errors.Is(err, uploader.ErrSourceChanged) {
			return nil, nil, errChanged
		}
		if err != nil {
			return nil, nil, fmt.Errorf("sample %s: %w", rec.Path, err)
		}
		compress = an.Compress
		if !compress {
			a.log.Info("dump looks incompressible; sending it raw", "path", rec.Path, "sampled_ratio", an.Ratio)
		}
	}
	m.Object.Compression = manifest.CompressionNone
	if compress {
		m.Object.Compression = manifest.CompressionZstd
	}
	kf := uploader.KeyFields{Node: a.cfg.Node, ID: rec.ID, FileName: m.File.Name, Time: rec.ClaimedAt}
	if m.Pod != nil {
		kf.Namespace, kf.Pod, kf.Container = m.Pod.Namespace, m.Pod.Name, m.Pod.Container
	}
	key, err := a.cfg.KeyTemplate.Key(kf)
	if err != nil {
		return nil, nil, err
	}
	if compress {
		key += ".zst"
	}
	if earlier != nil {
		key = earlier.Key
	}
	m.Object.Key = key
	dest := DefaultDestination
	switch {
	case earlier != nil:
		dest = earlier.Destination
	case m.Pod != nil:
		dest = a.dests.Route(m.Pod.Namespace, att.NamespaceLabels)
	default:
		dest = a.dests.Route("", nil)
	}
	nsBudget := a.namespaceBudget(att, rec.Path)
	if earlier != nil {
		nsBudget = earlier.NamespaceMaxBytes
	}
	return &plan{Size: info.Size, ModTime: info.Mtime, ChangeTime: info.Ctime, NamespaceMaxBytes: nsBudget, Compress: compress, Key: key, Manifest: m,
		Action: d.action, ActionReason: d.reason, Destination: dest}, hashing, nil
}

// readCrashReport reads the report at p: its manifest summary and the
// parse the pairing proof uses.
func readCrashReport(p string) (*manifest.CrashReport, *inspect.CrashReport, error) {
	f, _, err := openStaged(p)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxCrashReport))
	if err != nil {
		return nil, nil, fmt.Errorf("read crash report: %w", err)
	}
	cr, err := inspect.ParseCrashReport(data)
	if err != nil {
		return nil, nil, err
	}
	out := &manifest.CrashReport{
		ExceptionType: cr.ExceptionType, HResult: cr.HResult, ProcessName: cr.ProcessName,
		RuntimeVersion: cr.RuntimeVersion, CrashedThreadID: cr.CrashedThreadID, Partial: cr.Partial,
	}
	for _, fr := range cr.CrashedThreadFrames {
		out.CrashedThreadFrames = append(out.CrashedThreadFrames, manifest.Frame{
			Managed: fr.Managed, Method: fr.Method, Module: fr.Module, ILOffset: fr.ILOffset, NativeOffset: fr.NativeOffset,
		})
	}
	return out, cr, nil
}
