//go:build !linux

package uploader

import "os"

func openSpillFile(dir string) (*os.File, error) { return openNamedSpillFile(dir) }
