package discover

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/crashdump-io/crashdump/collector/dumpfs"
)

func TestMatcher(t *testing.T) {
	m, err := NewMatcher(DefaultInclude, DefaultExclude)
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]bool{
		"coredump.1.dmp":                  true,
		"core":                            true,
		"core.1234":                       true,
		"app.core":                        true,
		"java_pid1.hprof":                 true,
		"Heap.20261126.heapsnapshot":      true,
		"coredump.1.dmp.crashreport.json": false,
		"core.1.crashreport.json":         false,
		"notes.txt":                       false,
		"corefile":                        false,
	} {
		if got := m.Match(name); got != want {
			t.Errorf("Match(%q) = %v, want %v", name, got, want)
		}
	}
	for _, bad := range [][]string{{"["}, {"a/b"}, {}} {
		if _, err := NewMatcher(bad, nil); err == nil {
			t.Errorf("NewMatcher(%q) accepted", bad)
		}
	}
}

// TestWatchFindsNewDirectories: a dump written into a directory created
// after start-up is found through the watches, long before any rescan.
func TestWatchFindsNewDirectories(t *testing.T) {
	root := t.TempDir()
	r, err := dumpfs.Open(root)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	m, _ := NewMatcher(DefaultInclude, DefaultExclude)
	reg := prometheus.NewRegistry()
	w := New(r, m, Options{RescanInterval: time.Hour}, slog.New(slog.DiscardHandler), reg)
	out := make(chan string, 16)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	runDone := make(chan struct{})
	go func() { defer close(runDone); _ = w.Run(ctx, out) }()
	// Run must be gone before the deferred r.Close (the race detector
	// caught it still reading the root).
	defer func() { cancel(); <-runDone }()
	deadline := time.Now().Add(10 * time.Second)
	for !w.Watching() && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if err := os.MkdirAll(filepath.Join(root, "prod", "api-1"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "prod", "api-1", "core.1"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "prod", "readme.txt"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	select {
	case got := <-out:
		if got != "prod/api-1/core.1" {
			t.Fatalf("discovered %q", got)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("dump in a new directory not discovered")
	}
}

func TestMatcherReport(t *testing.T) {
	m, err := NewMatcher(DefaultInclude, DefaultExclude)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name         string
		dump, report bool
	}{
		{"coredump.1.dmp", true, false},
		{"coredump.1.dmp.crashreport.json", false, true},
		{"core.4711.crashreport.json", false, true}, // core.* would take it for a dump without the exclude
		{".crashreport.json", false, false},
		{"notes.crashreport.json", false, false}, // not the report of a dump name
		{"app.log", false, false},
	} {
		if got := m.Match(tc.name); got != tc.dump {
			t.Errorf("Match(%q) = %v, want %v", tc.name, got, tc.dump)
		}
		if got := m.Report(tc.name); got != tc.report {
			t.Errorf("Report(%q) = %v, want %v", tc.name, got, tc.report)
		}
	}
}

// TestTooDeepCountedOnce: a dump more than maxDepth directories down is not
// collected, and that is said: one WARN and one count per directory, not
// one per rescan (a rescan runs every minute).
func TestTooDeepCountedOnce(t *testing.T) {
	root := t.TempDir()
	deep := root
	for i := range maxDepth + 3 {
		deep = filepath.Join(deep, fmt.Sprintf("d%02d", i))
	}
	if err := os.MkdirAll(deep, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(deep, "core.1"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	shallow := filepath.Join(root, "d00", "core.2")
	if err := os.WriteFile(shallow, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	r, err := dumpfs.Open(root)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	m, _ := NewMatcher(DefaultInclude, DefaultExclude)
	reg := prometheus.NewRegistry()
	var logs bytes.Buffer
	w := New(r, m, Options{}, slog.New(slog.NewTextHandler(&logs, nil)), reg)
	for range 3 {
		out := make(chan string, 16)
		if err := w.Scan(context.Background(), out); err != nil {
			t.Fatal(err)
		}
		close(out)
		var got []string
		for p := range out {
			got = append(got, p)
		}
		if len(got) != 1 || got[0] != "d00/core.2" {
			t.Errorf("scan found %v, want only d00/core.2", got)
		}
	}
	if n := testutil.ToFloat64(w.m.tooDeep); n != 1 {
		t.Errorf("crashdump_directories_too_deep_total = %v, want 1", n)
	}
	if n := strings.Count(logs.String(), "too deep"); n != 1 {
		t.Errorf("logged %d times, want once:\n%s", n, logs.String())
	}
}
