package manifest

import (
	"bytes"
	"encoding"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// docPath is the manifest's reference page.
var docPath = filepath.Join("..", "..", "docs", "manifest.md")

func readDoc(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(docPath)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestManifestDocumented checks that docs/manifest.md documents every JSON
// field reachable from Manifest: a row of a table under "## Fields" that
// starts with the field's backticked path (`object.notUploadedReason`,
// `related[].id`: the notation the page states), and that every such row
// names a field the manifest has, once.
func TestManifestDocumented(t *testing.T) {
	doc := readDoc(t)
	paths, err := jsonPaths(reflect.TypeFor[Manifest](), "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(paths) < 50 {
		t.Fatalf("found only %d fields in Manifest: the walk is broken", len(paths))
	}
	rows := tablePaths(section(doc, "## Fields"))
	if len(rows) == 0 {
		t.Fatal("docs/manifest.md: no field table rows under \"## Fields\"")
	}
	documented := map[string]int{}
	for _, p := range rows {
		documented[p]++
	}
	known := map[string]bool{}
	for _, p := range paths {
		known[p] = true
		if documented[p] == 0 {
			t.Errorf("docs/manifest.md does not document the manifest field `%s` (no table row under \"## Fields\" starts with it)", p)
		}
	}
	for p, n := range documented {
		if !known[p] {
			t.Errorf("docs/manifest.md documents `%s`, which is not a field of the manifest", p)
		}
		if n > 1 {
			t.Errorf("docs/manifest.md documents `%s` %d times", p, n)
		}
	}
}

// TestManifestDocExamples checks that every manifest shown in
// docs/manifest.md is one this package reads, with no unknown field, and
// writes back byte for byte: field names, order and omitted fields are
// the agent's.
func TestManifestDocExamples(t *testing.T) {
	examples := jsonBlocks(readDoc(t))
	n := 0
	for i, ex := range examples {
		if !strings.Contains(ex, `"schemaVersion"`) {
			continue
		}
		n++
		dec := json.NewDecoder(strings.NewReader(ex))
		dec.DisallowUnknownFields()
		var m Manifest
		if err := dec.Decode(&m); err != nil {
			t.Errorf("example %d: %v", i+1, err)
			continue
		}
		if _, err := Unmarshal([]byte(ex)); err != nil {
			t.Errorf("example %d: %v", i+1, err)
		}
		out, err := Marshal(&m)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(out, []byte(ex)) {
			t.Errorf("example %d is not what Marshal writes for it; Marshal writes:\n%s", i+1, out)
		}
	}
	if n < 2 {
		t.Errorf("docs/manifest.md has %d example manifests, want 2 (a dump and a crash-loop record)", n)
	}
}

var (
	jsonMarshaler = reflect.TypeFor[json.Marshaler]()
	textMarshaler = reflect.TypeFor[encoding.TextMarshaler]()
)

// leaf reports whether t is written as one JSON value of its own (a
// time, for instance) rather than as an object of fields.
func leaf(t reflect.Type) bool {
	return t.Implements(jsonMarshaler) || t.Implements(textMarshaler) ||
		reflect.PointerTo(t).Implements(jsonMarshaler) || reflect.PointerTo(t).Implements(textMarshaler)
}

// jsonPaths lists the paths of the JSON fields of struct type t, prefixed
// by prefix: a field's own path, then for a struct (or pointer to one) its
// fields below it, and for an array of structs the fields of its elements
// below "<path>[].". stack holds the struct types being walked, so that a
// recursive type fails instead of looping.
func jsonPaths(t reflect.Type, prefix string, stack []reflect.Type) ([]string, error) {
	for _, s := range stack {
		if s == t {
			return nil, &walkError{prefix, "recursive type " + t.String()}
		}
	}
	stack = append(stack, t)
	var out []string
	for f := range t.Fields() {
		tag := f.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, _, _ := strings.Cut(tag, ",")
		ft := f.Type
		for ft.Kind() == reflect.Pointer {
			ft = ft.Elem()
		}
		if f.Anonymous && name == "" && ft.Kind() == reflect.Struct {
			// encoding/json promotes an untagged embedded struct's fields.
			sub, err := jsonPaths(ft, prefix, stack)
			if err != nil {
				return nil, err
			}
			out = append(out, sub...)
			continue
		}
		if !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		p := prefix + name
		out = append(out, p)
		sub, err := valuePaths(ft, p, stack)
		if err != nil {
			return nil, err
		}
		out = append(out, sub...)
	}
	return out, nil
}

// valuePaths lists the paths below a field of type t at path p.
func valuePaths(t reflect.Type, p string, stack []reflect.Type) ([]string, error) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if leaf(t) {
		return nil, nil
	}
	switch t.Kind() {
	case reflect.Struct:
		return jsonPaths(t, p+".", stack)
	case reflect.Slice, reflect.Array:
		e := t.Elem()
		for e.Kind() == reflect.Pointer {
			e = e.Elem()
		}
		if leaf(e) {
			return nil, nil
		}
		switch e.Kind() {
		case reflect.Struct:
			return jsonPaths(e, p+"[].", stack)
		case reflect.Slice, reflect.Array, reflect.Map:
			return nil, &walkError{p, "array of " + e.String() + ": docs/manifest.md has no notation for it"}
		}
	case reflect.Map:
		e := t.Elem()
		for e.Kind() == reflect.Pointer {
			e = e.Elem()
		}
		if !leaf(e) && (e.Kind() == reflect.Struct || e.Kind() == reflect.Slice || e.Kind() == reflect.Map) {
			return nil, &walkError{p, "map of " + e.String() + ": docs/manifest.md has no notation for it"}
		}
	}
	return nil, nil
}

type walkError struct{ path, msg string }

func (e *walkError) Error() string { return e.path + ": " + e.msg }

// section returns the part of doc from the heading line title to the next
// heading of the same level.
func section(doc, title string) string {
	level := title[:strings.Index(title, " ")+1]
	_, rest, ok := strings.Cut(doc, "\n"+title+"\n")
	if !ok {
		return ""
	}
	if i := strings.Index(rest, "\n"+level); i >= 0 {
		rest = rest[:i]
	}
	return rest
}

// tablePaths returns the backticked paths that start table rows.
func tablePaths(s string) []string {
	var out []string
	for line := range strings.Lines(s) {
		rest, ok := strings.CutPrefix(line, "| `")
		if !ok {
			continue
		}
		if p, _, ok := strings.Cut(rest, "`"); ok {
			out = append(out, p)
		}
	}
	return out
}

// jsonBlocks returns the contents of the ```json code blocks of doc.
func jsonBlocks(doc string) []string {
	var out []string
	var cur *strings.Builder
	for line := range strings.Lines(doc) {
		switch {
		case cur == nil && strings.TrimSpace(line) == "```json":
			cur = &strings.Builder{}
		case cur != nil && strings.TrimSpace(line) == "```":
			out = append(out, cur.String())
			cur = nil
		case cur != nil:
			cur.WriteString(line)
		}
	}
	return out
}
