package s3store

// Reading: what the retrieval CLI (uploader/catalog) needs from a bucket,
// listing keys by prefix and streaming objects back. The agent never calls
// these; they live apart from the write path on purpose.

import (
	"context"
	"fmt"
	"io"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/crashdump-io/crashdump/uploader"
)

// listPageSize is the most keys S3 returns per ListObjectsV2 request.
const listPageSize = 1000

// List calls page with every page of the keys under prefix, in S3's key
// order, until the listing ends or page returns an error (which List then
// returns unchanged, so callers can stop early with a sentinel). With a
// delimiter ("/"), keys that contain it after the prefix are rolled up into
// common prefixes, each ending with the delimiter: the "directories" one
// level below prefix. Listed objects carry Key, Size and URL; listings do
// not return user metadata. Safe for concurrent use.
func (s *Store) List(ctx context.Context, prefix, delimiter string, page func(objects []uploader.Object, prefixes []string) error) error {
	in := &s3.ListObjectsV2Input{
		Bucket:  aws.String(s.cfg.Bucket),
		Prefix:  aws.String(prefix),
		MaxKeys: aws.Int32(listPageSize),
	}
	if delimiter != "" {
		in.Delimiter = aws.String(delimiter)
	}
	p := s3.NewListObjectsV2Paginator(s.client, in)
	for p.HasMorePages() {
		out, err := p.NextPage(ctx)
		if err != nil {
			if isNoSuchBucket(err) {
				return s.missingBucket()
			}
			return fmt.Errorf("list s3://%s/%s: %w", s.cfg.Bucket, prefix, err)
		}
		objs := make([]uploader.Object, 0, len(out.Contents))
		for _, o := range out.Contents {
			key := aws.ToString(o.Key)
			objs = append(objs, s.object(key, aws.ToInt64(o.Size), "", nil))
		}
		prefixes := make([]string, 0, len(out.CommonPrefixes))
		for _, cp := range out.CommonPrefixes {
			prefixes = append(prefixes, aws.ToString(cp.Prefix))
		}
		if err := page(objs, prefixes); err != nil {
			return err
		}
	}
	return nil
}

// Get opens the object under key for streaming; the caller closes the
// body. The returned Object has the stored size and the user metadata. A
// missing key is an error wrapping uploader.ErrNotExist. Safe for
// concurrent use.
func (s *Store) Get(ctx context.Context, key string) (io.ReadCloser, uploader.Object, error) {
	out, err := s.client.GetObject(ctx, &s3.GetObjectInput{
		Bucket: aws.String(s.cfg.Bucket),
		Key:    aws.String(key),
	})
	if err != nil {
		if isNoSuchBucket(err) {
			// Not ErrNotExist: the object is not known to be missing.
			return nil, uploader.Object{}, fmt.Errorf("get %s: %w", s.url(key), s.missingBucket())
		}
		if isNotFound(err) {
			return nil, uploader.Object{}, fmt.Errorf("get %s: %w", s.url(key), uploader.ErrNotExist)
		}
		return nil, uploader.Object{}, fmt.Errorf("get %s: %w", s.url(key), err)
	}
	return out.Body, s.object(key, aws.ToInt64(out.ContentLength), "", out.Metadata), nil
}

// Bucket is the store's bucket.
func (s *Store) Bucket() string { return s.cfg.Bucket }
