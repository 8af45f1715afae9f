package main

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/crashdump-io/crashdump/collector"
	"github.com/crashdump-io/crashdump/uploader/manifest"
)

// TestManifestOnlyExplained: a dump over the crash-loop limit explains
// itself (issue 19 item 5). Its record names the reason
// (object.notUploadedReason), ls marks it in the default view with the
// number of dumps it counts, and describe and get say why. Before, ls
// showed "-" as if the size were unknown and get named the destination.
func TestManifestOnlyExplained(t *testing.T) {
	w := newWorld(t, false)
	w.policy = collector.Policy{MaxPerWindow: 1, Window: time.Hour}
	pod := manifest.Pod{Namespace: "prod", Name: "loop-0", Container: "app"}
	var files []dumpFile
	for i := range 4 {
		files = append(files, dumpFile{name: fmt.Sprint(i), path: fmt.Sprintf("prod/loop-0/core.%d", i), data: randomBytes(t, 4096), pod: &pod})
	}
	w.collect(t, "node-a", files)

	r := w.cli(t, "ls", "-n", "prod")
	if r.code != 0 {
		t.Fatalf("ls: exit %d: %s", r.code, r.stderr)
	}
	rs := rows(t, r.stdout, true)
	var record []string
	for _, row := range rs {
		if strings.Contains(strings.Join(row, " "), "not uploaded") {
			record = row
		}
	}
	if len(rs) != 2 || record == nil || !strings.Contains(r.stdout, "not uploaded (3)") {
		t.Fatalf("ls shows %d rows, want the uploaded dump and one record marked \"not uploaded (3)\":\n%s", len(rs), r.stdout)
	}
	id := record[len(record)-1]

	r = w.cli(t, "describe", id)
	want := "crash-loop limit: more than 1 dumps of prod/loop-0/app within 1h0m0s"
	if r.code != 0 || !strings.Contains(r.stdout, "not uploaded (manifest only): "+want) || !strings.Contains(r.stdout, "3 dumps") {
		t.Errorf("describe: exit %d, want the reason %q and the count:\n%s%s", r.code, want, r.stdout, r.stderr)
	}
	r = w.cli(t, "get", id, "-o", t.TempDir())
	if r.code != 1 || !strings.Contains(r.stderr, want) {
		t.Errorf("get: exit %d, want 1 and the reason %q: %s", r.code, want, r.stderr)
	}
}
