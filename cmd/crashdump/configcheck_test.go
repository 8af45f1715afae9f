package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/crashdump-io/crashdump/uploader/miniotest"
)

// TestConfigCheck: `agent --config-check` runs the agent's start-up checks
// of its directories, and with --check-store reaches the store with the
// credentials the agent would use; a missing bucket is named (issue 19
// item 3). Before, a state directory inside the dump directory passed the
// check and failed only when the agent started, and there was no store
// check.
func TestConfigCheck(t *testing.T) {
	if testing.Short() {
		t.Skip("needs MinIO")
	}
	isolateKube(t)
	srv := miniotest.Start(t)
	srv.MakeBucket(t, "dumps")
	srv.SetEnv(t)
	base := t.TempDir()
	dumps := filepath.Join(base, "dumps")
	if err := os.MkdirAll(dumps, 0o755); err != nil {
		t.Fatal(err)
	}
	agent := func(state, store string, extra ...string) result {
		args := append([]string{"agent", "--config-check", "--dump-dir", dumps, "--state-dir", state,
			"--store", store, "--s3-endpoint", srv.Endpoint, "--pod-source", "none", "--listen-address", ""}, extra...)
		return runCLI(t, "crashdump", args...)
	}
	state := filepath.Join(base, "state")
	if err := os.MkdirAll(state, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name, state, store string
		extra              []string
		code               int
		want               string
	}{
		{"fine", state, "s3://dumps/x", []string{"--check-store"}, 0, ""},
		{"state inside the dump directory", filepath.Join(dumps, "state"), "s3://dumps/x", nil, 1, "must not contain each other"},
		{"missing bucket", state, "s3://no-such-bucket/x", []string{"--check-store"}, 1, `bucket "no-such-bucket" does not exist at ` + srv.Endpoint},
		{"missing bucket, no store check", state, "s3://no-such-bucket/x", nil, 0, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if tt.state != state {
				if err := os.MkdirAll(tt.state, 0o700); err != nil {
					t.Fatal(err)
				}
			}
			r := agent(tt.state, tt.store, tt.extra...)
			if r.code != tt.code || !strings.Contains(r.stderr, tt.want) {
				t.Errorf("exit %d, stderr %q; want %d and %q", r.code, r.stderr, tt.code, tt.want)
			}
		})
	}
}
