package inspect

import (
	"os"
	"testing"
)

func TestKind(t *testing.T) {
	core, err := os.ReadFile("testdata/core/kernel-segv.core")
	if err != nil {
		t.Fatal(err)
	}
	report, err := os.ReadFile(fixturePath("managed-exception"))
	if err != nil {
		t.Fatal(err)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	exe, err := os.ReadFile(self)
	if err != nil {
		t.Fatal(err)
	}
	// A big-endian (s390x) core header: e_type is 0x0004 in big-endian.
	beCore := []byte("\x7fELF\x02\x02\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x04\x00\x16")
	beExec := []byte("\x7fELF\x02\x02\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\x16")
	tests := []struct {
		name   string
		header []byte
		want   string
	}{
		{"kernel core", core, KindELFCore},
		{"big-endian core", beCore, KindELFCore},
		{"executable", exe, KindELF},
		{"big-endian executable", beExec, KindELF},
		{"ELF too short for e_type", []byte("\x7fELF\x02\x01"), KindELF},
		{"ELF with unknown byte order", []byte("\x7fELF\x02\x07\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x04\x00\x3e\x00"), KindELF},
		{"minidump", []byte("MDMP\x93\xa7\x00\x00\x0e\x00\x00\x00"), KindMinidump},
		{"hprof 1.0.2", []byte("JAVA PROFILE 1.0.2\x00\x00\x00\x00\x08"), KindHprof},
		{"hprof 1.0.1", []byte("JAVA PROFILE 1.0.1\x00"), KindHprof},
		{"heap snapshot", []byte(`{"snapshot":{"meta":{"node_fields":["type","name","id"]`), KindHeapSnapshot},
		{"heap snapshot pretty-printed", []byte("\ufeff\n  {\n    \"snapshot\" : {\n"), KindHeapSnapshot},
		{"other JSON", []byte(`{"snapshots":[]}`), KindUnknown},
		{"snapshot key without colon", []byte(`{"snapshot"}`), KindUnknown},
		{"crash report", report, KindUnknown},
		{"JAVA PROFILE prefix only", []byte("JAVA PROFILE"), KindUnknown},
		{"empty", nil, KindUnknown},
		{"text", []byte("core dumped\n"), KindUnknown},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := Kind(tc.header); got != tc.want {
				t.Errorf("Kind = %q, want %q", got, tc.want)
			}
			// HeaderSize bytes are enough to decide.
			if len(tc.header) > HeaderSize {
				if got := Kind(tc.header[:HeaderSize]); got != tc.want {
					t.Errorf("Kind(first %d bytes) = %q, want %q", HeaderSize, got, tc.want)
				}
			}
		})
	}
}
