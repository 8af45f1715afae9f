package filestore_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/crashdump-io/crashdump/uploader"
	"github.com/crashdump-io/crashdump/uploader/filestore"
)

// listAll collects a listing and its page sizes.
func listAll(t *testing.T, s *filestore.Store, prefix, delim string) (keys, prefixes []string, pages []int) {
	t.Helper()
	err := s.List(context.Background(), prefix, delim, func(objs []uploader.Object, ps []string) error {
		pages = append(pages, len(objs))
		for _, o := range objs {
			if o.Size != int64(len(o.Key)) {
				t.Errorf("%s: size %d, want %d", o.Key, o.Size, len(o.Key))
			}
			if o.Store != "file" || !strings.HasSuffix(o.URL, "/"+o.Key) {
				t.Errorf("%s: store %q url %q", o.Key, o.Store, o.URL)
			}
			keys = append(keys, o.Key)
		}
		prefixes = append(prefixes, ps...)
		return nil
	})
	if err != nil {
		t.Fatalf("List(%q, %q): %v", prefix, delim, err)
	}
	return keys, prefixes, pages
}

func TestList(t *testing.T) {
	dir := t.TempDir()
	s, err := filestore.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	// Each object's content is its key, so sizes are checkable.
	for _, k := range []string{"a/x/1", "a/x/1.json", "a/y/2", "a.json", "ab/z/3", "b/w/4"} {
		if _, err := s.Put(ctx, k, strings.NewReader(k), int64(len(k)), uploader.PutOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	// Left behind by a killed Put, a symlink and a FIFO: never listed.
	if err := os.WriteFile(filepath.Join(dir, "a/x/5.tmp-0123456789abcdef"), []byte("partial"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/etc/passwd", filepath.Join(dir, "a/x/link")); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		prefix, delim string
		keys          string
		prefixes      string
	}{
		{"", "", "a.json a/x/1 a/x/1.json a/y/2 ab/z/3 b/w/4", ""},
		{"a/", "", "a/x/1 a/x/1.json a/y/2", ""},
		{"a", "", "a.json a/x/1 a/x/1.json a/y/2 ab/z/3", ""},
		{"a/x/1", "", "a/x/1 a/x/1.json", ""},
		{"a/x/1.json", "", "a/x/1.json", ""},
		{"", "/", "a.json", "a/ ab/ b/"},
		{"a/", "/", "", "a/x/ a/y/"},
		{"a/x/", "/", "a/x/1 a/x/1.json", ""},
		{"nope/", "", "", ""},
		{"../", "", "", ""},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%q delim %q", tt.prefix, tt.delim), func(t *testing.T) {
			keys, prefixes, _ := listAll(t, s, tt.prefix, tt.delim)
			if got := strings.Join(keys, " "); got != tt.keys {
				t.Errorf("keys = %q, want %q", got, tt.keys)
			}
			if got := strings.Join(prefixes, " "); got != tt.prefixes {
				t.Errorf("prefixes = %q, want %q", got, tt.prefixes)
			}
		})
	}

	t.Run("other delimiters are refused", func(t *testing.T) {
		err := s.List(ctx, "", "_", func([]uploader.Object, []string) error { return nil })
		if err == nil {
			t.Fatal("delimiter _ accepted")
		}
	})
	t.Run("page errors stop the listing", func(t *testing.T) {
		stop := errors.New("stop")
		if err := s.List(ctx, "", "", func([]uploader.Object, []string) error { return stop }); !errors.Is(err, stop) {
			t.Fatalf("List returned %v, want the page's error", err)
		}
	})
}

func TestListPages(t *testing.T) {
	dir := t.TempDir()
	s, err := filestore.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	// Written directly: 1003 synced Puts would only make the test slow.
	if err := os.MkdirAll(filepath.Join(dir, "ns/p"), 0o755); err != nil {
		t.Fatal(err)
	}
	for i := range 1003 {
		k := fmt.Sprintf("ns/p/k%04d", i)
		if err := os.WriteFile(filepath.Join(dir, k), []byte(k), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	keys, _, pages := listAll(t, s, "ns/", "")
	if len(keys) != 1003 || fmt.Sprint(pages) != "[1000 3]" || keys[0] != "ns/p/k0000" || keys[1002] != "ns/p/k1002" {
		t.Fatalf("%d keys in pages %v (first %s), want 1003 in [1000 3], in order", len(keys), pages, keys[0])
	}
}

func TestGet(t *testing.T) {
	dir := t.TempDir()
	s, err := filestore.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	meta := map[string]string{uploader.MetaSHA256: "abc", uploader.MetaNamespace: "prod"}
	if _, err := s.Put(ctx, "ns/p/obj", strings.NewReader("hello"), 5, uploader.PutOptions{Metadata: meta}); err != nil {
		t.Fatal(err)
	}
	body, o, err := s.Get(ctx, "ns/p/obj")
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(body)
	body.Close()
	if err != nil || string(b) != "hello" || o.Size != 5 || o.Key != "ns/p/obj" {
		t.Fatalf("Get = %q, %+v, %v", b, o, err)
	}
	// Extended attributes may be unsupported (tmpfs without user xattrs):
	// then there is no metadata, but what there is must be right.
	if len(o.Metadata) > 0 && (o.Metadata[uploader.MetaSHA256] != "abc" || o.Metadata[uploader.MetaNamespace] != "prod") {
		t.Errorf("metadata = %v, want %v", o.Metadata, meta)
	}
	for _, k := range []string{"ns/p/missing", "ns/p", "../outside", "ns//p"} {
		if _, _, err := s.Get(ctx, k); err == nil {
			t.Errorf("Get(%q) succeeded", k)
		} else if k == "ns/p/missing" && !errors.Is(err, uploader.ErrNotExist) {
			t.Errorf("Get(%q) = %v, want ErrNotExist", k, err)
		}
	}
	if err := os.Symlink("/etc/passwd", filepath.Join(dir, "ns/p/link")); err != nil {
		t.Fatal(err)
	}
	if body, _, err := s.Get(ctx, "ns/p/link"); err == nil {
		body.Close()
		t.Error("Get followed a symlink out of the store")
	}
}
