// Package s3store is the S3 (and S3-compatible: MinIO) implementation of
// uploader.Store. Objects are sent as multipart uploads whose parts travel in
// parallel with a CRC32C checksum each, computed once by us and checked by the
// server; memory is bounded by the part buffers, whatever the object's size.
package s3store

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sort"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials/stscreds"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/logging"
	"golang.org/x/sync/errgroup"
	"golang.org/x/sync/semaphore"

	"github.com/crashdump-io/crashdump/uploader"
)

const (
	// MinPartSize is S3's minimum for every part but the last.
	MinPartSize = 5 << 20
	// maxParts is S3's limit on parts per upload.
	maxParts = 10000
	// DefaultPartSize balances request count against memory.
	DefaultPartSize = 8 << 20
	// DefaultFilePartSize is the part size of uploads read straight from a
	// file: those parts cost no memory, so they can be larger, which takes
	// a quarter of the requests (S3 bills per request) and less work for
	// the store per byte (docs/performance.md has the measurement).
	DefaultFilePartSize = 32 << 20
)

// Config configures a Store.
type Config struct {
	Bucket string
	// Endpoint is a custom endpoint (MinIO); it implies path-style addressing.
	Endpoint string
	// Region; empty means the AWS config's region, else us-east-1.
	Region string
	// SSE is "", "AES256" (SSE-S3) or "aws:kms" (SSE-KMS with SSEKMSKeyID,
	// or the bucket's default KMS key when empty).
	SSE         string
	SSEKMSKeyID string
	// PartSize is the preferred part size of streamed bodies, which are
	// held in memory (default 8 MiB); it grows for objects that would
	// otherwise need more than 10,000 parts.
	PartSize int64
	// FilePartSize is the part size of bodies read straight from a file
	// (default 32 MiB, never below PartSize); files up to this size are
	// sent with a single PUT.
	FilePartSize int64
	// Concurrency is the number of parts in flight (default 4).
	Concurrency int
	// MaxBufferBytes bounds the memory held in part buffers for streamed
	// bodies, across all uploads of this store together (default PartSize ×
	// Concurrency); larger parts mean fewer in flight.
	MaxBufferBytes int64
	// MaxAttempts per request, including the first (default 6). Throttling,
	// 5xx and connection errors are retried with exponential backoff and
	// full jitter by the SDK's standard retryer.
	MaxAttempts int
	// MaxBackoff caps the delay between attempts (default 20s).
	MaxBackoff time.Duration
	// UserAgent is appended to the SDK's user agent.
	UserAgent string
	// Credentials replaces the SDK default chain (a tenant's own Secret).
	Credentials aws.CredentialsProvider
	// RoleARN is assumed through STS with the credentials above (or the
	// default chain's).
	RoleARN string
}

// Store is an S3 bucket. Safe for concurrent use.
type Store struct {
	cfg    Config
	client *s3.Client
	log    *slog.Logger
	// free holds part buffers for reuse. Not a sync.Pool: a pool is emptied
	// by every GC, and each refill would leave up to the whole budget as
	// garbage, doubling the heap the budget is meant to bound.
	// A while after the last buffer in use came back, the list is dropped:
	// an idle agent holds no part buffers, a busy one does not allocate
	// (and zero) fresh ones for every dump.
	freeMu   sync.Mutex
	free     [][]byte
	inUse    int
	idleTrim *time.Timer
	// mem is the part-buffer budget shared by every upload, so that memory
	// stays bounded however many dumps are uploaded at once.
	mem *semaphore.Weighted
}

// New builds a Store with credentials from the AWS SDK default chain
// (environment, shared config, web identity / IRSA, EKS Pod Identity,
// instance role). Credentials never come from flags.
func New(ctx context.Context, cfg Config, log *slog.Logger) (*Store, error) {
	if cfg.Bucket == "" {
		return nil, errors.New("s3 store: bucket is empty")
	}
	if cfg.PartSize == 0 {
		cfg.PartSize = DefaultPartSize
	}
	if cfg.PartSize < MinPartSize {
		return nil, fmt.Errorf("s3 store: part size %d below the S3 minimum %d", cfg.PartSize, MinPartSize)
	}
	if cfg.FilePartSize == 0 {
		cfg.FilePartSize = DefaultFilePartSize
	}
	cfg.FilePartSize = max(cfg.FilePartSize, cfg.PartSize)
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 4
	}
	if cfg.MaxBufferBytes <= 0 {
		cfg.MaxBufferBytes = cfg.PartSize * int64(cfg.Concurrency)
	}
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = 6
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = 20 * time.Second
	}
	switch cfg.SSE {
	case "", "AES256", "aws:kms":
	default:
		return nil, fmt.Errorf("s3 store: unknown server-side encryption %q (want AES256 or aws:kms)", cfg.SSE)
	}
	httpClient := awshttp.NewBuildableClient().WithTransportOptions(func(t *http.Transport) {
		t.MaxIdleConnsPerHost = cfg.Concurrency + 4
		t.DisableCompression = true
		t.ResponseHeaderTimeout = 2 * time.Minute
		t.IdleConnTimeout = 90 * time.Second
	}).WithDialerOptions(func(d *net.Dialer) { d.Timeout = 10 * time.Second })

	opts := []func(*config.LoadOptions) error{
		config.WithHTTPClient(httpClient),
		config.WithRetryer(func() aws.Retryer {
			return retry.NewStandard(func(o *retry.StandardOptions) {
				o.MaxAttempts = cfg.MaxAttempts
				o.MaxBackoff = cfg.MaxBackoff
			})
		}),
	}
	if cfg.Region != "" {
		opts = append(opts, config.WithRegion(cfg.Region))
	}
	if cfg.UserAgent != "" {
		opts = append(opts, config.WithAppID(cfg.UserAgent))
	}
	if cfg.Credentials != nil {
		opts = append(opts, config.WithCredentialsProvider(cfg.Credentials))
	}
	// The SDK's own log lines (retries, checksum notes) go to our logger at
	// debug level, never to the user's terminal.
	opts = append(opts, config.WithLogger(sdkLogger{log}))
	awsCfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("s3 store: load AWS config: %w", err)
	}
	if awsCfg.Region == "" {
		awsCfg.Region = "us-east-1"
	}
	if cfg.Credentials == nil && cfg.RoleARN == "" && awsCfg.Credentials != nil {
		awsCfg.Credentials = explainedCredentials{awsCfg.Credentials}
	}
	if cfg.RoleARN != "" {
		awsCfg.Credentials = aws.NewCredentialsCache(stscreds.NewAssumeRoleProvider(sts.NewFromConfig(awsCfg), cfg.RoleARN,
			func(o *stscreds.AssumeRoleOptions) { o.RoleSessionName = "crashdump" }))
	}
	client := s3.NewFromConfig(awsCfg, func(o *s3.Options) {
		if cfg.Endpoint != "" {
			o.BaseEndpoint = aws.String(cfg.Endpoint)
			o.UsePathStyle = true
		}
		// We compute and send CRC32C ourselves; the SDK must not buffer
		// or re-read bodies to compute its own.
		o.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired
		o.ResponseChecksumValidation = aws.ResponseChecksumValidationWhenRequired
	})
	s := &Store{cfg: cfg, client: client, log: log, mem: semaphore.NewWeighted(cfg.MaxBufferBytes)}
	return s, nil
}

// NoCredentialsError is the default credential chain finding nothing: it
// says what was tried and what to set, where the SDK's chain of errors
// ended with "no EC2 IMDS role found".
type NoCredentialsError struct{ Err error }

func (e *NoCredentialsError) Error() string {
	return "no AWS credentials found (tried the environment AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, " +
		"the shared config and credentials files, web identity (IRSA), EKS Pod Identity, the container and instance role); " +
		"for MinIO, set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY to its access and secret key"
}

func (e *NoCredentialsError) Unwrap() error { return e.Err }

// explainedCredentials is the default chain with its failure made a
// NoCredentialsError. Safe for concurrent use, as the chain is.
type explainedCredentials struct{ p aws.CredentialsProvider }

func (c explainedCredentials) Retrieve(ctx context.Context) (aws.Credentials, error) {
	cr, err := c.p.Retrieve(ctx)
	if err != nil && ctx.Err() == nil {
		return cr, &NoCredentialsError{Err: err}
	}
	return cr, err
}

// sdkLogger sends the SDK's log lines to slog at debug level.
type sdkLogger struct{ log *slog.Logger }

func (l sdkLogger) Logf(class logging.Classification, format string, v ...any) {
	if l.log != nil {
		l.log.Debug("aws sdk", "class", string(class), "msg", fmt.Sprintf(format, v...))
	}
}

// unsignedPayload skips the SHA-256 of every request body that SigV4 would
// otherwise need over plain HTTP: integrity comes from the CRC32C we send,
// which the server verifies, at a fraction of the CPU.
var unsignedPayload = func(o *s3.Options) {
	o.APIOptions = append(o.APIOptions, v4.SwapComputePayloadSHA256ForUnsignedPayloadMiddleware)
}

func (s *Store) url(key string) string { return "s3://" + s.cfg.Bucket + "/" + key }

func (s *Store) object(key string, size int64, checksum string, meta map[string]string) uploader.Object {
	return uploader.Object{Key: key, Size: size, Checksum: checksum, Metadata: meta,
		Store: "s3", Bucket: s.cfg.Bucket, URL: s.url(key)}
}

// partPlan returns the part size (preferred ps) and the number of parts in
// flight for an object of at most size bytes (size < 0: unknown).
func (s *Store) partPlan(ps, size int64) (int64, int) {
	if size > 0 {
		if need := (size + maxParts - 1) / maxParts; need > ps {
			ps = (need + (1<<20 - 1)) &^ (1<<20 - 1)
		}
	}
	inFlight := int(min(int64(s.cfg.Concurrency), max(1, s.cfg.MaxBufferBytes/ps)))
	return ps, inFlight
}

// Put implements uploader.Store.
func (s *Store) Put(ctx context.Context, key string, body io.Reader, size int64, opts uploader.PutOptions) (uploader.Object, error) {
	hint := size
	if hint < 0 {
		hint = opts.SizeHint
	}
	ra, zeroCopy := body.(io.ReaderAt)
	zeroCopy = zeroCopy && size >= 0
	preferred := s.cfg.PartSize
	if zeroCopy {
		preferred = s.cfg.FilePartSize
	}
	partSize, inFlight := s.partPlan(preferred, hint)
	if size >= 0 && size <= partSize {
		if zeroCopy {
			return s.putSingle(ctx, key, io.NewSectionReader(ra, 0, size), opts)
		}
		// A stream of known size (a raw dump whose bytes are tallied as
		// they are read): its buffer comes from the budget like parts do.
		buf, err := s.getBuf(ctx, size)
		if err != nil {
			return uploader.Object{}, err
		}
		defer s.putBuf(buf)
		if _, err := io.ReadFull(body, buf.b); err != nil {
			return uploader.Object{}, fmt.Errorf("read body: %w", err)
		}
		return s.putSingle(ctx, key, bytes.NewReader(buf.b), opts)
	}
	if !zeroCopy {
		// A stream: read the first part to learn whether it is small.
		first, err := s.getBuf(ctx, partSize)
		if err != nil {
			return uploader.Object{}, err
		}
		n, err := io.ReadFull(body, first.b)
		switch {
		case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
			defer s.putBuf(first)
			return s.putSingle(ctx, key, bytes.NewReader(first.b[:n]), opts)
		case err != nil:
			s.putBuf(first)
			return uploader.Object{}, fmt.Errorf("read body: %w", err)
		}
		return s.putMultipart(ctx, key, opts, partSize, inFlight, func(yield func(part) bool) error {
			if !yield(part{buf: first, data: first.b}) {
				return nil
			}
			for {
				b, err := s.getBuf(ctx, partSize)
				if err != nil {
					return err
				}
				n, err := io.ReadFull(body, b.b)
				if n > 0 && !yield(part{buf: b, data: b.b[:n]}) {
					return nil
				}
				if n == 0 {
					s.putBuf(b)
				}
				if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
					return nil
				}
				if err != nil {
					return fmt.Errorf("read body: %w", err)
				}
			}
		})
	}
	// A file of known size: parts are sections read straight from it, so
	// nothing is copied into memory however many parts are in flight.
	inFlight = s.cfg.Concurrency
	return s.putMultipart(ctx, key, opts, partSize, inFlight, func(yield func(part) bool) error {
		for off := int64(0); off < size; off += partSize {
			if !yield(part{section: io.NewSectionReader(ra, off, min(partSize, size-off))}) {
				return nil
			}
		}
		return nil
	})
}

// buffer is a part buffer and the share of the budget it holds.
type buffer struct {
	b      []byte
	weight int64
}

// getBuf takes a part buffer of n bytes from the shared budget, waiting
// until enough buffers are released.
func (s *Store) getBuf(ctx context.Context, n int64) (*buffer, error) {
	w := min(n, s.cfg.MaxBufferBytes) // a part larger than the whole budget takes all of it
	if err := s.mem.Acquire(ctx, w); err != nil {
		return nil, err
	}
	s.freeMu.Lock()
	s.inUse++
	var b []byte
	for i := len(s.free) - 1; i >= 0; i-- {
		if int64(cap(s.free[i])) >= n {
			b = s.free[i]
			s.free = append(s.free[:i], s.free[i+1:]...)
			break
		}
	}
	s.freeMu.Unlock()
	if b == nil {
		b = make([]byte, n)
	}
	return &buffer{b: b[:n], weight: w}, nil
}

// putBuf returns a buffer taken with getBuf. While uploads are running,
// buffers are kept for reuse as long as their total stays within the budget; a buffer of another size (a
// huge object's larger parts) replaces the smallest kept ones.
func (s *Store) putBuf(b *buffer) {
	s.freeMu.Lock()
	s.inUse--
	if s.inUse == 0 {
		if s.idleTrim == nil {
			s.idleTrim = time.AfterFunc(bufferIdleTime, s.trimIdle)
		} else {
			s.idleTrim.Reset(bufferIdleTime)
		}
	}
	kept := int64(cap(b.b))
	for _, f := range s.free {
		kept += int64(cap(f))
	}
	for kept > s.cfg.MaxBufferBytes && len(s.free) > 0 {
		smallest := 0
		for i, f := range s.free {
			if cap(f) < cap(s.free[smallest]) {
				smallest = i
			}
		}
		kept -= int64(cap(s.free[smallest]))
		s.free = append(s.free[:smallest], s.free[smallest+1:]...)
	}
	if kept <= s.cfg.MaxBufferBytes {
		s.free = append(s.free, b.b)
	}
	s.freeMu.Unlock()
	s.mem.Release(b.weight)
}

// bufferIdleTime is how long part buffers are kept after the last upload.
const bufferIdleTime = 10 * time.Second

// trimIdle drops the kept buffers if no upload started since the timer was
// set.
func (s *Store) trimIdle() {
	s.freeMu.Lock()
	defer s.freeMu.Unlock()
	if s.inUse == 0 {
		s.free = nil
	}
}

// part is one multipart part: either bytes in a pooled buffer or a section
// of a file.
type part struct {
	buf     *buffer
	data    []byte
	section *io.SectionReader
}

func (p part) reader() (io.ReadSeeker, int64) {
	if p.section != nil {
		return p.section, p.section.Size()
	}
	return bytes.NewReader(p.data), int64(len(p.data))
}

func (p part) crc() (uint32, error) {
	if p.section == nil {
		return crc32.Checksum(p.data, uploader.Castagnoli), nil
	}
	h := crc32.New(uploader.Castagnoli)
	if _, err := io.Copy(h, io.NewSectionReader(p.section, 0, p.section.Size())); err != nil {
		return 0, fmt.Errorf("read part: %w", err)
	}
	return h.Sum32(), nil
}

func (s *Store) sse() (types.ServerSideEncryption, *string) {
	switch s.cfg.SSE {
	case "AES256":
		return types.ServerSideEncryptionAes256, nil
	case "aws:kms":
		if s.cfg.SSEKMSKeyID != "" {
			return types.ServerSideEncryptionAwsKms, aws.String(s.cfg.SSEKMSKeyID)
		}
		return types.ServerSideEncryptionAwsKms, nil
	}
	return "", nil
}

func (s *Store) putSingle(ctx context.Context, key string, body io.ReadSeeker, opts uploader.PutOptions) (uploader.Object, error) {
	size, err := body.Seek(0, io.SeekEnd)
	if err != nil {
		return uploader.Object{}, fmt.Errorf("size body: %w", err)
	}
	h := crc32.New(uploader.Castagnoli)
	if _, err := body.Seek(0, io.SeekStart); err != nil {
		return uploader.Object{}, fmt.Errorf("rewind body: %w", err)
	}
	if _, err := io.Copy(h, body); err != nil {
		return uploader.Object{}, fmt.Errorf("checksum body: %w", err)
	}
	if _, err := body.Seek(0, io.SeekStart); err != nil {
		return uploader.Object{}, fmt.Errorf("rewind body: %w", err)
	}
	sum := uploader.FormatCRC32C(h.Sum32())
	meta, err := opts.ObjectMetadata(ctx)
	if err != nil {
		return uploader.Object{}, fmt.Errorf("put %s: metadata: %w", s.url(key), err)
	}
	in := &s3.PutObjectInput{
		Bucket:         aws.String(s.cfg.Bucket),
		Key:            aws.String(key),
		Body:           body,
		ContentLength:  aws.Int64(size),
		ChecksumCRC32C: aws.String(sum),
		Metadata:       meta,
	}
	if opts.ContentType != "" {
		in.ContentType = aws.String(opts.ContentType)
	}
	in.ServerSideEncryption, in.SSEKMSKeyId = s.sse()
	if _, err := s.client.PutObject(ctx, in, unsignedPayload); err != nil {
		return uploader.Object{}, fmt.Errorf("put %s: %w", s.url(key), err)
	}
	return s.object(key, size, "crc32c:"+sum, meta), nil
}

// putMultipart creates the upload when the first part is ready to go, not
// before: parts read meanwhile wait in their buffers (bounded by inFlight and
// the buffer budget), so metadata known late (opts.LateMetadata) costs no
// idle time.
func (s *Store) putMultipart(ctx context.Context, key string, opts uploader.PutOptions, partSize int64, inFlight int,
	parts func(yield func(part) bool) error) (obj uploader.Object, err error) {
	var (
		createOnce sync.Once
		uploadID   *string
		meta       map[string]string
		createErr  error
	)
	create := func(ctx context.Context) (*string, error) {
		createOnce.Do(func() {
			meta, createErr = opts.ObjectMetadata(ctx)
			if createErr != nil {
				createErr = fmt.Errorf("metadata: %w", createErr)
				return
			}
			in := &s3.CreateMultipartUploadInput{
				Bucket:            aws.String(s.cfg.Bucket),
				Key:               aws.String(key),
				Metadata:          meta,
				ChecksumAlgorithm: types.ChecksumAlgorithmCrc32c,
			}
			if opts.ContentType != "" {
				in.ContentType = aws.String(opts.ContentType)
			}
			in.ServerSideEncryption, in.SSEKMSKeyId = s.sse()
			created, err := s.client.CreateMultipartUpload(ctx, in)
			if err != nil {
				createErr = fmt.Errorf("create multipart upload: %w", err)
				return
			}
			uploadID = created.UploadId
		})
		return uploadID, createErr
	}
	defer func() {
		if err == nil || uploadID == nil {
			return
		}
		// Never leave an orphaned upload behind; the context may already
		// be cancelled (shutdown), so abort on a fresh, bounded one.
		actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		if _, aerr := s.client.AbortMultipartUpload(actx, &s3.AbortMultipartUploadInput{
			Bucket: aws.String(s.cfg.Bucket), Key: aws.String(key), UploadId: uploadID,
		}); aerr != nil {
			s.log.Warn("abort multipart upload", "key", key, "err", aerr)
		}
	}()

	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(inFlight)
	var mu sync.Mutex
	var completed []types.CompletedPart
	crcs := map[int32]uint32{}
	var total int64
	number := int32(0)
	genErr := parts(func(p part) bool {
		number++
		if number > maxParts {
			if p.buf != nil {
				s.putBuf(p.buf)
			}
			err := fmt.Errorf("more than %d parts of %d bytes", maxParts, partSize)
			g.Go(func() error { return err })
			return false
		}
		n := number
		// g.Go blocks while inFlight parts are being sent: backpressure
		// on the reader, which is what bounds memory.
		g.Go(func() error {
			if p.buf != nil {
				defer s.putBuf(p.buf)
			}
			c, err := p.crc()
			if err != nil {
				return fmt.Errorf("part %d: %w", n, err)
			}
			uploadID, err := create(gctx)
			if err != nil {
				return err
			}
			body, size := p.reader()
			out, err := s.client.UploadPart(gctx, &s3.UploadPartInput{
				Bucket:         aws.String(s.cfg.Bucket),
				Key:            aws.String(key),
				UploadId:       uploadID,
				PartNumber:     aws.Int32(n),
				Body:           body,
				ContentLength:  aws.Int64(size),
				ChecksumCRC32C: aws.String(uploader.FormatCRC32C(c)),
			}, unsignedPayload)
			if err != nil {
				return fmt.Errorf("upload part %d: %w", n, err)
			}
			mu.Lock()
			defer mu.Unlock()
			completed = append(completed, types.CompletedPart{
				ETag: out.ETag, PartNumber: aws.Int32(n), ChecksumCRC32C: aws.String(uploader.FormatCRC32C(c)),
			})
			crcs[n] = c
			total += size
			return nil
		})
		return gctx.Err() == nil
	})
	if err := g.Wait(); err != nil {
		return uploader.Object{}, fmt.Errorf("multipart upload %s: %w", s.url(key), err)
	}
	if genErr != nil {
		return uploader.Object{}, fmt.Errorf("multipart upload %s: %w", s.url(key), genErr)
	}
	if err := ctx.Err(); err != nil {
		return uploader.Object{}, fmt.Errorf("multipart upload %s: %w", s.url(key), err)
	}
	if number == 0 {
		return uploader.Object{}, fmt.Errorf("multipart upload %s: no parts", s.url(key))
	}
	sort.Slice(completed, func(i, j int) bool { return *completed[i].PartNumber < *completed[j].PartNumber })
	if _, err := s.client.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{
		Bucket:          aws.String(s.cfg.Bucket),
		Key:             aws.String(key),
		UploadId:        uploadID,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: completed},
	}); err != nil {
		return uploader.Object{}, fmt.Errorf("complete multipart upload %s: %w", s.url(key), err)
	}
	// The composite checksum S3 reports for multipart objects: the CRC32C
	// of the concatenated binary part checksums, with the part count.
	whole := crc32.New(uploader.Castagnoli)
	var b [4]byte
	for i := int32(1); i <= number; i++ {
		binary.BigEndian.PutUint32(b[:], crcs[i])
		whole.Write(b[:])
	}
	sum := fmt.Sprintf("crc32c:%s-%d", uploader.FormatCRC32C(whole.Sum32()), number)
	return s.object(key, total, sum, meta), nil
}

// Head implements uploader.Store.
func (s *Store) Head(ctx context.Context, key string) (uploader.Object, error) {
	out, err := s.client.HeadObject(ctx, &s3.HeadObjectInput{
		Bucket:       aws.String(s.cfg.Bucket),
		Key:          aws.String(key),
		ChecksumMode: types.ChecksumModeEnabled,
	})
	if err != nil {
		if isNotFound(err) {
			return uploader.Object{}, fmt.Errorf("head %s: %w", s.url(key), uploader.ErrNotExist)
		}
		return uploader.Object{}, fmt.Errorf("head %s: %w", s.url(key), err)
	}
	sum := ""
	if out.ChecksumCRC32C != nil {
		sum = "crc32c:" + *out.ChecksumCRC32C
	}
	return s.object(key, aws.ToInt64(out.ContentLength), sum, out.Metadata), nil
}

// AbortIncomplete implements uploader.Store.
func (s *Store) AbortIncomplete(ctx context.Context, key string) error {
	p := s3.NewListMultipartUploadsPaginator(s.client, &s3.ListMultipartUploadsInput{
		Bucket: aws.String(s.cfg.Bucket),
		Prefix: aws.String(key),
	})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return fmt.Errorf("list multipart uploads of %s: %w", s.url(key), err)
		}
		for _, u := range page.Uploads {
			if aws.ToString(u.Key) != key {
				continue
			}
			if _, err := s.client.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{
				Bucket: aws.String(s.cfg.Bucket), Key: u.Key, UploadId: u.UploadId,
			}); err != nil && !isNotFound(err) {
				return fmt.Errorf("abort multipart upload %s of %s: %w", aws.ToString(u.UploadId), s.url(key), err)
			}
			s.log.Info("aborted unfinished multipart upload", "key", key, "upload_id", aws.ToString(u.UploadId))
		}
	}
	return nil
}

// Ping checks that the bucket is reachable with the configured credentials.
func (s *Store) Ping(ctx context.Context) error {
	if _, err := s.client.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String(s.cfg.Bucket)}); err != nil {
		if isNotFound(err) {
			return s.missingBucket()
		}
		return fmt.Errorf("head bucket %s: %w", s.cfg.Bucket, err)
	}
	return nil
}

// missingBucket says which bucket is missing where, and what to do: the
// SDK's own text (a 404 with request and host IDs) names neither.
func (s *Store) missingBucket() error {
	where := "on AWS S3"
	if s.cfg.Endpoint != "" {
		where = "at " + s.cfg.Endpoint
	}
	return fmt.Errorf("bucket %q does not exist %s: create it, or fix the bucket in --store", s.cfg.Bucket, where)
}

// isNoSuchBucket reports an S3 error that names the bucket as missing.
// Only responses with a body carry the code: a HEAD's 404 cannot tell a
// missing bucket from a missing key.
func isNoSuchBucket(err error) bool {
	var nb *types.NoSuchBucket
	if errors.As(err, &nb) {
		return true
	}
	var ae smithy.APIError
	return errors.As(err, &ae) && ae.ErrorCode() == "NoSuchBucket"
}

func isNotFound(err error) bool {
	var nf *types.NotFound
	var nsk *types.NoSuchKey
	var nsu *types.NoSuchUpload
	if errors.As(err, &nf) || errors.As(err, &nsk) || errors.As(err, &nsu) {
		return true
	}
	var ae smithy.APIError
	if errors.As(err, &ae) {
		switch ae.ErrorCode() {
		case "NotFound", "NoSuchKey", "NoSuchUpload":
			return true
		}
	}
	var re *awshttp.ResponseError
	return errors.As(err, &re) && re.HTTPStatusCode() == http.StatusNotFound
}
