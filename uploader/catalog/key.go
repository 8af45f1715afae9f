package catalog

import (
	"strings"
	"time"

	"github.com/crashdump-io/crashdump/uploader"
)

// shortIDLen is the length of the short ID in keys (uploader.KeyTemplate
// renders the first 8 hex digits of the dump ID).
const shortIDLen = 8

// KeyInfo is what a dump key in the default layout says by itself.
type KeyInfo struct {
	Namespace string
	Pod       string
	// Time is when the agent claimed the dump (UTC, whole seconds).
	Time      time.Time
	Container string
	// ShortID is the first 8 hex digits of the dump ID.
	ShortID string
	// FileName is the dump's file name as made safe for the key, without
	// the ".zst" the agent appends to compressed dumps.
	FileName string
	// Compressed reports the ".zst" suffix; the manifest is authoritative.
	Compressed bool
}

// ParseKey parses a dump key in the default layout (uploader.DefaultKeyTemplate)
// below prefix: <prefix>/<namespace>/<pod>/<time>_<container>_<short id>_<file>[.zst].
// It reports false for anything else (manifests are not dump keys: pass the
// key without ".json").
func ParseKey(prefix, key string) (KeyInfo, bool) {
	rest := key
	if prefix = strings.Trim(prefix, "/"); prefix != "" {
		var ok bool
		if rest, ok = strings.CutPrefix(key, prefix+"/"); !ok {
			return KeyInfo{}, false
		}
	}
	parts := strings.Split(rest, "/")
	if len(parts) != 3 || parts[0] == "" || parts[1] == "" {
		return KeyInfo{}, false
	}
	name := parts[2]
	tl := len(uploader.KeyTimeFormat)
	if len(name) <= tl || name[tl] != '_' {
		return KeyInfo{}, false
	}
	t, err := time.Parse(uploader.KeyTimeFormat, name[:tl])
	if err != nil {
		return KeyInfo{}, false
	}
	tail := name[tl+1:]
	// <container>_<8 hex>_<file>: the container is a DNS label (no '_'),
	// but a key made from odd names may hold '_' in it, so look for the
	// first "_<8 hex>_" after a non-empty container.
	for i := 1; i+shortIDLen+2 < len(tail); i++ {
		if tail[i] != '_' || tail[i+shortIDLen+1] != '_' {
			continue
		}
		id := tail[i+1 : i+1+shortIDLen]
		file := tail[i+shortIDLen+2:]
		if !isHex(id) || file == "" {
			continue
		}
		ki := KeyInfo{Namespace: parts[0], Pod: parts[1], Time: t.UTC(), Container: tail[:i], ShortID: id, FileName: file}
		if f, ok := strings.CutSuffix(file, ".zst"); ok && f != "" {
			ki.FileName, ki.Compressed = f, true
		}
		return ki, true
	}
	return KeyInfo{}, false
}
