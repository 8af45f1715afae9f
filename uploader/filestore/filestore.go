// Package filestore is the local-directory implementation of
// uploader.Store (`--store file:///path`): the same key layout and manifests
// as S3, for trying crashdump without a bucket and for single-node setups.
// Objects appear atomically (written to a temporary name, synced, renamed);
// metadata is kept in user.crashdump.* extended attributes where the
// filesystem supports them.
package filestore

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/crashdump-io/crashdump/uploader"
)

const (
	xattrPrefix = "user.crashdump."
	tmpMarker   = ".tmp-"
)

// Store keeps objects as files under a directory. Safe for concurrent use.
type Store struct {
	dir  string
	root *os.Root
}

// New opens (creating it if needed) the directory dir.
func New(dir string) (*Store, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("file store %s: %w", dir, err)
	}
	if err := os.MkdirAll(abs, 0o750); err != nil {
		return nil, fmt.Errorf("file store: create %s: %w", abs, err)
	}
	root, err := os.OpenRoot(abs)
	if err != nil {
		return nil, fmt.Errorf("file store: open %s: %w", abs, err)
	}
	return &Store{dir: abs, root: root}, nil
}

// Dir is the store's directory.
func (s *Store) Dir() string { return s.dir }

// Close releases the directory.
func (s *Store) Close() error { return s.root.Close() }

func (s *Store) object(key string, size int64, sum string, meta map[string]string) uploader.Object {
	u := url.URL{Scheme: "file", Path: path.Join(filepath.ToSlash(s.dir), key)}
	return uploader.Object{Key: key, Size: size, Checksum: sum, Metadata: meta, Store: "file", URL: u.String()}
}

// Put implements uploader.Store.
func (s *Store) Put(ctx context.Context, key string, body io.Reader, _ int64, opts uploader.PutOptions) (obj uploader.Object, err error) {
	if err := uploader.CheckKey(key); err != nil {
		return uploader.Object{}, err
	}
	name := filepath.FromSlash(key)
	if err := s.root.MkdirAll(filepath.Dir(name), 0o750); err != nil {
		return uploader.Object{}, fmt.Errorf("put %s: create directory: %w", key, err)
	}
	var rnd [8]byte
	_, _ = rand.Read(rnd[:])
	tmp := name + tmpMarker + hex.EncodeToString(rnd[:])
	f, err := s.root.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o640)
	if err != nil {
		return uploader.Object{}, fmt.Errorf("put %s: %w", key, err)
	}
	defer func() {
		if err != nil {
			f.Close()
			_ = s.root.Remove(tmp)
		}
	}()
	h := crc32.New(uploader.Castagnoli)
	n, err := io.Copy(io.MultiWriter(f, h), readerWithContext{ctx, body})
	if err != nil {
		return uploader.Object{}, fmt.Errorf("put %s: write: %w", key, err)
	}
	// The file only becomes the object at the rename below: metadata known
	// late is still in time here.
	meta, err := opts.ObjectMetadata(ctx)
	if err != nil {
		return uploader.Object{}, fmt.Errorf("put %s: metadata: %w", key, err)
	}
	for k, v := range meta {
		if err := unix.Fsetxattr(int(f.Fd()), xattrPrefix+k, []byte(v), 0); err != nil && !errors.Is(err, unix.ENOTSUP) {
			return uploader.Object{}, fmt.Errorf("put %s: set metadata %s: %w", key, k, err)
		}
	}
	if err := f.Sync(); err != nil {
		return uploader.Object{}, fmt.Errorf("put %s: sync: %w", key, err)
	}
	if err := f.Close(); err != nil {
		return uploader.Object{}, fmt.Errorf("put %s: close: %w", key, err)
	}
	if err := s.root.Rename(tmp, name); err != nil {
		return uploader.Object{}, fmt.Errorf("put %s: rename into place: %w", key, err)
	}
	if d, err := s.root.Open(filepath.Dir(name)); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return s.object(key, n, "crc32c:"+uploader.FormatCRC32C(h.Sum32()), meta), nil
}

// Head implements uploader.Store. It reads the whole file back to compute
// its checksum: the verification step must see what is on disk, not what
// was sent.
func (s *Store) Head(ctx context.Context, key string) (uploader.Object, error) {
	if err := uploader.CheckKey(key); err != nil {
		return uploader.Object{}, err
	}
	f, err := s.root.Open(filepath.FromSlash(key))
	if errors.Is(err, fs.ErrNotExist) {
		return uploader.Object{}, fmt.Errorf("head %s: %w", key, uploader.ErrNotExist)
	}
	if err != nil {
		return uploader.Object{}, fmt.Errorf("head %s: %w", key, err)
	}
	defer f.Close()
	h := crc32.New(uploader.Castagnoli)
	n, err := io.Copy(h, readerWithContext{ctx, f})
	if err != nil {
		return uploader.Object{}, fmt.Errorf("head %s: read: %w", key, err)
	}
	return s.object(key, n, "crc32c:"+uploader.FormatCRC32C(h.Sum32()), readMeta(f)), nil
}

// AbortIncomplete removes temporary files a killed Put left for key.
func (s *Store) AbortIncomplete(_ context.Context, key string) error {
	if err := uploader.CheckKey(key); err != nil {
		return err
	}
	name := filepath.FromSlash(key)
	dir, err := s.root.Open(filepath.Dir(name))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("abort %s: %w", key, err)
	}
	defer dir.Close()
	names, err := dir.Readdirnames(-1)
	if err != nil {
		return fmt.Errorf("abort %s: list: %w", key, err)
	}
	base := filepath.Base(name) + tmpMarker
	for _, n := range names {
		if strings.HasPrefix(n, base) {
			if err := s.root.Remove(filepath.Join(filepath.Dir(name), n)); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("abort %s: remove %s: %w", key, n, err)
			}
		}
	}
	return nil
}

func readMeta(f *os.File) map[string]string {
	buf := make([]byte, 4096)
	n, err := unix.Flistxattr(int(f.Fd()), buf)
	if err != nil {
		return nil
	}
	meta := map[string]string{}
	for _, name := range strings.Split(string(buf[:n]), "\x00") {
		k, ok := strings.CutPrefix(name, xattrPrefix)
		if !ok {
			continue
		}
		v := make([]byte, 1024)
		m, err := unix.Fgetxattr(int(f.Fd()), name, v)
		if err == nil {
			meta[k] = string(v[:m])
		}
	}
	return meta
}

// readerWithContext stops a copy when the context ends.
type readerWithContext struct {
	ctx context.Context
	r   io.Reader
}

func (r readerWithContext) Read(p []byte) (int, error) {
	if err := r.ctx.Err(); err != nil {
		return 0, err
	}
	return r.r.Read(p)
}
