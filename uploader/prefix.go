package uploader

import (
	"context"
	"io"
	"strings"
)

// WithPrefix returns a Store that keeps every key under prefix (the path part
// of s3://bucket/prefix). Keys reported back include the prefix, which is
// what the manifest records.
func WithPrefix(s Store, prefix string) Store {
	prefix = strings.Trim(prefix, "/")
	if prefix == "" {
		return s
	}
	return prefixed{s: s, prefix: prefix + "/"}
}

type prefixed struct {
	s      Store
	prefix string
}

func (p prefixed) Put(ctx context.Context, key string, body io.Reader, size int64, opts PutOptions) (Object, error) {
	return p.s.Put(ctx, p.prefix+key, body, size, opts)
}

func (p prefixed) Head(ctx context.Context, key string) (Object, error) {
	return p.s.Head(ctx, p.prefix+key)
}

func (p prefixed) AbortIncomplete(ctx context.Context, key string) error {
	return p.s.AbortIncomplete(ctx, p.prefix+key)
}
