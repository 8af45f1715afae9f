// Package stores opens the object store a --store URL names
// (s3://bucket/prefix or file:///path), for the agent and the retrieval CLI
// alike, so both read and write the same layout.
package stores

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"strings"

	"github.com/crashdump-io/crashdump/uploader"
	"github.com/crashdump-io/crashdump/uploader/filestore"
	"github.com/crashdump-io/crashdump/uploader/s3store"
)

// Location is a parsed --store URL.
type Location struct {
	Scheme string // "s3" or "file"
	Bucket string // s3 only
	Prefix string // key prefix within the bucket, no leading or trailing '/'
	Dir    string // file only
}

// Parse parses s3://bucket/prefix or file:///absolute/path.
func Parse(raw string) (Location, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return Location{}, fmt.Errorf("parse store URL %q: %w", raw, err)
	}
	switch u.Scheme {
	case "s3":
		if u.Host == "" {
			return Location{}, fmt.Errorf("store URL %q: no bucket (want s3://bucket/prefix)", raw)
		}
		if u.User != nil || u.RawQuery != "" {
			return Location{}, fmt.Errorf("store URL %q: credentials and options do not go in the URL (the AWS SDK default chain provides credentials)", raw)
		}
		prefix := strings.Trim(u.Path, "/")
		if prefix != "" {
			if err := uploader.CheckKey(prefix); err != nil {
				return Location{}, fmt.Errorf("store URL %q: prefix: %w", raw, err)
			}
		}
		return Location{Scheme: "s3", Bucket: u.Host, Prefix: prefix}, nil
	case "file":
		if u.Host != "" && u.Host != "localhost" {
			return Location{}, fmt.Errorf("store URL %q: file URLs take an absolute path: file:///path", raw)
		}
		if u.Path == "" || !strings.HasPrefix(u.Path, "/") {
			return Location{}, fmt.Errorf("store URL %q: file URLs take an absolute path: file:///path", raw)
		}
		return Location{Scheme: "file", Dir: u.Path}, nil
	}
	return Location{}, fmt.Errorf("store URL %q: unsupported scheme %q (want s3:// or file://)", raw, u.Scheme)
}

// Opened is an open store with what callers need to know about it.
type Opened struct {
	Location Location
	// Store is the store with the prefix applied.
	Store uploader.Store
	// Ping checks reachability (HeadBucket for S3).
	Ping func(context.Context) error
	// S3 is the underlying S3 store (nil for file stores), for callers that
	// need more than uploader.Store (listing, reading).
	S3 *s3store.Store
	// File is the underlying file store (nil for S3).
	File *filestore.Store
}

// Open opens the store at raw. s3cfg supplies the S3 settings other than the
// bucket (endpoint, region, encryption, parts).
func Open(ctx context.Context, raw string, s3cfg s3store.Config, log *slog.Logger) (*Opened, error) {
	loc, err := Parse(raw)
	if err != nil {
		return nil, err
	}
	o := &Opened{Location: loc}
	switch loc.Scheme {
	case "s3":
		s3cfg.Bucket = loc.Bucket
		s, err := s3store.New(ctx, s3cfg, log)
		if err != nil {
			return nil, err
		}
		o.S3, o.Store, o.Ping = s, uploader.WithPrefix(s, loc.Prefix), s.Ping
	case "file":
		s, err := filestore.New(loc.Dir)
		if err != nil {
			return nil, err
		}
		o.File, o.Store = s, s
		o.Ping = func(context.Context) error { return nil }
	}
	return o, nil
}
