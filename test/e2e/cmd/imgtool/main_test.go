package main

import (
	"archive/tar"
	"bytes"
	"debug/elf"
	"encoding/binary"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

func TestBuildLayer(t *testing.T) {
	b, err := buildLayer([]entry{
		{path: "/app/crashapp", data: []byte("ELF"), mode: 0o755},
		{path: "/var/lib/thing", dir: true, mode: 0o700},
	})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]*tar.Header{}
	var order []string
	tr := tar.NewReader(bytes.NewReader(b))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		got[h.Name] = h
		order = append(order, h.Name)
	}
	for name, mode := range map[string]int64{
		"app/": 0o755, "app/crashapp": 0o755, "tmp/": 0o1777, "var/tmp/": 0o1777,
		"var/": 0o755, "var/lib/": 0o755, "var/lib/thing/": 0o700, "etc/passwd": 0o644,
	} {
		h, ok := got[name]
		if !ok {
			t.Errorf("%s missing from layer %v", name, order)
			continue
		}
		if h.Mode != mode {
			t.Errorf("%s mode %o, want %o", name, h.Mode, mode)
		}
		if !h.ModTime.Equal(epoch) {
			t.Errorf("%s mtime %v, want the epoch", name, h.ModTime)
		}
	}
	for i := 1; i < len(order); i++ {
		if order[i-1] >= order[i] {
			t.Fatalf("entries not sorted: %v", order)
		}
	}
	again, _ := buildLayer([]entry{
		{path: "/app/crashapp", data: []byte("ELF"), mode: 0o755},
		{path: "/var/lib/thing", dir: true, mode: 0o700},
	})
	if !bytes.Equal(b, again) {
		t.Fatal("layer is not reproducible")
	}
}

func TestParseRef(t *testing.T) {
	for _, tt := range []struct{ ref, tag, want string }{
		{"e2e.local/crashdump", "dev", "e2e.local/crashdump:dev"},
		{"e2e.local/crashdump:old", "dev", "e2e.local/crashdump:dev"},
		{"e2e.local/pause:3.10", "", "e2e.local/pause:3.10"},
		{"e2e.local/emu", "", "e2e.local/emu:latest"},
	} {
		r, err := parseRef(tt.ref, tt.tag)
		if err != nil || r.Name() != tt.want {
			t.Errorf("parseRef(%q, %q) = %q, %v; want %q", tt.ref, tt.tag, r.Name(), err, tt.want)
		}
	}
}

// fakeELF writes a minimal static ELF64 header for machine: enough for
// checkStatic and checkMachine, which read only the headers.
func fakeELF(t *testing.T, machine elf.Machine) string {
	t.Helper()
	h := make([]byte, 64)
	copy(h, []byte{0x7f, 'E', 'L', 'F', byte(elf.ELFCLASS64), byte(elf.ELFDATA2LSB), byte(elf.EV_CURRENT)})
	binary.LittleEndian.PutUint16(h[16:], uint16(elf.ET_EXEC))
	binary.LittleEndian.PutUint16(h[18:], uint16(machine))
	binary.LittleEndian.PutUint32(h[20:], uint32(elf.EV_CURRENT))
	binary.LittleEndian.PutUint16(h[52:], 64) // e_ehsize
	p := filepath.Join(t.TempDir(), "crashdump")
	if err := os.WriteFile(p, h, 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestParsePlatforms(t *testing.T) {
	for _, tt := range []struct {
		in      []string
		want    []target
		wantErr string
	}{
		{in: []string{"linux/amd64=a", "linux/arm64=b"}, want: []target{{"amd64", "a"}, {"arm64", "b"}}},
		{in: []string{"linux/amd64"}, wantErr: "want linux/ARCH=BINARY"},
		{in: []string{"linux/=a"}, wantErr: "want linux/ARCH=BINARY"},
		{in: []string{"darwin/arm64=a"}, wantErr: "only linux"},
		{in: []string{"linux/amd64=a", "linux/amd64=b"}, wantErr: "given twice"},
	} {
		got, err := parsePlatforms(tt.in)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("parsePlatforms(%q) error %v, want %q", tt.in, err, tt.wantErr)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("parsePlatforms(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
		}
	}
}

// TestIndexArchive writes a two-platform index and reads it back the way
// containerd's importer does: index.json names one image index, which lists
// one manifest per platform.
func TestIndexArchive(t *testing.T) {
	c := imageConfig{inImage: "/crashdump", entrypoint: "/crashdump", cmd: "agent", user: "65532:65532",
		workdir: "/", format: "oci", labels: []string{"org.opencontainers.image.version=v1.2.3"}}
	ts := []target{{"amd64", fakeELF(t, elf.EM_X86_64)}, {"arm64", fakeELF(t, elf.EM_AARCH64)}}
	idx, err := buildIndex(ts, c, false)
	if err != nil {
		t.Fatal(err)
	}
	tag, _ := parseRef("example.com/crashdump", "v1.2.3")
	out := filepath.Join(t.TempDir(), "img.oci.tar")
	if err := writeOCIArchive(out, tag, func(p layout.Path, opts ...layout.Option) error { return p.AppendIndex(idx, opts...) }); err != nil {
		t.Fatal(err)
	}
	files := readTar(t, out)
	var top v1.IndexManifest
	if err := json.Unmarshal(files["index.json"], &top); err != nil {
		t.Fatal(err)
	}
	if len(top.Manifests) != 1 || top.Manifests[0].MediaType != types.OCIImageIndex ||
		top.Manifests[0].Annotations["io.containerd.image.name"] != "example.com/crashdump:v1.2.3" {
		t.Fatalf("index.json = %+v, want one named image index", top.Manifests)
	}
	blob := func(h v1.Hash) []byte { return files["blobs/"+h.Algorithm+"/"+h.Hex] }
	var nested v1.IndexManifest
	if err := json.Unmarshal(blob(top.Manifests[0].Digest), &nested); err != nil {
		t.Fatal(err)
	}
	var plats []string
	for _, m := range nested.Manifests {
		plats = append(plats, m.Platform.OS+"/"+m.Platform.Architecture)
		var man v1.Manifest
		if err := json.Unmarshal(blob(m.Digest), &man); err != nil {
			t.Fatal(err)
		}
		var cf v1.ConfigFile
		if err := json.Unmarshal(blob(man.Config.Digest), &cf); err != nil {
			t.Fatal(err)
		}
		if cf.Architecture != m.Platform.Architecture || cf.Config.User != "65532:65532" ||
			!reflect.DeepEqual(cf.Config.Entrypoint, []string{"/crashdump"}) ||
			cf.Config.Labels["org.opencontainers.image.version"] != "v1.2.3" {
			t.Errorf("%s config %+v", m.Platform.Architecture, cf)
		}
	}
	if !reflect.DeepEqual(plats, []string{"linux/amd64", "linux/arm64"}) {
		t.Errorf("platforms %v, want linux/amd64 linux/arm64", plats)
	}

	// The wrong binary for an architecture is refused before anything is written.
	if _, err := buildIndex([]target{{"arm64", ts[0].binary}}, c, false); err == nil || !strings.Contains(err.Error(), "not linux/arm64") {
		t.Errorf("amd64 binary as linux/arm64: %v, want refused", err)
	}
}

func readTar(t *testing.T, p string) map[string][]byte {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	files := map[string][]byte{}
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return files
		}
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		files[h.Name] = b
	}
}
