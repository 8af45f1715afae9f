package main

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/crashdump-io/crashdump/uploader/catalog"
	"github.com/crashdump-io/crashdump/uploader/manifest"
)

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// rows returns the table's data rows, split into columns.
func rows(t *testing.T, out string, headers bool) [][]string {
	t.Helper()
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	if out == "" {
		return nil
	}
	if headers {
		if !strings.HasPrefix(lines[0], "TIME ") {
			t.Fatalf("no header line:\n%s", out)
		}
		lines = lines[1:]
	}
	var out2 [][]string
	for _, l := range lines {
		out2 = append(out2, strings.Fields(l))
	}
	return out2
}

// ids returns the ID column (the last) of rows, in order.
func ids(rs [][]string) []string {
	var out []string
	for _, r := range rs {
		out = append(out, r[len(r)-1])
	}
	return out
}

func short(d *catalog.Dump) string { return d.ShortID }

// newestFirst orders dumps as ls does: by key time, newest first, then by
// key (dumps collected in the same second).
func newestFirst(ds []*catalog.Dump) []*catalog.Dump {
	out := slices.Clone(ds)
	slices.SortStableFunc(out, func(a, b *catalog.Dump) int {
		if c := b.Time.Compare(a.Time); c != 0 {
			return c
		}
		return strings.Compare(b.Key, a.Key)
	})
	return out
}

func testLs(t *testing.T, w *world) {
	d := w.dumps
	tests := []struct {
		name string
		args []string
		want []*catalog.Dump // in order, newest first
		// manifests: how many manifests the run may read (-1: unchecked)
		manifests int
	}{
		{"namespace reads only its manifests", []string{"-n", "prod"}, []*catalog.Dump{d["late"], d["raw"], d["dotnet"]}, 3},
		{"pod", []string{"-n", "prod", "--pod", "api-2"}, []*catalog.Dump{d["raw"]}, 1},
		{"all namespaces", []string{"-A"}, []*catalog.Dump{d["late"], d["unknown"], d["frames"], d["raw"], d["dotnet"]}, 5},
		{"no -n as crashdump: all namespaces", nil, []*catalog.Dump{d["late"], d["unknown"], d["frames"], d["raw"], d["dotnet"]}, 5},
		{"since a time between the batches", []string{"-A", "--since", w.since.Format(time.RFC3339)}, []*catalog.Dump{d["late"]}, 1},
		{"until the first batch", []string{"-A", "--until", w.t1.Format(time.RFC3339)}, []*catalog.Dump{d["unknown"], d["frames"], d["raw"], d["dotnet"]}, 4},
		{"since a duration", []string{"-A", "--since", "1h"}, []*catalog.Dump{d["late"], d["unknown"], d["frames"], d["raw"], d["dotnet"]}, 5},
		{"since nothing", []string{"-A", "--since", time.Now().Add(time.Hour).UTC().Format(time.RFC3339)}, nil, 0},
		{"container from the key", []string{"-n", "prod", "--container", "worker"}, []*catalog.Dump{d["late"]}, 1},
		{"node from the manifests", []string{"-A", "--node", "node-b"}, []*catalog.Dump{d["late"]}, 5},
		{"unattributed", []string{"-n", "_unknown"}, []*catalog.Dump{d["unknown"]}, 1},
		{"limit", []string{"-A", "--limit", "2"}, newestFirst([]*catalog.Dump{d["late"], d["unknown"], d["frames"], d["raw"], d["dotnet"]})[:2], 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := w.cli(t, append([]string{"ls", "-v"}, tt.args...)...)
			if r.code != 0 {
				t.Fatalf("exit %d: %s", r.code, r.stderr)
			}
			var want []string
			for _, d := range newestFirst(tt.want) {
				want = append(want, short(d))
			}
			if len(tt.want) == 0 {
				if r.stdout != "" || !strings.Contains(r.stderr, "No dumps found") {
					t.Errorf("stdout %q, stderr %q; want nothing and a note", r.stdout, r.stderr)
				}
			} else if got := ids(rows(t, r.stdout, true)); strings.Join(got, " ") != strings.Join(want, " ") {
				t.Errorf("IDs %v, want %v\n%s", got, want, r.stdout)
			}
			if tt.manifests >= 0 && !strings.Contains(r.stderr, " "+strconv.Itoa(tt.manifests)+" manifests read") {
				t.Errorf("want %d manifests read; stderr:\n%s", tt.manifests, r.stderr)
			}
		})
	}

	t.Run("columns", func(t *testing.T) {
		r := w.cli(t, "ls", "-n", "prod", "--pod", "api-1")
		rs := rows(t, r.stdout, true)
		if len(rs) != 2 {
			t.Fatalf("rows %v", rs)
		}
		dn := d["dotnet"]
		if ok, _ := regexp.MatchString(`^\d+[smhd]$`, rs[1][1]); !ok {
			t.Errorf("AGE %q, want kubectl's 5s, 3m, 2h, 4d", rs[1][1])
		}
		want := []string{dn.Time.UTC().Format(tableTime), rs[1][1], "prod", "api-1", "api", "node-a",
			humanBytes(dn.Manifest.File.Size), humanBytes(dn.StoredSize), "System.Exception", "-", dn.ShortID}
		if got := strings.Join(rs[1], " "); got != strings.Join(want, " ") {
			t.Errorf("row\n  %s\nwant\n  %s", got, strings.Join(want, " "))
		}
		if rs[0][5] != "node-b" || rs[0][4] != "worker" || rs[0][8] != "-" {
			t.Errorf("late row %v: want node-b, container worker, no exception", rs[0])
		}
	})

	t.Run("no headers", func(t *testing.T) {
		r := w.cli(t, "ls", "-A", "--no-headers")
		if strings.Contains(r.stdout, "TIME") || len(rows(t, r.stdout, false)) != 5 {
			t.Errorf("--no-headers output:\n%s", r.stdout)
		}
	})

	t.Run("wide", func(t *testing.T) {
		r := w.cli(t, "ls", "-n", "staging", "-o", "wide")
		rs := rows(t, r.stdout, true)
		fr := d["frames"]
		if len(rs) != 1 || !strings.Contains(r.stdout, fr.Manifest.ID) || !strings.Contains(r.stdout, fr.Key) || !strings.Contains(r.stdout, "CORRELATION") {
			t.Errorf("wide output lacks the full ID, the key or the columns:\n%s", r.stdout)
		}
	})

	t.Run("json", func(t *testing.T) {
		r := w.cli(t, "ls", "-A", "-o", "json")
		var list lsList
		if err := json.Unmarshal([]byte(r.stdout), &list); err != nil {
			t.Fatalf("not JSON: %v\n%s", err, r.stdout)
		}
		if list.Kind != "List" || list.APIVersion != "crashdump.io/v1" {
			t.Errorf("kind %q apiVersion %q, want a List as kubectl prints one", list.Kind, list.APIVersion)
		}
		items := list.Items
		if len(items) != 5 {
			t.Fatalf("%d items, want 5", len(items))
		}
		byID := map[string]lsItem{}
		for _, it := range items {
			byID[it.ID] = it
		}
		dn := d["dotnet"]
		it, ok := byID[dn.Manifest.ID]
		if !ok {
			t.Fatalf("no item with ID %s", dn.Manifest.ID)
		}
		if it.Exception != "System.Exception" || it.Size != dn.Manifest.File.Size || it.StoredSize != dn.StoredSize ||
			it.Namespace != "prod" || it.Pod != "api-1" || it.Node != "node-a" || it.Manifest == nil ||
			it.Manifest.Pod.Image != apiPod().Image || it.URL != dn.Manifest.Object.URL || it.FileName != "coredump.1.dmp" {
			t.Errorf("item %+v", it)
		}
		r = w.cli(t, "ls", "-n", "nope", "-o", "json")
		var empty map[string]any
		if err := json.Unmarshal([]byte(r.stdout), &empty); err != nil || fmt.Sprint(empty["items"]) != "[]" {
			t.Errorf("empty JSON listing = %q, want a List with items: []", r.stdout)
		}
	})

	t.Run("name and yaml", func(t *testing.T) {
		// -o name: one full ID per line, newest first, nothing else.
		r := w.cli(t, "ls", "-n", "prod", "--pod", "api-1", "-o", "name")
		want := d["late"].Manifest.ID + "\n" + d["dotnet"].Manifest.ID + "\n"
		if r.code != 0 || r.stdout != want {
			t.Errorf("-o name: exit %d, %q; want %q", r.code, r.stdout, want)
		}
		// -o yaml: the -o json document, in YAML.
		r = w.cli(t, "ls", "-A", "-o", "yaml")
		var list lsList
		if err := yaml.Unmarshal([]byte(r.stdout), &list); err != nil || r.code != 0 || len(list.Items) != 5 || list.Kind != "List" {
			t.Fatalf("-o yaml: exit %d, %d items (%v):\n%s", r.code, len(list.Items), err, r.stdout)
		}
		if !strings.Contains(r.stdout, "shortID: ") || !strings.Contains(r.stdout, "namespace: prod") {
			t.Errorf("-o yaml lacks the JSON field names:\n%s", r.stdout)
		}
	})

	t.Run("errors", func(t *testing.T) {
		for _, args := range [][]string{
			{"ls", "-A", "-n", "prod"},
			{"ls", "-o", "xml"},
			{"ls", "--since", "yesterday"},
			{"ls", "extra-arg"},
		} {
			r := w.cli(t, args...)
			if r.code == 0 || r.stderr == "" {
				t.Errorf("%v: exit %d, stderr %q; want an error", args, r.code, r.stderr)
			}
		}
		r := runCLI(t, "crashdump", "ls", "--store", "file:///does/not/exist")
		if r.code != 1 || !strings.Contains(r.stderr, "does not exist") {
			t.Errorf("missing store directory: exit %d, %s", r.code, r.stderr)
		}
	})
}

// TestLsTableRelated: the RELATED column names the other dumps of the same
// crash by short ID; ID stays the last column.
func TestLsTableRelated(t *testing.T) {
	at := time.Date(2026, 12, 3, 9, 0, 0, 0, time.UTC)
	m := &manifest.Manifest{ID: "3f2a9c1e00000000000000000000aaaa", Node: "node-a",
		File:    manifest.File{Name: "coredump.1.dmp", Size: 1 << 20},
		Related: []manifest.Related{{ID: "7c1d2e3f00000000000000000000bbbb", Key: "prod/api-1/x"}, {ID: "99aa88bb00000000000000000000cccc", Key: "prod/api-1/y"}}}
	d := &catalog.Dump{Key: "prod/api-1/20261203T090000Z_api_3f2a9c1e_coredump.1.dmp.zst", StoredSize: 1000, ManifestSize: 10, Manifest: m,
		KeyInfo: catalog.KeyInfo{Namespace: "prod", Pod: "api-1", Container: "api", Time: at, ShortID: "3f2a9c1e"}}
	var b strings.Builder
	if err := writeLsTable(&b, []*catalog.Dump{d}, false, true, time.Now()); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	if h := strings.Fields(lines[0]); h[len(h)-2] != "RELATED" || h[len(h)-1] != "ID" {
		t.Fatalf("header %q", lines[0])
	}
	rs := rows(t, b.String(), true)
	if got := rs[0][len(rs[0])-2]; got != "7c1d2e3f,99aa88bb" {
		t.Errorf("RELATED %q, want 7c1d2e3f,99aa88bb", got)
	}
	if got := ids(rs); got[0] != "3f2a9c1e" {
		t.Errorf("ID %q", got[0])
	}
}

// testLsEmptyStore: no dumps in a store that holds nothing at all under its
// prefix says so, since a mistyped prefix looks like a quiet cluster
// otherwise (issue 19 item 3); no dumps in scope of a store that has some
// does not.
func testLsEmptyStore(t *testing.T, w *world) {
	args := w.storeArgs()
	args[1] += "-typo"
	r := runCLI(t, "crashdump", append([]string{"ls"}, args...)...)
	if w.srv == nil {
		// A file store's directory must exist: that is its own error.
		if r.code != 1 || !strings.Contains(r.stderr, "does not exist") {
			t.Errorf("mistyped directory: exit %d, stderr %q", r.code, r.stderr)
		}
	} else if r.code != 0 || !strings.Contains(r.stderr, "No dumps found in any namespace. The store "+args[1]+" is empty: check the bucket and prefix") {
		t.Errorf("mistyped prefix: exit %d, stderr %q", r.code, r.stderr)
	}
	r = w.cli(t, "ls", "-n", "no-such-namespace")
	if r.code != 0 || !strings.Contains(r.stderr, "No dumps found in namespace no-such-namespace.") || strings.Contains(r.stderr, "is empty") {
		t.Errorf("empty scope: exit %d, stderr %q", r.code, r.stderr)
	}
}
