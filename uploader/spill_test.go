package uploader

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
)

// spillDir returns a spill directory of the kind a test case names: "tmp"
// a fresh one, "missing" one that does not exist, "" none.
func spillDir(t *testing.T, kind string) string {
	switch kind {
	case "tmp":
		return t.TempDir()
	case "missing":
		return filepath.Join(t.TempDir(), "missing")
	}
	return ""
}

// writeAsync writes b in pieces of at most piece bytes on its own goroutine
// and reports the result on the returned channel.
func writeAsync(p *spillPipe, b []byte, piece int) <-chan error {
	done := make(chan error, 1)
	go func() {
		for len(b) > 0 {
			k := min(piece, len(b))
			n, err := p.Write(b[:k])
			if err != nil {
				done <- err
				return
			}
			if n != k {
				done <- io.ErrShortWrite
				return
			}
			b = b[k:]
		}
		done <- nil
	}()
	return done
}

// blocked reports whether the write is still waiting after a short while:
// the negative check needs a bound, everything else polls.
func blocked(done <-chan error) bool {
	select {
	case <-done:
		return false
	case <-time.After(100 * time.Millisecond):
		return true
	}
}

func waitDone(t *testing.T, done <-chan error) {
	t.Helper()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("write: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("write did not finish")
	}
}

func TestSpillPipe(t *testing.T) {
	const kib = 1 << 10
	tests := []struct {
		name string
		// dir: "tmp" a fresh directory, "" none, "missing" one that does
		// not exist.
		dir string
		max int64
		// written before anyone reads; the writer must not wait for them
		// when ahead <= max and spilling works.
		ahead int
		// stop: stopSpilling after the bytes ahead were written.
		stop bool
		// more is written after that, while the reader reads.
		more        int
		wantBlocked bool // the write of the bytes ahead waits for the reader
		wantSpilled int64
		wantErr     bool // spillErr set
	}{
		{name: "reader away, within the limit", dir: "tmp", max: 1024 * kib, ahead: 600 * kib, more: 300 * kib, wantSpilled: 600 * kib},
		{name: "exactly the limit", dir: "tmp", max: 256 * kib, ahead: 256 * kib, wantSpilled: 256 * kib},
		{name: "beyond the limit waits", dir: "tmp", max: 64 * kib, ahead: 200 * kib, wantBlocked: true},
		{name: "stopped after spilling", dir: "tmp", max: 1024 * kib, ahead: 100 * kib, stop: true, more: 500 * kib, wantSpilled: 100 * kib},
		{name: "no directory is io.Pipe", dir: "", max: 1024 * kib, ahead: 100 * kib, more: 100 * kib, wantBlocked: true},
		{name: "zero limit is io.Pipe", dir: "tmp", max: 0, ahead: 100 * kib, wantBlocked: true},
		{name: "unusable directory falls back", dir: "missing", max: 1024 * kib, ahead: 100 * kib, more: 100 * kib, wantBlocked: true, wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := spillDir(t, tc.dir)
			p := newSpillPipe(dir, tc.max)
			data := random(t, tc.ahead+tc.more)

			var got bytes.Buffer
			first := writeAsync(p, data[:tc.ahead], 48*kib)
			if b := blocked(first); b != tc.wantBlocked {
				t.Fatalf("write of %d bytes with nobody reading: blocked %v, want %v", tc.ahead, b, tc.wantBlocked)
			}
			if !tc.wantBlocked {
				// Everything ahead is in the file; reading it back empties
				// the file (truncated, so no dirty page is written back).
				if tc.stop {
					p.stopSpilling()
				}
				if _, err := io.CopyN(&got, p, int64(tc.ahead)); err != nil {
					t.Fatal(err)
				}
				if tc.wantSpilled > 0 {
					st, err := p.f.Stat()
					if err != nil {
						t.Fatal(err)
					}
					if st.Size() != 0 {
						t.Errorf("spill file holds %d bytes after the reader caught up, want 0", st.Size())
					}
				}
			}
			readDone := make(chan error, 1)
			go func() {
				_, err := io.Copy(&got, p)
				readDone <- err
			}()
			if tc.wantBlocked {
				waitDone(t, first)
			}
			// One writer at a time, as the compressor writes.
			rest := writeAsync(p, data[tc.ahead:], 32*kib)
			waitDone(t, rest)
			p.CloseWrite(nil)
			if err := <-readDone; err != nil {
				t.Fatalf("read: %v", err)
			}
			if !bytes.Equal(got.Bytes(), data) {
				t.Fatalf("read %d bytes that differ from the %d written", got.Len(), len(data))
			}
			if tc.dir == "tmp" {
				// The spill file never has a name.
				ents, err := os.ReadDir(dir)
				if err != nil {
					t.Fatal(err)
				}
				if len(ents) != 0 {
					t.Errorf("spill directory has %d entries, want none", len(ents))
				}
			}
			spilled, err := p.release()
			if (err != nil) != tc.wantErr {
				t.Errorf("spill error %v, want error %v", err, tc.wantErr)
			}
			if tc.wantSpilled > 0 && spilled < tc.wantSpilled {
				t.Errorf("spilled %d bytes, want at least %d", spilled, tc.wantSpilled)
			}
			if tc.wantBlocked && !tc.wantErr && tc.max > 0 && tc.dir != "" && spilled < tc.max {
				t.Errorf("spilled %d bytes before waiting, want the limit %d", spilled, tc.max)
			}
			if (tc.dir != "tmp" || tc.max == 0) && spilled != 0 {
				t.Errorf("spilled %d bytes without a usable spill file", spilled)
			}
		})
	}
}

// TestSpillPipeRandomized writes and reads in random pieces with the reader
// going away at random, and checks that every byte arrives once, in order.
func TestSpillPipeRandomized(t *testing.T) {
	for _, max := range []int64{0, 4 << 10, 1 << 20} {
		p := newSpillPipe(t.TempDir(), max)
		data := random(t, 3<<20)
		rng := rand.New(rand.NewPCG(1, uint64(max)))
		wrng := rand.New(rand.NewPCG(2, uint64(max)))
		werr := make(chan error, 1)
		go func() {
			b := data
			for len(b) > 0 {
				k := min(len(b), 1+wrng.IntN(200<<10))
				if _, err := p.Write(b[:k]); err != nil {
					werr <- err
					return
				}
				b = b[k:]
				if wrng.IntN(50) == 0 {
					p.stopSpilling()
				}
			}
			p.CloseWrite(nil)
			werr <- nil
		}()
		var got bytes.Buffer
		buf := make([]byte, 300<<10)
		for {
			n, err := p.Read(buf[:1+rng.IntN(len(buf))])
			got.Write(buf[:n])
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			if rng.IntN(20) == 0 {
				time.Sleep(time.Millisecond) // the reader is away: the writer spills
			}
		}
		if err := <-werr; err != nil {
			t.Fatal(err)
		}
		p.release()
		if !bytes.Equal(got.Bytes(), data) {
			t.Fatalf("max %d: read %d bytes that differ from the %d written", max, got.Len(), len(data))
		}
	}
}

func TestSpillPipeClose(t *testing.T) {
	t.Run("reader closed: writes fail", func(t *testing.T) {
		p := newSpillPipe(t.TempDir(), 1<<20)
		stop := errors.New("upload ended")
		p.CloseRead(stop)
		if _, err := p.Write([]byte("x")); !errors.Is(err, stop) {
			t.Fatalf("write after the reader closed: %v, want %v", err, stop)
		}
		p.release()
	})
	t.Run("reader closed while the writer waits", func(t *testing.T) {
		p := newSpillPipe("", 0)
		done := writeAsync(p, []byte("waiting"), 7)
		if !blocked(done) {
			t.Fatal("write finished with nobody reading")
		}
		p.CloseRead(nil)
		if err := <-done; !errors.Is(err, io.ErrClosedPipe) {
			t.Fatalf("write: %v, want io.ErrClosedPipe", err)
		}
	})
	t.Run("writer error after the spilled bytes", func(t *testing.T) {
		p := newSpillPipe(t.TempDir(), 1<<20)
		if _, err := p.Write([]byte("spilled")); err != nil {
			t.Fatal(err)
		}
		bad := errors.New("compressor failed")
		p.CloseWrite(bad)
		got, err := io.ReadAll(p)
		if string(got) != "spilled" || !errors.Is(err, bad) {
			t.Fatalf("read %q, %v; want %q, %v", got, err, "spilled", bad)
		}
		p.release()
	})
}

// gatedReaderAt holds every read that touches the last block until release
// is closed, and counts the readers held.
type gatedReaderAt struct {
	data    []byte
	block   int64
	release chan struct{}
	mu      sync.Mutex
	held    int
}

func (g *gatedReaderAt) ReadAt(p []byte, off int64) (int, error) {
	if off+int64(len(p)) > int64(len(g.data))-g.block {
		g.mu.Lock()
		g.held++
		g.mu.Unlock()
		<-g.release
	}
	if off >= int64(len(g.data)) {
		return 0, io.EOF
	}
	n := copy(p, g.data[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// waitHeld polls until n readers are held on the last block.
func (g *gatedReaderAt) waitHeld(t *testing.T, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		g.mu.Lock()
		held := g.held
		g.mu.Unlock()
		if held >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d readers reached the last block, want %d", held, n)
		}
		time.Sleep(time.Millisecond)
	}
}

// metaFirstStore is an S3-like store: it cannot take a byte of the body
// before the object's metadata (with the SHA-256) is known.
type metaFirstStore struct{ memStore }

func (m *metaFirstStore) Put(ctx context.Context, key string, body io.Reader, size int64, opts PutOptions) (Object, error) {
	md, err := opts.ObjectMetadata(ctx)
	if err != nil {
		return Object{}, err
	}
	return m.memStore.Put(ctx, key, body, size, PutOptions{Metadata: md})
}

// TestSendSpillsWhileHashing: while the hash cannot finish (its last block
// is held), the store cannot read, and the compressor still gets through
// the whole file, because its output waits in the spill file.
func TestSendSpillsWhileHashing(t *testing.T) {
	const chunk = 1 << 20
	tests := []struct {
		name string
		dir  string // "tmp", "" or "missing"
		// holders: readers held on the last block before it is released:
		// 2 when the compressor gets there too (it can only with a spill).
		holders     int
		small       bool // the dump is under the real spillMinSize
		wantSpilled bool
		wantErr     bool
	}{
		{name: "spill", dir: "tmp", holders: 2, wantSpilled: true},
		{name: "no spill directory", dir: "", holders: 1},
		{name: "unusable spill directory", dir: "missing", holders: 1, wantErr: true},
		// Below spillMinSize a dump never spills (nor opens a file).
		{name: "small dump", dir: "tmp", small: true, holders: 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := spillDir(t, tc.dir)
			if !tc.small {
				defer func(old int64) { spillMinSize = old }(spillMinSize)
				spillMinSize = 4 * chunk
			}
			u, err := New(Options{ChunkSize: chunk, Workers: 2, SpillDir: dir, SpillMax: 64 << 20})
			if err != nil {
				t.Fatal(err)
			}
			data := mixed(t, 12*chunk)
			src := &gatedReaderAt{data: data, block: chunk, release: make(chan struct{})}
			store := &metaFirstStore{}
			type result struct {
				sent Sent
				err  error
			}
			res := make(chan result, 1)
			go func() {
				s, err := u.Send(context.Background(), store, "k", src, int64(len(data)), true, PutOptions{})
				res <- result{s, err}
			}()
			src.waitHeld(t, tc.holders)
			close(src.release)
			r := <-res
			if r.err != nil {
				t.Fatal(r.err)
			}
			if (r.sent.Spilled > 0) != tc.wantSpilled {
				t.Errorf("spilled %d bytes, want spilling %v", r.sent.Spilled, tc.wantSpilled)
			}
			if (r.sent.SpillErr != nil) != tc.wantErr {
				t.Errorf("spill error %v, want error %v", r.sent.SpillErr, tc.wantErr)
			}
			dec, err := zstd.NewReader(bytes.NewReader(store.objects["k"]))
			if err != nil {
				t.Fatal(err)
			}
			defer dec.Close()
			got, err := io.ReadAll(dec)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, data) {
				t.Fatalf("stored object decompresses to %d bytes that differ from the %d sent", len(got), len(data))
			}
			sum := sha256.Sum256(data)
			if want := hex.EncodeToString(sum[:]); store.meta["k"][MetaSHA256] != want || r.sent.SHA256 != want {
				t.Errorf("sha256 metadata %q, sent %q, want %q", store.meta["k"][MetaSHA256], r.sent.SHA256, want)
			}
		})
	}
}
