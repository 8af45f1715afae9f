package uploader

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/maphash"
	"io"
	mathrand "math/rand/v2"
	"runtime"
	"sync"

	"github.com/klauspost/compress/zstd"
)

// ErrSourceChanged is returned when the file being sent is shorter than it
// was when the upload started (truncated by a writer still holding it).
var ErrSourceChanged = errors.New("source changed while reading")

// Options tune the upload engine.
type Options struct {
	// Workers is the number of compression goroutines (default GOMAXPROCS).
	Workers int
	// ChunkSize is the size of the independently compressed chunks
	// (default 1 MiB).
	ChunkSize int
	// Level is the zstd level (default SpeedFastest: dumps are large and
	// mostly zero pages, and the node's CPU belongs to its workloads).
	Level zstd.EncoderLevel
	// MinSavings: when sampling says compression would save less than this
	// fraction, the dump is sent raw (default 0.10).
	MinSavings float64
	// SpillDir and SpillMax: while the SHA-256 the upload is created with
	// is still being computed, up to SpillMax compressed bytes per upload
	// that the store cannot take yet wait in an unnamed file in SpillDir
	// instead of stopping the compressor (dumps of 128 MiB or more). No
	// directory or 0 bytes: the compressor waits.
	SpillDir string
	SpillMax int64
	// Pacer, when set, is waited for before every read of a dump: the
	// agent's claim step pauses uploads with it (see Pacer).
	Pacer Pacer
}

// Uploader streams files into stores. Safe for concurrent use.
type Uploader struct {
	opts Options
	c    *compressor
	bufs sync.Pool
}

const analyzeBlock = 1 << 20

// New builds an Uploader.
func New(opts Options) (*Uploader, error) {
	if opts.Workers <= 0 {
		opts.Workers = runtime.GOMAXPROCS(0)
	}
	if opts.ChunkSize <= 0 {
		opts.ChunkSize = 1 << 20
	}
	if opts.Level == 0 {
		opts.Level = zstd.SpeedFastest
	}
	if opts.MinSavings == 0 {
		opts.MinSavings = 0.10
	}
	c, err := newCompressor(opts.Level, opts.ChunkSize, opts.Workers)
	if err != nil {
		return nil, err
	}
	u := &Uploader{opts: opts, c: c}
	u.bufs.New = func() any { b := make([]byte, analyzeBlock); return &b }
	return u, nil
}

// Analysis is what a quick look at a file tells before it is sent.
type Analysis struct {
	Size int64
	// Ratio is the sampled compressed/original ratio (1 when not sampled).
	Ratio float64
	// Compress is the recommendation: true unless the data looked
	// incompressible.
	Compress bool
}

const (
	// smallFile: below this, samples are small pieces rather than whole
	// blocks, so that sampling costs a few percent of compressing the file,
	// not as much.
	smallFile = 16 << 20
	// smallSample is the size of those pieces, and smallSamples their
	// number at most.
	smallSample  = 64 << 10
	smallSamples = 4
)

// Analyze compresses a sample spread over the file to decide whether
// compression is worth its CPU: about 1 block of 1 MiB in 32 (at most 64) of
// a large file, up to 4 pieces of 64 KiB of a small one. It does not read the
// whole file: the SHA-256 is computed by Send, in the same pass as the upload.
func (u *Uploader) Analyze(ctx context.Context, r io.ReaderAt, size int64) (Analysis, error) {
	a := Analysis{Size: size, Ratio: 1}
	if size == 0 {
		return a, nil
	}
	block := int64(analyzeBlock)
	if size < smallFile {
		block = smallSample
	}
	buf := u.buffer(min(block, size))
	defer u.release(buf)
	blocks := (size + block - 1) / block
	var every int64
	if size < smallFile {
		every = max(1, blocks/smallSamples)
	} else {
		// About 1 block in 32, at least 4 and at most 64 blocks.
		every = max(blocks/64, min(32, max(1, blocks/4)))
	}
	// The stride is odd and the start random, so data that repeats with a
	// power-of-two period cannot fool the sample.
	if every > 1 && every%2 == 0 {
		every++
	}
	first := int64(0)
	if every > 1 {
		first = mathrand.Int64N(every)
	}
	r = u.paced(ctx, r)
	var sampledIn, sampledOut int64
	for i := first; i < blocks; i += every {
		if err := ctx.Err(); err != nil {
			return Analysis{}, err
		}
		off := i * block
		n := int(min(block, size-off))
		if err := readFull(r, buf[:n], off); err != nil {
			return Analysis{}, err
		}
		sampledIn += int64(n)
		sampledOut += int64(u.c.sample(buf[:n]))
	}
	if sampledIn > 0 {
		a.Ratio = float64(sampledOut) / float64(sampledIn)
	}
	a.Compress = a.Ratio <= 1-u.opts.MinSavings
	return a, nil
}

// smallBuffer: reads of at most this many bytes get a buffer of their own
// size instead of a pooled 1 MiB one. A flood of tiny dumps otherwise took
// a 1 MiB buffer per hash and sample, and the pool, emptied by every GC,
// made them garbage at megabytes per dump.
const smallBuffer = 64 << 10

// buffer returns a read buffer for n bytes (at most analyzeBlock); give it
// back with release.
func (u *Uploader) buffer(n int64) []byte {
	if n <= smallBuffer {
		return make([]byte, max(n, 1))
	}
	return *u.bufs.Get().(*[]byte)
}

func (u *Uploader) release(b []byte) {
	if len(b) == analyzeBlock {
		u.bufs.Put(&b)
	}
}

// readFull reads len(p) bytes at off; a short read means the file shrank.
func readFull(r io.ReaderAt, p []byte, off int64) error {
	m, err := r.ReadAt(p, off)
	if m < len(p) {
		if err == nil || errors.Is(err, io.EOF) {
			err = fmt.Errorf("%w: %d bytes at offset %d, expected %d", ErrSourceChanged, m, off, len(p))
		}
		return fmt.Errorf("read at %d: %w", off, err)
	}
	return nil
}

// Hash returns the hex SHA-256 of size bytes of r.
func (u *Uploader) Hash(ctx context.Context, r io.ReaderAt, size int64) (string, error) {
	sum, _, err := u.hash(ctx, r, size, nil)
	return sum, err
}

// hash is Hash that also tallies what it read with seed (see tally), when
// seed is not nil.
func (u *Uploader) hash(ctx context.Context, r io.ReaderAt, size int64, seed *maphash.Seed) (string, uint64, error) {
	r = u.paced(ctx, sparseAware(r))
	h := sha256.New()
	var t maphash.Hash
	if seed != nil {
		t.SetSeed(*seed)
	}
	buf := u.buffer(size)
	defer u.release(buf)
	for off := int64(0); off < size; off += int64(len(buf)) {
		if err := ctx.Err(); err != nil {
			return "", 0, err
		}
		n := int(min(int64(len(buf)), size-off))
		if err := readFull(r, buf[:n], off); err != nil {
			return "", 0, err
		}
		h.Write(buf[:n])
		if seed != nil {
			t.Write(buf[:n])
		}
	}
	return hex.EncodeToString(h.Sum(nil)), t.Sum64(), nil
}

// tally is what makes the SHA-256 describe exactly the bytes stored
// although the file is read twice (once for the hash, once for the upload:
// S3 wants the hash when the upload is created, long before the upload's
// single read could have finished it). Both reads feed a maphash with the
// same seed, random per upload; the upload fails with ErrSourceChanged when
// the two differ. A writer that changes the file between the reads without
// moving its ctime (through a shared mapping whose pages are already
// dirty) is caught, and it cannot forge equal tallies: it never learns the
// seed. The cost is about 0.13 CPU s per GiB per read, a sixth of the
// SHA-256's.
type tallyReader struct {
	r io.Reader
	h maphash.Hash
}

func newTallyReader(r io.Reader, seed maphash.Seed) *tallyReader {
	t := &tallyReader{r: r}
	t.h.SetSeed(seed)
	return t
}

// Read implements io.Reader, and only that: a store must not read the
// file around it (by ReadAt or Seek, as zero-copy parts do), or it would
// store bytes the tally did not see.
func (t *tallyReader) Read(p []byte) (int, error) {
	n, err := t.r.Read(p)
	t.h.Write(p[:n])
	return n, err
}

// Hashing is a SHA-256 being computed on its own goroutine (StartHash), so
// that it runs while the caller does other work on the same file (sampling
// it, building the plan). Safe for concurrent use.
type Hashing struct {
	done   chan struct{}
	sum    string
	tally  uint64
	seed   maphash.Seed
	err    error
	cancel context.CancelFunc
}

// StartHash starts hashing size bytes of r. Whoever starts it must Stop it
// (Send does, for the hash it is given).
func (u *Uploader) StartHash(ctx context.Context, r io.ReaderAt, size int64) *Hashing {
	ctx, cancel := context.WithCancel(ctx)
	h := &Hashing{done: make(chan struct{}), cancel: cancel, seed: maphash.MakeSeed()}
	go func() {
		defer close(h.done)
		h.sum, h.tally, h.err = u.hash(ctx, exactReaderAt{r: sparseAware(r), size: size}, size, &h.seed)
	}()
	return h
}

// Wait returns the hex SHA-256 once it is computed.
func (h *Hashing) Wait(ctx context.Context) (string, error) {
	select {
	case <-h.done:
		return h.sum, h.err
	case <-ctx.Done():
		return "", ctx.Err()
	}
}

// Stop abandons the hash if it is still running and waits for its
// goroutine. Calling it again, or after the hash is done, does nothing.
func (h *Hashing) Stop() {
	h.cancel()
	<-h.done
}

// spillMinSize: smaller dumps never spill. Their hash is done before the
// compressor has produced more than the store's buffer budget holds (a dump
// of 128 MiB hashes in about 0.1 s and compresses to a few MiB meanwhile), so
// a spill file would cost a file creation and page-cache copies for nothing
// — measurable when hundreds of small dumps arrive at once. A variable for
// the tests.
var spillMinSize int64 = 128 << 20

// Sent is what Send stored.
type Sent struct {
	Object
	// SHA256 is the hex SHA-256 of the original bytes, also stored as the
	// object's MetaSHA256 metadata.
	SHA256 string
	// Spilled is how many compressed bytes waited in the spill file
	// (Options.SpillDir); SpillErr says why spilling stopped, if it did
	// (the upload went on without it).
	Spilled  int64
	SpillErr error
}

// Send stores size bytes of r under key, zstd-compressed when compress is
// set, with the SHA-256 of the original bytes in the object metadata
// (MetaSHA256). It fails with ErrSourceChanged if r turns out shorter than
// size.
//
// A compressed upload hashes the file on its own goroutine while the
// compressor runs on the others: S3 wants the metadata when the upload is
// created, so the store holds back the first parts (within its bounded
// buffer budget) until the hash is done, through PutOptions.LateMetadata,
// and the compressor's output beyond that waits in the spill file
// (Options.SpillDir). Nothing waits for a separate hashing pass, and memory
// stays bounded. A raw upload hashes first: its parts are read straight from
// the file, so there is nothing to overlap the hash with until the upload
// exists — except what the caller did since StartHash (SendHashed).
func (u *Uploader) Send(ctx context.Context, s Store, key string, r io.ReaderAt, size int64, compress bool, opts PutOptions) (Sent, error) {
	return u.SendHashed(ctx, s, key, r, size, compress, opts, nil)
}

// SendHashed is Send with the SHA-256 of r already being computed by h
// (StartHash on the same r and size), nil to start it here. It stops h.
func (u *Uploader) SendHashed(ctx context.Context, s Store, key string, r io.ReaderAt, size int64, compress bool, opts PutOptions, h *Hashing) (Sent, error) {
	src := exactReaderAt{r: u.paced(ctx, sparseAware(r)), size: size}
	if h == nil {
		h = u.StartHash(ctx, r, size)
	}
	defer h.Stop()
	if !compress {
		sum, err := h.Wait(ctx)
		if err != nil {
			return Sent{}, fmt.Errorf("upload %s: hash: %w", key, err)
		}
		opts.Metadata = withSHA256(opts.Metadata, sum)
		body := newTallyReader(io.NewSectionReader(src, 0, size), h.seed)
		o, err := s.Put(ctx, key, body, size, opts)
		if err != nil {
			return Sent{}, fmt.Errorf("upload %s: %w", key, err)
		}
		if body.h.Sum64() != h.tally {
			return Sent{}, fmt.Errorf("upload %s: %w: the bytes stored are not the bytes hashed", key, ErrSourceChanged)
		}
		return Sent{Object: o, SHA256: sum}, nil
	}

	// Spilling is for the time the store waits for the hash; after that a
	// store slower than the compressor (a bandwidth limit) slows it down,
	// as it should, instead of filling the disk.
	spillMax := u.opts.SpillMax
	if size < spillMinSize {
		spillMax = 0
	}
	pipe := newSpillPipe(u.opts.SpillDir, spillMax)
	sendDone := make(chan struct{})
	defer close(sendDone)
	go func() {
		select {
		case <-h.done:
			pipe.stopSpilling()
		case <-sendDone:
		}
	}()
	earlier := opts.LateMetadata
	opts.LateMetadata = func(ctx context.Context) (map[string]string, error) {
		var md map[string]string
		if earlier != nil {
			var err error
			if md, err = earlier(ctx); err != nil {
				return nil, err
			}
		}
		sum, err := h.Wait(ctx)
		if err != nil {
			return nil, fmt.Errorf("hash: %w", err)
		}
		return withSHA256(md, sum), nil
	}

	var read int64
	var cerr error
	done := make(chan struct{})
	body := newTallyReader(io.NewSectionReader(src, 0, size), h.seed)
	go func() {
		defer close(done)
		read, _, cerr = u.c.compress(ctx, pipe, body)
		pipe.CloseWrite(cerr)
	}()
	if opts.SizeHint == 0 {
		// zstd's worst case is a little above the input size.
		opts.SizeHint = size + size/100 + 1<<20
	}
	o, err := s.Put(ctx, key, pipeReader{pipe}, -1, opts)
	pipe.CloseRead(errors.New("upload ended"))
	<-done
	spilled, spillErr := pipe.release()
	if err != nil {
		h.Stop()
	}
	<-h.done
	sum, herr := h.sum, h.err
	switch {
	case errors.Is(cerr, ErrSourceChanged):
		return Sent{}, fmt.Errorf("upload %s: compress: %w", key, cerr)
	case errors.Is(herr, ErrSourceChanged):
		return Sent{}, fmt.Errorf("upload %s: hash: %w", key, herr)
	case cerr != nil && err == nil:
		return Sent{}, fmt.Errorf("upload %s: compress: %w", key, cerr)
	case err != nil:
		return Sent{}, fmt.Errorf("upload %s: %w", key, err)
	case herr != nil:
		return Sent{}, fmt.Errorf("upload %s: hash: %w", key, herr)
	case read != size:
		return Sent{}, fmt.Errorf("upload %s: %w: read %d of %d bytes", key, ErrSourceChanged, read, size)
	case body.h.Sum64() != h.tally:
		return Sent{}, fmt.Errorf("upload %s: %w: the bytes stored are not the bytes hashed", key, ErrSourceChanged)
	}
	return Sent{Object: o, SHA256: sum, Spilled: spilled, SpillErr: spillErr}, nil
}

// pipeReader shows the store only the reading side of a spillPipe.
type pipeReader struct{ p *spillPipe }

func (r pipeReader) Read(b []byte) (int, error) { return r.p.Read(b) }

func withSHA256(md map[string]string, sum string) map[string]string {
	out := make(map[string]string, len(md)+1)
	for k, v := range md {
		out[k] = v
	}
	out[MetaSHA256] = sum
	return out
}

// exactReaderAt turns a short read inside [0,size) into ErrSourceChanged, so
// a file truncated under us fails the upload instead of storing less.
type exactReaderAt struct {
	r    io.ReaderAt
	size int64
}

func (e exactReaderAt) ReadAt(p []byte, off int64) (int, error) {
	n, err := e.r.ReadAt(p, off)
	if n < len(p) && off+int64(n) < e.size && (err == nil || errors.Is(err, io.EOF)) {
		return n, fmt.Errorf("%w: short read at offset %d", ErrSourceChanged, off+int64(n))
	}
	return n, err
}
