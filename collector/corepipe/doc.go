// Package corepipe is the kernel's core_pattern pipe: a producer beside
// discover; it writes cores into the agent-private inbox that the agent
// ingests with --kernel-cores (collector/kernel.go).
//
// The kernel runs `crashdump core-handler` as root in the initial
// namespaces, with the core on stdin, once per crash:
//
//	kernel.core_pattern = |/var/lib/crashdump/bin/crashdump core-handler --proc-root /proc --state-dir /var/lib/crashdump/state -- %P %i %s %t %c %d %e
//
// Flags carry configuration; the kernel's specifiers follow "--" in this
// fixed order (ParseArgs): %P host PID, %i TID (in the process's PID
// namespace), %s signal, %t time, %c RLIMIT_CORE, %d dump mode, %e. %e is
// last because it is the process's own choice of name (prctl, exec of any
// file name): it may contain blanks (older kernels split it into several
// arguments, which are joined again), '/', control characters. It is kept
// only as the untrusted, sanitized, bounded text kernelComm and never used
// as a path or for a decision. Every fact comes from <proc-root>/<%P>,
// which stays readable until the handler exits when core_pipe_limit > 0:
// cgroup (container ID and pod UID, through procfs.ParseCgroup), status
// (NSpid, Tgid, Uid), the exe link (read, never followed) and cmdline
// (bounded). environ is never read: it holds secrets.
//
// # Decisions
//
// A process whose cgroup names no pod is a host process: its core is
// chained to the node's previous handler (Config.PreviousPattern, its %
// specifiers expanded from our arguments and /proc, see expand) or drained
// and dropped, as Config.HostCores says (auto: chain when a previous pipe
// handler is known, else drop). A process in a pod (or whose cgroup cannot
// be read: unknown is acceptable, wrong is not) goes to the inbox, after
// the rules of the policy snapshot (Policy, written by the agent):
// namespace selection, per-pod opt-out, the per-container crash-loop limit,
// the disk budget and keep-free space. A refusal drains stdin (the kernel
// waits for the handler to exit), writes no core, and leaves a
// manifest-only evidence record with its reason.
//
// Without a snapshot, or with one older than its maxAgeSeconds, the
// handler is in harmless mode (the agent is absent): at most one core per
// container per 10 minutes, the inbox at most 2 GiB on disk and 256
// entries, 10% of the filesystem kept free, and a kmsg line for every core.
//
// # Inbox
//
//	<state-dir>/corepipe/            0700
//	  policy.json                    the agent's snapshot (WritePolicy)
//	  lock                           flock: one handler decides at a time
//	  rate/<container ID>            unix times of cores accepted (crash-loop state)
//	  inbox/<id>.tmp/                being written, never read by the agent
//	  inbox/<id>/evidence.json       0600, always
//	  inbox/<id>/core                0600, when the core was accepted
//
// <id> is 32 lowercase hex. The directory is renamed from <id>.tmp to <id>
// only when the core and evidence.json are fsynced, so the agent only ever
// sees complete entries. Nothing below the state directory is followed if
// it is a symlink (openat with O_NOFOLLOW relative to directory fds).
//
// The core is streamed through one fixed 1 MiB buffer: memory does not grow
// with the core's size. All-zero 4 KiB pages are skipped with a seek
// instead of written, so a mostly-zero core costs little disk. The byte
// budget is enforced while streaming: past it the handler stops writing,
// drains the rest and marks the evidence truncated.
//
// # Metrics
//
// The handler lives for one core, so it cannot serve /metrics. Its counters
// (bytes received, written, skipped as sparse, drained, duration, outcome
// and reason) are written into each evidence record, host cores chained or
// dropped included (evidence records without a core, outcome chained or
// dropped, that the agent counts and deletes); the agent turns them into
// crashdump_kernel_* metrics when it ingests them (collector/kernel.go).
// Log lines go to
// /dev/kmsg when it is writable, else to stderr.
//
// # What a crashing process waits
//
// The kernel holds the crashing process until the handler exits. Measured
// with the static binary on a 2-CPU VM (ext4, virtio disk), core on a pipe,
// fsync included: 100 MiB of random bytes 0.13 s, 1 GiB 1.2 s; 100 MiB of
// zeros 0.04 s, 1 GiB 0.5 s; a 4 GiB mostly-zero core 2.5 s and 260 KiB on
// disk. Peak RSS is 21-23 MiB whatever the size.
//
// The handler exits 0 whatever happens (the kernel ignores the status) and
// does nothing unbounded besides reading stdin: no network, no Kubernetes
// API.
package corepipe
