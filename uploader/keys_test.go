package uploader

import (
	"strings"
	"testing"
	"time"
)

func TestSafeSegment(t *testing.T) {
	tests := []struct{ in, want string }{
		{"coredump.1.dmp", "coredump.1.dmp"},
		{"with space.dmp", "with_space.dmp"},
		{"new\nline", "new_line"},
		{"../../etc/passwd", ".._.._etc_passwd"},
		{"..", "__"},
		{".", "_"},
		{"ünï", "_n_"},
		{"a/b", "a_b"},
		{"$(x)`y`;z", "__x__y__z"},
		{"", ""},
	}
	for _, tc := range tests {
		if got := SafeSegment(tc.in); got != tc.want {
			t.Errorf("SafeSegment(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestDefaultKey(t *testing.T) {
	kt, err := ParseKeyTemplate(DefaultKeyTemplate)
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 11, 26, 5, 47, 13, 0, time.FixedZone("x", 3600))
	tests := []struct {
		name string
		f    KeyFields
		want string
	}{
		{"attributed", KeyFields{Namespace: "prod", Pod: "api-7d9f", Container: "app", ID: "0123456789abcdef", FileName: "coredump.1.dmp", Time: at},
			"prod/api-7d9f/20261126T044713Z_app_01234567_coredump.1.dmp"},
		{"unattributed", KeyFields{ID: "0123456789abcdef", FileName: "core", Time: at},
			"_unknown/_unknown/20261126T044713Z_unknown_01234567_core"},
		{"hostile name", KeyFields{Namespace: "..", Pod: "a/b", ID: "0123456789abcdef", FileName: "../../x\ny", Time: at},
			"__/a_b/20261126T044713Z_unknown_01234567_.._.._x_y"},
	}
	for _, tc := range tests {
		got, err := kt.Key(tc.f)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if got != tc.want {
			t.Errorf("%s: key %q, want %q", tc.name, got, tc.want)
		}
		if err := CheckKey(got); err != nil {
			t.Errorf("%s: %v", tc.name, err)
		}
	}
	long, err := kt.Key(KeyFields{ID: "0123456789abcdef", FileName: strings.Repeat("x", 500) + ".dmp", Time: at})
	if err != nil || len(long) > 200 || !strings.HasSuffix(long, ".dmp") {
		t.Errorf("long name: %q %v", long, err)
	}
}

func TestParseKeyTemplate(t *testing.T) {
	tests := []struct {
		tmpl string
		ok   bool
	}{
		{DefaultKeyTemplate, true},
		{"{{.Node}}/{{.Date}}/{{.ID}}", true},
		{"{{.Namespace}}/{{.FileName}}", false}, // no ID: two dumps could share a key
		{"{{.Namespace}}//{{.ID}}", false},      // empty segment
		{"{{.Nope}}/{{.ID}}", false},            // unknown field
		{"{{.Namespace", false},                 // syntax
		{"a b/{{.ID}}", false},                  // unsafe literal
	}
	for _, tc := range tests {
		_, err := ParseKeyTemplate(tc.tmpl)
		if (err == nil) != tc.ok {
			t.Errorf("ParseKeyTemplate(%q) error %v, want ok=%v", tc.tmpl, err, tc.ok)
		}
	}
}
