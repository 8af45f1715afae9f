package collector_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestDirectorySwapRace: a pod swaps a directory holding a dump with a
// regular file of the same name, over and over, while the agent claims.
// A claim that meets the file where the directory was is hostile input:
// a WARN counted as path_changed, not an ERROR no metric counts (the
// adversarial probe saw 140–185 such ERROR lines). Nothing outside the
// swapped names is touched, and every dump claimed is stored.
func TestDirectorySwapRace(t *testing.T) {
	e := newEnv(t, true)
	cfg := e.config()
	stop := e.start(cfg)
	dir := filepath.Join(e.dumpDir, "swap")
	parked := filepath.Join(e.dumpDir, "parked")
	deadline := time.Now().Add(2 * time.Second)
	writes := 0
	for time.Now().Before(deadline) {
		must(t, os.Mkdir(dir, 0o755))
		mustWrite(t, filepath.Join(dir, "core.dmp"), randomData(t, 4096))
		writes++
		// Park the directory (the dump inside goes with it), put a file
		// in its place, then take the file away.
		must(t, os.Rename(dir, parked))
		mustWrite(t, dir, []byte("not a directory"))
		must(t, os.Remove(dir))
		must(t, os.RemoveAll(parked))
	}
	eventually(t, 30*time.Second, "nothing pending", func() bool {
		return metric(t, e.reg, "crashdump_pending_dumps") == 0 && len(e.staged()) == 0
	})
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	logs := e.logs.String()
	errLines := 0
	for _, l := range strings.Split(logs, "\n") {
		if strings.Contains(l, `"level":"ERROR"`) {
			errLines++
			if errLines <= 3 {
				t.Errorf("an ERROR for hostile input: %s", l)
			}
		}
	}
	changed := metric(t, e.reg, "crashdump_dumps_dropped_total", "reason", "path_changed")
	detected := metric(t, e.reg, "crashdump_dumps_detected_total")
	stored := len(e.dumps())
	t.Logf("%d dumps written and swapped away; %v claimed, %d stored, %v path_changed, %d ERROR lines", writes, detected, stored, changed, errLines)
	if float64(stored) != detected {
		t.Errorf("claimed %v dumps, stored %d", detected, stored)
	}
}
