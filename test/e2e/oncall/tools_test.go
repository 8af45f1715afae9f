package oncall

import (
	"bytes"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// repoRoot is the crashdump repository, from this package's directory.
const repoRoot = "../../.."

var (
	chartDir      = filepath.Join(repoRoot, "deploy/helm/crashdump")
	dashboardFile = filepath.Join(repoRoot, "deploy/dashboards/crashdump.json")
)

// tool finds a binary the tests run: $env, else make tools' bin/, else
// /tmp/pbin (where a local Prometheus/Alertmanager build puts them). It
// skips the test when there is none: these tests judge formats with the
// real programs, which a plain `go test` machine may not have.
func tool(t *testing.T, env, name string) string {
	t.Helper()
	candidates := []string{os.Getenv(env), filepath.Join(repoRoot, "bin", name), filepath.Join("/tmp/pbin", name)}
	for _, c := range candidates {
		if c == "" {
			continue
		}
		if fi, err := os.Stat(c); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
			abs, err := filepath.Abs(c)
			if err != nil {
				t.Fatal(err)
			}
			return abs
		}
	}
	t.Skipf("%s not found (set %s, or make tools): %s", name, env, strings.Join(candidates[1:], ", "))
	return ""
}

// renderChart runs helm template on the repository's chart with these --set
// values, with helm's cache and config in a temporary directory.
func renderChart(t *testing.T, sets ...string) []byte {
	t.Helper()
	helm := tool(t, "E2E_HELM_BIN", "helm")
	args := []string{"template", "x", chartDir}
	for _, s := range sets {
		args = append(args, "--set", s)
	}
	home := t.TempDir()
	cmd := exec.Command(helm, args...)
	cmd.Env = append(os.Environ(), "HELM_CACHE_HOME="+home, "HELM_CONFIG_HOME="+home, "HELM_DATA_HOME="+home)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("helm %s: %v\n%s", strings.Join(args, " "), err, stderr.Bytes())
	}
	return out
}

// run runs a command and fails the test with its output if it fails.
func run(t *testing.T, name string, args ...string) {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", filepath.Base(name), strings.Join(args, " "), err, out)
	}
	t.Logf("%s %s:\n%s", filepath.Base(name), strings.Join(args, " "), out)
}

// freePort returns a free TCP port on 127.0.0.1 for a child process to
// listen on (there is a window between closing and the child's bind, which
// a test run on a quiet machine tolerates). 19000 is MinIO's in make e2e.
func freePort(t *testing.T) string {
	t.Helper()
	for {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		if port != 19000 {
			return strconv.Itoa(port)
		}
	}
}

// checkErr checks a table case's error: want "" means none (fatal
// otherwise), else an error containing want. It reports whether the case
// goes on to check its result.
func checkErr(t *testing.T, err error, want string) bool {
	t.Helper()
	if want != "" {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("err = %v, want one containing %q", err, want)
		}
		return false
	}
	if err != nil {
		t.Fatal(err)
	}
	return true
}
