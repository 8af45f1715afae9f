// Package dumpfs is the agent's only way into the dump directory, which pods
// control and the agent (privileged on the node) must treat as hostile.
// Every path is resolved beneath the root with no symbolic link followed in
// any component (openat2 RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS, or a
// component-by-component O_NOFOLLOW walk on kernels without openat2), so a
// pod cannot point the agent at /etc/shadow or make one pod's directory look
// like another's. Nothing here reads file contents or deletes anything: the
// package lists, stats and claims (renames out of the root into the agent's
// private staging directory).
package dumpfs

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// Root is an open dump directory. Safe for concurrent use.
type Root struct {
	dir  *os.File
	path string
	// noOpenat2 is set once openat2 proved unavailable (ENOSYS).
	noOpenat2 atomic.Bool
}

// Open opens the directory at path as a Root.
func Open(p string) (*Root, error) {
	fd, err := unix.Open(p, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open dump directory %s: %w", p, err)
	}
	return &Root{dir: os.NewFile(uintptr(fd), p), path: p}, nil
}

// Close releases the root.
func (r *Root) Close() error { return r.dir.Close() }

// Path is the root's path as given to Open.
func (r *Root) Path() string { return r.path }

// Info is what lstat says about an entry, without following it.
type Info struct {
	Name string
	Mode fs.FileMode // type bits and permissions, as os.FileMode
	Size int64
	// Allocated is the disk the file uses (st_blocks × 512). A sparse
	// file's Size can be far larger: `truncate -s 1G` costs nothing.
	Allocated int64
	Dev       uint64
	Ino       uint64
	Nlink     uint64
	Uid       uint32
	Mtime     time.Time
	// Ctime is the inode's change time. Unlike Mtime a writer cannot set
	// it back (utimensat sets it to now), so a file whose Size and Mtime
	// look unchanged has changed if Ctime moved.
	Ctime time.Time
}

// IsRegular reports a plain file.
func (i Info) IsRegular() bool { return i.Mode.IsRegular() }

// IsDir reports a real directory (never a link to one).
func (i Info) IsDir() bool { return i.Mode.IsDir() }

func modeOf(m uint32) fs.FileMode {
	mode := fs.FileMode(m & 0o777)
	switch m & unix.S_IFMT {
	case unix.S_IFDIR:
		mode |= fs.ModeDir
	case unix.S_IFLNK:
		mode |= fs.ModeSymlink
	case unix.S_IFIFO:
		mode |= fs.ModeNamedPipe
	case unix.S_IFSOCK:
		mode |= fs.ModeSocket
	case unix.S_IFCHR:
		mode |= fs.ModeDevice | fs.ModeCharDevice
	case unix.S_IFBLK:
		mode |= fs.ModeDevice
	}
	return mode
}

// ErrBadPath is returned for paths that are absolute, contain "." or ".."
// components or empty components: the agent only ever builds paths from
// names it read from directories, so such a path is a bug or an attack.
var ErrBadPath = errors.New("path is not a clean relative path")

func checkRel(rel string) error {
	if rel == "." {
		return nil
	}
	if rel == "" || strings.HasPrefix(rel, "/") {
		return fmt.Errorf("%q: %w", rel, ErrBadPath)
	}
	for _, c := range strings.Split(rel, "/") {
		if c == "" || c == "." || c == ".." {
			return fmt.Errorf("%q: %w", rel, ErrBadPath)
		}
	}
	return nil
}

// openDir opens the directory rel (slash-separated, relative to the root)
// with no symlink followed anywhere. The caller closes the returned fd.
func (r *Root) openDir(rel string) (int, error) {
	if err := checkRel(rel); err != nil {
		return -1, err
	}
	flags := unix.O_RDONLY | unix.O_DIRECTORY | unix.O_CLOEXEC | unix.O_NOFOLLOW
	if !r.noOpenat2.Load() {
		fd, err := openat2Beneath(int(r.dir.Fd()), rel, flags)
		if !errors.Is(err, unix.ENOSYS) {
			if err != nil {
				return -1, &fs.PathError{Op: "open", Path: rel, Err: err}
			}
			return fd, nil
		}
		r.noOpenat2.Store(true)
	}
	// Fallback: walk one component at a time, never following a link.
	fd, err := unix.Dup(int(r.dir.Fd()))
	if err != nil {
		return -1, fmt.Errorf("dup root: %w", err)
	}
	if rel == "." {
		return fd, nil
	}
	for _, c := range strings.Split(rel, "/") {
		next, err := unix.Openat(fd, c, flags, 0)
		unix.Close(fd)
		if err != nil {
			return -1, &fs.PathError{Op: "open", Path: rel, Err: err}
		}
		fd = next
	}
	return fd, nil
}

func split(rel string) (dir, base string) {
	dir, base = path.Split(rel)
	dir = strings.TrimSuffix(dir, "/")
	if dir == "" {
		dir = "."
	}
	return dir, base
}

// Lstat describes the entry at rel without following it.
func (r *Root) Lstat(rel string) (Info, error) {
	if err := checkRel(rel); err != nil || rel == "." {
		return Info{}, fmt.Errorf("lstat %q: %w", rel, ErrBadPath)
	}
	dir, base := split(rel)
	dfd, err := r.openDir(dir)
	if err != nil {
		return Info{}, err
	}
	defer unix.Close(dfd)
	var st unix.Stat_t
	if err := unix.Fstatat(dfd, base, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return Info{}, &fs.PathError{Op: "lstat", Path: rel, Err: err}
	}
	return InfoFromStat(base, &st), nil
}

// ReadDir lists the directory rel with lstat information for each entry,
// in directory order. Entries that vanish while listing are left out.
func (r *Root) ReadDir(rel string) ([]Info, error) {
	dfd, err := r.openDir(rel)
	if err != nil {
		return nil, err
	}
	f := os.NewFile(uintptr(dfd), rel)
	defer f.Close()
	var out []Info
	for {
		names, err := f.Readdirnames(1024)
		for _, n := range names {
			var st unix.Stat_t
			if err := unix.Fstatat(dfd, n, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
				continue
			}
			out = append(out, InfoFromStat(n, &st))
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				return out, nil
			}
			return out, fmt.Errorf("read directory %q: %w", rel, err)
		}
	}
}

// Claim moves the entry at rel out of the dump directory into dst/dstName
// (dst must be on the same filesystem) atomically and without replacing
// anything there. After Claim the name rel is free: a writer creating it
// again makes a new file instead of truncating the claimed one. It returns
// the entry's lstat taken just before the move; callers still check what
// arrived, because a pod can swap the entry between that stat and the move.
func (r *Root) Claim(rel string, dst *os.File, dstName string) (Info, error) {
	if err := checkRel(rel); err != nil || rel == "." {
		return Info{}, fmt.Errorf("claim %q: %w", rel, ErrBadPath)
	}
	dir, base := split(rel)
	dfd, err := r.openDir(dir)
	if err != nil {
		return Info{}, err
	}
	defer unix.Close(dfd)
	var st unix.Stat_t
	if err := unix.Fstatat(dfd, base, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return Info{}, &fs.PathError{Op: "lstat", Path: rel, Err: err}
	}
	if err := renameNoReplace(dfd, base, int(dst.Fd()), dstName); err != nil {
		return Info{}, &fs.PathError{Op: "claim", Path: rel, Err: err}
	}
	return InfoFromStat(base, &st), nil
}

// EnsureDir makes sure the directory name (one component, directly under
// the root) exists with exactly mode, creating it if needed: the per-namespace
// directories that hostPath PersistentVolumes point pods at. An existing
// entry that is not a real directory is an error, never followed.
func (r *Root) EnsureDir(name string, mode fs.FileMode) error {
	if strings.Contains(name, "/") {
		return fmt.Errorf("ensure directory %q: %w", name, ErrBadPath)
	}
	if err := checkRel(name); err != nil {
		return err
	}
	perm := uint32(mode.Perm())
	if mode&fs.ModeSticky != 0 {
		perm |= unix.S_ISVTX
	}
	err := unix.Mkdirat(int(r.dir.Fd()), name, perm)
	if err != nil && !errors.Is(err, unix.EEXIST) {
		return &fs.PathError{Op: "mkdir", Path: name, Err: err}
	}
	dfd, err := r.openDir(name)
	if err != nil {
		return err
	}
	defer unix.Close(dfd)
	// The umask trimmed what mkdir set; set it exactly, on the directory we
	// opened (not on whatever the name points at by now).
	if err := unix.Fchmod(dfd, perm); err != nil {
		return &fs.PathError{Op: "chmod", Path: name, Err: err}
	}
	return nil
}
