package inspect

import (
	"strings"
	"unicode/utf8"
)

// maxString caps every string this package returns. PATH_MAX is 4096, and
// nothing that belongs in a manifest is longer.
const maxString = 4096

// cleanString turns bytes taken from a dump into a string that is safe to put
// into a manifest, a log line or a Kubernetes Event: at most maxString bytes,
// valid UTF-8, and no control characters (a crafted name must not be able to
// forge log lines or terminal escapes in `crashdump describe`).
func cleanString(b []byte) string {
	if len(b) > maxString {
		b = b[:maxString]
	}
	clean := true
	for _, c := range b {
		if c < 0x20 || c >= 0x7f {
			clean = false
			break
		}
	}
	if clean {
		return string(b)
	}
	var sb strings.Builder
	sb.Grow(len(b))
	for len(b) > 0 {
		r, n := utf8.DecodeRune(b)
		b = b[n:]
		switch {
		case r == utf8.RuneError && n <= 1:
			sb.WriteRune(utf8.RuneError)
		case r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0):
			sb.WriteRune(utf8.RuneError)
		default:
			sb.WriteRune(r)
		}
	}
	s := sb.String()
	// Replacement characters can make the result longer than the input;
	// keep the cap without splitting a rune.
	for len(s) > maxString {
		_, n := utf8.DecodeLastRuneInString(s)
		s = s[:len(s)-n]
	}
	return s
}
