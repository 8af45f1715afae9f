package filestore

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/crashdump-io/crashdump/uploader"
)

func TestPutHead(t *testing.T) {
	dir := t.TempDir()
	s, err := New(filepath.Join(dir, "store"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	data := []byte("dump bytes")
	meta := map[string]string{"sha256": "abc", "namespace": "prod"}
	sent, err := s.Put(ctx, "prod/pod/x.zst", bytes.NewReader(data), int64(len(data)), uploader.PutOptions{Metadata: meta})
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.Head(ctx, "prod/pod/x.zst")
	if err != nil {
		t.Fatal(err)
	}
	if got.Size != sent.Size || got.Checksum != sent.Checksum || got.Checksum == "" {
		t.Errorf("head %d %q, sent %d %q", got.Size, got.Checksum, sent.Size, sent.Checksum)
	}
	if got.Metadata["sha256"] != "abc" {
		t.Logf("metadata not kept (filesystem without user xattrs?): %v", got.Metadata)
	}
	if got.URL != "file://"+filepath.Join(dir, "store", "prod/pod/x.zst") {
		t.Errorf("url %q", got.URL)
	}
	b, err := os.ReadFile(filepath.Join(dir, "store", "prod", "pod", "x.zst"))
	if err != nil || !bytes.Equal(b, data) {
		t.Fatalf("stored file: %v", err)
	}
	// The verification reads the file: a change on disk shows.
	if err := os.WriteFile(filepath.Join(dir, "store", "prod", "pod", "x.zst"), []byte("dump bytez"), 0o640); err != nil {
		t.Fatal(err)
	}
	if again, _ := s.Head(ctx, "prod/pod/x.zst"); again.Checksum == sent.Checksum {
		t.Error("Head did not notice changed bytes")
	}
	if _, err := s.Head(ctx, "prod/pod/missing"); !errors.Is(err, uploader.ErrNotExist) {
		t.Errorf("missing: %v", err)
	}
}

func TestKeysStayInside(t *testing.T) {
	dir := t.TempDir()
	s, err := New(filepath.Join(dir, "store"))
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"../escape", "/abs", "a/../../b", "a//b", "a b"} {
		if _, err := s.Put(context.Background(), key, strings.NewReader("x"), 1, uploader.PutOptions{}); err == nil {
			t.Errorf("Put(%q) accepted", key)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "escape")); err == nil {
		t.Fatal("wrote outside the store")
	}
}

type brokenReader struct{}

func (brokenReader) Read([]byte) (int, error) { return 0, errors.New("source broke") }

func TestFailedPutLeavesNothing(t *testing.T) {
	dir := t.TempDir()
	s, err := New(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Put(context.Background(), "a/b", brokenReader{}, -1, uploader.PutOptions{}); err == nil {
		t.Fatal("put of a broken body succeeded")
	}
	// A temporary file a killed agent would leave, and its clean-up.
	if err := os.WriteFile(filepath.Join(dir, "a", "b"+tmpMarker+"dead"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := s.AbortIncomplete(context.Background(), "a/b"); err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(filepath.Join(dir, "a"))
	if len(entries) != 0 {
		t.Errorf("left behind: %v", entries)
	}
}
