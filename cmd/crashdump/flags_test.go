package main

import (
	"testing"

	"github.com/spf13/pflag"
)

func TestByteSize(t *testing.T) {
	tests := []struct {
		in   string
		want int64
		ok   bool
	}{
		{"1024", 1024, true},
		{"40MiB", 40 << 20, true},
		{"10GiB", 10 << 30, true},
		{"500MB", 500e6, true},
		{"1.5GiB", 3 << 29, true},
		{"2 KiB", 2048, true},
		{"-1", 0, false},
		{"ten", 0, false},
		{"5XB", 0, false},
		{"NaN", 0, false}, // NaN < 0 is false: it became an undefined int64
		{"NaNGiB", 0, false},
		{"Inf", 0, false},
	}
	for _, tc := range tests {
		var b byteSize
		err := b.Set(tc.in)
		if (err == nil) != tc.ok {
			t.Errorf("Set(%q) error %v, want ok=%v", tc.in, err, tc.ok)
			continue
		}
		if tc.ok && int64(b) != tc.want {
			t.Errorf("Set(%q) = %d, want %d", tc.in, b, tc.want)
		}
	}
	b := byteSize(8 << 20)
	if b.String() != "8MiB" {
		t.Errorf("String() = %q", b.String())
	}
}

func TestEnvBinding(t *testing.T) {
	if got := envName("kubelet-insecure-skip-tls-verify"); got != "CRASHDUMP_KUBELET_INSECURE_SKIP_TLS_VERIFY" {
		t.Errorf("envName = %q", got)
	}
	fs := pflag.NewFlagSet("x", pflag.ContinueOnError)
	dump := fs.String("dump-dir", "/default", "")
	store := fs.String("store", "file:///default", "")
	once := fs.Bool("once", false, "")
	t.Setenv("CRASHDUMP_DUMP_DIR", "/from-env")
	t.Setenv("CRASHDUMP_STORE", "s3://env")
	t.Setenv("CRASHDUMP_ONCE", "true")
	if err := fs.Parse([]string{"--store", "s3://flag"}); err != nil {
		t.Fatal(err)
	}
	if err := bindEnv(fs); err != nil {
		t.Fatal(err)
	}
	if *dump != "/from-env" || *store != "s3://flag" || !*once {
		t.Errorf("dump-dir=%q store=%q once=%v: want env for unset flags, flags winning", *dump, *store, *once)
	}
	t.Setenv("CRASHDUMP_ONCE", "maybe")
	fs2 := pflag.NewFlagSet("y", pflag.ContinueOnError)
	fs2.Bool("once", false, "")
	if err := bindEnv(fs2); err == nil {
		t.Error("bad environment value accepted")
	}
}

func TestCPULimitFlag(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want float64
		ok   bool
	}{
		{"0.25", 0.25, true}, {"250m", 0.25, true}, {"1500m", 1.5, true}, {"0", 0, true},
		{"lots", 0, false}, {"-1", 0, false}, {"m", 0, false},
	} {
		got, err := cpuLimit(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("cpuLimit(%q) = %v, %v; want %v (ok %v)", tc.in, got, err, tc.want, tc.ok)
		}
	}
}
