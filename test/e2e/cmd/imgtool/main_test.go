package main

import (
	"archive/tar"
	"bytes"
	"io"
	"testing"
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
