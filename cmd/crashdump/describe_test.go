package main

import (
	"regexp"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
	"time"

	"github.com/crashdump-io/crashdump/uploader/manifest"
)

// field finds "Label:   value" in describe's output (at any indentation).
func field(out, label string) string {
	re := regexp.MustCompile(`(?m)^\s*` + regexp.QuoteMeta(label) + `:\s+(.*)$`)
	m := re.FindStringSubmatch(out)
	if m == nil {
		return ""
	}
	return strings.TrimSpace(m[1])
}

// section returns the indented lines under a top-level "Title:" line.
func section(out, title string) string {
	var b strings.Builder
	in := false
	for _, l := range strings.Split(out, "\n") {
		switch {
		case l == title+":":
			in = true
		case in && strings.HasPrefix(l, " "):
			b.WriteString(l + "\n")
		default:
			in = false
		}
	}
	return b.String()
}

func testDescribe(t *testing.T, w *world) {
	dn := w.dumps["dotnet"]
	m := dn.Manifest
	r := w.cli(t, "describe", dn.ShortID)
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	out := r.stdout
	checks := []struct{ label, want string }{
		{"ID", m.ID},
		{"Key", dn.Key},
		{"URL", m.Object.URL},
		{"Node", "node-a"},
		{"Kind", "elf-core"},
		{"Namespace", "prod"},
		{"Container", "api (containerd://4b1d)"},
		{"Image", "registry.example/shop/api:1.4.2"},
		{"Owner", "ReplicaSet/api-7d9f8c6b5"},
		{"Restarts", "3 (the crashed instance's)"},
		{"Exit", "exit 134 SIGABRT (Error) at 2026-03-14T09:26:53Z"},
		{"Labels", "app=api"},
		{"Correlation", "path"},
		{"Exception", "System.Exception (HRESULT 0x80131500)"},
		{"Runtime", "8.0.1125.51716 @Commit: 3e4d1f4a8b2c"},
		{"Executable", "/usr/bin/sleep"},
		{"Compression", "zstd"},
		{"SHA-256", m.File.SHA256},
		{"Open with", "crashdump get " + dn.ShortID + " && dotnet-dump analyze " + localName(dn)},
	}
	for _, c := range checks {
		if got := field(out, c.label); got != c.want {
			t.Errorf("%s: %q, want %q", c.label, got, c.want)
		}
	}
	if got := field(section(out, "Pod"), "Name"); got != "api-1" {
		t.Errorf("Pod name %q, want api-1", got)
	}
	if got := field(section(out, "File"), "Name"); got != "coredump.1.dmp" {
		t.Errorf("File name %q, want coredump.1.dmp", got)
	}
	if !strings.HasPrefix(field(out, "Collected"), m.CollectedAt.UTC().Format(time.RFC3339)) {
		t.Errorf("Collected: %q", field(out, "Collected"))
	}
	for _, want := range []string{
		// The report names the core's own thread: that is how it was paired.
		"Crashed thread " + m.CrashReport.CrashedThreadID + ", top frames:",
		"#0  CrashApp.dll!Program.<Main>$(System.String[]) + IL 0x10",
		"#1  libc.so.6!abort",
		"ELF core:",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("describe output lacks %q:\n%s", want, out)
		}
	}
	if w.srv != nil && !strings.HasPrefix(m.Object.URL, "s3://"+testBucket+"/cluster-a/prod/api-1/") {
		t.Errorf("object URL %q", m.Object.URL)
	}

	t.Run("json is the manifest", func(t *testing.T) {
		r := w.cli(t, "describe", dn.Key, "-o", "json")
		got, err := manifest.Unmarshal([]byte(r.stdout))
		if err != nil || got.ID != m.ID || got.Object.Key != dn.Key {
			t.Fatalf("describe -o json: %v %+v", err, got)
		}
	})
	t.Run("yaml is the manifest, table and wide are text", func(t *testing.T) {
		r := w.cli(t, "describe", dn.Key, "-o", "yaml")
		j, err := yaml.YAMLToJSON([]byte(r.stdout))
		if err != nil || r.code != 0 {
			t.Fatalf("describe -o yaml: exit %d, %v", r.code, err)
		}
		if got, err := manifest.Unmarshal(j); err != nil || got.ID != m.ID {
			t.Fatalf("describe -o yaml: %v %+v", err, got)
		}
		for _, o := range []string{"table", "wide"} {
			if r := w.cli(t, "describe", dn.Key, "-o", o); r.code != 0 || field(r.stdout, "ID") != m.ID || section(r.stdout, "File") == "" {
				t.Errorf("describe -o %s: exit %d, not the text description: %s", o, r.code, r.stderr)
			}
		}
	})
	t.Run("by URL", func(t *testing.T) {
		r := w.cli(t, "describe", m.Object.URL)
		if r.code != 0 || field(r.stdout, "ID") != m.ID {
			t.Fatalf("describe %s: exit %d %s", m.Object.URL, r.code, r.stderr)
		}
	})
	t.Run("unattributed raw dump", func(t *testing.T) {
		u := w.dumps["unknown"]
		r := w.cli(t, "describe", u.ShortID)
		if field(r.stdout, "Pod") != "not attributed" || !strings.HasPrefix(field(r.stdout, "Correlation"), "none") ||
			field(r.stdout, "Compression") != "none" || field(r.stdout, "Fetch with") != "crashdump get "+u.ShortID {
			t.Errorf("describe unattributed:\n%s", r.stdout)
		}
	})
	t.Run("not found", func(t *testing.T) {
		r := w.cli(t, "describe", "ffffffff")
		if r.code != 1 || !strings.Contains(r.stderr, `no dump matches "ffffffff"`) {
			t.Errorf("exit %d, %s", r.code, r.stderr)
		}
	})
}

func TestCandidateLine(t *testing.T) {
	w := time.Date(2026, 12, 3, 9, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name string
		c    manifest.PodRef
		want string
	}{
		{"a pod only", manifest.PodRef{Namespace: "shop", Name: "api-x2k4p"}, "shop/api-x2k4p"},
		{"ranked", manifest.PodRef{Namespace: "shop", Name: "api-x2k4p", Container: "api", RestartCount: manifest.Restarts(2),
			Termination: &manifest.Termination{ExitCode: 139, Signal: 11, SignalName: "SIGSEGV", Reason: "Error", FinishedAt: w.Add(1200 * time.Millisecond)}},
			"shop/api-x2k4p container api: exit 139 SIGSEGV (Error), 1s after the dump's last write, restart count 2"},
		{"ended before", manifest.PodRef{Namespace: "batch", Name: "job", Container: "run",
			Termination: &manifest.Termination{ExitCode: 1, FinishedAt: w.Add(-2 * time.Second)}},
			"batch/job container run: exit 1, 2s before the dump's last write"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := candidateLine(tc.c, w); got != tc.want {
				t.Errorf("got  %q\nwant %q", got, tc.want)
			}
		})
	}
}
