package corepipe

import (
	"fmt"
	"os"
	"strings"
)

// KmsgLogger returns a Logf for Config: each line becomes one kernel log
// record (priority warning) on /dev/kmsg when it can be opened for writing,
// else a line on stderr. The returned close function releases /dev/kmsg.
func KmsgLogger() (logf func(string), closeFn func()) {
	k, err := os.OpenFile("/dev/kmsg", os.O_WRONLY, 0)
	if err != nil {
		return StderrLogger(), func() {}
	}
	return func(line string) {
		line = strings.ReplaceAll(line, "\n", " ")
		if _, err := k.WriteString("<4>" + line + "\n"); err != nil {
			fmt.Fprintln(os.Stderr, line)
		}
	}, func() { k.Close() }
}

// StderrLogger writes each line to stderr.
func StderrLogger() func(string) {
	return func(line string) { fmt.Fprintln(os.Stderr, line) }
}
