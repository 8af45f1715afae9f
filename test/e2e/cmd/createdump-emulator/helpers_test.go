package main

import (
	"io/fs"
	"strconv"
	"syscall"
)

func itoa(n int) string { return strconv.Itoa(n) }

func umask() fs.FileMode {
	m := syscall.Umask(0)
	syscall.Umask(m)
	return fs.FileMode(m)
}
