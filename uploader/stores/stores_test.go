package stores

import "testing"

func TestParse(t *testing.T) {
	tests := []struct {
		in   string
		want Location
		ok   bool
	}{
		{"s3://dumps", Location{Scheme: "s3", Bucket: "dumps"}, true},
		{"s3://dumps/team-a/prod/", Location{Scheme: "s3", Bucket: "dumps", Prefix: "team-a/prod"}, true},
		{"file:///var/lib/crashdump/store", Location{Scheme: "file", Dir: "/var/lib/crashdump/store"}, true},
		{"file://relative/path", Location{}, false},
		{"s3://", Location{}, false},
		{"s3://key:secret@dumps", Location{}, false},
		{"s3://dumps/a b", Location{}, false},
		{"gs://dumps", Location{}, false},
		{"/var/lib/store", Location{}, false},
	}
	for _, tc := range tests {
		got, err := Parse(tc.in)
		if (err == nil) != tc.ok {
			t.Errorf("Parse(%q) error %v, want ok=%v", tc.in, err, tc.ok)
			continue
		}
		if tc.ok && got != tc.want {
			t.Errorf("Parse(%q) = %+v, want %+v", tc.in, got, tc.want)
		}
	}
}
