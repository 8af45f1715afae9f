package uploader

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/klauspost/compress/zstd"
)

// compressor turns a stream into a sequence of independent zstd frames, one
// per chunk, compressing chunks on several goroutines and writing them in
// order. A concatenation of frames is a valid zstd stream (`zstd -d` and
// every library decoder read it), and independent chunks are what lets a
// 2-core node compress at twice the single-core speed. Memory is bounded by
// inFlight × (chunk + its compressed form), whatever the stream's size.
// Safe for concurrent use: each call to compress has its own pipeline; the
// encoder and buffer pool are shared.
type compressor struct {
	enc      *zstd.Encoder
	chunk    int
	workers  int
	inFlight int
	bufs     sync.Pool
}

func newCompressor(level zstd.EncoderLevel, chunk, workers int) (*compressor, error) {
	if workers < 1 {
		workers = 1
	}
	enc, err := zstd.NewWriter(nil,
		zstd.WithEncoderLevel(level),
		zstd.WithEncoderConcurrency(workers),
		// No per-frame xxhash: the SHA-256 of the original bytes (in the
		// manifest and metadata, checked by `crashdump get`) and the
		// per-part CRC32C the store verifies already cover the data, and
		// the hash costs about 5% of the compression CPU.
		zstd.WithEncoderCRC(false),
		zstd.WithZeroFrames(true),
		// Frames are at most one chunk: a larger window buys nothing and
		// each encoder would keep history buffers sized for it.
		zstd.WithWindowSize(1<<20),
		zstd.WithLowerEncoderMem(true),
	)
	if err != nil {
		return nil, fmt.Errorf("create zstd encoder: %w", err)
	}
	c := &compressor{enc: enc, chunk: chunk, workers: workers, inFlight: workers + 1}
	c.bufs.New = func() any {
		b := make([]byte, 0, chunk+chunk/64+1024)
		return &b
	}
	return c, nil
}

type chunkJob struct {
	in   *[]byte
	out  *[]byte
	done chan struct{}
}

// compress reads src to EOF and writes the compressed stream to dst. It
// returns the number of bytes read from src and written to dst.
func (c *compressor) compress(ctx context.Context, dst io.Writer, src io.Reader) (read, written int64, err error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	jobs := make(chan *chunkJob)                // to workers
	ordered := make(chan *chunkJob, c.inFlight) // to the writer, in stream order

	var wg sync.WaitGroup
	for range c.workers {
		wg.Go(func() {
			for j := range jobs {
				out := c.bufs.Get().(*[]byte)
				*out = c.enc.EncodeAll(*j.in, (*out)[:0])
				j.out = out
				c.bufs.Put(j.in)
				j.in = nil
				close(j.done)
			}
		})
	}

	writeErr := make(chan error, 1)
	go func() {
		var err error
		for j := range ordered {
			<-j.done
			if err == nil {
				var n int
				n, err = dst.Write(*j.out)
				written += int64(n)
				if err != nil {
					cancel()
				}
			}
			c.bufs.Put(j.out)
		}
		writeErr <- err
	}()

	var readErr error
	for {
		if ctx.Err() != nil {
			readErr = ctx.Err()
			break
		}
		in := c.bufs.Get().(*[]byte)
		*in = (*in)[:c.chunk]
		n, err := io.ReadFull(src, *in)
		*in = (*in)[:n]
		read += int64(n)
		if n > 0 {
			j := &chunkJob{in: in, done: make(chan struct{})}
			select {
			case ordered <- j:
			case <-ctx.Done():
				c.bufs.Put(in)
				readErr = ctx.Err()
			}
			if readErr != nil {
				break
			}
			jobs <- j
		} else {
			c.bufs.Put(in)
		}
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			break
		}
		if err != nil {
			readErr = fmt.Errorf("read source: %w", err)
			break
		}
	}
	close(jobs)
	close(ordered)
	wg.Wait()
	// A failed write cancels the reader, so the write error is the cause.
	if werr := <-writeErr; werr != nil {
		return read, written, fmt.Errorf("write compressed stream: %w", werr)
	}
	return read, written, readErr
}

// sample compresses p on its own and returns the compressed length, for the
// compressibility estimate.
func (c *compressor) sample(p []byte) int {
	out := c.bufs.Get().(*[]byte)
	*out = c.enc.EncodeAll(p, (*out)[:0])
	n := len(*out)
	c.bufs.Put(out)
	return n
}
