package dumpfs

import (
	"time"

	"golang.org/x/sys/unix"
)

// InfoFromStat converts a stat result.
func InfoFromStat(name string, st *unix.Stat_t) Info {
	return Info{
		Name:      name,
		Mode:      modeOf(st.Mode),
		Size:      st.Size,
		Allocated: st.Blocks * 512,
		Dev:       st.Dev,
		Ino:       st.Ino,
		Nlink:     uint64(st.Nlink),
		Uid:       st.Uid,
		Mtime:     time.Unix(st.Mtim.Unix()),
		Ctime:     time.Unix(st.Ctim.Unix()),
	}
}

// openat2Beneath opens rel beneath dirfd with no symbolic link followed in
// any component; ENOSYS on kernels before 5.6.
func openat2Beneath(dirfd int, rel string, flags int) (int, error) {
	return unix.Openat2(dirfd, rel, &unix.OpenHow{
		Flags:   uint64(flags),
		Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS,
	})
}

// renameNoReplace moves a name atomically, failing if the target exists.
func renameNoReplace(olddirfd int, oldpath string, newdirfd int, newpath string) error {
	return unix.Renameat2(olddirfd, oldpath, newdirfd, newpath, unix.RENAME_NOREPLACE)
}
