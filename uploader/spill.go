package uploader

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
)

// spillPipe connects the compressor to the store like io.Pipe, with one
// difference: until stopSpilling, when the reader is not there to take the
// writer's bytes, up to max of them wait in an unnamed temporary file
// instead of stopping the writer.
//
// Why: S3 needs the SHA-256 (object metadata) when the upload is created, so
// while the hash runs the store can hold only its part-buffer budget of
// compressed bytes and then stops reading. Without somewhere to put its
// output the compressor would stop too, and one of a small node's cores
// would idle until the hash is done (about 0.8 s per GiB). Spilled bytes are
// page cache backed by the node's disk: under memory pressure the kernel
// writes them back and reclaims them, which it cannot do with the
// anonymous memory of a container without swap, so the agent's memory stays
// bounded by its buffer budget. The file is truncated whenever the reader
// catches up, so bytes read back within seconds are normally never written
// to the disk at all; a reader that is waiting takes the writer's bytes
// directly, as from io.Pipe, without the file.
//
// One goroutine writes and one reads; either side may close. A spill file
// that cannot be created or written is not an error: the pipe then behaves
// as io.Pipe (the writer waits), which is slower but loses nothing.
type spillPipe struct {
	mu   sync.Mutex
	cond sync.Cond
	max  int64

	f        *os.File // nil when not spilling
	spillErr error    // creating or writing f failed: spill no more
	r, w     int64    // read and write offsets in f; r == w: nothing spilled
	spilled  int64    // bytes that went through f, for the caller

	waiting bool   // the reader is blocked in Read with nothing to read
	pending []byte // the writer's bytes offered to the waiting reader

	werr error // writer closed: io.EOF or its error
	rerr error // reader closed
}

// newSpillPipe returns a pipe that spills up to max bytes into an unlinked
// file in dir; with max 0 or no dir it is io.Pipe.
func newSpillPipe(dir string, max int64) *spillPipe {
	if dir == "" {
		max = 0
	}
	p := &spillPipe{max: max}
	p.cond.L = &p.mu
	if max > 0 {
		// Opened now rather than at the first spill, so that a spill
		// directory that does not work shows at every upload, not only
		// at those that happen to need it.
		p.f, p.spillErr = openSpillFile(dir)
	}
	return p
}

// Write implements io.Writer for the writing side.
func (p *spillPipe) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for len(b) > 0 {
		if p.rerr != nil {
			return n, p.rerr
		}
		switch {
		case p.r == p.w && p.waiting && p.pending == nil:
			// The reader is there and nothing is spilled ahead of b:
			// hand b over.
			p.pending = b
			p.cond.Broadcast()
			for len(p.pending) > 0 && p.rerr == nil {
				p.cond.Wait()
				if !p.waiting && len(p.pending) < len(b) {
					// The reader filled its buffer with part of b and
					// went away (to send a part): spill the rest
					// rather than wait for it.
					break
				}
			}
			took := len(b) - len(p.pending)
			p.pending = nil
			n += took
			b = b[took:]
		case p.spillErr == nil && p.w-p.r < p.max:
			k := min(int64(len(b)), p.max-(p.w-p.r))
			if err := p.spill(b[:k]); err != nil {
				p.spillErr = err
				continue
			}
			n += int(k)
			b = b[k:]
			p.cond.Broadcast()
		default:
			p.cond.Wait()
		}
	}
	return n, nil
}

// spill appends b to the file. Called with mu held: the reader may
// truncate the file when it catches up, so the offsets must not move under
// a write in progress.
func (p *spillPipe) spill(b []byte) error {
	if _, err := p.f.WriteAt(b, p.w); err != nil {
		return fmt.Errorf("spill: %w", err)
	}
	p.w += int64(len(b))
	p.spilled += int64(len(b))
	return nil
}

// Read implements io.Reader for the reading side: spilled bytes first, in
// order, then what the writer hands over.
func (p *spillPipe) Read(b []byte) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for {
		if p.rerr != nil {
			return 0, io.ErrClosedPipe
		}
		if p.r < p.w {
			k := min(int64(len(b)), p.w-p.r)
			n, err := p.f.ReadAt(b[:k], p.r)
			p.r += int64(n)
			if n < int(k) {
				if err == nil || errors.Is(err, io.EOF) {
					err = io.ErrUnexpectedEOF
				}
				return n, fmt.Errorf("read spilled bytes: %w", err)
			}
			if p.r == p.w {
				// Caught up: drop the spilled bytes, so that dirty
				// pages are discarded rather than written back.
				if err := p.f.Truncate(0); err == nil {
					p.r, p.w = 0, 0
				}
			}
			p.cond.Broadcast()
			return n, nil
		}
		if len(p.pending) > 0 {
			n := copy(b, p.pending)
			p.pending = p.pending[n:]
			p.cond.Broadcast()
			return n, nil
		}
		if p.werr != nil {
			return 0, p.werr
		}
		p.waiting = true
		p.cond.Broadcast()
		p.cond.Wait()
		p.waiting = false
	}
}

// CloseWrite ends the writing side: the reader gets err (io.EOF when nil)
// after the bytes written before.
func (p *spillPipe) CloseWrite(err error) {
	if err == nil {
		err = io.EOF
	}
	p.mu.Lock()
	if p.werr == nil {
		p.werr = err
	}
	p.cond.Broadcast()
	p.mu.Unlock()
}

// CloseRead ends the reading side: writes fail with err (io.ErrClosedPipe
// when nil).
func (p *spillPipe) CloseRead(err error) {
	if err == nil {
		err = io.ErrClosedPipe
	}
	p.mu.Lock()
	if p.rerr == nil {
		p.rerr = err
	}
	p.cond.Broadcast()
	p.mu.Unlock()
}

// stopSpilling makes the pipe io.Pipe from now on: bytes already spilled
// are still read first.
func (p *spillPipe) stopSpilling() {
	p.mu.Lock()
	p.max = 0
	p.cond.Broadcast()
	p.mu.Unlock()
}

// release closes the spill file, once neither side uses the pipe any more,
// and returns how many bytes went through it and why spilling stopped, if
// it did.
func (p *spillPipe) release() (spilled int64, spillErr error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.f != nil {
		p.f.Close()
		p.f = nil
	}
	return p.spilled, p.spillErr
}

// openNamedSpillFile creates a spill file with a name and removes the name
// at once, for systems without unnamed files.
func openNamedSpillFile(dir string) (*os.File, error) {
	f, err := os.CreateTemp(dir, ".spill-*")
	if err != nil {
		return nil, fmt.Errorf("create spill file: %w", err)
	}
	if err := os.Remove(f.Name()); err != nil {
		f.Close()
		return nil, fmt.Errorf("unlink spill file: %w", err)
	}
	return f, nil
}
