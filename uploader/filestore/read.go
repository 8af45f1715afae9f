package filestore

// Reading: what the retrieval CLI (uploader/catalog) needs from a store
// directory, with the semantics of the S3 store's read methods so the
// catalog cannot tell them apart: string prefixes (not directories), pages
// in key order, "/" as the only delimiter.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"github.com/crashdump-io/crashdump/uploader"
)

// listPageSize matches S3's page size, so callers see the same paging.
const listPageSize = 1000

// List calls page with every page of the keys under prefix, in key order,
// until the listing ends or page returns an error (which List then returns
// unchanged). With delimiter "/", only the level right below prefix is
// listed and its subdirectories come back as common prefixes ending in "/".
// Temporary files of unfinished Puts, symlinks and other non-regular files
// are never listed. Safe for concurrent use.
func (s *Store) List(ctx context.Context, prefix, delimiter string, page func(objects []uploader.Object, prefixes []string) error) error {
	if delimiter != "" && delimiter != "/" {
		return fmt.Errorf("list %s: file stores only support the delimiter \"/\", not %q", prefix, delimiter)
	}
	dir := "."
	if i := strings.LastIndexByte(prefix, '/'); i >= 0 {
		dir = prefix[:i]
	}
	if dir != "." && uploader.CheckKey(dir) != nil {
		// Not a key this store could hold (empty or unsafe segments):
		// nothing is listed under it.
		return nil
	}
	fsys := s.root.FS()
	var objs []uploader.Object
	var prefixes []string
	add := func(p string, d fs.DirEntry) error {
		if !d.Type().IsRegular() || isTemp(d.Name()) || !strings.HasPrefix(p, prefix) {
			return nil
		}
		info, err := d.Info()
		if errors.Is(err, fs.ErrNotExist) {
			return nil // removed while listing
		}
		if err != nil {
			return fmt.Errorf("list %s: %w", p, err)
		}
		objs = append(objs, s.object(p, info.Size(), "", nil))
		return nil
	}
	if delimiter == "" {
		err := fs.WalkDir(fsys, dir, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				if errors.Is(err, fs.ErrNotExist) {
					return nil
				}
				return fmt.Errorf("list %s: %w", p, err)
			}
			if err := ctx.Err(); err != nil {
				return err
			}
			if d.IsDir() {
				// Prune directories that cannot hold a key with the prefix.
				if p != dir && !strings.HasPrefix(p+"/", prefix) && !strings.HasPrefix(prefix, p+"/") {
					return fs.SkipDir
				}
				return nil
			}
			return add(p, d)
		})
		if err != nil {
			return err
		}
	} else {
		entries, err := fs.ReadDir(fsys, dir)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("list %s: %w", prefix, err)
		}
		for _, d := range entries {
			p := d.Name()
			if dir != "." {
				p = path.Join(dir, d.Name())
			}
			if d.IsDir() {
				if strings.HasPrefix(p+"/", prefix) {
					prefixes = append(prefixes, p+"/")
				}
				continue
			}
			if err := add(p, d); err != nil {
				return err
			}
		}
	}
	sort.Slice(objs, func(i, j int) bool { return objs[i].Key < objs[j].Key })
	sort.Strings(prefixes)
	if len(objs) == 0 && len(prefixes) == 0 {
		return page(nil, nil)
	}
	// Common prefixes come with the first page, as with S3 for listings
	// that fit one page; they are few (one per directory).
	for first := true; first || len(objs) > 0; first = false {
		n := min(len(objs), listPageSize)
		var ps []string
		if first {
			ps = prefixes
		}
		if err := page(objs[:n], ps); err != nil {
			return err
		}
		objs = objs[n:]
	}
	return nil
}

// isTemp reports whether name is a temporary file of a Put in progress (or
// of one killed mid-way): <name>.tmp-<16 hex>.
func isTemp(name string) bool {
	i := strings.LastIndex(name, tmpMarker)
	if i < 0 {
		return false
	}
	rnd := name[i+len(tmpMarker):]
	if len(rnd) != 16 {
		return false
	}
	for _, c := range rnd {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// Get opens the object under key for streaming; the caller closes the
// body. The returned Object has the stored size and the metadata kept in
// extended attributes. A missing key is an error wrapping
// uploader.ErrNotExist. Safe for concurrent use.
func (s *Store) Get(_ context.Context, key string) (io.ReadCloser, uploader.Object, error) {
	if err := uploader.CheckKey(key); err != nil {
		return nil, uploader.Object{}, fmt.Errorf("get %s: %w", key, err)
	}
	f, err := s.root.Open(filepath.FromSlash(key))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, uploader.Object{}, fmt.Errorf("get %s: %w", key, uploader.ErrNotExist)
	}
	if err != nil {
		return nil, uploader.Object{}, fmt.Errorf("get %s: %w", key, err)
	}
	info, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, uploader.Object{}, fmt.Errorf("get %s: %w", key, err)
	}
	if !info.Mode().IsRegular() {
		f.Close()
		return nil, uploader.Object{}, fmt.Errorf("get %s: not a regular file: %w", key, uploader.ErrNotExist)
	}
	return f, s.object(key, info.Size(), "", readMeta(f)), nil
}
