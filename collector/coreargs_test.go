package collector_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/crashdump-io/crashdump/collector/dumptest"
	"github.com/crashdump-io/crashdump/collector/inspect"
)

// TestCoreArgsRedacted: a real core of a process started with a secret on
// its command line, through the agent into a real MinIO. By default the
// manifest keeps the executable and the flag names only; --core-args full
// keeps the line (which proves the secret was in the core to leak), none
// keeps nothing. The secret is never in the logs or the object metadata.
func TestCoreArgsRedacted(t *testing.T) {
	const secret = "hunter2"
	for _, tc := range []struct {
		mode       string
		want       string // substring of core.args
		wantSecret bool
	}{
		{mode: "", want: "--password=<redacted>"},
		{mode: inspect.ArgsRedacted, want: "--password=<redacted> -t <redacted>"},
		{mode: inspect.ArgsFull, want: "--password=" + secret, wantSecret: true},
		{mode: inspect.ArgsNone},
	} {
		t.Run("mode="+tc.mode, func(t *testing.T) {
			e := newEnv(t, true)
			cfg := e.config()
			cfg.CoreArgs = tc.mode
			stop := e.start(cfg)

			// A real core of sh stopped by SIGSEGV, its whole command line
			// in pr_psargs.
			core := filepath.Join(t.TempDir(), "core")
			dumptest.CrashCore(t, core, "/bin/sh", "-c", "kill -SEGV $$", "sh", "--password="+secret, "-t", secret)
			b, err := os.ReadFile(core)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(e.dumpDir, "core.sh"), b, 0o644); err != nil {
				t.Fatal(err)
			}
			eventually(t, 30*time.Second, "dump stored", func() bool { return len(e.dumps()) == 1 })
			if err := stop(); err != nil {
				t.Fatalf("agent stopped with %v", err)
			}
			d := e.dumps()[0]
			if d.manifest.Core == nil {
				t.Fatalf("manifest has no core summary")
			}
			args := d.manifest.Core.Args
			switch {
			case tc.mode == inspect.ArgsNone && (args != "" || d.manifest.Core.ArgsTruncated):
				t.Errorf("core.args = %q (truncated %v), want none", args, d.manifest.Core.ArgsTruncated)
			case tc.mode != inspect.ArgsNone && !strings.Contains(args, tc.want):
				t.Errorf("core.args = %q, want it to contain %q", args, tc.want)
			case tc.mode != inspect.ArgsNone && !strings.Contains(args, "/sh "):
				t.Errorf("core.args = %q, want the executable kept", args)
			}
			if got := strings.Contains(args, secret); got != tc.wantSecret {
				t.Errorf("core.args = %q: secret present %v, want %v", args, got, tc.wantSecret)
			}
			if strings.Contains(e.logs.String(), secret) {
				t.Errorf("the agent logged the secret")
			}
			for k, v := range d.meta {
				if strings.Contains(v, secret) {
					t.Errorf("object metadata %s holds the secret", k)
				}
			}
		})
	}
}
