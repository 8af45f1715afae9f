package dumpfs

// The agent runs on Linux nodes only; this file lets the binary (and with
// it the retrieval CLI and kubectl plugin) build on macOS workstations.

import (
	"time"

	"golang.org/x/sys/unix"
)

// InfoFromStat converts a stat result.
func InfoFromStat(name string, st *unix.Stat_t) Info {
	return Info{
		Name:      name,
		Mode:      modeOf(uint32(st.Mode)),
		Size:      st.Size,
		Allocated: st.Blocks * 512,
		Dev:       uint64(st.Dev),
		Ino:       st.Ino,
		Nlink:     uint64(st.Nlink),
		Uid:       st.Uid,
		Mtime:     time.Unix(st.Mtim.Unix()),
		Ctime:     time.Unix(st.Ctim.Unix()),
	}
}

// openat2Beneath does not exist on macOS: the O_NOFOLLOW walk is used.
func openat2Beneath(int, string, int) (int, error) { return -1, unix.ENOSYS }

// renameNoReplace: macOS's renameatx_np(RENAME_EXCL).
func renameNoReplace(olddirfd int, oldpath string, newdirfd int, newpath string) error {
	return unix.RenameatxNp(olddirfd, oldpath, newdirfd, newpath, unix.RENAME_EXCL)
}
