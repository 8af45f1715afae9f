package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/term"
)

// progressInterval is how often the bar is redrawn.
const progressInterval = 200 * time.Millisecond

// progress draws a download progress bar (bytes, rate, ETA) on a terminal.
// set is called from the reading goroutine for every read and only stores a
// number; a ticker goroutine draws. A disabled progress does nothing. Safe
// for concurrent use.
type progress struct {
	w     io.Writer
	total int64 // stored bytes expected, <= 0 when unknown
	start time.Time
	read  atomic.Int64
	// written is what reached the destination: the dump decompressed,
	// what the user waits for (509 MiB while 61.9 MiB are read).
	written atomic.Int64
	done    chan struct{}
	wg      sync.WaitGroup
	once    sync.Once
	on      bool
}

func startProgress(w io.Writer, enabled bool, total int64) *progress {
	p := &progress{w: w, total: total, start: time.Now(), done: make(chan struct{}), on: enabled}
	if !enabled {
		return p
	}
	p.wg.Go(func() {
		t := time.NewTicker(progressInterval)
		defer t.Stop()
		for {
			select {
			case <-p.done:
				return
			case <-t.C:
				p.draw(false)
			}
		}
	})
	return p
}

func (p *progress) set(n int64) { p.read.Store(n) }

// writer counts what goes to w for the bar.
func (p *progress) writer(w io.Writer) io.Writer { return &progressWriter{w: w, p: p} }

type progressWriter struct {
	w io.Writer
	p *progress
}

func (c *progressWriter) Write(b []byte) (int, error) {
	n, err := c.w.Write(b)
	c.p.written.Add(int64(n))
	return n, err
}

// stop draws the final state and ends the line.
func (p *progress) stop() {
	p.once.Do(func() {
		close(p.done)
		p.wg.Wait()
		if p.on {
			p.draw(true)
		}
	})
}

func (p *progress) draw(final bool) {
	n := p.read.Load()
	elapsed := time.Since(p.start)
	rate := 0.0
	if s := elapsed.Seconds(); s > 0 {
		rate = float64(n) / s
	}
	fmt.Fprint(p.w, "\r"+renderProgress(n, p.total, p.written.Load(), rate, width(p.w))+"\x1b[K")
	if final {
		fmt.Fprintln(p.w)
	}
}

// renderProgress is one line of the bar, at most cols wide:
// [=====>     ]  45%  120.5MiB/267.0MiB  509MiB written  35.2MiB/s  ETA 4s
//
// n and total are stored bytes, the rate too (what the network carries);
// written is the dump's bytes saved so far, shown when they differ.
func renderProgress(n, total, written int64, rate float64, cols int) string {
	stats := humanBytes(n)
	if total > 0 {
		stats += "/" + humanBytes(total)
	}
	if written > 0 && written != n {
		stats += "  " + humanBytes(written) + " written"
	}
	stats += "  " + humanBytes(int64(rate)) + "/s"
	if total > 0 && rate > 0 && n < total {
		eta := time.Duration(float64(total-n) / rate * float64(time.Second))
		stats += "  ETA " + eta.Round(time.Second).String()
	}
	if total <= 0 {
		return stats
	}
	frac := min(1, float64(n)/float64(total))
	pct := fmt.Sprintf("%3.0f%%", frac*100)
	barWidth := cols - len(stats) - len(pct) - 6
	if barWidth < 10 {
		return pct + "  " + stats
	}
	fill := int(frac * float64(barWidth))
	bar := strings.Repeat("=", fill)
	if fill < barWidth {
		bar += ">" + strings.Repeat(" ", barWidth-fill-1)
	}
	return "[" + bar + "] " + pct + "  " + stats
}

// width is the terminal's width, 80 when it is not a terminal.
func width(w io.Writer) int {
	if f, ok := w.(*os.File); ok {
		if c, _, err := term.GetSize(int(f.Fd())); err == nil && c > 20 {
			return c - 1
		}
	}
	return 80
}
