package uploader

import (
	"context"
	"errors"
	"io"
)

// ErrNotExist is returned by Store.Head when no object has the key.
var ErrNotExist = errors.New("object does not exist")

// Store is the little the agent needs from object storage. Implementations
// must make Put atomic: an object under the key either appears whole or not
// at all, so a retried Put of the same key never leaves a second or partial
// object behind. Implementations are safe for concurrent use.
type Store interface {
	// Put stores body under key. size is the exact length of body or -1 when
	// unknown (a compressed stream); when body is an io.ReaderAt of known
	// size, implementations may read parts from it concurrently instead of
	// copying them into memory. The returned Object carries what was sent:
	// its size and the checksum computed while sending.
	Put(ctx context.Context, key string, body io.Reader, size int64, opts PutOptions) (Object, error)
	// Head returns what the store holds under key, with the store's own
	// checksum and metadata, or an error wrapping ErrNotExist.
	Head(ctx context.Context, key string) (Object, error)
	// AbortIncomplete abandons unfinished uploads of key left by an earlier
	// run that was killed mid-upload.
	AbortIncomplete(ctx context.Context, key string) error
}

// PutOptions are per-object settings.
type PutOptions struct {
	// Metadata is stored with the object (S3 user metadata). Keys are
	// lower-case words joined by '-'.
	Metadata    map[string]string
	ContentType string
	// LateMetadata, when set, returns more metadata that is known only once
	// the body is being produced (the SHA-256 of a dump hashed while it is
	// compressed). Stores call it, through ObjectMetadata, exactly when the
	// object is created, before any of its bytes are committed; it may
	// block, and the store holds back what it has read meanwhile within its
	// buffer budget.
	LateMetadata func(context.Context) (map[string]string, error)
	// SizeHint is an upper bound of the body's size when size is -1; stores
	// use it to choose a part size that keeps the number of parts in range.
	SizeHint int64
}

// ObjectMetadata returns Metadata merged with LateMetadata (which wins).
func (o PutOptions) ObjectMetadata(ctx context.Context) (map[string]string, error) {
	if o.LateMetadata == nil {
		return o.Metadata, nil
	}
	late, err := o.LateMetadata(ctx)
	if err != nil {
		return nil, err
	}
	out := make(map[string]string, len(o.Metadata)+len(late))
	for k, v := range o.Metadata {
		out[k] = v
	}
	for k, v := range late {
		out[k] = v
	}
	return out, nil
}

// Object describes a stored object.
type Object struct {
	// Key is the full key within the bucket, prefix included.
	Key string
	// Size is the number of bytes stored.
	Size int64
	// Checksum is "<algorithm>:<value>" as the store reports it (for S3
	// multipart uploads the composite form "crc32c:<base64>-<parts>").
	Checksum string
	Metadata map[string]string
	// Store is "s3" or "file"; Bucket is empty for file stores.
	Store  string
	Bucket string
	// URL addresses the object for people: s3://bucket/key or file:///path.
	URL string
}

// Metadata keys written on every dump object (docs/manifest.md, "Object
// metadata": core facts visible with `mc stat` or `aws s3api head-object`).
const (
	MetaNamespace    = "namespace"
	MetaPod          = "pod"
	MetaContainer    = "container"
	MetaNode         = "node"
	MetaSHA256       = "sha256"
	MetaOriginalSize = "original-size"
	MetaCompression  = "compression"
	MetaDumpID       = "dump-id"
)
