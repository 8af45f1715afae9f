package uploader

import (
	"context"
	"errors"
	"io"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// StoreMetrics counts store operations. Build it once per registry and wrap
// every store (one per destination) with Wrap. Safe for concurrent use.
type StoreMetrics struct {
	ops      *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

var storeOps = []string{"put", "head", "abort"}

// NewStoreMetrics registers the store metrics on reg.
func NewStoreMetrics(reg prometheus.Registerer) *StoreMetrics {
	m := &StoreMetrics{
		ops: promauto.With(reg).NewCounterVec(prometheus.CounterOpts{
			Name: "crashdump_store_operations_total",
			Help: "Object store operations by destination, operation and result (success, not_found, error).",
		}, []string{"destination", "operation", "result"}),
		duration: promauto.With(reg).NewHistogramVec(prometheus.HistogramOpts{
			Name:    "crashdump_store_operation_duration_seconds",
			Help:    "Duration of object store operations.",
			Buckets: prometheus.ExponentialBuckets(0.005, 4, 10),
		}, []string{"destination", "operation"}),
	}
	return m
}

// Wrap returns s with its operations counted under destination (a small,
// fixed set of names: the routing config's destinations).
func (m *StoreMetrics) Wrap(s Store, destination string) Store {
	for _, op := range storeOps {
		for _, r := range []string{"success", "not_found", "error"} {
			m.ops.WithLabelValues(destination, op, r)
		}
		m.duration.WithLabelValues(destination, op)
	}
	return instrumented{s: s, m: m, dest: destination}
}

type instrumented struct {
	s    Store
	m    *StoreMetrics
	dest string
}

func (i instrumented) observe(op string, start time.Time, err error) {
	result := "success"
	switch {
	case errors.Is(err, ErrNotExist):
		result = "not_found"
	case err != nil:
		result = "error"
	}
	i.m.ops.WithLabelValues(i.dest, op, result).Inc()
	i.m.duration.WithLabelValues(i.dest, op).Observe(time.Since(start).Seconds())
}

func (i instrumented) Put(ctx context.Context, key string, body io.Reader, size int64, opts PutOptions) (Object, error) {
	start := time.Now()
	o, err := i.s.Put(ctx, key, body, size, opts)
	i.observe("put", start, err)
	return o, err
}

func (i instrumented) Head(ctx context.Context, key string) (Object, error) {
	start := time.Now()
	o, err := i.s.Head(ctx, key)
	i.observe("head", start, err)
	return o, err
}

func (i instrumented) AbortIncomplete(ctx context.Context, key string) error {
	start := time.Now()
	err := i.s.AbortIncomplete(ctx, key)
	i.observe("abort", start, err)
	return err
}
