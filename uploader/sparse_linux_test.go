package uploader

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
)

// The sparse-aware reader returns exactly what a plain read returns, at any
// offset and length, across holes, data and the end of the file.
func TestSparseReaderAt(t *testing.T) {
	const size = 3<<20 + 4096*3 + 100
	path := filepath.Join(t.TempDir(), "sparse.dmp")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	// Data at the start, in the middle (not page aligned) and at the end;
	// holes between and a hole at the tail of the first MiB.
	for _, w := range []struct {
		off int64
		n   int
	}{{0, 5000}, {1<<20 + 1234, 70000}, {2 << 20, 4096}, {size - 50, 50}} {
		b := bytes.Repeat([]byte{byte(w.off%251 + 1)}, w.n)
		if _, err := f.WriteAt(b, w.off); err != nil {
			t.Fatal(err)
		}
	}
	plain, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	r := sparseAware(f)
	if _, ok := r.(sparseReaderAt); !ok {
		t.Skip("filesystem of t.TempDir() does not report holes")
	}
	for _, tc := range []struct {
		name string
		off  int64
		n    int
	}{
		{"whole file", 0, size},
		{"data then hole", 0, 1 << 20},
		{"inside a hole", 8192, 4096},
		{"hole into data", 1 << 20, 1 << 20},
		{"data into hole", 1<<20 + 1234 + 60000, 1 << 20},
		{"tail data", size - 100, 100},
		{"past the end", size - 10, 100},
		{"at the end", size, 10},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := bytes.Repeat([]byte{0xee}, tc.n) // garbage the reader must overwrite
			n, err := r.ReadAt(got, tc.off)
			want := plain[min(tc.off, size):min(tc.off+int64(tc.n), size)]
			if n != len(want) || !bytes.Equal(got[:n], want) {
				t.Fatalf("read %d bytes, want %d; equal=%v", n, len(want), bytes.Equal(got[:n], want))
			}
			if short := n < tc.n; short != errors.Is(err, io.EOF) || (!short && err != nil) {
				t.Errorf("n=%d of %d, err %v", n, tc.n, err)
			}
		})
	}
}
