package uploader

import (
	"context"
	"io"
)

// Pacer lets something more urgent than an upload run first: every read of
// a dump by the upload engine (hashing, sampling, compressing, raw parts)
// waits for it. The node agent pauses uploads while it takes writer
// evidence of a freshly claimed dump, which a CPU-limited agent otherwise
// loses to its own compressor. Implementations are safe for concurrent use
// and must bound how long Wait blocks.
type Pacer interface {
	Wait(ctx context.Context) error
}

// pacedReaderAt waits for its Pacer before every read. It wraps what
// sparseAware returned, so hole detection still sees the *os.File.
type pacedReaderAt struct {
	ctx context.Context
	r   io.ReaderAt
	p   Pacer
}

func (p pacedReaderAt) ReadAt(b []byte, off int64) (int, error) {
	if err := p.p.Wait(p.ctx); err != nil {
		return 0, err
	}
	return p.r.ReadAt(b, off)
}

// paced returns r pacing its reads by u's Pacer, or r itself without one.
func (u *Uploader) paced(ctx context.Context, r io.ReaderAt) io.ReaderAt {
	if u.opts.Pacer == nil {
		return r
	}
	return pacedReaderAt{ctx: ctx, r: r, p: u.opts.Pacer}
}
