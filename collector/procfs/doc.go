// Package procfs reads the host's process table from a procfs mount whose
// root is configurable (--proc-root, default /proc), so that the agent can run
// with the host's /proc mounted anywhere and tests can run on fixture trees.
//
// It serves two steps of a dump's data flow (docs/architecture.md):
//
//   - Settle: a dump is complete only when no process holds it open for
//     writing. [FS.Openers] scans every <root>/<pid>/fd once and reports, for
//     a whole set of files at a time, which processes hold each one open and
//     whether for writing; [FS.OpenersIn] re-checks only known writers.
//   - Attribution (method writer-pid, package identify): a writer's host PID
//     leads to its cgroup, and the cgroup path names the container ID, the
//     runtime and the pod UID. [FS.Process] reads those facts and
//     [ParseCgroup] understands the cgroup path formats of containerd, CRI-O
//     and Docker under cgroup v1 and v2 with the systemd and the cgroupfs
//     drivers.
//
// The package never opens or reads the files that processes hold: it only
// stats them through the fd links and reads procfs' own text files. It holds
// no state beyond the root path, logs nothing and is safe for concurrent use.
// Only Linux has a procfs; elsewhere the scans return an error.
package procfs
