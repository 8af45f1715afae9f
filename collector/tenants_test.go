package collector_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/crashdump-io/crashdump/collector"
)

// nsLabelResolver attributes <ns>/<pod>/<file> like pathResolver and
// gives each namespace the labels of labels[ns].
type nsLabelResolver struct{ labels map[string]map[string]string }

func (r nsLabelResolver) Resolve(ctx context.Context, ev collector.Evidence) collector.Attribution {
	att := pathResolver{}.Resolve(ctx, ev)
	if att.Pod != nil {
		att.NamespaceLabels = r.labels[att.Pod.Namespace]
	}
	return att
}

// storedNames is the file names of the dumps in the store.
func storedNames(e *env) map[string]bool {
	names := map[string]bool{}
	for _, d := range e.dumps() {
		names[d.manifest.File.Path] = true
	}
	return names
}

// evictedPaths are the paths the agent logged evicting.
func evictedPaths(e *env) []string {
	var out []string
	for _, l := range strings.Split(e.logs.String(), "\n") {
		if i := strings.Index(l, `"msg":"evicted dump to keep the disk budget","path":"`); i >= 0 {
			rest := l[i+len(`"msg":"evicted dump to keep the disk budget","path":"`):]
			out = append(out, rest[:strings.IndexByte(rest, '"')])
		}
	}
	return out
}

// TestDiskBudgetEvictsLargestTenant: the store is down and dumps pile up.
// ns1 has one dump, the oldest on the node; ns2 writes three. Past
// --max-dump-bytes the budget evicts ns2's oldest — the tenant using the
// most disk, over its fair share — and never ns1's, although it is the
// oldest (the old policy, oldest first, evicted the victim). Once the store
// is back, ns1's dump and ns2's two newest are stored.
func TestDiskBudgetEvictsLargestTenant(t *testing.T) {
	e := newEnv(t, true)
	e.srv.Stop()
	cfg := e.config()
	cfg.MaxDumpBytes = 4_500_000
	cfg.RetryBase, cfg.RetryMax = time.Minute, time.Minute
	res := pathResolver{}
	stop := e.startWith(cfg, res, nil)
	files := []string{"ns1/victim-7d9f/victim.dmp", "ns2/hog-5c4b/a.dmp", "ns2/hog-5c4b/b.dmp", "ns2/hog-5c4b/c.dmp"}
	for i, name := range files {
		mustWrite(t, filepath.Join(e.dumpDir, name), randomData(t, 1_000_000))
		eventually(t, 30*time.Second, name+" failed once", func() bool {
			return metric(t, e.reg, "crashdump_uploads_total", "result", "failure") >= float64(i+1)
		})
	}
	if got := metric(t, e.reg, "crashdump_dumps_dropped_total", "reason", "disk_budget"); got != 0 {
		t.Fatalf("evicted %v dumps under the budget (%v)", got, evictedPaths(e))
	}
	mustWrite(t, filepath.Join(e.dumpDir, "ns2/hog-5c4b/d.dmp"), randomData(t, 1_000_000))
	eventually(t, 30*time.Second, "one dump evicted", func() bool {
		return metric(t, e.reg, "crashdump_dumps_dropped_total", "reason", "disk_budget") >= 1
	})
	if got := evictedPaths(e); len(got) != 1 || got[0] != "ns2/hog-5c4b/a.dmp" {
		t.Fatalf("evicted %v, want only ns2's oldest, ns2/hog-5c4b/a.dmp", got)
	}
	// The retry backoff is long; a restarted agent resumes at once.
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if err := e.srv.Restart(); err != nil {
		t.Fatal(err)
	}
	e.startWith(e.config(), res, nil)
	eventually(t, 60*time.Second, "four dumps stored", func() bool { return len(e.dumps()) == 4 })
	got := storedNames(e)
	for _, want := range []string{"ns1/victim-7d9f/victim.dmp", "ns2/hog-5c4b/b.dmp", "ns2/hog-5c4b/c.dmp", "ns2/hog-5c4b/d.dmp"} {
		if !got[want] {
			t.Errorf("%s not stored (stored: %v)", want, got)
		}
	}
}

// TestDiskBudgetPerNamespace: --max-dump-bytes-per-namespace bounds each
// namespace on its own; a namespace label crashdump.io/max-dump-bytes
// raises it ("3Mi") or lifts it ("0") for that namespace. A pod annotation
// of the same name is ignored: a tenant cannot raise its own budget.
func TestDiskBudgetPerNamespace(t *testing.T) {
	e := newEnv(t, true)
	e.srv.Stop()
	cfg := e.config()
	cfg.MaxDumpBytesPerNamespace = 1_500_000
	cfg.RetryBase, cfg.RetryMax = time.Minute, time.Minute
	res := nsLabelResolver{labels: map[string]map[string]string{
		"raised": {collector.LabelMaxDumpBytes: "3Mi"},
		"lifted": {collector.LabelMaxDumpBytes: "0"},
	}}
	// The pod annotation is the tenant's own: it must not count.
	res2 := annotated{res, map[string]string{collector.LabelMaxDumpBytes: "100Mi"}}
	e.startWith(cfg, res2, nil)
	for _, ns := range []string{"plain", "raised", "lifted"} {
		for _, f := range []string{"a.dmp", "b.dmp"} {
			rel := ns + "/app-1/" + f
			mustWrite(t, filepath.Join(e.dumpDir, rel), randomData(t, 1_000_000))
			eventually(t, 30*time.Second, rel+" failed or evicted", func() bool {
				logs := e.logs.String()
				return strings.Contains(logs, `"msg":"upload failed; will retry","path":"`+rel+`"`) ||
					strings.Contains(logs, `"msg":"evicted dump to keep the disk budget","path":"`+rel+`"`)
			})
		}
	}
	// plain's second dump is claimed before its first was attributed
	// (the path names the namespace already): the oldest goes.
	eventually(t, 10*time.Second, "plain's oldest evicted", func() bool {
		return metric(t, e.reg, "crashdump_dumps_dropped_total", "reason", "disk_budget") >= 1
	})
	if got := evictedPaths(e); len(got) != 1 || got[0] != "plain/app-1/a.dmp" {
		t.Fatalf("evicted %v, want only plain/app-1/a.dmp", got)
	}
	if got := metric(t, e.reg, "crashdump_pending_dumps"); got != 5 {
		t.Errorf("pending dumps %v, want 5", got)
	}
}

// annotated adds pod annotations to another resolver's answers.
type annotated struct {
	collector.PodResolver
	ann map[string]string
}

func (r annotated) Resolve(ctx context.Context, ev collector.Evidence) collector.Attribution {
	att := r.PodResolver.Resolve(ctx, ev)
	if att.Pod != nil {
		att.Annotations = r.ann
	}
	return att
}

// TestDiskBudgetCountsAllocatedBlocks: the budget charges a dump the disk
// it uses, not its apparent size. A tenant's sparse file (ns2, `truncate
// -s`, 4 KiB of data) costs nothing, so with the store down it evicts neither
// another tenant's real dump (ns1) nor itself; both are stored once the store is
// back. Charged by st_size, the sparse file was "larger than the budget"
// and evicted, and beside more dumps it pushed theirs out.
func TestDiskBudgetCountsAllocatedBlocks(t *testing.T) {
	e := newEnv(t, true)
	e.srv.Stop()
	cfg := e.config()
	cfg.MaxDumpBytes = 2_500_000
	cfg.RetryBase = time.Minute
	cfg.RetryMax = time.Minute
	stop := e.startWith(cfg, pathResolver{}, nil)
	for _, d := range []string{"ns1/pod-victim", "ns2/pod-sparse"} {
		must(t, os.MkdirAll(filepath.Join(e.dumpDir, d), 0o755))
	}
	victim := randomData(t, 1_000_000)
	mustWrite(t, filepath.Join(e.dumpDir, "ns1/pod-victim/victim.dmp"), victim)
	f, err := os.Create(filepath.Join(e.dumpDir, "ns2/pod-sparse/sparse.dmp"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(randomData(t, 4096)); err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(256 << 20); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "both dumps failed once", func() bool {
		return metric(t, e.reg, "crashdump_uploads_total", "result", "failure") >= 2
	})
	if got := metric(t, e.reg, "crashdump_dumps_dropped_total", "reason", "disk_budget"); got != 0 {
		t.Fatalf("evicted %v dumps: a sparse file was charged its apparent size", got)
	}
	if got := metric(t, e.reg, "crashdump_dump_disk_bytes"); got < 1_000_000 || got > 1_200_000 {
		t.Errorf("crashdump_dump_disk_bytes %v, want what the two use on disk (~1 MB)", got)
	}
	if got := metric(t, e.reg, "crashdump_pending_bytes"); got < 256<<20 {
		t.Errorf("crashdump_pending_bytes %v, want the apparent sizes (over 256 MiB)", got)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if err := e.srv.Restart(); err != nil {
		t.Fatal(err)
	}
	e.startWith(e.config(), pathResolver{}, nil)
	eventually(t, 60*time.Second, "both stored", func() bool { return len(e.dumps()) == 2 })
	for _, d := range e.dumps() {
		if d.manifest.File.Name == "victim.dmp" && !bytes.Equal(d.original(t), victim) {
			t.Errorf("victim.dmp stored with other bytes")
		}
		if d.manifest.File.Name == "sparse.dmp" && d.manifest.File.Size != 256<<20 {
			t.Errorf("sparse.dmp stored as %d bytes", d.manifest.File.Size)
		}
	}
}
