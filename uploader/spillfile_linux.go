package uploader

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// openSpillFile opens an unnamed file in dir (O_TMPFILE): it never has a
// name, so a killed agent leaves nothing behind and nobody else can open it.
// Filesystems without O_TMPFILE get a named file removed at once.
func openSpillFile(dir string) (*os.File, error) {
	fd, err := unix.Open(dir, unix.O_TMPFILE|unix.O_RDWR|unix.O_CLOEXEC, 0o600)
	if err == nil {
		return os.NewFile(uintptr(fd), filepath.Join(dir, "(spill)")), nil
	}
	if !errors.Is(err, unix.EOPNOTSUPP) && !errors.Is(err, unix.EISDIR) && !errors.Is(err, unix.EINVAL) {
		return nil, fmt.Errorf("create spill file in %s: %w", dir, err)
	}
	return openNamedSpillFile(dir)
}
