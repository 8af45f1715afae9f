package main

import (
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

// completions parses cobra's __complete output: candidates (without
// descriptions) and the directive line.
func completions(t *testing.T, r result) []string {
	t.Helper()
	if r.code != 0 {
		t.Fatalf("__complete exit %d: %s", r.code, r.stderr)
	}
	lines := strings.Split(strings.TrimRight(r.stdout, "\n"), "\n")
	if len(lines) == 0 || !strings.HasPrefix(lines[len(lines)-1], ":") {
		t.Fatalf("no directive line in %q", r.stdout)
	}
	var out []string
	for _, l := range lines[:len(lines)-1] {
		v, _, _ := strings.Cut(l, "\t")
		out = append(out, v)
	}
	return out
}

func testCompletion(t *testing.T, w *world) {
	d := w.dumps
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"namespaces", []string{"ls", "-n", ""}, "_unknown prod staging"},
		{"namespaces by prefix", []string{"ls", "-n", "st"}, "staging"},
		{"pods in a namespace", []string{"ls", "-n", "prod", "--pod", ""}, "api-1 api-2"},
		{"pods everywhere", []string{"ls", "--pod", ""}, "_unknown api-1 api-2 web-1"},
		{"containers", []string{"ls", "-n", "prod", "--container", ""}, "api worker"},
		{"ids of a pod", []string{"get", "-n", "prod", "--pod", "api-2", ""}, d["raw"].ShortID},
		{"ids by prefix", []string{"describe", d["frames"].ShortID[:6]}, d["frames"].ShortID},
		{"output formats", []string{"ls", "-o", ""}, "table wide json yaml name"},
		{"nodes", []string{"ls", "--node", ""}, "node-a node-b"},
		{"nodes in a namespace", []string{"ls", "-n", "staging", "--node", ""}, "node-a"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// The store flags go before the flag being completed.
			args := append([]string{cobra.ShellCompRequestCmd, tt.args[0]}, w.storeArgs()...)
			args = append(args, tt.args[1:]...)
			got := completions(t, runCLI(t, "crashdump", args...))
			if strings.Join(got, " ") != tt.want {
				t.Errorf("completions %v, want %s", got, tt.want)
			}
		})
	}
	t.Run("ids are described", func(t *testing.T) {
		r := runCLI(t, "crashdump", append(append([]string{cobra.ShellCompRequestCmd, "get"}, w.storeArgs()...), "")...)
		dn := d["dotnet"]
		if !strings.Contains(r.stdout, dn.ShortID+"\tprod/api-1 api ") || len(completions(t, r)) != 5 {
			t.Errorf("id completions:\n%s", r.stdout)
		}
	})
	t.Run("environment", func(t *testing.T) {
		// Completion skips the root's PersistentPreRunE: the store must
		// still come from CRASHDUMP_STORE.
		t.Setenv("CRASHDUMP_STORE", w.storeURL)
		t.Setenv("CRASHDUMP_S3_ENDPOINT", w.endpoint())
		got := completions(t, runCLI(t, "crashdump", cobra.ShellCompRequestCmd, "ls", "-n", ""))
		if strings.Join(got, " ") != "_unknown prod staging" {
			t.Errorf("completions %v", got)
		}
	})
	t.Run("unreachable store: no candidates, no error", func(t *testing.T) {
		got := completions(t, runCLI(t, "crashdump", cobra.ShellCompRequestCmd, "ls", "--store", "file:///does/not/exist", "-n", ""))
		if len(got) != 0 {
			t.Errorf("completions %v", got)
		}
	})
}

func TestCompletionScripts(t *testing.T) {
	for _, sh := range []string{"bash", "zsh", "fish", "powershell"} {
		r := runCLI(t, "crashdump", "completion", sh)
		if r.code != 0 || !strings.Contains(r.stdout, "crashdump") || len(r.stdout) < 500 {
			t.Errorf("completion %s: exit %d, %d bytes: %s", sh, r.code, len(r.stdout), r.stderr)
		}
	}
	if r := runCLI(t, "crashdump", "completion", "tcsh"); r.code == 0 {
		t.Error("completion tcsh succeeded")
	}
}
