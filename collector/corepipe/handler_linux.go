//go:build linux

package corepipe

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Host-core actions (Config.HostCores).
const (
	HostAuto  = "auto"  // chain when PreviousPattern is a pipe, else drop
	HostChain = "chain" // run PreviousPattern's handler with the core on stdin
	HostDrop  = "drop"  // drain stdin, write nothing
)

// Config is the handler's configuration (the core-handler flags).
type Config struct {
	ProcRoot string // host /proc
	StateDir string // the agent's state directory
	// PolicyPath is the snapshot ("" means <StateDir>/corepipe/policy.json).
	PolicyPath string
	HostCores  string // auto, chain or drop
	// PreviousPattern is the node's core_pattern before ours, e.g.
	// "|/usr/lib/systemd/systemd-coredump %P %u %g %s %t %c %h".
	PreviousPattern string
	// Logf writes one log line (nil: stderr). See KmsgLogger.
	Logf func(line string)
	// Now is the clock (nil: time.Now).
	Now func() time.Time
}

// Result is what one invocation did.
type Result struct {
	Evidence Evidence
	EntryID  string // the inbox entry written, "" if none
}

const (
	bufSize  = 1 << 20 // the one stream buffer
	pageSize = 4096    // sparse granularity
)

var zeroPage [pageSize]byte

// handler is one invocation.
type handler struct {
	cfg   Config
	args  Args
	in    io.Reader
	start time.Time
	ev    Evidence
	facts facts
	// the state directory's fds, opened without following symlinks
	cpfd, inboxfd int
}

// Run handles one core: it reads the facts from /proc, decides, and
// streams, refuses, chains or drops the core on stdin. stdin is always
// read to its end. Errors are logged and recorded, never returned: the
// kernel ignores the exit status.
func Run(cfg Config, args Args, stdin io.Reader) Result {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logf == nil {
		cfg.Logf = func(line string) { fmt.Fprintln(os.Stderr, line) }
	}
	if cfg.ProcRoot == "" {
		cfg.ProcRoot = "/proc"
	}
	h := &handler{cfg: cfg, args: args, in: stdin, start: cfg.Now(), cpfd: -1, inboxfd: -1}
	defer h.closeDirs()
	h.ev = Evidence{SchemaVersion: 1, Method: MethodKernel, ReceivedAt: h.start.UTC(), Process: EvidenceProcess{UID: -1}}
	h.ev.Kernel = EvidenceKernel{
		TID: atoi(args.TID), Signal: atoi(args.Signal), Time: int64(atoi(args.Time)),
		CoreLimit: Sanitize(args.CoreLimit, 24), DumpMode: Sanitize(args.DumpMode, 8),
		KernelComm: Sanitize(args.Comm, maxCommText),
	}
	r := h.run()
	h.logResult()
	return r
}

func (h *handler) run() Result {
	if !isDigits(h.args.PID) {
		return h.refuseEarly(ReasonNoProcess, "%P is not a pid: "+strconv.Quote(Sanitize(h.args.PID, 32)))
	}
	h.ev.Process.HostPID = atoi(h.args.PID)
	f, err := readFacts(filepath.Clean(h.cfg.ProcRoot), h.args.PID)
	if err != nil {
		return h.refuseEarly(ReasonNoProcess, err.Error())
	}
	h.facts = f
	h.ev.Process.NSpid, h.ev.Process.Tgid, h.ev.Process.UID = f.NSpid, f.Tgid, f.UID
	if len(f.NSpid) > 0 {
		h.ev.Process.PID = f.NSpid[len(f.NSpid)-1]
	}
	h.ev.Process.Exe, h.ev.Process.Cmdline = f.Exe, f.Cmdline
	h.ev.Cgroup, h.ev.InPod = evidenceCgroup(f.Cgroup), f.InPod
	h.ev.ProcErrors = f.Errors

	if f.CgroupRead && !f.InPod {
		return h.host()
	}
	return h.pod()
}

// refuseEarly records a core that cannot be attributed at all.
func (h *handler) refuseEarly(reason, detail string) Result {
	h.ev.Outcome, h.ev.Reason = OutcomeRefused, reason
	h.ev.ProcErrors = append(h.ev.ProcErrors, detail)
	h.drain()
	return h.recordOnly()
}

// host chains or drops a host process's core.
func (h *handler) host() Result {
	h.ev.Process.Cmdline = nil // host processes' command lines stay on the node
	action := h.cfg.HostCores
	pipe := strings.HasPrefix(strings.TrimSpace(h.cfg.PreviousPattern), "|")
	if action == "" || action == HostAuto {
		action = HostDrop
		if pipe {
			action = HostChain
		}
	}
	if action == HostChain && !pipe {
		h.logf("host core: --host-cores chain without a previous pipe handler (--previous-core-pattern %q): dropped", h.cfg.PreviousPattern)
		action = HostDrop
	}
	if action == HostChain {
		if err := h.chain(); err != nil {
			h.ev.Outcome, h.ev.Reason = OutcomeDropped, ReasonChainFailed
			h.ev.ProcErrors = append(h.ev.ProcErrors, "chain: "+err.Error())
		} else {
			h.ev.Outcome = OutcomeChained
		}
	} else {
		h.ev.Outcome, h.ev.Reason = OutcomeDropped, ReasonHost
	}
	h.drain()
	return h.recordOnly()
}

// pod decides and writes a pod's (or an unknown process's) core.
func (h *handler) pod() Result {
	if err := h.openDirs(); err != nil {
		h.ev.Outcome, h.ev.Reason = OutcomeRefused, ReasonError
		h.ev.ProcErrors = append(h.ev.ProcErrors, err.Error())
		h.drain()
		return Result{Evidence: h.ev}
	}
	unlock, err := h.lock()
	if err != nil {
		h.logf("lock: %v (deciding without it)", err)
	}
	pol := h.loadPolicy()
	entries, usage := h.inboxUsage()
	maxEntries := snapshotMaxEntries
	if pol == nil {
		maxEntries = HarmlessMaxEntries
	}
	if entries >= maxEntries {
		unlock()
		h.ev.Outcome, h.ev.Reason = OutcomeRefused, ReasonBudget
		h.drain()
		h.logf("inbox full (%d entries): no record written", entries)
		return Result{Evidence: h.ev}
	}
	allowed, reason := h.decide(pol, usage)
	if reason != "" {
		unlock()
		h.ev.Outcome, h.ev.Reason = OutcomeRefused, reason
		h.drain()
		return h.recordOnly()
	}
	id, tmp, err := h.newEntry()
	if err != nil {
		unlock()
		h.ev.Outcome, h.ev.Reason = OutcomeRefused, ReasonError
		h.ev.ProcErrors = append(h.ev.ProcErrors, err.Error())
		h.drain()
		return Result{Evidence: h.ev}
	}
	h.noteAccepted()
	unlock()
	defer unix.Close(tmp)
	h.ev.Outcome = OutcomeCore
	if err := h.stream(tmp, allowed); err != nil {
		h.ev.ProcErrors = append(h.ev.ProcErrors, "write core: "+err.Error())
	}
	if err := h.finish(id, tmp); err != nil {
		h.logf("entry %s: %v", id, err)
		return Result{Evidence: h.ev}
	}
	return Result{Evidence: h.ev, EntryID: id}
}

// decide applies the policy: the bytes the core may use on disk, or a
// refusal reason.
func (h *handler) decide(pol *Policy, usage int64) (allowed int64, reason string) {
	cg := h.facts.Cgroup
	uid := cg.PodUID
	if uid == "" {
		uid = cg.StaticPodUID
	}
	now := h.cfg.Now()
	accepted := h.acceptedTimes()
	if pol != nil {
		if uid != "" && slices.Contains(pol.OptedOutPodUIDs, uid) {
			return 0, ReasonOptedOut
		}
		if ns, ok := pol.PodNamespaces[uid]; ok && uid != "" {
			if slices.Contains(pol.NamespaceExclude, ns) || (len(pol.NamespaceInclude) > 0 && !slices.Contains(pol.NamespaceInclude, ns)) {
				return 0, ReasonNotSelected
			}
		}
		if cg.ContainerID != "" && slices.Contains(pol.LimitedContainers, cg.ContainerID) {
			return 0, ReasonRateLimited
		}
		if pol.MaxCoresPerContainer > 0 {
			n := 0
			for _, t := range accepted {
				if t > pol.GeneratedAt.Unix() {
					n++
				}
			}
			if n >= pol.MaxCoresPerContainer {
				return 0, ReasonRateLimited
			}
		}
	} else {
		for _, t := range accepted {
			if now.Unix()-t < int64(HarmlessWindow/time.Second) {
				return 0, ReasonRateLimited
			}
		}
	}

	var st unix.Statfs_t
	if err := unix.Fstatfs(h.inboxfd, &st); err != nil {
		h.ev.ProcErrors = append(h.ev.ProcErrors, "statfs: "+err.Error())
		return 0, ReasonKeepFree
	}
	avail := int64(st.Bavail) * st.Bsize
	keepFree := int64(st.Blocks) * st.Bsize * HarmlessKeepFreePct / 100
	budget := int64(HarmlessInboxBytes) - usage
	limited := true // budget applies; it is negative when already over
	maxCore := int64(-1)
	if pol != nil {
		keepFree = pol.KeepFreeBytes
		limited = pol.BudgetBytesRemaining >= 0
		budget = pol.BudgetBytesRemaining - usage
		if pol.MaxCoreBytes > 0 {
			maxCore = pol.MaxCoreBytes
		}
	}
	allowed = avail - keepFree
	if allowed <= 0 {
		return 0, ReasonKeepFree
	}
	if limited {
		if budget <= 0 {
			return 0, ReasonBudget
		}
		allowed = min(allowed, budget)
	}
	if maxCore >= 0 {
		allowed = min(allowed, maxCore)
	}
	return allowed, ""
}

// loadPolicy reads the snapshot; nil means harmless mode.
func (h *handler) loadPolicy() *Policy {
	path := h.cfg.PolicyPath
	var (
		p   *Policy
		err error
	)
	if path == "" {
		var b []byte
		b, err = readAt(h.cpfd, PolicyName, maxPolicySize)
		if err == nil {
			p = new(Policy)
			if err = json.Unmarshal(b, p); err == nil && p.SchemaVersion != 1 {
				err = fmt.Errorf("schemaVersion %d, want 1", p.SchemaVersion)
			}
		}
	} else {
		p, err = ReadPolicy(path)
	}
	switch {
	case errors.Is(err, fs.ErrNotExist) || errors.Is(err, unix.ENOENT):
		h.ev.HarmlessReason = "missing"
	case err != nil:
		h.ev.HarmlessReason = "invalid"
		h.ev.ProcErrors = append(h.ev.ProcErrors, "policy: "+err.Error())
	case p.Stale(h.cfg.Now()):
		h.ev.HarmlessReason = "stale"
	default:
		h.ev.PolicyMode = "snapshot"
		return p
	}
	h.ev.PolicyMode = "harmless"
	h.logf("policy snapshot %s: harmless mode (at most 1 core per container per %s, inbox at most %d MiB, %d%% kept free)",
		h.ev.HarmlessReason, HarmlessWindow, HarmlessInboxBytes>>20, HarmlessKeepFreePct)
	return nil
}

// openDirs opens <state>/corepipe and its inbox, creating them 0700,
// refusing symlinks.
func (h *handler) openDirs() error {
	if h.cfg.StateDir == "" {
		return errors.New("no --state-dir")
	}
	sfd, err := openDirNoFollow(unix.AT_FDCWD, filepath.Clean(h.cfg.StateDir))
	if err != nil {
		return fmt.Errorf("open state directory %s: %w", h.cfg.StateDir, err)
	}
	defer unix.Close(sfd)
	if h.cpfd, err = mkdirOpen(sfd, DirName); err != nil {
		return fmt.Errorf("open %s/%s: %w", h.cfg.StateDir, DirName, err)
	}
	if h.inboxfd, err = mkdirOpen(h.cpfd, "inbox"); err != nil {
		return fmt.Errorf("open %s/%s/inbox: %w", h.cfg.StateDir, DirName, err)
	}
	return nil
}

func (h *handler) closeDirs() {
	for _, fd := range []int{h.cpfd, h.inboxfd} {
		if fd >= 0 {
			unix.Close(fd)
		}
	}
}

// mkdirOpen creates name in dfd (0700) if missing and opens it, failing
// if it is a symlink or not a directory.
func mkdirOpen(dfd int, name string) (int, error) {
	if err := unix.Mkdirat(dfd, name, 0o700); err != nil && err != unix.EEXIST {
		return -1, err
	}
	fd, err := openDirNoFollow(dfd, name)
	if err == unix.ELOOP || err == unix.ENOTDIR {
		return -1, fmt.Errorf("not a directory or a symlink: %w", err)
	}
	return fd, err
}

func (h *handler) lock() (unlock func(), err error) {
	fd, err := unix.Openat(h.cpfd, "lock", unix.O_RDWR|unix.O_CREAT|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return func() {}, err
	}
	if err := unix.Flock(fd, unix.LOCK_EX); err != nil {
		unix.Close(fd)
		return func() {}, err
	}
	return func() { unix.Close(fd) }, nil
}

// inboxUsage counts the inbox's entries and their cores' disk use
// (st_blocks), entries still being written included.
func (h *handler) inboxUsage() (entries int, bytes int64) {
	fd, err := unix.Dup(h.inboxfd)
	if err != nil {
		return 0, 0
	}
	d := os.NewFile(uintptr(fd), "inbox")
	defer d.Close()
	if _, err := unix.Seek(fd, 0, 0); err != nil {
		return 0, 0
	}
	names, _ := d.Readdirnames(-1)
	for _, n := range names {
		entries++
		var st unix.Stat_t
		if unix.Fstatat(h.inboxfd, n+"/"+CoreName, &st, unix.AT_SYMLINK_NOFOLLOW) == nil {
			bytes += st.Blocks * 512
		}
		bytes += 4096 // the evidence record
	}
	return entries, bytes
}

// rateKey names the container in rate/: its ID, else the pod's UID, else
// "unknown"; only hex and '-'.
func (h *handler) rateKey() string {
	cg := h.facts.Cgroup
	for _, k := range []string{cg.ContainerID, cg.PodUID, cg.StaticPodUID} {
		if k != "" && strings.Trim(k, "0123456789abcdef-") == "" {
			return k
		}
	}
	return "unknown"
}

const maxRateTimes = 64

// acceptedTimes are the unix times of the container's accepted cores.
func (h *handler) acceptedTimes() []int64 {
	rfd, err := mkdirOpen(h.cpfd, "rate")
	if err != nil {
		return nil
	}
	defer unix.Close(rfd)
	b, err := readAt(rfd, h.rateKey(), 64*maxRateTimes)
	if err != nil {
		return nil
	}
	var ts []int64
	for _, l := range strings.Fields(string(b)) {
		if t, err := strconv.ParseInt(l, 10, 64); err == nil {
			ts = append(ts, t)
		}
	}
	return ts
}

// noteAccepted appends now to the container's accepted times (under the
// lock), keeping the last maxRateTimes.
func (h *handler) noteAccepted() {
	ts := append(h.acceptedTimes(), h.cfg.Now().Unix())
	if len(ts) > maxRateTimes {
		ts = ts[len(ts)-maxRateTimes:]
	}
	var b strings.Builder
	for _, t := range ts {
		b.WriteString(strconv.FormatInt(t, 10) + "\n")
	}
	rfd, err := mkdirOpen(h.cpfd, "rate")
	if err != nil {
		return
	}
	defer unix.Close(rfd)
	if err := writeFileAt(rfd, h.rateKey(), []byte(b.String()), unix.O_TRUNC); err != nil {
		h.logf("rate state: %v", err)
	}
}

func writeFileAt(dfd int, name string, data []byte, flags int) error {
	fd, err := unix.Openat(dfd, name, unix.O_WRONLY|unix.O_CREAT|unix.O_NOFOLLOW|unix.O_CLOEXEC|flags, 0o600)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	for len(data) > 0 {
		n, err := unix.Write(fd, data)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return err
		}
		data = data[n:]
	}
	return unix.Fsync(fd)
}

// newEntry creates inbox/<id>.tmp and opens it.
func (h *handler) newEntry() (string, int, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", -1, err
	}
	id := hex.EncodeToString(b[:])
	h.ev.ID = id
	if err := unix.Mkdirat(h.inboxfd, id+".tmp", 0o700); err != nil {
		return "", -1, fmt.Errorf("create entry: %w", err)
	}
	fd, err := openDirNoFollow(h.inboxfd, id+".tmp")
	if err != nil {
		return "", -1, fmt.Errorf("open entry: %w", err)
	}
	return id, fd, nil
}

// stream copies stdin into <tmp>/core, skipping zero pages, writing at
// most allowed bytes; the rest is drained and the core marked truncated.
func (h *handler) stream(tmp int, allowed int64) error {
	fd, err := unix.Openat(tmp, CoreName, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		h.drain()
		return err
	}
	defer unix.Close(fd)
	c := &h.ev.Counts
	buf := make([]byte, bufSize)
	var off int64 // logical size kept
	var werr error
	stopped := false
	for {
		n, rerr := io.ReadFull(h.in, buf)
		c.BytesReceived += int64(n)
		if stopped {
			c.BytesDrained += int64(n)
		} else {
			kept, err := h.writeBlock(fd, buf[:n], off, allowed)
			off += int64(kept)
			if kept < n {
				stopped = true
				h.ev.Truncated = true
				c.BytesDrained += int64(n - kept)
				if err != nil {
					werr = err
				}
			}
		}
		if rerr != nil {
			if rerr != io.EOF && rerr != io.ErrUnexpectedEOF {
				werr = errors.Join(werr, fmt.Errorf("read stdin: %w", rerr))
			}
			break
		}
	}
	if err := unix.Ftruncate(fd, off); err != nil {
		werr = errors.Join(werr, err)
	}
	if err := unix.Fsync(fd); err != nil {
		werr = errors.Join(werr, err)
	}
	var st unix.Stat_t
	if unix.Fstat(fd, &st) == nil {
		c.DiskBytes = st.Blocks * 512
	}
	return werr
}

// writeBlock writes the non-zero pages of b at off, stopping before the
// page that would take the bytes written past allowed. It returns how
// many bytes of b are kept (written, or skipped as holes).
func (h *handler) writeBlock(fd int, b []byte, off, allowed int64) (int, error) {
	c := &h.ev.Counts
	run := -1 // start of the pending run of non-zero pages
	flush := func(end int) error {
		if run < 0 {
			return nil
		}
		p, at := b[run:end], off+int64(run)
		for len(p) > 0 {
			n, err := unix.Pwrite(fd, p, at)
			if err == unix.EINTR {
				continue
			}
			if err != nil {
				return err
			}
			p, at = p[n:], at+int64(n)
			c.BytesWritten += int64(n)
		}
		run = -1
		return nil
	}
	for p := 0; p < len(b); p += pageSize {
		page := b[p:min(p+pageSize, len(b))]
		if bytes.Equal(page, zeroPage[:len(page)]) {
			if r, err := run, flush(p); err != nil {
				return r, err
			}
			c.BytesSparse += int64(len(page))
			continue
		}
		pending := 0
		if run >= 0 {
			pending = p - run
		}
		if c.BytesWritten+int64(pending+len(page)) > allowed {
			if r, err := run, flush(p); err != nil {
				return r, err
			}
			return p, nil
		}
		if run < 0 {
			run = p
		}
	}
	if r, err := run, flush(len(b)); err != nil {
		return r, err
	}
	return len(b), nil
}

// finish writes evidence.json into the entry and renames it complete.
func (h *handler) finish(id string, tmp int) error {
	h.ev.Counts.DurationSeconds = h.cfg.Now().Sub(h.start).Seconds()
	b, err := json.MarshalIndent(h.ev, "", "  ")
	if err != nil {
		return err
	}
	if err := writeFileAt(tmp, EvidenceName, append(b, '\n'), unix.O_EXCL); err != nil {
		return fmt.Errorf("write evidence: %w", err)
	}
	if err := unix.Fsync(tmp); err != nil {
		return err
	}
	if err := unix.Renameat(h.inboxfd, id+".tmp", h.inboxfd, id); err != nil {
		return fmt.Errorf("complete entry: %w", err)
	}
	return unix.Fsync(h.inboxfd)
}

// recordOnly writes a manifest-only entry (evidence, no core), within the
// inbox's entry cap.
func (h *handler) recordOnly() Result {
	if h.inboxfd < 0 {
		if err := h.openDirs(); err != nil {
			h.logf("no record: %v", err)
			return Result{Evidence: h.ev}
		}
	}
	if h.ev.PolicyMode == "" {
		h.ev.PolicyMode = "n/a"
	}
	maxEntries := snapshotMaxEntries
	if h.ev.PolicyMode != "snapshot" {
		maxEntries = HarmlessMaxEntries
	}
	if entries, _ := h.inboxUsage(); entries >= maxEntries {
		h.logf("inbox full (%d entries): no record written", entries)
		return Result{Evidence: h.ev}
	}
	id, tmp, err := h.newEntry()
	if err != nil {
		h.logf("no record: %v", err)
		return Result{Evidence: h.ev}
	}
	defer unix.Close(tmp)
	if err := h.finish(id, tmp); err != nil {
		h.logf("no record: %v", err)
		return Result{Evidence: h.ev}
	}
	return Result{Evidence: h.ev, EntryID: id}
}

// drain reads stdin to its end: the kernel holds the crashing process
// until the handler exits, and a clean end needs the pipe read.
func (h *handler) drain() {
	if h.in == nil {
		return
	}
	n, _ := io.CopyBuffer(io.Discard, h.in, make([]byte, 64<<10))
	h.ev.Counts.BytesReceived += n
	h.ev.Counts.BytesDrained += n
}

func (h *handler) logf(format string, a ...any) {
	h.cfg.Logf("crashdump core-handler: pid " + Sanitize(h.args.PID, 12) + ": " + fmt.Sprintf(format, a...))
}

func (h *handler) logResult() {
	ev := &h.ev
	who := "host process"
	if ev.Cgroup.ContainerID != "" {
		who = "container " + ev.Cgroup.ContainerID[:min(12, len(ev.Cgroup.ContainerID))]
	} else if ev.InPod {
		who = "pod " + ev.Cgroup.PodUID + ev.Cgroup.StaticPodUID
	} else if !h.facts.CgroupRead {
		who = "unknown cgroup"
	}
	line := fmt.Sprintf("%s signal %d: %s", who, ev.Kernel.Signal, ev.Outcome)
	if ev.Reason != "" {
		line += " (" + ev.Reason + ")"
	}
	if ev.Truncated {
		line += " truncated"
	}
	line += fmt.Sprintf(", %d bytes received, %d written, %.2fs", ev.Counts.BytesReceived, ev.Counts.BytesWritten, h.cfg.Now().Sub(h.start).Seconds())
	if ev.ID != "" {
		line += ", entry " + ev.ID
	}
	h.logf("%s", line)
}

func atoi(s string) int {
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		return 0
	}
	return n
}
