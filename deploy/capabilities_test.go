package deploy

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestCapabilitiesAreNeeded runs the real agent with exactly the
// capabilities the chart grants, minus one, and shows what breaks — so that
// every capability in docs/security.md is proven needed, and proven enough.
// It needs root (setpriv limits the agent's capability bounding set and
// creates files as other users), which CI has; elsewhere it skips.
func TestCapabilitiesAreNeeded(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the agent; skipped in -short")
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root: runs the agent with a chosen capability set (setpriv) and writes dumps as other users")
	}
	setpriv, err := exec.LookPath("setpriv")
	if err != nil {
		t.Skip("setpriv (util-linux) not installed")
	}
	if out, err := exec.Command(setpriv, "--no-new-privs", "--inh-caps=-all", "--bounding-set=-all,+dac_read_search", "true").CombinedOutput(); err != nil {
		t.Skipf("setpriv cannot drop capabilities here: %v %s", err, out)
	}
	bin := buildAgent(t)
	c := capEnv{t: t, setpriv: setpriv, bin: bin}

	t.Run("DAC_READ_SEARCH reads dumps of other users", func(t *testing.T) {
		c.t = t
		setup := func(r string) {
			c.nsDir(r, "prod")
			c.as(1000, "umask 077; head -c 100000 /dev/urandom > "+r+"/host/dumps/prod/coredump.1.dmp")
		}
		res := c.run(nil, setup)
		if res.stored != 0 || !strings.Contains(res.log, "permission denied") {
			t.Errorf("without any capability: stored %d (want 0, unreadable)\n%s", res.stored, res.log)
		}
		res = c.run([]string{"DAC_READ_SEARCH"}, setup)
		if res.stored != 1 || res.left != 0 {
			t.Errorf("with DAC_READ_SEARCH: stored %d left %d, want 1 and 0\n%s", res.stored, res.left, res.log)
		}
	})

	t.Run("DAC_OVERRIDE moves dumps out of app-made directories", func(t *testing.T) {
		c.t = t
		setup := func(r string) {
			c.nsDir(r, "prod")
			c.as(1000, "mkdir -m 755 "+r+"/host/dumps/prod/mine && umask 077 && head -c 1000 /dev/urandom > "+r+"/host/dumps/prod/mine/coredump.1.dmp")
		}
		res := c.run([]string{"DAC_READ_SEARCH"}, setup)
		if res.stored != 0 || res.left != 1 || !strings.Contains(res.log, "permission denied") {
			t.Errorf("without DAC_OVERRIDE: stored %d left %d, want 0 and 1 (claim: permission denied)\n%s", res.stored, res.left, res.log)
		}
		res = c.run([]string{"DAC_OVERRIDE", "DAC_READ_SEARCH"}, setup)
		if res.stored != 1 || res.left != 0 {
			t.Errorf("with DAC_OVERRIDE: stored %d left %d\n%s", res.stored, res.left, res.log)
		}
	})

	t.Run("FOWNER moves dumps out of sticky directories of other owners", func(t *testing.T) {
		c.t = t
		setup := func(r string) {
			c.nsDir(r, "prod")
			c.as(1000, "mkdir "+r+"/host/dumps/prod/shared && chmod 1777 "+r+"/host/dumps/prod/shared")
			c.as(2000, "umask 077; head -c 1000 /dev/urandom > "+r+"/host/dumps/prod/shared/coredump.1.dmp")
		}
		res := c.run([]string{"DAC_OVERRIDE", "DAC_READ_SEARCH"}, setup)
		if res.stored != 0 || res.left != 1 || !strings.Contains(res.log, "operation not permitted") {
			t.Errorf("without FOWNER: stored %d left %d, want 0 and 1 (claim: operation not permitted)\n%s", res.stored, res.left, res.log)
		}
		res = c.run(capsNoWriter, setup)
		if res.stored != 1 || res.left != 0 {
			t.Errorf("with FOWNER: stored %d left %d\n%s", res.stored, res.left, res.log)
		}
	})

	t.Run("FOWNER re-modes namespace directories created by others", func(t *testing.T) {
		c.t = t
		setup := func(r string) {
			dir := r + "/host/dumps/teamx"
			if err := os.Mkdir(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.Chown(dir, 1000, 1000); err != nil {
				t.Fatal(err)
			}
		}
		res := c.run([]string{"DAC_OVERRIDE", "DAC_READ_SEARCH"}, setup, "--namespace-dirs=teamx")
		if res.err == nil || !strings.Contains(res.log, "chmod teamx") {
			t.Errorf("without FOWNER the agent should refuse to start (chmod teamx), got err %v\n%s", res.err, res.log)
		}
		res = c.run([]string{"DAC_READ_SEARCH", "FOWNER"}, setup, "--namespace-dirs=teamx")
		if res.err != nil {
			t.Errorf("with FOWNER: %v\n%s", res.err, res.log)
		}
		if fi, err := os.Stat(filepath.Join(res.root, "host/dumps/teamx")); err != nil || fi.Mode()&os.ModeSticky == 0 || fi.Mode().Perm() != 0o777 {
			t.Errorf("teamx mode %v (%v), want 1777", fi.Mode(), err)
		}
	})

	t.Run("the documented directories need nothing more", func(t *testing.T) {
		c.t = t
		// A dump in an agent-made namespace directory (sticky, owned by
		// the agent) and in a kubelet-made per-pod directory (root-owned).
		setup := func(r string) {
			c.nsDir(r, "prod")
			c.mkdirRoot(r+"/host/dumps/prod/web-1", 0o1777)
			c.as(1000, "umask 077; head -c 1000 /dev/urandom > "+r+"/host/dumps/prod/a.dmp; head -c 1000 /dev/urandom > "+r+"/host/dumps/prod/web-1/b.dmp")
		}
		res := c.run(capsHardened, setup)
		if res.stored != 2 || res.left != 0 {
			t.Errorf("with DAC_READ_SEARCH only: stored %d left %d, want 2 and 0\n%s", res.stored, res.left, res.log)
		}
	})

	t.Run("SYS_PTRACE sees the writer", func(t *testing.T) {
		for _, tc := range []struct {
			name       string
			uid        int
			umask      string
			caps       []string
			wantWriter bool
		}{
			{"app user, no SYS_PTRACE", 1000, "077", []string{"DAC_READ_SEARCH"}, false},
			{"root writer with more capabilities, no SYS_PTRACE", 0, "077", []string{"DAC_READ_SEARCH"}, false},
			{"SYS_PTRACE without DAC_READ_SEARCH", 1000, "022", []string{"SYS_PTRACE"}, false},
			{"app user, SYS_PTRACE", 1000, "077", []string{"DAC_READ_SEARCH", "SYS_PTRACE"}, true},
			{"root writer, SYS_PTRACE", 0, "077", []string{"DAC_READ_SEARCH", "SYS_PTRACE"}, true},
		} {
			t.Run(tc.name, func(t *testing.T) {
				c.t = t
				var writer *exec.Cmd
				setup := func(r string) {
					c.nsDir(r, "prod")
					// createdump's pattern: write, pause longer than the
					// settle time, write again, close.
					writer = c.asCmd(tc.uid, "umask "+tc.umask+"; exec 3>"+r+"/host/dumps/prod/coredump.1.dmp; "+
						"head -c 50000 /dev/zero >&3; sleep 3; head -c 50000 /dev/zero >&3")
					if err := writer.Start(); err != nil {
						t.Fatal(err)
					}
					time.Sleep(300 * time.Millisecond)
				}
				res := c.run(tc.caps, setup)
				_ = writer.Wait()
				if res.stored != 1 {
					t.Fatalf("stored %d\n%s", res.stored, res.log)
				}
				m := res.manifests[0]
				if got := m.Process != nil && m.Process.HostPID > 0; got != tc.wantWriter {
					t.Errorf("writer seen %v, want %v (manifest process %+v)", got, tc.wantWriter, m.Process)
				}
				if tc.wantWriter && m.File.Size != 100000 {
					t.Errorf("with the writer visible the dump must be complete: size %d, want 100000", m.File.Size)
				}
				if !tc.wantWriter && m.File.Size == 100000 {
					t.Logf("without the writer visible the dump happened to be complete")
				}
			})
		}
	})
}

type capEnv struct {
	t       *testing.T
	setpriv string
	bin     string
}

type capResult struct {
	root      string
	err       error
	log       string
	stored    int // manifests in the store
	left      int // files left in the dump directory
	manifests []capManifest
}

type capManifest struct {
	File struct {
		Size int64 `json:"size"`
	} `json:"file"`
	Process *struct {
		HostPID int `json:"hostPID"`
	} `json:"process"`
}

// run prepares a node layout with setup, then runs `agent --once` with
// exactly caps (others dropped from the bounding set, no_new_privs).
func (c capEnv) run(caps []string, setup func(root string), extra ...string) capResult {
	t := c.t
	t.Helper()
	root, err := os.MkdirTemp("", "crashdump-caps-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(root) })
	for _, d := range []string{"host/dumps", "host/state", "store"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(root, 0o755); err != nil {
		t.Fatal(err)
	}
	setup(root)
	bset := "-all"
	for _, cp := range caps {
		bset += ",+" + strings.ToLower(cp)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	args := append([]string{"--no-new-privs", "--inh-caps=-all", "--bounding-set=" + bset, c.bin, "agent", "--once",
		"--log-format=text", "--pod-source=none", "--keep-free=0", "--max-dump-bytes=0", "--max-dumps-per-window=0",
		"--settle-time=1s", "--proc-root=/proc",
		"--dump-dir=" + filepath.Join(root, "host/dumps"), "--state-dir=" + filepath.Join(root, "host/state"),
		"--store=file://" + filepath.Join(root, "store")}, extra...)
	cmd := exec.CommandContext(ctx, c.setpriv, args...)
	out, err := cmd.CombinedOutput()
	res := capResult{root: root, err: err, log: string(out)}
	_ = filepath.Walk(filepath.Join(root, "host/dumps"), func(p string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			res.left++
		}
		return nil
	})
	_ = filepath.Walk(filepath.Join(root, "store"), func(p string, fi os.FileInfo, err error) error {
		if err != nil || !strings.HasSuffix(p, ".json") {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return nil
		}
		var m capManifest
		if json.Unmarshal(b, &m) == nil {
			res.stored++
			res.manifests = append(res.manifests, m)
		}
		return nil
	})
	return res
}

// nsDir makes the agent's namespace directory: root-owned, 1777.
func (c capEnv) nsDir(root, ns string) { c.mkdirRoot(filepath.Join(root, "host/dumps", ns), 0o1777) }

func (c capEnv) mkdirRoot(dir string, mode os.FileMode) {
	c.t.Helper()
	if err := os.Mkdir(dir, 0o755); err != nil {
		c.t.Fatal(err)
	}
	perm := mode.Perm()
	if mode&0o1000 != 0 {
		perm |= os.ModeSticky
	}
	if err := os.Chmod(dir, perm); err != nil {
		c.t.Fatal(err)
	}
}

func (c capEnv) asCmd(uid int, script string) *exec.Cmd {
	return exec.Command(c.setpriv, fmt.Sprintf("--reuid=%d", uid), fmt.Sprintf("--regid=%d", uid), "--clear-groups", "sh", "-c", script)
}

func (c capEnv) as(uid int, script string) {
	c.t.Helper()
	if out, err := c.asCmd(uid, script).CombinedOutput(); err != nil {
		c.t.Fatalf("as uid %d: %s: %v %s", uid, script, err, out)
	}
}

// buildAgent builds the agent like `make build` into a temporary directory.
func buildAgent(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "crashdump")
	cmd := exec.Command("go", "build", "-trimpath", "-o", bin, "./cmd/crashdump")
	cmd.Dir = repoFile(".")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	// The agent runs as root with few capabilities: it must be able to
	// reach the binary.
	if err := os.Chmod(filepath.Dir(bin), 0o755); err != nil {
		t.Fatal(err)
	}
	return bin
}
