package s3store_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/crashdump-io/crashdump/uploader"
	"github.com/crashdump-io/crashdump/uploader/miniotest"
	"github.com/crashdump-io/crashdump/uploader/s3store"
)

func newStore(t *testing.T, srv *miniotest.Server, bucket string, mod func(*s3store.Config)) *s3store.Store {
	t.Helper()
	srv.SetEnv(t)
	cfg := s3store.Config{Bucket: bucket, Endpoint: srv.Endpoint, PartSize: s3store.MinPartSize, FilePartSize: s3store.MinPartSize, Concurrency: 3}
	if mod != nil {
		mod(&cfg)
	}
	s, err := s3store.New(context.Background(), cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func randomBytes(t *testing.T, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// tempFile writes data to a file in t.TempDir and opens it for the test.
func tempFile(t *testing.T, data []byte) *os.File {
	t.Helper()
	file := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(file, data, 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// onlyReader hides io.ReaderAt so the store must stream.
type onlyReader struct{ io.Reader }

func TestPutHeadRoundTrip(t *testing.T) {
	if testing.Short() {
		t.Skip("needs MinIO")
	}
	srv := miniotest.Start(t)
	srv.MakeBucket(t, "dumps")
	s := newStore(t, srv, "dumps", nil)
	ctx := context.Background()

	big := randomBytes(t, 3*s3store.MinPartSize+12345)
	f := tempFile(t, big)

	tests := []struct {
		name      string
		data      []byte
		body      func() io.Reader
		size      int64
		wantParts int // 0: single PUT
	}{
		{"small known size", big[:1000], func() io.Reader { return bytes.NewReader(big[:1000]) }, 1000, 0},
		{"small stream", big[:1000], func() io.Reader { return onlyReader{bytes.NewReader(big[:1000])} }, -1, 0},
		{"empty stream", nil, func() io.Reader { return onlyReader{bytes.NewReader(nil)} }, -1, 0},
		{"multipart stream", big, func() io.Reader { return onlyReader{bytes.NewReader(big)} }, -1, 4},
		{"multipart file sections", big, func() io.Reader { return io.NewSectionReader(f, 0, int64(len(big))) }, int64(len(big)), 4},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			key := "t/" + strings.ReplaceAll(tc.name, " ", "-")
			meta := map[string]string{"sha256": "abc", "namespace": "prod"}
			sent, err := s.Put(ctx, key, tc.body(), tc.size, uploader.PutOptions{Metadata: meta, SizeHint: int64(len(big))})
			if err != nil {
				t.Fatalf("Put: %v", err)
			}
			if sent.Size != int64(len(tc.data)) {
				t.Errorf("sent size %d, want %d", sent.Size, len(tc.data))
			}
			got, err := s.Head(ctx, key)
			if err != nil {
				t.Fatalf("Head: %v", err)
			}
			if got.Size != sent.Size || got.Checksum != sent.Checksum {
				t.Errorf("stored %d %q, sent %d %q", got.Size, got.Checksum, sent.Size, sent.Checksum)
			}
			if got.Checksum == "" {
				t.Error("store reported no checksum")
			}
			wantSuffix := ""
			if tc.wantParts > 0 {
				wantSuffix = "-" + string(rune('0'+tc.wantParts))
			}
			if !strings.HasSuffix(got.Checksum, wantSuffix) || (wantSuffix == "" && strings.Contains(got.Checksum, "-")) {
				t.Errorf("checksum %q: want %d parts", got.Checksum, tc.wantParts)
			}
			if got.Metadata["sha256"] != "abc" || got.Metadata["namespace"] != "prod" {
				t.Errorf("metadata %v", got.Metadata)
			}
			if b := srv.Get(t, "dumps", key); !bytes.Equal(b, tc.data) {
				t.Errorf("stored bytes differ (%d vs %d)", len(b), len(tc.data))
			}
		})
	}
	if ups := srv.MultipartUploads(t, "dumps"); len(ups) != 0 {
		t.Errorf("multipart uploads left: %v", ups)
	}
}

func TestHeadMissing(t *testing.T) {
	if testing.Short() {
		t.Skip("needs MinIO")
	}
	srv := miniotest.Start(t)
	srv.MakeBucket(t, "dumps")
	s := newStore(t, srv, "dumps", nil)
	_, err := s.Head(context.Background(), "nope")
	if !errors.Is(err, uploader.ErrNotExist) {
		t.Fatalf("Head of a missing key: %v, want ErrNotExist", err)
	}
	if err := s.Ping(context.Background()); err != nil {
		t.Fatalf("Ping: %v", err)
	}
	// A missing bucket is named, with what to do, by every call that can
	// tell (Ping, List, Get); Get's is not ErrNotExist (the object is not
	// known to be missing). Before: the SDK's 404 text, and Get said
	// "not exist".
	other := newStore(t, srv, "no-such-bucket", nil)
	want := `bucket "no-such-bucket" does not exist at ` + srv.Endpoint + `: create it, or fix the bucket in --store`
	if err := other.Ping(context.Background()); err == nil || err.Error() != want {
		t.Errorf("Ping of a missing bucket: %v, want %q", err, want)
	}
	err = other.List(context.Background(), "", "", func([]uploader.Object, []string) error { return nil })
	if err == nil || err.Error() != want {
		t.Errorf("List of a missing bucket: %v, want %q", err, want)
	}
	if _, _, err := other.Get(context.Background(), "k"); err == nil || !strings.Contains(err.Error(), want) || errors.Is(err, uploader.ErrNotExist) {
		t.Errorf("Get from a missing bucket: %v, want %q and not ErrNotExist", err, want)
	}
}

// failingReader fails after n bytes: an upload interrupted mid-way must
// abort its multipart upload, leaving nothing behind.
type failingReader struct {
	r io.Reader
	n int
}

func (f *failingReader) Read(p []byte) (int, error) {
	if f.n <= 0 {
		return 0, errors.New("source broke")
	}
	if len(p) > f.n {
		p = p[:f.n]
	}
	n, err := f.r.Read(p)
	f.n -= n
	return n, err
}

func TestFailedPutLeavesNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("needs MinIO")
	}
	srv := miniotest.Start(t)
	srv.MakeBucket(t, "dumps")
	s := newStore(t, srv, "dumps", nil)
	data := randomBytes(t, 4*s3store.MinPartSize)
	_, err := s.Put(context.Background(), "broken", &failingReader{r: bytes.NewReader(data), n: 2*s3store.MinPartSize + 7}, -1, uploader.PutOptions{})
	if err == nil {
		t.Fatal("Put of a failing stream succeeded")
	}
	if ups := srv.MultipartUploads(t, "dumps"); len(ups) != 0 {
		t.Errorf("multipart uploads left: %v", ups)
	}
	if keys := srv.Keys(t, "dumps", ""); len(keys) != 0 {
		t.Errorf("objects left: %v", keys)
	}
}

func TestAbortIncomplete(t *testing.T) {
	if testing.Short() {
		t.Skip("needs MinIO")
	}
	srv := miniotest.Start(t)
	srv.MakeBucket(t, "dumps")
	s := newStore(t, srv, "dumps", nil)
	c := srv.Client()
	ctx := context.Background()
	// What an agent killed mid-upload leaves: started uploads of the key,
	// and one of a key that merely shares its prefix (must survive).
	for _, k := range []string{"a/dump", "a/dump", "a/dump.json"} {
		if _, err := c.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: aws.String("dumps"), Key: aws.String(k)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.AbortIncomplete(ctx, "a/dump"); err != nil {
		t.Fatal(err)
	}
	ups := srv.MultipartUploads(t, "dumps")
	if len(ups) != 1 || !strings.HasPrefix(ups[0], "a/dump.json ") {
		t.Fatalf("remaining uploads %v, want only a/dump.json's", ups)
	}
}

func TestServerSideEncryption(t *testing.T) {
	if testing.Short() {
		t.Skip("needs MinIO")
	}
	key := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{7}, 32))
	srv := miniotest.Start(t, miniotest.Options{KMSSecretKey: "crashdump-test-key:" + key})
	srv.MakeBucket(t, "dumps")
	for _, sse := range []string{"AES256", "aws:kms"} {
		t.Run(sse, func(t *testing.T) {
			s := newStore(t, srv, "dumps", func(c *s3store.Config) { c.SSE = sse })
			data := randomBytes(t, 2*s3store.MinPartSize+1)
			k := "enc/" + strings.ReplaceAll(sse, ":", "-")
			sent, err := s.Put(context.Background(), k, onlyReader{bytes.NewReader(data)}, -1, uploader.PutOptions{})
			if err != nil {
				t.Fatalf("Put: %v", err)
			}
			out, err := srv.Client().HeadObject(context.Background(), &s3.HeadObjectInput{Bucket: aws.String("dumps"), Key: aws.String(k)})
			if err != nil {
				t.Fatal(err)
			}
			if string(out.ServerSideEncryption) != sse {
				t.Errorf("stored with encryption %q, want %q", out.ServerSideEncryption, sse)
			}
			got, err := s.Head(context.Background(), k)
			if err != nil || got.Size != sent.Size {
				t.Fatalf("Head: %v %d", err, got.Size)
			}
			if !bytes.Equal(srv.Get(t, "dumps", k), data) {
				t.Error("decrypted bytes differ")
			}
		})
	}
}

// TestSharedBufferBudget: several streamed uploads share a budget of two
// part buffers; all complete intact (no deadlock, no starvation).
func TestSharedBufferBudget(t *testing.T) {
	if testing.Short() {
		t.Skip("needs MinIO")
	}
	srv := miniotest.Start(t)
	srv.MakeBucket(t, "dumps")
	s := newStore(t, srv, "dumps", func(c *s3store.Config) { c.MaxBufferBytes = 2 * s3store.MinPartSize })
	data := randomBytes(t, 3*s3store.MinPartSize+1)
	errs := make(chan error, 4)
	for i := range 4 {
		go func() {
			_, err := s.Put(context.Background(), "k"+string(rune('0'+i)), onlyReader{bytes.NewReader(data)}, -1, uploader.PutOptions{})
			errs <- err
		}()
	}
	for range 4 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	for i := range 4 {
		if !bytes.Equal(srv.Get(t, "dumps", "k"+string(rune('0'+i))), data) {
			t.Errorf("object %d differs", i)
		}
	}
}

// countingReader counts what the store has read of a stream.
type countingReader struct {
	r io.Reader
	n atomic.Int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// Metadata known only late (the SHA-256 a compressed upload computes while
// it streams) is asked for when the upload is created, after the store has
// read ahead into its buffers, and ends up on the object.
func TestLateMetadata(t *testing.T) {
	if testing.Short() {
		t.Skip("needs MinIO")
	}
	srv := miniotest.Start(t)
	srv.MakeBucket(t, "dumps")
	s := newStore(t, srv, "dumps", nil) // 5 MiB parts, 3 in flight
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		size int
		// readAhead: bytes the store must have read before it asks.
		readAhead int64
	}{
		{"single put", 1000, 1000},
		{"multipart", 6*s3store.MinPartSize + 1, 3 * s3store.MinPartSize},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data := randomBytes(t, tc.size)
			body := &countingReader{r: bytes.NewReader(data)}
			o, err := s.Put(ctx, tc.name, body, -1, uploader.PutOptions{
				Metadata: map[string]string{"pod": "early", "node": "n1"},
				LateMetadata: func(ctx context.Context) (map[string]string, error) {
					// Like a hash still running: wait, while the store
					// keeps reading into its buffers.
					deadline := time.Now().Add(10 * time.Second)
					for body.n.Load() < tc.readAhead {
						if time.Now().After(deadline) {
							return nil, fmt.Errorf("store read only %d bytes while waiting, want %d", body.n.Load(), tc.readAhead)
						}
						time.Sleep(5 * time.Millisecond)
					}
					return map[string]string{"sha256": "late-value", "pod": "late"}, nil
				},
			})
			if err != nil {
				t.Fatal(err)
			}
			h, err := s.Head(ctx, tc.name)
			if err != nil {
				t.Fatal(err)
			}
			want := map[string]string{"sha256": "late-value", "pod": "late", "node": "n1"}
			for k, v := range want {
				if h.Metadata[k] != v || o.Metadata[k] != v {
					t.Errorf("metadata %s: stored %q, returned %q, want %q", k, h.Metadata[k], o.Metadata[k], v)
				}
			}
			if h.Size != int64(tc.size) {
				t.Errorf("stored %d bytes, want %d", h.Size, tc.size)
			}
		})
	}
	// A failure to produce the metadata fails the upload and leaves
	// nothing, not even an unfinished multipart upload.
	boom := errors.New("hash failed")
	_, err := s.Put(ctx, "failed", onlyReader{bytes.NewReader(randomBytes(t, 2*s3store.MinPartSize+1))}, -1, uploader.PutOptions{
		LateMetadata: func(context.Context) (map[string]string, error) { return nil, boom },
	})
	if !errors.Is(err, boom) {
		t.Fatalf("put with failing late metadata: %v, want %v", err, boom)
	}
	if _, err := s.Head(ctx, "failed"); !errors.Is(err, uploader.ErrNotExist) {
		t.Errorf("head after failed put: %v, want not exist", err)
	}
}

// TestFilePartSize: bodies read straight from a file use the larger file part
// size (32 MiB by default): a file up to it is one PUT, a larger one has
// parts of that size; streams keep the smaller in-memory part size.
func TestFilePartSize(t *testing.T) {
	if testing.Short() {
		t.Skip("needs MinIO")
	}
	srv := miniotest.Start(t)
	srv.MakeBucket(t, "dumps")
	s := newStore(t, srv, "dumps", func(c *s3store.Config) { c.PartSize = s3store.MinPartSize; c.FilePartSize = 0 })
	data := randomBytes(t, 40<<20)
	f := tempFile(t, data)
	tests := []struct {
		name      string
		body      io.Reader
		size      int64
		wantParts int // 0: single PUT
	}{
		{"file of 20 MiB", io.NewSectionReader(f, 0, 20<<20), 20 << 20, 0},
		{"file of exactly 32 MiB", io.NewSectionReader(f, 0, 32<<20), 32 << 20, 0},
		{"file of 40 MiB", io.NewSectionReader(f, 0, 40<<20), 40 << 20, 2},
		{"stream of 20 MiB", onlyReader{bytes.NewReader(data[:20<<20])}, -1, 4},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			key := "t/" + strings.ReplaceAll(tc.name, " ", "-")
			sent, err := s.Put(context.Background(), key, tc.body, tc.size, uploader.PutOptions{SizeHint: int64(len(data))})
			if err != nil {
				t.Fatalf("Put: %v", err)
			}
			got, err := s.Head(context.Background(), key)
			if err != nil {
				t.Fatalf("Head: %v", err)
			}
			parts := 0
			if i := strings.LastIndex(got.Checksum, "-"); i >= 0 {
				parts, _ = strconv.Atoi(got.Checksum[i+1:])
			}
			if parts != tc.wantParts || got.Checksum != sent.Checksum {
				t.Errorf("stored checksum %q (sent %q): %d parts, want %d", got.Checksum, sent.Checksum, parts, tc.wantParts)
			}
			if b := srv.Get(t, "dumps", key); !bytes.Equal(b, data[:got.Size]) || got.Size != sent.Size {
				t.Errorf("stored %d bytes that differ from the %d sent", len(b), sent.Size)
			}
		})
	}
}
