//go:build linux

package procfs

import (
	"errors"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// dirHandle is an open directory used as the base of *at() system calls, so
// that reading one fd link does not walk <root>/<pid>/fd again for every fd:
// with 2,000 processes and dozens of fds each, those path walks through procfs
// would cost more than the readlink and stat themselves.
type dirHandle struct{ fd int }

func openDir(path string) (dirHandle, error) {
	for {
		fd, err := unix.Open(path, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return dirHandle{fd: -1}, &os.PathError{Op: "open", Path: path, Err: err}
		}
		return dirHandle{fd: fd}, nil
	}
}

func (d dirHandle) close() { _ = unix.Close(d.fd) }

// names appends the names of d's entries (without "." and "..") to names,
// using buf for getdents.
func (d dirHandle) names(buf []byte, names []string) ([]string, error) {
	for {
		n, err := unix.ReadDirent(d.fd, buf)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return names, err
		}
		if n <= 0 {
			return names, nil
		}
		_, _, names = unix.ParseDirent(buf[:n], -1, names)
	}
}

// readlink reads the link name in d into buf and returns the part of buf it
// filled. A target longer than buf is cut short, which is fine for the prefix
// checks it is used for.
func (d dirHandle) readlink(name string, buf []byte) ([]byte, error) {
	for {
		n, err := unix.Readlinkat(d.fd, name, buf)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, err
		}
		return buf[:n], nil
	}
}

// stat returns the identity of the inode that name in d leads to, following
// the link. It asks statx for cached attributes only (AT_STATX_DONT_SYNC), so
// that a process holding a file on a hung NFS or FUSE mount does not stall the
// whole scan: the device and inode numbers never need a round trip.
func (d dirHandle) stat(name string) (FileID, error) {
	for {
		var stx unix.Statx_t
		err := unix.Statx(d.fd, name, unix.AT_STATX_DONT_SYNC, unix.STATX_INO, &stx)
		if err == unix.EINTR {
			continue
		}
		if err == nil {
			return FileID{Dev: unix.Mkdev(stx.Dev_major, stx.Dev_minor), Ino: stx.Ino}, nil
		}
		if err != unix.ENOSYS && err != unix.EPERM {
			return FileID{}, err
		}
		// Kernels before 4.11 have no statx, and old container seccomp
		// profiles refuse it with EPERM: fall back to plain fstatat.
		var st unix.Stat_t
		for {
			err = unix.Fstatat(d.fd, name, &st, 0)
			if err != unix.EINTR {
				break
			}
		}
		if err != nil {
			return FileID{}, err
		}
		return FileID{Dev: uint64(st.Dev), Ino: st.Ino}, nil
	}
}

// FileIDOf returns the device and inode numbers of fi, which must come from
// os.Stat or os.Lstat (or File.Stat); ok is false for any other FileInfo.
// Safe for concurrent use.
func FileIDOf(fi os.FileInfo) (FileID, bool) {
	if fi == nil {
		return FileID{}, false
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok || st == nil {
		return FileID{}, false
	}
	return FileID{Dev: uint64(st.Dev), Ino: st.Ino}, true
}

// isVanished reports errors that mean the process or fd went away while we
// looked: the normal churn of a busy node.
func isVanished(err error) bool {
	return errors.Is(err, os.ErrNotExist) || errors.Is(err, syscall.ESRCH)
}
