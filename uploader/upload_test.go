package uploader

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"sync"
	"testing"

	"github.com/klauspost/compress/zstd"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// memStore is an in-memory Store for unit tests.
type memStore struct {
	mu      sync.Mutex
	objects map[string][]byte
	meta    map[string]map[string]string
	failPut error
}

func (m *memStore) Put(ctx context.Context, key string, body io.Reader, _ int64, opts PutOptions) (Object, error) {
	if m.failPut != nil {
		return Object{}, m.failPut
	}
	b, err := io.ReadAll(body)
	if err != nil {
		return Object{}, err
	}
	md, err := opts.ObjectMetadata(ctx)
	if err != nil {
		return Object{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.objects == nil {
		m.objects = map[string][]byte{}
		m.meta = map[string]map[string]string{}
	}
	m.objects[key] = b
	m.meta[key] = md
	return Object{Key: key, Size: int64(len(b))}, nil
}

func (m *memStore) Head(_ context.Context, key string) (Object, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	b, ok := m.objects[key]
	if !ok {
		return Object{}, ErrNotExist
	}
	return Object{Key: key, Size: int64(len(b))}, nil
}

func (m *memStore) AbortIncomplete(context.Context, string) error { return nil }

func random(t *testing.T, n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// mixed is compressible: random blocks between runs of zeros and text.
func mixed(t *testing.T, n int) []byte {
	var b bytes.Buffer
	for b.Len() < n {
		b.Write(random(t, 512))
		b.Write(make([]byte, 4096))
		b.WriteString("GET /api/v1/orders?id=42 HTTP/1.1\r\nHost: shop\r\n")
	}
	return b.Bytes()[:n]
}

func TestCompressRoundTrip(t *testing.T) {
	const chunk = 64 << 10
	c, err := newCompressor(zstd.SpeedFastest, chunk, 3)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []int{0, 1, chunk - 1, chunk, chunk + 1, 10*chunk + 123} {
		src := mixed(t, n)
		var out bytes.Buffer
		read, written, err := c.compress(context.Background(), &out, bytes.NewReader(src))
		if err != nil {
			t.Fatalf("n=%d: %v", n, err)
		}
		if read != int64(n) || written != int64(out.Len()) {
			t.Errorf("n=%d: read %d written %d (buffer %d)", n, read, written, out.Len())
		}
		d, _ := zstd.NewReader(&out)
		got, err := io.ReadAll(d)
		d.Close()
		if err != nil {
			t.Fatalf("n=%d: decode: %v", n, err)
		}
		if !bytes.Equal(got, src) {
			t.Fatalf("n=%d: round trip differs", n)
		}
	}
}

type failWriter struct{ n int }

func (f *failWriter) Write(p []byte) (int, error) {
	if f.n <= 0 {
		return 0, errors.New("disk full")
	}
	f.n--
	return len(p), nil
}

func TestCompressWriteErrorStops(t *testing.T) {
	c, err := newCompressor(zstd.SpeedFastest, 16<<10, 2)
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = c.compress(context.Background(), &failWriter{n: 2}, bytes.NewReader(random(t, 1<<20)))
	if err == nil || !bytes.Contains([]byte(err.Error()), []byte("disk full")) {
		t.Fatalf("compress to a failing writer: %v", err)
	}
}

func TestAnalyze(t *testing.T) {
	u, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name     string
		data     []byte
		compress bool
	}{
		{"random", random(t, 24<<20), false},
		{"zeros", make([]byte, 17<<20+17), true},
		{"mixed", mixed(t, 20<<20), true},
		{"empty", nil, false},
		// Small files are sampled in small pieces.
		{"small random", random(t, 3<<20), false},
		{"small mixed", mixed(t, 5<<20), true},
		{"tiny random", random(t, 1000), false},
		{"tiny zeros", make([]byte, 1000), true},
		// One random MiB every 4 MiB: a power-of-two stride would sample
		// only the random blocks and send 75% zeros raw.
		{"periodic", periodic(t, 128<<20, 4<<20), true},
	} {
		a, err := u.Analyze(context.Background(), bytes.NewReader(tc.data), int64(len(tc.data)))
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if a.Compress != tc.compress {
			t.Errorf("%s: compress=%v (ratio %.2f), want %v", tc.name, a.Compress, a.Ratio, tc.compress)
		}
	}
	// A source shorter than announced: the file shrank under us.
	_, err = u.Analyze(context.Background(), bytes.NewReader(make([]byte, 100)), 200<<20)
	if !errors.Is(err, ErrSourceChanged) {
		t.Errorf("short source: %v, want ErrSourceChanged", err)
	}
}

func TestSend(t *testing.T) {
	u, err := New(Options{ChunkSize: 32 << 10})
	if err != nil {
		t.Fatal(err)
	}
	s := &memStore{}
	data := mixed(t, 300<<10)
	want := sha256.Sum256(data)
	for _, compress := range []bool{false, true} {
		o, err := u.Send(context.Background(), s, "k", bytes.NewReader(data), int64(len(data)), compress, PutOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if o.SHA256 != hex.EncodeToString(want[:]) {
			t.Errorf("compress=%v: sha256 %s, want %x", compress, o.SHA256, want)
		}
		if got := s.meta["k"][MetaSHA256]; got != o.SHA256 {
			t.Errorf("compress=%v: stored sha256 metadata %q, want %s", compress, got, o.SHA256)
		}
		got := s.objects["k"]
		if compress {
			d, _ := zstd.NewReader(bytes.NewReader(got))
			got, err = io.ReadAll(d)
			d.Close()
			if err != nil {
				t.Fatal(err)
			}
			if o.Size >= int64(len(data)) {
				t.Errorf("compressed size %d not below %d", o.Size, len(data))
			}
		}
		if !bytes.Equal(got, data) {
			t.Errorf("compress=%v: stored bytes differ", compress)
		}
	}
	// Truncated under us, both ways.
	for _, compress := range []bool{false, true} {
		_, err := u.Send(context.Background(), s, "k", bytes.NewReader(data[:1000]), int64(len(data)), compress, PutOptions{})
		if !errors.Is(err, ErrSourceChanged) {
			t.Errorf("compress=%v, source shorter than size: %v, want ErrSourceChanged", compress, err)
		}
	}
	// A store failure is reported as such, and the compressor stops.
	s.failPut = errors.New("store down")
	if _, err := u.Send(context.Background(), s, "k", bytes.NewReader(data), int64(len(data)), true, PutOptions{}); err == nil {
		t.Error("send to a failing store succeeded")
	}
}

func TestWrappers(t *testing.T) {
	reg := prometheus.NewRegistry()
	mem := &memStore{}
	s := NewStoreMetrics(reg).Wrap(WithPrefix(mem, "/team-a/"), "default")
	o, err := s.Put(context.Background(), "ns/pod/x", bytes.NewReader([]byte("abc")), 3, PutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if o.Key != "team-a/ns/pod/x" {
		t.Errorf("key %q, want the prefix applied", o.Key)
	}
	if _, err := s.Head(context.Background(), "missing"); !errors.Is(err, ErrNotExist) {
		t.Errorf("head: %v", err)
	}
	want := `
# HELP crashdump_store_operations_total Object store operations by destination, operation and result (success, not_found, error).
# TYPE crashdump_store_operations_total counter
crashdump_store_operations_total{destination="default",operation="abort",result="error"} 0
crashdump_store_operations_total{destination="default",operation="abort",result="not_found"} 0
crashdump_store_operations_total{destination="default",operation="abort",result="success"} 0
crashdump_store_operations_total{destination="default",operation="head",result="error"} 0
crashdump_store_operations_total{destination="default",operation="head",result="not_found"} 1
crashdump_store_operations_total{destination="default",operation="head",result="success"} 0
crashdump_store_operations_total{destination="default",operation="put",result="error"} 0
crashdump_store_operations_total{destination="default",operation="put",result="not_found"} 0
crashdump_store_operations_total{destination="default",operation="put",result="success"} 1
`
	if err := testutil.GatherAndCompare(reg, bytes.NewBufferString(want), "crashdump_store_operations_total"); err != nil {
		t.Error(err)
	}
}

func periodic(t *testing.T, n, period int) []byte {
	b := make([]byte, n)
	for off := 0; off < n; off += period {
		copy(b[off:], random(t, 1<<20))
	}
	return b
}

// TestSendHashed: a hash started before the upload (while the caller samples
// the file) is the one the object carries, and Send stops it whatever
// happens.
func TestSendHashed(t *testing.T) {
	u, err := New(Options{ChunkSize: 32 << 10})
	if err != nil {
		t.Fatal(err)
	}
	data := mixed(t, 300<<10)
	sum := sha256.Sum256(data)
	want := hex.EncodeToString(sum[:])
	tests := []struct {
		name     string
		compress bool
		src      []byte // what the hash and the upload read
		failPut  error
		wantErr  error
	}{
		{name: "raw", src: data},
		{name: "compressed", compress: true, src: data},
		{name: "raw, source truncated", src: data[:1000], wantErr: ErrSourceChanged},
		{name: "compressed, source truncated", compress: true, src: data[:1000], wantErr: ErrSourceChanged},
		{name: "store down", compress: true, src: data, failPut: errors.New("store down")},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := &memStore{failPut: tc.failPut}
			r := bytes.NewReader(tc.src)
			h := u.StartHash(context.Background(), r, int64(len(data)))
			sent, err := u.SendHashed(context.Background(), s, "k", r, int64(len(data)), tc.compress, PutOptions{}, h)
			select {
			case <-h.done:
			default:
				t.Error("the hash goroutine still runs after SendHashed returned")
			}
			switch {
			case tc.wantErr != nil || tc.failPut != nil:
				if err == nil {
					t.Fatal("send succeeded")
				}
				if tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
					t.Fatalf("error %v, want %v", err, tc.wantErr)
				}
				return
			case err != nil:
				t.Fatal(err)
			}
			if sent.SHA256 != want || s.meta["k"][MetaSHA256] != want {
				t.Errorf("sha256 %s, metadata %s, want %s", sent.SHA256, s.meta["k"][MetaSHA256], want)
			}
		})
	}
}

// secondReadDiffers is a file rewritten between the agent's two reads of
// it, as a writer with a shared mapping does without moving the ctime: the
// first pass over it (the hash's) sees the old bytes, every read after that
// the new.
type secondReadDiffers struct {
	mu       sync.Mutex
	old, new []byte
	read     int
}

func (s *secondReadDiffers) ReadAt(p []byte, off int64) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	src := s.old
	if s.read >= len(s.old) {
		src = s.new
	}
	if off >= int64(len(src)) {
		return 0, io.EOF
	}
	n := copy(p, src[off:])
	s.read += n
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// TestSendBytesChangedBetweenReads: the SHA-256 sent as metadata must be
// the hash of the bytes stored. When the hashing read and the upload's read
// see different bytes, with nothing else showing it, Send fails with
// ErrSourceChanged (the agent keeps the node copy and uploads again),
// compressed or raw.
func TestSendBytesChangedBetweenReads(t *testing.T) {
	u, err := New(Options{ChunkSize: 64 << 10})
	if err != nil {
		t.Fatal(err)
	}
	old := mixed(t, 1<<20)
	changed := append([]byte{}, old...)
	changed[700<<10] ^= 0xff
	for _, compress := range []bool{false, true} {
		s := &memStore{}
		src := &secondReadDiffers{old: old, new: changed}
		h := u.StartHash(context.Background(), src, int64(len(old)))
		if _, err := h.Wait(context.Background()); err != nil {
			t.Fatal(err)
		}
		_, err := u.SendHashed(context.Background(), s, "k", src, int64(len(old)), compress, PutOptions{}, h)
		if !errors.Is(err, ErrSourceChanged) {
			t.Errorf("compress=%v: %v, want ErrSourceChanged", compress, err)
		}
		// Unchanged, the same two reads pass.
		src = &secondReadDiffers{old: old, new: old}
		h = u.StartHash(context.Background(), src, int64(len(old)))
		if _, err := u.SendHashed(context.Background(), s, "k", src, int64(len(old)), compress, PutOptions{}, h); err != nil {
			t.Errorf("compress=%v, unchanged: %v", compress, err)
		}
	}
}
