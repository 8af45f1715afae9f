package collector

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/crashdump-io/crashdump/collector/corepipe"
	"github.com/crashdump-io/crashdump/collector/inspect"
	"github.com/crashdump-io/crashdump/collector/staging"
	"github.com/crashdump-io/crashdump/uploader/manifest"
)

// Kernel cores: the inbox of `crashdump core-handler` (package corepipe)
// is a second producer beside the dump directory. With Config.KernelCores
// the agent polls <state-dir>/corepipe/inbox every KernelPoll; each
// complete entry (<id>/, never <id>.tmp/) is validated and enters the
// pipeline as a claimed dump whose staging ID is the entry's ID:
//
//   - outcome core: the core is renamed into staging (one filesystem, the
//     state directory) and settles at once (the handler renames the entry
//     only when it is complete); it is attributed from the evidence only
//     (method kernel: the container ID and pod UID the handler read from
//     /proc/%P/cgroup, looked up in the pod list like a writer's), never
//     from a path or file name;
//   - outcome refused: an empty staged file stands for the core, and the
//     handler's reason decides (kernelRefusal): a manifest-only record, or
//     nothing for an opted-out or unselected pod;
//   - outcomes chained and dropped (host processes): counted and deleted.
//
// An entry that does not validate (not a real directory of root or the
// agent with mode 0700, an evidence.json that is not a bounded regular
// file of the expected shape, a core that is not a regular file) is
// logged with its reason, counted as crashdump_dumps_dropped_total
// {reason="kernel_invalid"} and removed, without following links; so is
// an <id>.tmp/ older than maxTmpAge, which a handler that died left.
//
// Crash safety: the staging entry is created (record first) before the
// core is moved, and the inbox entry is removed only after. Killed
// between, the restart either discards the staging entry without its core
// (recover) and ingests the inbox entry again, or finds the staging entry
// <id> with its core and only removes the inbox entry.

// kernelRecord is what a staged kernel core's record keeps of its
// evidence (record.Kernel).
type kernelRecord struct {
	Outcome     string    `json:"outcome"`
	Reason      string    `json:"reason,omitempty"`
	Truncated   bool      `json:"truncated,omitempty"`
	HostPID     int       `json:"hostPID"`
	PID         int       `json:"pid,omitempty"`
	TID         int       `json:"tid,omitempty"`
	Signal      int       `json:"signal,omitempty"`
	Exe         string    `json:"exe,omitempty"`
	Cmdline     []string  `json:"cmdline,omitempty"`
	ContainerID string    `json:"containerID,omitempty"`
	Runtime     string    `json:"runtime,omitempty"`
	PodUID      string    `json:"podUID,omitempty"`
	CgroupRead  bool      `json:"cgroupRead"`
	Time        time.Time `json:"time,omitzero"` // the kernel's %t
	ReceivedAt  time.Time `json:"receivedAt"`
	Received    int64     `json:"bytesReceived"`
	Written     int64     `json:"bytesWritten"`
}

// maxEvidence bounds what is read of an evidence.json (the handler's are
// a few KiB: cmdline is bounded).
const maxEvidence = 1 << 20

// maxInboxBatch bounds the entries taken in one poll.
const maxInboxBatch = 256

var inboxEntryName = regexp.MustCompile(`^[0-9a-f]{32}$`)

func (a *Agent) inboxPath() string {
	return filepath.Join(a.cfg.StateDir, corepipe.DirName, "inbox")
}

// kernelLoop ingests the inbox every KernelPoll until ctx ends (Run took
// what was there at start). Its items go to the scheduler like claimed
// dumps (a.add).
func (a *Agent) kernelLoop(ctx context.Context) {
	t := time.NewTicker(a.cfg.KernelPoll)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		items := a.ingestInbox()
		a.observeClaims(items)
		for _, it := range items {
			select {
			case a.add <- it:
			case <-ctx.Done():
				return // staged: the next start resumes it
			}
		}
	}
}

// observeClaims tells a ClaimObserver about new kernel cores, so that the
// pod list is refreshed while their pods surely exist.
func (a *Agent) observeClaims(items []*item) {
	if o, ok := a.res.(ClaimObserver); ok {
		for _, it := range items {
			o.DumpClaimed(Evidence{Path: it.rec.Path, Kernel: kernelWriter(it.rec.Kernel), ClaimedAt: it.rec.ClaimedAt})
		}
	}
}

// ingestInbox takes up to maxInboxBatch complete entries of the inbox and
// returns the staged items.
func (a *Agent) ingestInbox() []*item {
	dir := a.inboxPath()
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if errors.Is(err, unix.ENOENT) {
		return nil // no core yet
	}
	if err != nil {
		a.kernelWarnOnce("inbox", "kernel core inbox unreadable", "path", dir, "err", err)
		return nil
	}
	f := os.NewFile(uintptr(fd), dir)
	defer f.Close()
	names, err := f.Readdirnames(maxInboxBatch)
	if err != nil && !errors.Is(err, io.EOF) {
		a.kernelWarnOnce("inbox", "read kernel core inbox", "path", dir, "err", err)
		return nil
	}
	slices.Sort(names)
	var out []*item
	for _, name := range names {
		if strings.HasSuffix(name, ".tmp") {
			a.staleTmp(fd, name, time.Now())
			continue // being written by a handler
		}
		if it := a.ingestEntry(fd, name); it != nil {
			out = append(out, it)
		}
	}
	return out
}

// maxTmpAge is how old an entry still being written (<id>.tmp) may be
// before it is taken for the remains of a handler that died: the kernel
// holds the crashing process while its handler writes, seconds even for a
// 4 GiB core.
const maxTmpAge = time.Hour

// staleTmp removes inbox entry name, one being written, if its handler
// must have died: it counts against the handler's inbox bounds forever
// otherwise.
func (a *Agent) staleTmp(inbox int, name string, now time.Time) {
	var st unix.Stat_t
	if unix.Fstatat(inbox, name, &st, unix.AT_SYMLINK_NOFOLLOW) != nil {
		return
	}
	if age := now.Sub(time.Unix(st.Mtim.Unix())); age < maxTmpAge {
		return
	}
	a.rejectEntry(inbox, name, "left unfinished by a core handler more than "+maxTmpAge.String()+" ago")
}

// kernelWarnOnce logs a problem with the inbox itself once per key.
func (a *Agent) kernelWarnOnce(key, msg string, args ...any) {
	a.rejMu.Lock()
	seen := a.kernelWarned[key]
	if !seen && len(a.kernelWarned) < maxRejectDirs {
		a.kernelWarned[key] = true
	}
	a.rejMu.Unlock()
	if !seen {
		a.log.Warn(msg, args...)
	}
}

// rejectEntry logs, counts and removes an inbox entry that does not
// validate.
func (a *Agent) rejectEntry(inbox int, name, why string) {
	a.m.dropped.WithLabelValues(DropKernelInvalid).Inc()
	a.log.Warn("not ingesting kernel core inbox entry", "entry", name, "reason", DropKernelInvalid, "why", why)
	if err := removeInboxEntry(inbox, name); err != nil {
		a.kernelWarnOnce("remove:"+name, "remove kernel core inbox entry", "entry", name, "err", err)
	}
}

// ingestEntry validates inbox entry name and stages it; nil when there is
// nothing to upload (a host core, a rejected entry, one already staged).
func (a *Agent) ingestEntry(inbox int, name string) *item {
	if !inboxEntryName.MatchString(name) {
		a.rejectEntry(inbox, name, "not an inbox entry name")
		return nil
	}
	efd, err := unix.Openat(inbox, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	switch {
	case errors.Is(err, unix.ENOENT):
		return nil
	case errors.Is(err, unix.ENOTDIR), errors.Is(err, unix.ELOOP):
		a.rejectEntry(inbox, name, "not a directory")
		return nil
	case err != nil:
		a.kernelWarnOnce("open:"+name, "open kernel core inbox entry", "entry", name, "err", err)
		return nil
	}
	defer unix.Close(efd)
	var st unix.Stat_t
	if err := unix.Fstat(efd, &st); err != nil {
		a.kernelWarnOnce("open:"+name, "stat kernel core inbox entry", "entry", name, "err", err)
		return nil
	}
	if why := trustedOwner(&st, 0o700); why != "" {
		a.rejectEntry(inbox, name, "directory "+why)
		return nil
	}
	ev, why := readEvidence(efd, name)
	if why != "" {
		a.rejectEntry(inbox, name, why)
		return nil
	}
	switch ev.Outcome {
	case corepipe.OutcomeChained, corepipe.OutcomeDropped:
		a.countKernel(ev)
		a.log.Info("host process core "+ev.Outcome+" by the core handler", "entry", name, "reason", ev.Reason,
			"host_pid", ev.Process.HostPID, "exe", ev.Process.Exe, "signal", ev.Kernel.Signal)
		if err := removeInboxEntry(inbox, name); err != nil {
			a.kernelWarnOnce("remove:"+name, "remove kernel core inbox entry", "entry", name, "err", err)
		}
		return nil
	}
	var core unix.Stat_t
	if ev.Outcome == corepipe.OutcomeCore {
		if err := unix.Fstatat(efd, corepipe.CoreName, &core, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			if errors.Is(err, unix.ENOENT) && a.staged(name) {
				// Moved by an agent that was killed before it removed the
				// inbox entry: the staged copy is being resumed.
				_ = removeInboxEntry(inbox, name)
				return nil
			}
			a.rejectEntry(inbox, name, "core: "+err.Error())
			return nil
		}
		if core.Mode&unix.S_IFMT != unix.S_IFREG || core.Nlink != 1 {
			a.rejectEntry(inbox, name, "core is not a regular file with one name")
			return nil
		}
		if why := trustedOwner(&core, 0o600); why != "" {
			a.rejectEntry(inbox, name, "core "+why)
			return nil
		}
	}
	if a.staged(name) {
		_ = removeInboxEntry(inbox, name)
		return nil
	}
	// Counted once, when staged (a restart that finds it staged does not).
	a.countKernel(ev)
	rec := record{Version: recordVersion, ID: name, State: stateClaiming, Path: kernelPath(ev), ClaimedAt: time.Now().UTC(),
		Scanned: true, Kernel: kernelRecordOf(ev)}
	e, err := a.stage.Create(name, &rec)
	if err != nil {
		a.log.Error("create staging entry", "entry", name, "err", err)
		return nil
	}
	dir, err := e.OpenDir()
	if err != nil {
		a.log.Error("open staging entry", "entry", name, "err", err)
		_ = a.stage.Remove(e)
		return nil
	}
	defer dir.Close()
	if ev.Outcome == corepipe.OutcomeCore {
		err = unix.Renameat(efd, corepipe.CoreName, int(dir.Fd()), staging.DumpName)
	} else {
		// A refusal has no core: an empty file stands for it, so that
		// the entry is a staged dump like any other.
		var fd int
		fd, err = unix.Openat(int(dir.Fd()), staging.DumpName, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
		if err == nil {
			err = unix.Close(fd)
		}
	}
	if err != nil {
		a.log.Error("stage kernel core", "entry", name, "err", err)
		_ = a.stage.Remove(e)
		return nil
	}
	if err := removeInboxEntry(inbox, name); err != nil {
		a.kernelWarnOnce("remove:"+name, "remove kernel core inbox entry", "entry", name, "err", err)
	}
	rec.State = stateClaimed
	a.log.Info("staged kernel core", "id", name, "outcome", ev.Outcome, "reason", ev.Reason, "host_pid", ev.Process.HostPID,
		"exe", ev.Process.Exe, "signal", ev.Kernel.Signal, "container_id", short12(ev.Cgroup.ContainerID), "size", core.Size, "truncated", ev.Truncated)
	it, err := a.newItem(e, rec)
	if err != nil {
		a.log.Error("track kernel core", "entry", name, "err", err)
		return nil
	}
	return it
}

// staged reports whether staging holds entry id.
func (a *Agent) staged(id string) bool {
	var st unix.Stat_t
	return unix.Lstat(filepath.Join(a.stage.Path(), id), &st) == nil
}

// trustedOwner says what is wrong with an inbox file's owner and mode,
// "" if nothing: the handler runs as root, the agent may too.
func trustedOwner(st *unix.Stat_t, perm uint32) string {
	if st.Uid != 0 && int(st.Uid) != os.Geteuid() {
		return fmt.Sprintf("owned by uid %d, not root", st.Uid)
	}
	if got := uint32(st.Mode) & 0o7777; got != perm { // Mode is uint16 on darwin (the CLI build)
		return fmt.Sprintf("mode %04o, want %04o", got, perm)
	}
	return ""
}

// readEvidence reads and validates <entry>/evidence.json; why says what is
// wrong with it.
func readEvidence(efd int, name string) (ev corepipe.Evidence, why string) {
	fd, err := unix.Openat(efd, corepipe.EvidenceName, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return ev, "evidence: " + err.Error()
	}
	f := os.NewFile(uintptr(fd), corepipe.EvidenceName)
	defer f.Close()
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return ev, "evidence: " + err.Error()
	}
	switch {
	case st.Mode&unix.S_IFMT != unix.S_IFREG || st.Nlink != 1:
		return ev, "evidence is not a regular file with one name"
	case st.Size > maxEvidence:
		return ev, fmt.Sprintf("evidence is %d bytes, more than %d", st.Size, maxEvidence)
	}
	if why := trustedOwner(&st, 0o600); why != "" {
		return ev, "evidence " + why
	}
	b, err := io.ReadAll(io.LimitReader(f, maxEvidence+1))
	if err != nil {
		return ev, "evidence: " + err.Error()
	}
	if len(b) > maxEvidence {
		return ev, "evidence grew past its bound"
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&ev); err != nil {
		return ev, "evidence: " + err.Error()
	}
	if dec.More() {
		return ev, "evidence: data after the JSON object"
	}
	switch {
	case ev.SchemaVersion != 1:
		return ev, fmt.Sprintf("evidence schemaVersion %d, want 1", ev.SchemaVersion)
	case ev.Method != corepipe.MethodKernel:
		return ev, fmt.Sprintf("evidence method %q, want %q", ev.Method, corepipe.MethodKernel)
	case ev.ID != name:
		return ev, "evidence id does not match its entry"
	case ev.Process.HostPID <= 0:
		return ev, "evidence has no host PID"
	}
	switch ev.Outcome {
	case corepipe.OutcomeCore, corepipe.OutcomeChained, corepipe.OutcomeDropped:
	case corepipe.OutcomeRefused:
		if !slices.Contains(refusalReasons, ev.Reason) {
			return ev, fmt.Sprintf("refusal reason %q unknown", ev.Reason)
		}
	default:
		return ev, fmt.Sprintf("evidence outcome %q unknown", ev.Outcome)
	}
	return ev, ""
}

var kernelOutcomes = []string{corepipe.OutcomeCore, corepipe.OutcomeRefused, corepipe.OutcomeChained, corepipe.OutcomeDropped}

var refusalReasons = []string{corepipe.ReasonBudget, corepipe.ReasonKeepFree, corepipe.ReasonRateLimited, corepipe.ReasonOptedOut,
	corepipe.ReasonNotSelected, corepipe.ReasonNoProcess, corepipe.ReasonError}

// countKernel adds a validated entry's outcome and handler time to the
// metrics.
func (a *Agent) countKernel(ev corepipe.Evidence) {
	a.m.kernelCores.WithLabelValues(ev.Outcome).Inc()
	if ev.Outcome == corepipe.OutcomeRefused {
		a.m.kernelRefused.WithLabelValues(ev.Reason).Inc()
	}
	if d := ev.Counts.DurationSeconds; d >= 0 {
		a.m.kernelHandler.Observe(d)
	}
}

// removeInboxEntry removes inbox entry name and what it holds, following
// no link: a link or file in its place is removed itself.
func removeInboxEntry(inbox int, name string) error {
	efd, err := unix.Openat(inbox, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	switch {
	case errors.Is(err, unix.ENOENT):
		return nil
	case errors.Is(err, unix.ENOTDIR), errors.Is(err, unix.ELOOP):
		return unix.Unlinkat(inbox, name, 0)
	case err != nil:
		return err
	}
	f := os.NewFile(uintptr(efd), name)
	names, _ := f.Readdirnames(64)
	for _, n := range names {
		if err := unix.Unlinkat(efd, n, 0); err != nil && !errors.Is(err, unix.ENOENT) {
			f.Close()
			return fmt.Errorf("remove %s/%s: %w", name, n, err)
		}
	}
	f.Close()
	if err := unix.Unlinkat(inbox, name, unix.AT_REMOVEDIR); err != nil && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("remove %s: %w", name, err)
	}
	return nil
}

var unsafeName = regexp.MustCompile(`[^A-Za-z0-9._-]+`)

// kernelPath is the staged core's name, with no directory: neither path
// nor file name may attribute a kernel core (the resolver skips both).
// core.<executable's base name>.<host PID>.
func kernelPath(ev corepipe.Evidence) string {
	base := unsafeName.ReplaceAllString(filepath.Base(ev.Process.Exe), "_")
	if base == "" || base == "." || base == ".." || ev.Process.Exe == "" {
		base = "unknown"
	}
	if len(base) > 64 {
		base = base[:64]
	}
	return "core." + base + "." + strconv.Itoa(ev.Process.HostPID)
}

func kernelRecordOf(ev corepipe.Evidence) *kernelRecord {
	k := &kernelRecord{
		Outcome: ev.Outcome, Reason: ev.Reason, Truncated: ev.Truncated,
		HostPID: ev.Process.HostPID, PID: ev.Process.PID, TID: ev.Kernel.TID, Signal: ev.Kernel.Signal,
		Exe: ev.Process.Exe, Cmdline: ev.Process.Cmdline,
		ContainerID: ev.Cgroup.ContainerID, Runtime: ev.Cgroup.Runtime, PodUID: ev.Cgroup.PodUID,
		ReceivedAt: ev.ReceivedAt, Received: ev.Counts.BytesReceived, Written: ev.Counts.BytesWritten,
	}
	if k.PodUID == "" {
		k.PodUID = ev.Cgroup.StaticPodUID // the UID the kubelet knows a static pod by
	}
	if ev.Kernel.Time > 0 {
		k.Time = time.Unix(ev.Kernel.Time, 0).UTC()
	}
	k.CgroupRead = true
	for _, e := range ev.ProcErrors {
		if strings.Contains(e, "cgroup") {
			k.CgroupRead = false
		}
	}
	return k
}

// kernelWriter is the crashing process as writer evidence, for the
// resolver (Evidence.Kernel); nil for nil.
func kernelWriter(k *kernelRecord) *Writer {
	if k == nil {
		return nil
	}
	return &Writer{HostPID: k.HostPID, NSPID: k.PID, Writable: true, Exe: k.Exe,
		ContainerID: k.ContainerID, Runtime: k.Runtime, PodUID: k.PodUID,
		Unread: !k.CgroupRead && k.ContainerID == "" && k.PodUID == ""}
}

// kernelManifest adds the handler's facts to a kernel core's manifest: the
// process, the signal and executable, and whether the core is whole.
func (a *Agent) kernelManifest(k *kernelRecord, m *manifest.Manifest) {
	m.Process = &manifest.Process{HostPID: k.HostPID, PID: k.PID, Exe: k.Exe}
	if m.Core == nil {
		m.Core = &manifest.Core{}
	}
	// The kernel's own facts for this crash (%s, /proc/%P), which the
	// attribution rests on, win over the core's notes (the kernel wrote
	// those too: they agree).
	c := m.Core
	if k.Signal != 0 && k.Signal != c.Signal {
		c.Signal, c.SignalName = k.Signal, inspect.SignalName(k.Signal)
	}
	if k.Exe != "" {
		c.Exe = k.Exe
	}
	if k.PID != 0 {
		c.PID = k.PID
	}
	if c.Args == "" && len(k.Cmdline) > 0 {
		c.Args = inspect.ArgsFor(strings.Join(k.Cmdline, " "), a.cfg.CoreArgs)
	}
	if k.Truncated && !m.Incomplete {
		m.Incomplete = true
		m.IncompleteReason = fmt.Sprintf("the core handler stopped writing at the disk budget: %d of %d bytes written", k.Written, k.Received)
	}
}

// kernelRefusal is what a core the handler refused becomes: a
// manifest-only record with the handler's reason, or nothing for a pod
// that opted out or is not selected (as its dumps would).
func kernelRefusal(reason string) decision {
	switch reason {
	case corepipe.ReasonOptedOut, corepipe.ReasonNotSelected:
		return decision{action: actionSkip, reason: "core handler: " + reason}
	case corepipe.ReasonRateLimited:
		return decision{action: actionManifestOnly, reason: "the core handler refused it: its container was over the limit in the policy snapshot"}
	}
	return decision{action: actionRefused, reason: reason}
}

func short12(id string) string { return id[:min(len(id), 12)] }

// kernelPolicyMaxAge is the policy snapshot's maxAgeSeconds: the handler
// falls back to its harmless mode a minute after the agent stopped
// writing it. The scheduler rewrites it every half of that.
const kernelPolicyMaxAge = 60 * time.Second

// writePolicy writes the core handler's policy snapshot from the
// scheduler's state. It runs on the scheduler's goroutine (housekeeping),
// which owns every field it reads, so nothing is locked; the storm
// limiter and the resolver are safe for concurrent use on their own.
func (s *scheduler) writePolicy(now time.Time) {
	a := s.a
	p := corepipe.Policy{GeneratedAt: now, MaxAgeSeconds: int64(kernelPolicyMaxAge / time.Second), BudgetBytesRemaining: -1,
		MaxCoresPerContainer: a.policy.MaxPerWindow}
	cfg := a.cfg
	if s.maxBytes > 0 {
		p.BudgetBytesRemaining = max(0, s.maxBytes-(s.pendingDisk+s.failedDisk))
	}
	if cfg.KeepFreeBytes > 0 || cfg.KeepFreePercent > 0 {
		p.KeepFreeBytes = cfg.KeepFreeBytes
		if _, total, err := cfg.FreeSpace(cfg.StateDir); err == nil {
			p.KeepFreeBytes = max(p.KeepFreeBytes, int64(cfg.KeepFreePercent/100*float64(total)))
		}
	}
	if l, ok := a.res.(NodePodLister); ok {
		a.podPolicy(&p, l.NodePods(), now)
	}
	if err := corepipe.WritePolicy(corepipe.PolicyPath(cfg.StateDir), p); err != nil {
		a.kernelWarnOnce("policy", "write the core handler's policy snapshot", "err", err)
		return
	}
	s.policyAt = now
}

// podPolicy adds what the snapshot says about this node's pods: their
// namespaces by UID, the pods whose annotation opts them out, and the
// container instances over their crash-loop limit (stormKey's container
// key, as decide counts them). Only what is certain is said: a refusal
// by the handler is final, while what the snapshot leaves out is judged
// again at ingestion. So --collect-annotated-only and a namespace label
// overriding the limit (which NodePod does not carry) are not applied
// here.
func (a *Agent) podPolicy(p *corepipe.Policy, ps []NodePod, now time.Time) {
	p.PodNamespaces = map[string]string{}
	for _, np := range ps {
		for _, uid := range np.UIDs {
			p.PodNamespaces[uid] = np.Namespace
		}
		if np.Annotations[AnnotationCollect] == "false" {
			p.OptedOutPodUIDs = append(p.OptedOutPodUIDs, np.UIDs...)
			continue
		}
		limit := a.policy.MaxPerWindow
		if v, ok := np.Annotations[AnnotationMaxPerHour]; ok {
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 {
				continue // decide warns about it at ingestion
			}
			limit = n
		} else if np.NamespaceDefaults {
			continue
		}
		if limit <= 0 || a.storms == nil {
			continue
		}
		for _, c := range np.Containers {
			if a.storms.full(np.Namespace+"/"+np.Name+"/"+c.Name, limit, now) {
				p.LimitedContainers = append(p.LimitedContainers, c.IDs...)
			}
		}
	}
	slices.Sort(p.OptedOutPodUIDs)
	slices.Sort(p.LimitedContainers)
}
