package catalog

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/klauspost/compress/zstd"

	"github.com/crashdump-io/crashdump/uploader"
	"github.com/crashdump-io/crashdump/uploader/manifest"
)

// IntegrityError means the bytes read back are not the dump the agent
// stored: a SHA-256 or size that differs from the manifest, or a zstd
// stream that does not decode. The object is corrupt or was modified;
// whatever was written must be discarded.
type IntegrityError struct {
	Key    string
	Reason string
	Err    error
}

func (e *IntegrityError) Error() string {
	msg := fmt.Sprintf("integrity check of %s failed: %s", e.Key, e.Reason)
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg + " (the stored object is corrupt or was modified)"
}

func (e *IntegrityError) Unwrap() error { return e.Err }

// Expected is what a dump must turn out to be once fetched.
type Expected struct {
	SHA256 string
	// Size is the original size, -1 when unknown.
	Size        int64
	Compression string
	// Source is where the expectations came from: "manifest" or
	// "object metadata" (a dump whose manifest is not written yet).
	Source string
}

// expected takes the expectations from the manifest, or from the dump
// object's metadata when there is no manifest.
func expected(d *Dump, meta map[string]string) (Expected, error) {
	if m := d.Manifest; m != nil {
		e := Expected{SHA256: m.File.SHA256, Size: m.File.Size, Compression: m.Object.Compression, Source: "manifest"}
		if e.Compression == "" {
			e.Compression = manifest.CompressionNone
		}
		return e, e.check(d.Key)
	}
	lower := make(map[string]string, len(meta))
	for k, v := range meta {
		lower[strings.ToLower(k)] = v
	}
	e := Expected{SHA256: lower[uploader.MetaSHA256], Size: -1, Compression: lower[uploader.MetaCompression], Source: "object metadata"}
	if s, err := strconv.ParseInt(lower[uploader.MetaOriginalSize], 10, 64); err == nil {
		e.Size = s
	}
	if e.SHA256 == "" {
		return e, fmt.Errorf("verify %s: no manifest and no sha256 in the object metadata: nothing to verify against", d.Key)
	}
	return e, e.check(d.Key)
}

func (e Expected) check(key string) error {
	if len(e.SHA256) != sha256.Size*2 || !isHex(e.SHA256) {
		return fmt.Errorf("verify %s: the %s has no valid sha256 (%q)", key, e.Source, e.SHA256)
	}
	switch e.Compression {
	case manifest.CompressionNone, manifest.CompressionZstd:
		return nil
	}
	return fmt.Errorf("get %s: unknown compression %q in the %s", key, e.Compression, e.Source)
}

// Fetched describes a verified fetch.
type Fetched struct {
	// Size is the number of (decompressed) bytes written.
	Size int64
	// StoredSize is the number of bytes read from the store.
	StoredSize int64
	SHA256     string
	Expected   Expected
}

// Fetch streams dump d into w: it reads the object, decompresses it when
// it is zstd (a sequence of independent frames, as the agent writes it) and
// checks the SHA-256 and size against the manifest (or the object metadata
// when the manifest is missing). Memory is bounded whatever the size.
//
// Bytes reach w before the check completes: on any error, and in particular
// on an *IntegrityError, the caller must discard what w received. progress,
// when not nil, is called with the number of stored bytes read so far; it
// runs on the reading goroutine and must be cheap (store an atomic).
func (c *Catalog) Fetch(ctx context.Context, d *Dump, w io.Writer, progress func(storedRead int64)) (Fetched, error) {
	if d.Manifest != nil && d.Manifest.Object.ManifestOnly {
		why := d.Manifest.Object.NotUploadedReason
		if why == "" {
			why = "no reason recorded"
		}
		return Fetched{}, fmt.Errorf("get %s: the dump was not uploaded, only its manifest: %s (see crashdump describe)", d.Key, why)
	}
	if !d.HasObject() {
		return Fetched{}, fmt.Errorf("get %s: the dump object is not in the store (only its manifest is)", d.Key)
	}
	body, obj, err := c.store.Get(ctx, d.Key)
	if err != nil {
		return Fetched{}, err
	}
	defer body.Close()
	exp, err := expected(d, obj.Metadata)
	if err != nil {
		return Fetched{}, err
	}
	cr := &countingReader{r: body, progress: progress}
	var src io.Reader = cr
	if exp.Compression == manifest.CompressionZstd {
		dec, err := zstd.NewReader(cr)
		if err != nil {
			return Fetched{}, fmt.Errorf("get %s: zstd decoder: %w", d.Key, err)
		}
		defer dec.Close()
		src = dec
	}
	h := sha256.New()
	ew := &errWriter{w: w}
	n, err := io.Copy(io.MultiWriter(ew, h), src)
	switch {
	case err == nil:
	case ew.err != nil:
		return Fetched{}, fmt.Errorf("get %s: write: %w", d.Key, ew.err)
	case cr.readErr() != nil:
		// The store (or the network) failed, not the data.
		return Fetched{}, fmt.Errorf("get %s: read after %d bytes: %w", d.Key, cr.n.Load(), cr.readErr())
	case ctx.Err() != nil:
		return Fetched{}, fmt.Errorf("get %s: %w", d.Key, ctx.Err())
	default:
		return Fetched{}, &IntegrityError{Key: d.Key, Reason: "the zstd stream does not decode", Err: err}
	}
	if err := ctx.Err(); err != nil {
		// Interrupted: a store whose reads ignore the context (a local
		// file) may have run to the end, but the caller gave up.
		return Fetched{}, fmt.Errorf("get %s: %w", d.Key, err)
	}
	f := Fetched{Size: n, StoredSize: cr.n.Load(), SHA256: hex.EncodeToString(h.Sum(nil)), Expected: exp}
	if obj.Size > 0 && f.StoredSize != obj.Size {
		return f, &IntegrityError{Key: d.Key, Reason: fmt.Sprintf("read %d bytes of a %d-byte object", f.StoredSize, obj.Size)}
	}
	if exp.Size >= 0 && n != exp.Size {
		return f, &IntegrityError{Key: d.Key, Reason: fmt.Sprintf("size is %d bytes, the %s says %d", n, exp.Source, exp.Size)}
	}
	if f.SHA256 != strings.ToLower(exp.SHA256) {
		return f, &IntegrityError{Key: d.Key, Reason: fmt.Sprintf("SHA-256 mismatch: got %s, the %s says %s", f.SHA256, exp.Source, exp.SHA256)}
	}
	return f, nil
}

// countingReader counts the stored bytes read and remembers a read error,
// so Fetch can tell a failing store from corrupt data.
// The zstd decoder reads on its own goroutines, hence the atomics.
type countingReader struct {
	r        io.Reader
	n        atomic.Int64
	err      atomic.Pointer[error]
	progress func(int64)
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	total := c.n.Add(int64(n))
	if c.progress != nil && n > 0 {
		c.progress(total)
	}
	if err != nil && !errors.Is(err, io.EOF) {
		c.err.Store(&err)
	}
	return n, err
}

func (c *countingReader) readErr() error {
	if p := c.err.Load(); p != nil {
		return *p
	}
	return nil
}

// errWriter remembers a write error (the destination failing: disk full).
type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) Write(p []byte) (int, error) {
	n, err := e.w.Write(p)
	if err != nil {
		e.err = err
	}
	return n, err
}

// CrashReport returns the stored .NET crash report of dump d as a dump of
// its own, for Fetch: verified against the size and SHA-256 d's manifest
// recorded for it. It fails when the manifest names none (an agent before
// reports were stored, or a dump without a report).
func (d *Dump) CrashReport() (*Dump, error) {
	m := d.Manifest
	if m == nil {
		return nil, fmt.Errorf("get %s: no manifest, so no crash report is known", d.Key)
	}
	cr := m.CrashReport
	if cr == nil || cr.Key == "" {
		if m.File.CrashReport != "" {
			return nil, fmt.Errorf("get %s: the crash report %s was not stored (collected by agent %s, which kept only its summary)", d.Key, m.File.CrashReport, m.AgentVersion)
		}
		return nil, fmt.Errorf("get %s: this dump has no crash report", d.Key)
	}
	rm := &manifest.Manifest{SchemaVersion: m.SchemaVersion, ID: m.ID, Node: m.Node,
		File:   manifest.File{Name: m.File.CrashReport, SHA256: cr.SHA256, Size: cr.Size},
		Object: manifest.Object{Compression: manifest.CompressionNone, Key: cr.Key}}
	return &Dump{Key: cr.Key, StoredSize: cr.Size, ManifestSize: -1, Manifest: rm, KeyInfo: d.KeyInfo, Parsed: d.Parsed}, nil
}
