package uploader

import (
	"errors"
	"io"
	"os"

	"golang.org/x/sys/unix"
)

// sparseReaderAt reads a file whose holes are answered with zeros in memory
// instead of by the kernel. Crash dumps are often sparse (the kernel and
// gcore skip zero pages); reading a hole makes the kernel allocate and zero
// page-cache pages, which for a 4 GiB core with 256 MiB of data is most of
// the CPU the whole upload costs, and twice over (hash and compressor read
// separately). Safe for concurrent use: it only uses pread and lseek with
// SEEK_DATA/SEEK_HOLE, whose result does not depend on the shared offset.
type sparseReaderAt struct {
	f  *os.File
	fd int
}

// sparseAware wraps r when it is a file on a filesystem that reports holes.
func sparseAware(r io.ReaderAt) io.ReaderAt {
	f, ok := r.(*os.File)
	if !ok {
		return r
	}
	fd := int(f.Fd())
	if _, err := unix.Seek(fd, 0, unix.SEEK_DATA); err != nil && !errors.Is(err, unix.ENXIO) {
		return r // EINVAL: the filesystem does not know
	}
	return sparseReaderAt{f: f, fd: fd}
}

func (s sparseReaderAt) ReadAt(p []byte, off int64) (int, error) {
	n := 0
	for n < len(p) {
		pos := off + int64(n)
		data, err := unix.Seek(s.fd, pos, unix.SEEK_DATA)
		if errors.Is(err, unix.ENXIO) {
			// No data from pos on: a hole up to the end of the file, or
			// pos is at or past the end.
			return s.zerosToEOF(p, n, pos)
		}
		if err != nil {
			m, err := s.f.ReadAt(p[n:], pos)
			return n + m, err
		}
		if data > pos {
			z := int(min(data-pos, int64(len(p)-n)))
			clear(p[n : n+z])
			n += z
			continue
		}
		hole, err := unix.Seek(s.fd, pos, unix.SEEK_HOLE)
		if err != nil {
			m, err := s.f.ReadAt(p[n:], pos)
			return n + m, err
		}
		end := len(p)
		if hole > pos && hole-pos < int64(len(p)-n) {
			end = n + int(hole-pos)
		}
		m, err := s.f.ReadAt(p[n:end], pos)
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// zerosToEOF fills p[n:] with zeros as far as the file's current size goes.
func (s sparseReaderAt) zerosToEOF(p []byte, n int, pos int64) (int, error) {
	st, err := s.f.Stat()
	if err != nil {
		return n, err
	}
	if pos >= st.Size() {
		return n, io.EOF
	}
	z := int(min(st.Size()-pos, int64(len(p)-n)))
	clear(p[n : n+z])
	n += z
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}
