//go:build !linux

package procfs

import (
	"errors"
	"fmt"
	"os"
	"runtime"
)

// Only Linux has a procfs. These stubs keep the package building for tools
// (the retrieval CLI) that are compiled for other systems but never scan.

func errNoProcfs() error { return fmt.Errorf("procfs on %s: %w", runtime.GOOS, errors.ErrUnsupported) }

type dirHandle struct{}

func openDir(path string) (dirHandle, error) {
	return dirHandle{}, &os.PathError{Op: "open", Path: path, Err: errNoProcfs()}
}

func (dirHandle) close() {}

func (dirHandle) names([]byte, []string) ([]string, error) { return nil, errNoProcfs() }

func (dirHandle) readlink(string, []byte) ([]byte, error) { return nil, errNoProcfs() }

func (dirHandle) stat(string) (FileID, error) { return FileID{}, errNoProcfs() }

// FileIDOf returns the device and inode numbers of fi; without Linux it
// always reports ok=false.
func FileIDOf(os.FileInfo) (FileID, bool) { return FileID{}, false }

func isVanished(err error) bool { return errors.Is(err, os.ErrNotExist) }
