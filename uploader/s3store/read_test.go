package s3store_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"golang.org/x/sync/errgroup"

	"github.com/crashdump-io/crashdump/uploader"
	"github.com/crashdump-io/crashdump/uploader/miniotest"
	"github.com/crashdump-io/crashdump/uploader/s3store"
)

func readStore(t *testing.T, srv *miniotest.Server, bucket string) *s3store.Store {
	t.Helper()
	srv.SetEnv(t)
	s, err := s3store.New(context.Background(), s3store.Config{Bucket: bucket, Endpoint: srv.Endpoint}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestListAndGet checks the read side against a real MinIO: pages of 1000,
// prefixes as strings, "/" rolling keys up into common prefixes, streaming
// Get with metadata, and ErrNotExist.
func TestListAndGet(t *testing.T) {
	if testing.Short() {
		t.Skip("needs MinIO")
	}
	srv := miniotest.Start(t)
	srv.MakeBucket(t, "dumps")
	s := readStore(t, srv, "dumps")
	ctx := context.Background()
	client := srv.Client()
	put := func(key string, meta map[string]string) error {
		_, err := client.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("dumps"), Key: aws.String(key), Body: strings.NewReader(key), Metadata: meta})
		return err
	}
	var g errgroup.Group
	g.SetLimit(16)
	for i := range 1003 {
		g.Go(func() error { return put(fmt.Sprintf("big/p/k%04d", i), nil) })
	}
	for _, k := range []string{"a/x/1", "a/x/1.json", "a/y/2", "a.json", "ab/z/3"} {
		g.Go(func() error { return put(k, map[string]string{"sha256": "abc", "namespace": "prod"}) })
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}

	list := func(prefix, delim string) (keys, prefixes []string, pages []int) {
		t.Helper()
		err := s.List(ctx, prefix, delim, func(objs []uploader.Object, ps []string) error {
			pages = append(pages, len(objs))
			for _, o := range objs {
				if o.Size != int64(len(o.Key)) || o.URL != "s3://dumps/"+o.Key || o.Bucket != "dumps" {
					t.Errorf("listed %+v", o)
				}
				keys = append(keys, o.Key)
			}
			prefixes = append(prefixes, ps...)
			return nil
		})
		if err != nil {
			t.Fatalf("List(%q, %q): %v", prefix, delim, err)
		}
		return keys, prefixes, pages
	}

	t.Run("pages", func(t *testing.T) {
		keys, _, pages := list("big/", "")
		if len(keys) != 1003 || fmt.Sprint(pages) != "[1000 3]" || keys[0] != "big/p/k0000" || keys[1002] != "big/p/k1002" {
			t.Fatalf("%d keys in pages %v, want 1003 in [1000 3] in order", len(keys), pages)
		}
	})
	for _, tt := range []struct{ prefix, delim, keys, prefixes string }{
		{"a", "", "a.json a/x/1 a/x/1.json a/y/2 ab/z/3", ""},
		{"a/x/1", "", "a/x/1 a/x/1.json", ""},
		{"", "/", "a.json", "a/ ab/ big/"},
		{"a/", "/", "", "a/x/ a/y/"},
		{"nope/", "", "", ""},
	} {
		t.Run(fmt.Sprintf("%q delim %q", tt.prefix, tt.delim), func(t *testing.T) {
			keys, prefixes, _ := list(tt.prefix, tt.delim)
			if got := strings.Join(keys, " "); got != tt.keys {
				t.Errorf("keys = %q, want %q", got, tt.keys)
			}
			if got := strings.Join(prefixes, " "); got != tt.prefixes {
				t.Errorf("prefixes = %q, want %q", got, tt.prefixes)
			}
		})
	}
	t.Run("page errors stop the listing", func(t *testing.T) {
		stop := errors.New("stop")
		calls := 0
		err := s.List(ctx, "big/", "", func([]uploader.Object, []string) error { calls++; return stop })
		if !errors.Is(err, stop) || calls != 1 {
			t.Fatalf("List returned %v after %d pages, want the page's error after 1", err, calls)
		}
	})
	t.Run("get", func(t *testing.T) {
		body, o, err := s.Get(ctx, "a/x/1")
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(body)
		body.Close()
		if err != nil || string(b) != "a/x/1" || o.Size != 5 || o.Metadata["sha256"] != "abc" || o.Metadata["namespace"] != "prod" {
			t.Fatalf("Get = %q, %+v, %v", b, o, err)
		}
		if _, _, err := s.Get(ctx, "a/x/missing"); !errors.Is(err, uploader.ErrNotExist) {
			t.Fatalf("Get(missing) = %v, want ErrNotExist", err)
		}
	})
}
