package uploader

import (
	"bytes"
	"fmt"
	"strings"
	"text/template"
	"time"
	"unicode/utf8"
)

// DefaultKeyTemplate is the default object layout (--key-template;
// docs/retrieving-dumps.md):
// <namespace>/<pod>/<UTC time>_<container>_<short id>_<file name>.
const DefaultKeyTemplate = "{{.Namespace}}/{{.Pod}}/{{.Time}}_{{.Container}}_{{.ShortID}}_{{.FileName}}"

// Unknown is the key segment used for a namespace or pod that could not be
// attributed.
const Unknown = "_unknown"

// KeyTimeFormat is the UTC time format used in keys: sortable, no colons.
const KeyTimeFormat = "20060102T150405Z"

// maxFileNameLen bounds the file-name part of a key; S3 keys are limited to
// 1024 bytes and the rest of the key needs room too.
const maxFileNameLen = 120

// KeyFields are the facts a key template may use.
type KeyFields struct {
	Namespace string
	Pod       string
	Container string
	Node      string
	ID        string
	FileName  string
	Time      time.Time
}

// keyData is what the template sees: every value already made safe.
type keyData struct {
	Namespace, Pod, Container, Node, ID, ShortID, FileName string
	Time, Date, Year, Month, Day                           string
}

// KeyTemplate renders object keys. Safe for concurrent use.
type KeyTemplate struct {
	t *template.Template
}

// ParseKeyTemplate parses a key template (Go text/template over the fields
// Namespace, Pod, Container, Node, ID, ShortID, FileName, Time, Date, Year,
// Month, Day) and checks that it renders a valid key.
func ParseKeyTemplate(s string) (*KeyTemplate, error) {
	t, err := template.New("key").Option("missingkey=error").Parse(s)
	if err != nil {
		return nil, fmt.Errorf("parse key template %q: %w", s, err)
	}
	kt := &KeyTemplate{t: t}
	sample := KeyFields{Namespace: "ns", Pod: "pod", Container: "c", Node: "node",
		ID: "0123456789abcdef0123456789abcdef", FileName: "core", Time: time.Unix(0, 0)}
	if _, err := kt.Key(sample); err != nil {
		return nil, fmt.Errorf("key template %q: %w", s, err)
	}
	if !strings.Contains(s, ".ID") && !strings.Contains(s, ".ShortID") {
		return nil, fmt.Errorf("key template %q: must contain {{.ID}} or {{.ShortID}} so that two dumps never share a key", s)
	}
	return kt, nil
}

// Key renders the key for f. Every field is reduced to safe characters
// first, whatever the file name was, and the result is checked again.
func (k *KeyTemplate) Key(f KeyFields) (string, error) {
	t := f.Time.UTC()
	short := f.ID
	if len(short) > 8 {
		short = short[:8]
	}
	d := keyData{
		Namespace: orUnknown(SafeSegment(f.Namespace)),
		Pod:       orUnknown(SafeSegment(f.Pod)),
		Container: orDefault(SafeSegment(f.Container), "unknown"),
		Node:      orDefault(SafeSegment(f.Node), "unknown"),
		ID:        SafeSegment(f.ID),
		ShortID:   SafeSegment(short),
		FileName:  orDefault(SafeSegment(shorten(f.FileName, maxFileNameLen)), "dump"),
		Time:      t.Format(KeyTimeFormat),
		Date:      t.Format("2006-01-02"),
		Year:      t.Format("2006"),
		Month:     t.Format("01"),
		Day:       t.Format("02"),
	}
	var b bytes.Buffer
	if err := k.t.Execute(&b, d); err != nil {
		return "", fmt.Errorf("render key: %w", err)
	}
	key := b.String()
	if err := CheckKey(key); err != nil {
		return "", err
	}
	return key, nil
}

// CheckKey reports whether key is made only of safe segments.
func CheckKey(key string) error {
	if key == "" || len(key) > 900 {
		return fmt.Errorf("key %q: length %d out of range", key, len(key))
	}
	for _, seg := range strings.Split(key, "/") {
		if seg == "" || seg == "." || seg == ".." {
			return fmt.Errorf("key %q: empty, . or .. segment", key)
		}
		if SafeSegment(seg) != seg {
			return fmt.Errorf("key %q: unsafe character in segment %q", key, seg)
		}
	}
	return nil
}

// SafeSegment maps s to the characters [A-Za-z0-9._-], replacing anything
// else (slashes, spaces, newlines, non-ASCII, control bytes) with '_', and
// never returns "." or "..".
func SafeSegment(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '.', r == '-', r == '_':
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
	}
	out := b.String()
	if strings.Trim(out, ".") == "" && out != "" {
		return strings.Repeat("_", len(out))
	}
	return out
}

// shorten keeps long names recognisable: their start and their end (where
// the extension and often the PID are).
func shorten(s string, max int) string {
	if len(s) <= max {
		return s
	}
	head, tail := s[:max/2], s[len(s)-(max/2-1):]
	for !utf8.ValidString(head) && len(head) > 0 {
		head = head[:len(head)-1]
	}
	for !utf8.ValidString(tail) && len(tail) > 0 {
		tail = tail[1:]
	}
	return head + "~" + tail
}

func orUnknown(s string) string { return orDefault(s, Unknown) }

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}
