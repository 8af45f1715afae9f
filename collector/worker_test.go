package collector

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/crashdump-io/crashdump/collector/staging"
)

// TestWorkerStopsWithResultUnread: when the agent stops, the scheduler
// takes no more results. A worker whose upload just failed must not wait
// for it: with the store failing fast the results buffer was full and
// shutdown hung for good (found by the backlog bench). Here nobody reads
// results at all and the worker's dump fails at once (its file is gone).
func TestWorkerStopsWithResultUnread(t *testing.T) {
	stage, err := staging.Open(context.Background(), t.TempDir(), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer stage.Close()
	e, err := stage.Create("0123456789abcdef0123456789abcdef", &record{Version: 1})
	if err != nil {
		t.Fatal(err)
	}
	a := &Agent{
		log:     slog.New(slog.NewTextHandler(io.Discard, nil)),
		m:       newMetrics(prometheus.NewRegistry()),
		work:    make(chan *item),
		results: make(chan result), // never read
	}
	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		a.worker(ctx, context.Background())
	}()
	a.work <- &item{entry: e, rec: record{Version: 1, ID: "0123456789abcdef0123456789abcdef", Path: "core.1"}}
	cancel()
	select {
	case <-stopped:
	case <-time.After(10 * time.Second):
		t.Fatal("worker still waiting to hand in its result 10 s after the stop")
	}
}
