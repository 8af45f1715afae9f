package uploader

import (
	"context"
	"io"

	"golang.org/x/time/rate"
)

// WithBandwidthLimit returns a Store whose uploads together never read their
// bodies faster than limiter allows, so uploads cannot saturate the node's
// network. Share one limiter between all destinations for a node-wide limit.
// Bodies are read as plain streams (the store buffers parts), so every byte
// is counted once however the store sends it.
func WithBandwidthLimit(s Store, limiter *rate.Limiter) Store {
	if limiter == nil {
		return s
	}
	return limited{Store: s, l: limiter}
}

type limited struct {
	Store
	l *rate.Limiter
}

func (l limited) Put(ctx context.Context, key string, body io.Reader, size int64, opts PutOptions) (Object, error) {
	if opts.SizeHint == 0 && size > 0 {
		opts.SizeHint = size
	}
	return l.Store.Put(ctx, key, &limitedReader{ctx: ctx, r: body, l: l.l}, -1, opts)
}

// limitedReader waits for tokens for every byte it returns. It hides any
// io.ReaderAt of the body on purpose.
type limitedReader struct {
	ctx context.Context
	r   io.Reader
	l   *rate.Limiter
}

func (r *limitedReader) Read(p []byte) (int, error) {
	if b := r.l.Burst(); len(p) > b {
		p = p[:b]
	}
	n, err := r.r.Read(p)
	if n > 0 {
		if werr := r.l.WaitN(r.ctx, n); werr != nil {
			return n, werr
		}
	}
	return n, err
}

// NewBandwidthLimiter returns a limiter for bytesPerSecond (nil for no
// limit), with a burst small enough to keep the rate smooth.
func NewBandwidthLimiter(bytesPerSecond int64) *rate.Limiter {
	if bytesPerSecond <= 0 {
		return nil
	}
	burst := int(min(bytesPerSecond/10, 1<<20))
	burst = max(burst, 32<<10)
	return rate.NewLimiter(rate.Limit(bytesPerSecond), burst)
}
