package collector_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/crashdump-io/crashdump/collector"
	"github.com/crashdump-io/crashdump/uploader/manifest"
)

// instanceResolver attributes a dump at <dir>/<file> to one container
// instance per directory, as writer evidence would: a stand-in for the
// kubelet that names the instance.
type instanceResolver struct{}

func (instanceResolver) Resolve(_ context.Context, ev collector.Evidence) collector.Attribution {
	dir, _, _ := strings.Cut(ev.Path, "/")
	return collector.Attribution{Method: manifest.MethodWriterPID, Pod: &manifest.Pod{
		Namespace: "shop", Name: "api-" + dir, Container: "api", ContainerID: "containerd://" + dir + "0123456789abcdef"}}
}

// TestRelatedDumpsLinked: one crash of one container instance leaves two
// dumps (a .NET PID 1 dumping on SIGABRT and again on SIGSEGV); both are
// stored, and each manifest names the other, however the two uploads
// interleave. A dump of another instance, at the same moment, is linked to
// neither.
func TestRelatedDumpsLinked(t *testing.T) {
	e := newEnv(t, true)
	stop := e.startWith(e.config(), instanceResolver{}, nil)
	for _, rel := range []string{"loop/coredump.1.dmp", "loop/coredump.2.dmp", "other/coredump.1.dmp"} {
		if err := os.MkdirAll(filepath.Join(e.dumpDir, filepath.Dir(rel)), 0o755); err != nil {
			t.Fatal(err)
		}
		e.placeWhole(t, rel, []byte("MDMP"+strings.Repeat(rel, 4096)))
	}
	eventually(t, 30*time.Second, "3 dumps stored, the pair linked both ways", func() bool {
		ds := e.dumps()
		if len(ds) != 3 {
			return false
		}
		for _, d := range ds {
			if strings.HasPrefix(d.manifest.File.Path, "loop/") && len(d.manifest.Related) != 1 {
				return false
			}
		}
		return true
	})
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	byPath := map[string]stored{}
	for _, d := range e.dumps() {
		byPath[d.manifest.File.Path] = d
	}
	a, b, other := byPath["loop/coredump.1.dmp"], byPath["loop/coredump.2.dmp"], byPath["other/coredump.1.dmp"]
	for _, pair := range [][2]stored{{a, b}, {b, a}} {
		r := pair[0].manifest.Related
		if len(r) != 1 || r[0].ID != pair[1].manifest.ID || r[0].Key != pair[1].key || r[0].FileName != pair[1].manifest.File.Name {
			t.Errorf("%s: related %+v, want %s (%s)", pair[0].key, r, pair[1].manifest.ID, pair[1].key)
		}
	}
	if len(other.manifest.Related) != 0 {
		t.Errorf("another instance's dump linked: %+v", other.manifest.Related)
	}
}
