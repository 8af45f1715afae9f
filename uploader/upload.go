package uploader

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
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

// Analysis is what one read of a file tells before it is sent.
type Analysis struct {
	SHA256 string
	Size   int64
	// Ratio is the sampled compressed/original ratio (1 when not sampled).
	Ratio float64
	// Compress is the recommendation: true unless the data looked
	// incompressible.
	Compress bool
}

// Analyze reads size bytes of r once: it computes the SHA-256 that goes into
// the manifest and object metadata, and compresses a sample of blocks spread
// over the file to decide whether compression is worth its CPU.
func (u *Uploader) Analyze(ctx context.Context, r io.ReaderAt, size int64) (Analysis, error) {
	h := sha256.New()
	bp := u.bufs.Get().(*[]byte)
	defer u.bufs.Put(bp)
	buf := *bp
	blocks := (size + analyzeBlock - 1) / analyzeBlock
	// Sample about 1 block in 32, at least 4 and at most 64 blocks. The
	// stride is odd and the start random, so data that repeats with a
	// power-of-two period cannot fool the sample.
	every := max(blocks/64, min(32, max(1, blocks/4)))
	if every > 1 && every%2 == 0 {
		every++
	}
	offset := int64(0)
	if every > 1 {
		offset = mathrand.Int64N(every)
	}
	var sampledIn, sampledOut int64
	for i, off := int64(0), int64(0); off < size; i, off = i+1, off+analyzeBlock {
		if i%64 == 0 && ctx.Err() != nil {
			return Analysis{}, ctx.Err()
		}
		n := int(min(int64(len(buf)), size-off))
		m, err := r.ReadAt(buf[:n], off)
		if m < n {
			if err == nil || errors.Is(err, io.EOF) {
				err = fmt.Errorf("%w: %d bytes at offset %d, expected %d", ErrSourceChanged, m, off, n)
			}
			return Analysis{}, fmt.Errorf("read at %d: %w", off, err)
		}
		h.Write(buf[:n])
		if i%every == offset {
			sampledIn += int64(n)
			sampledOut += int64(u.c.sample(buf[:n]))
		}
	}
	a := Analysis{SHA256: hex.EncodeToString(h.Sum(nil)), Size: size, Ratio: 1}
	if sampledIn > 0 {
		a.Ratio = float64(sampledOut) / float64(sampledIn)
	}
	a.Compress = a.Ratio <= 1-u.opts.MinSavings
	return a, nil
}

// Send stores size bytes of r under key, zstd-compressed when compress is
// set. It fails with ErrSourceChanged if r turns out shorter than size.
func (u *Uploader) Send(ctx context.Context, s Store, key string, r io.ReaderAt, size int64, compress bool, opts PutOptions) (Object, error) {
	src := exactReaderAt{r: r, size: size}
	if !compress {
		o, err := s.Put(ctx, key, io.NewSectionReader(src, 0, size), size, opts)
		if err != nil {
			return Object{}, fmt.Errorf("upload %s: %w", key, err)
		}
		return o, nil
	}
	pr, pw := io.Pipe()
	var read int64
	var cerr error
	done := make(chan struct{})
	go func() {
		defer close(done)
		read, _, cerr = u.c.compress(ctx, pw, io.NewSectionReader(src, 0, size))
		pw.CloseWithError(cerr)
	}()
	if opts.SizeHint == 0 {
		// zstd's worst case is a little above the input size.
		opts.SizeHint = size + size/100 + 1<<20
	}
	o, err := s.Put(ctx, key, pr, -1, opts)
	pr.CloseWithError(errors.New("upload ended"))
	<-done
	if cerr != nil && (err == nil || errors.Is(cerr, ErrSourceChanged)) {
		return Object{}, fmt.Errorf("upload %s: compress: %w", key, cerr)
	}
	if err != nil {
		return Object{}, fmt.Errorf("upload %s: %w", key, err)
	}
	if read != size {
		return Object{}, fmt.Errorf("upload %s: %w: read %d of %d bytes", key, ErrSourceChanged, read, size)
	}
	return o, nil
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
