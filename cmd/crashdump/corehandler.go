package main

import (
	"os"

	"github.com/spf13/cobra"

	"github.com/crashdump-io/crashdump/collector/corepipe"
)

// newCoreHandlerCmd wires `crashdump core-handler`, the program the
// kernel's core_pattern pipe runs (collector/corepipe has the logic).
func newCoreHandlerCmd() *cobra.Command {
	var (
		cfg     corepipe.Config
		logDest string
	)
	cmd := &cobra.Command{
		Use:   "core-handler [flags] " + corepipe.Usage,
		Short: "Receive a core from the kernel's core_pattern pipe into the agent's inbox",
		Long: `The program the kernel runs for every crash when the node's core_pattern
pipes cores to crashdump (the chart's nativeCrashes option sets it up):

  kernel.core_pattern = |/var/lib/crashdump/bin/crashdump core-handler --proc-root /proc --state-dir /var/lib/crashdump/state -- %P %i %s %t %c %d %e

It reads the crashing process's facts from --proc-root (never its
environment), and streams the core on stdin into the inbox below
--state-dir, applying the agent's policy snapshot, or refuses it with a
manifest-only record. Cores of host processes (no pod) go to the node's
previous handler or are dropped (--host-cores). It always exits 0 and logs
to /dev/kmsg.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, positional []string) error {
			args, err := corepipe.ParseArgs(positional)
			if err != nil {
				return err
			}
			if logDest == "stderr" {
				cfg.Logf = corepipe.StderrLogger()
			} else {
				logf, closeLog := corepipe.KmsgLogger()
				defer closeLog()
				cfg.Logf = logf
			}
			corepipe.Run(cfg, args, os.Stdin)
			return nil
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&cfg.ProcRoot, "proc-root", "/proc", "host /proc, where the crashing process's facts are read")
	fs.StringVar(&cfg.StateDir, "state-dir", "/var/lib/crashdump/state", "the agent's state directory; cores go to <state-dir>/corepipe/inbox")
	fs.StringVar(&cfg.PolicyPath, "policy", "", "the agent's policy snapshot (default <state-dir>/corepipe/policy.json)")
	fs.StringVar(&cfg.HostCores, "host-cores", corepipe.HostAuto, "cores of processes in no pod: chain (to --previous-core-pattern), drop, or auto (chain when a previous pipe handler is set, else drop)")
	fs.StringVar(&cfg.PreviousPattern, "previous-core-pattern", "", "the node's core_pattern before crashdump's, e.g. '|/usr/lib/systemd/systemd-coredump %P %u %g %s %t %c %h'; its specifiers are expanded from ours")
	fs.StringVar(&logDest, "log", "kmsg", "kmsg (/dev/kmsg, stderr when not writable) or stderr")
	return cmd
}
