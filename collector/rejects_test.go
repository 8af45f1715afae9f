package collector_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestRejectMemoryBounded: a pod makes 10,050 symbolic links named like
// dumps. Each of the first 10,000 is logged and counted once; past the
// memory, the directory is logged once and the sightings are counted
// apart. Rescans add no WARN line and no drop: clearing the memory when it
// was full re-logged and re-counted every link on every rescan (the probe
// saw 40,004 WARN lines in 35 s for 10,001 links).
func TestRejectMemoryBounded(t *testing.T) {
	if testing.Short() {
		t.Skip("10,050 links")
	}
	e := newEnv(t, false)
	cfg := e.config()
	cfg.RescanInterval = 300 * time.Millisecond
	dir := filepath.Join(e.dumpDir, "flood")
	must(t, os.MkdirAll(dir, 0o755))
	const n = 10050
	for i := range n {
		must(t, os.Symlink("/etc/shadow", filepath.Join(dir, fmt.Sprintf("core.%d", i))))
	}
	stop := e.start(cfg)
	eventually(t, 60*time.Second, "every link seen once", func() bool {
		return metric(t, e.reg, "crashdump_dumps_dropped_total", "reason", "symlink") >= 10000 &&
			metric(t, e.reg, "crashdump_rejects_unremembered_total", "reason", "symlink") >= n-10000
	})
	// Let several rescans go by.
	seen := metric(t, e.reg, "crashdump_rejects_unremembered_total", "reason", "symlink")
	eventually(t, 60*time.Second, "three more rescans", func() bool {
		return metric(t, e.reg, "crashdump_rejects_unremembered_total", "reason", "symlink") >= seen+3*(n-10000)
	})
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if got := metric(t, e.reg, "crashdump_dumps_dropped_total", "reason", "symlink"); got != 10000 {
		t.Errorf("dropped{symlink} = %v, want 10000: each remembered link once, none re-counted", got)
	}
	logs := e.logs.String()
	if got := strings.Count(logs, `"msg":"not collecting entry"`); got != 10000 {
		t.Errorf("%d per-entry WARN lines, want 10000", got)
	}
	if got := strings.Count(logs, "too many rejected to remember each"); got != 1 {
		t.Errorf("%d lines for the directory past the memory, want 1", got)
	}
	if _, err := os.Stat("/etc/shadow"); err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
}
