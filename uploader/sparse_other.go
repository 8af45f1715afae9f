//go:build !linux

package uploader

import "io"

func sparseAware(r io.ReaderAt) io.ReaderAt { return r }
