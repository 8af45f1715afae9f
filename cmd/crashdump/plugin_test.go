package main

import (
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/spf13/cobra"
)

// fakeAPIServer serves the crashdump-client ConfigMap the way the API
// server does (v1.ConfigMap, a v1.Status 404 otherwise), over HTTPS on
// 127.0.0.1 (client-go sends credentials only over TLS), and checks the
// kubeconfig's bearer token.
type fakeAPIServer struct {
	*httptest.Server
	mu       sync.Mutex
	data     map[string]string
	requests atomic.Int64
}

func newFakeAPIServer(t *testing.T, data map[string]string) *fakeAPIServer {
	t.Helper()
	f := &fakeAPIServer{data: data}
	f.Server = httptest.NewTLSServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		f.requests.Add(1)
		rw.Header().Set("Content-Type", "application/json")
		if r.Header.Get("Authorization") != "Bearer t0k3n" {
			rw.WriteHeader(http.StatusUnauthorized)
			fmt.Fprint(rw, `{"kind":"Status","apiVersion":"v1","status":"Failure","reason":"Unauthorized","code":401}`)
			return
		}
		if r.Method != http.MethodGet || r.URL.Path != "/api/v1/namespaces/crashdump/configmaps/"+clientConfigMap {
			rw.WriteHeader(http.StatusNotFound)
			fmt.Fprintf(rw, `{"kind":"Status","apiVersion":"v1","status":"Failure","message":"configmaps %q not found","reason":"NotFound","code":404}`, clientConfigMap)
			return
		}
		f.mu.Lock()
		defer f.mu.Unlock()
		_ = json.NewEncoder(rw).Encode(map[string]any{
			"apiVersion": "v1", "kind": "ConfigMap",
			"metadata": map[string]any{"name": clientConfigMap, "namespace": "crashdump"},
			"data":     f.data,
		})
	}))
	t.Cleanup(f.Close)
	return f
}

func (f *fakeAPIServer) set(k, v string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.data[k] = v
}

// writeKubeconfig writes a kubeconfig for the server with two contexts:
// "test" (namespace prod, current) and "other" (namespace staging).
func writeKubeconfig(t *testing.T, api *fakeAPIServer) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "kubeconfig")
	ca := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: api.Certificate().Raw})
	cfg := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: test
  cluster:
    server: %s
    certificate-authority-data: %s
users:
- name: test
  user:
    token: t0k3n
contexts:
- name: test
  context: {cluster: test, user: test, namespace: prod}
- name: other
  context: {cluster: test, user: test, namespace: staging}
current-context: test
`, api.URL, base64.StdEncoding.EncodeToString(ca))
	if err := os.WriteFile(p, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// testPlugin: as kubectl-crashdump, with no flags, the namespace comes from
// the kubeconfig context and the store from the crashdump-client ConfigMap.
func testPlugin(t *testing.T, w *world) {
	d := w.dumps
	api := newFakeAPIServer(t, map[string]string{"store": w.storeURL, "s3-endpoint": w.endpoint()})
	t.Setenv("KUBECONFIG", writeKubeconfig(t, api))
	plugin := func(t *testing.T, args ...string) result {
		t.Helper()
		return runCLI(t, pluginBinary, args...)
	}
	prod := []string{d["late"].ShortID, d["raw"].ShortID, d["dotnet"].ShortID}

	t.Run("no flags: context namespace, ConfigMap store", func(t *testing.T) {
		r := plugin(t, "ls", "-v")
		if r.code != 0 {
			t.Fatalf("exit %d: %s", r.code, r.stderr)
		}
		if got := ids(rows(t, r.stdout, true)); strings.Join(got, " ") != strings.Join(prod, " ") {
			t.Errorf("IDs %v, want prod's %v", got, prod)
		}
		if !strings.Contains(r.stderr, "from ConfigMap crashdump/"+clientConfigMap) {
			t.Errorf("stderr: %s", r.stderr)
		}
	})
	t.Run("--context", func(t *testing.T) {
		r := plugin(t, "ls", "--context", "other")
		if got := ids(rows(t, r.stdout, true)); strings.Join(got, " ") != d["frames"].ShortID {
			t.Errorf("exit %d, IDs %v: %s", r.code, got, r.stderr)
		}
	})
	t.Run("-A", func(t *testing.T) {
		r := plugin(t, "ls", "-A")
		if got := rows(t, r.stdout, true); len(got) != 5 {
			t.Errorf("exit %d, %d rows: %s", r.code, len(got), r.stderr)
		}
	})
	t.Run("get searches every namespace", func(t *testing.T) {
		out := filepath.Join(t.TempDir(), "d")
		r := plugin(t, "get", d["frames"].ShortID, "-o", out)
		if b, _ := os.ReadFile(out); r.code != 0 || string(b) != string(w.originals["frames"]) {
			t.Errorf("exit %d: %s", r.code, r.stderr)
		}
	})
	t.Run("standalone: ConfigMap store, all namespaces", func(t *testing.T) {
		r := runCLI(t, "crashdump", "ls")
		if got := rows(t, r.stdout, true); r.code != 0 || len(got) != 5 {
			t.Errorf("exit %d, %d rows: %s", r.code, len(got), r.stderr)
		}
	})
	t.Run("environment wins over the ConfigMap", func(t *testing.T) {
		t.Setenv("CRASHDUMP_STORE", w.storeURL)
		t.Setenv("CRASHDUMP_S3_ENDPOINT", w.endpoint())
		before := api.requests.Load()
		r := plugin(t, "ls", "-v")
		if r.code != 0 || api.requests.Load() != before || !strings.Contains(r.stderr, "from --store / CRASHDUMP_STORE") {
			t.Errorf("exit %d, %d ConfigMap reads: %s", r.code, api.requests.Load()-before, r.stderr)
		}
	})
	if w.srv != nil {
		t.Run("--s3-endpoint overrides the ConfigMap's", func(t *testing.T) {
			// The in-cluster endpoint does not resolve from a laptop; a
			// port-forward does.
			api.set("s3-endpoint", "http://127.0.0.1:1")
			defer api.set("s3-endpoint", w.endpoint())
			if r := plugin(t, "ls"); r.code == 0 {
				t.Errorf("the ConfigMap's endpoint was not used: %s", r.stdout)
			}
			if r := plugin(t, "ls", "--s3-endpoint", w.endpoint()); r.code != 0 || len(rows(t, r.stdout, true)) != 3 {
				t.Errorf("exit %d: %s", r.code, r.stderr)
			}
		})
	}
	t.Run("no ConfigMap", func(t *testing.T) {
		r := plugin(t, "ls", "--agent-namespace", "elsewhere")
		for _, want := range []string{"no store configured", "--store", "CRASHDUMP_STORE", "elsewhere/" + clientConfigMap, "not found"} {
			if r.code != 1 || !strings.Contains(r.stderr, want) {
				t.Errorf("exit %d, stderr lacks %q: %s", r.code, want, r.stderr)
			}
		}
	})
}

// TestDefaultNamespace: which namespace ls lists without -n, in each face.
func TestDefaultNamespace(t *testing.T) {
	isolateKube(t)
	api := newFakeAPIServer(t, map[string]string{})
	t.Setenv("KUBECONFIG", writeKubeconfig(t, api))
	store := "file://" + t.TempDir()
	tests := []struct {
		argv0 string
		args  []string
		want  string
	}{
		{"crashdump", nil, "No dumps found in any namespace."},
		{"crashdump", []string{"-n", "x"}, "No dumps found in namespace x."},
		{pluginBinary, nil, "No dumps found in namespace prod."},
		{pluginBinary, []string{"--context", "other"}, "No dumps found in namespace staging."},
		{pluginBinary, []string{"-n", "x"}, "No dumps found in namespace x."},
		{pluginBinary, []string{"-A"}, "No dumps found in any namespace."},
	}
	for _, tt := range tests {
		r := runCLI(t, tt.argv0, append([]string{"ls", "--store", store}, tt.args...)...)
		// The store is empty, which is said after the scope.
		if r.code != 0 || !strings.HasPrefix(strings.TrimSpace(r.stderr), tt.want+" The store") {
			t.Errorf("%s ls %v: exit %d, %q; want %q", tt.argv0, tt.args, r.code, r.stderr, tt.want)
		}
	}
	t.Setenv("CRASHDUMP_NAMESPACE", "fromenv")
	if r := runCLI(t, pluginBinary, "ls", "--store", store); !strings.Contains(r.stderr, "namespace fromenv") {
		t.Errorf("CRASHDUMP_NAMESPACE ignored: %s", r.stderr)
	}
}

// TestNoStore: with no store setting and no kubeconfig, the error says
// what to do rather than how client-go failed to reach localhost:8080.
func TestNoStore(t *testing.T) {
	isolateKube(t)
	for _, argv0 := range []string{"crashdump", pluginBinary} {
		r := runCLI(t, argv0, "ls")
		for _, want := range []string{"no store configured", "--store", "CRASHDUMP_STORE", "crashdump/" + clientConfigMap, "no kubeconfig found"} {
			if r.code != 1 || !strings.Contains(r.stderr, want) {
				t.Errorf("%s ls: exit %d, stderr lacks %q: %s", argv0, r.code, want, r.stderr)
			}
		}
	}
}

// TestHelpExamples: every command's help shows examples, written for the
// face the binary was invoked as.
func TestHelpExamples(t *testing.T) {
	isolateKube(t)
	for _, argv0 := range []string{"crashdump", pluginBinary} {
		name := modeFor(argv0).name
		r := runCLI(t, argv0, "--help")
		if !strings.Contains(r.stdout, "Usage:\n  "+name+" [command]") || !strings.Contains(r.stdout, "Examples:\n  # ") {
			t.Errorf("%s --help:\n%s", argv0, r.stdout)
		}
		if hasAgent := strings.Contains(r.stdout, "\n  agent "); hasAgent != (argv0 == "crashdump") {
			t.Errorf("%s --help lists agent: %v", argv0, hasAgent)
		}
		root := &cobra.Command{Use: "crashdump"}
		root.AddCommand(newAgentCmd(), newVersionCmd())
		addRetrievalCommandsAs(root, argv0, nil)
		for _, c := range root.Commands() {
			if c.Hidden {
				continue
			}
			r := runCLI(t, argv0, c.Name(), "--help")
			if r.code != 0 || !strings.Contains(r.stdout, "Examples:") || !strings.Contains(r.stdout, "  "+name+" "+c.Name()) {
				t.Errorf("%s %s --help has no example for %q:\n%s", argv0, c.Name(), name, r.stdout)
			}
		}
	}
}

// TestInstalledBinary runs the built binary under its three names, as
// `make install` and krew install it: crashdump, kubectl-crashdump and
// kubectl_complete-crashdump, against a store filled by its own agent.
func TestInstalledBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	isolateKube(t)
	bin := t.TempDir()
	exe := filepath.Join(bin, "crashdump")
	if out, err := exec.Command("go", "build", "-o", exe, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	for _, name := range []string{pluginBinary, pluginCompleter} {
		if err := os.Symlink("crashdump", filepath.Join(bin, name)); err != nil {
			t.Fatal(err)
		}
	}
	base := t.TempDir()
	dumps, state, store := filepath.Join(base, "dumps"), filepath.Join(base, "state"), filepath.Join(base, "store")
	if err := os.MkdirAll(dumps, 0o755); err != nil {
		t.Fatal(err)
	}
	data := randomBytes(t, 100<<10)
	if err := os.WriteFile(filepath.Join(dumps, "core.5"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	env := append(os.Environ(), "KUBECONFIG="+filepath.Join(base, "none"), "CRASHDUMP_STORE=file://"+store)
	run := func(name string, args ...string) (string, string, int) {
		t.Helper()
		cmd := exec.Command(filepath.Join(bin, name), args...)
		cmd.Env, cmd.Dir = env, base
		var stdout, stderr strings.Builder
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		var ee *exec.ExitError
		switch {
		case errors.As(err, &ee):
			return stdout.String(), stderr.String(), ee.ExitCode()
		case err != nil:
			t.Fatalf("%s %v: %v", name, args, err)
		}
		return stdout.String(), stderr.String(), 0
	}
	// --keep-free 99.99%: the filesystem is under it, as CI's was
	// (91 % full, under the 15 % default). Disk pressure is reported and
	// the dump still collected: when claims paused for it, this test and
	// every agent test failed on that machine.
	if _, stderr, code := run("crashdump", "agent", "--once", "--dump-dir", dumps, "--state-dir", state,
		"--pod-source", "none", "--settle-time", "100ms", "--keep-free", "99.99%"); code != 0 {
		t.Fatalf("agent --once: exit %d: %s", code, stderr)
	} else if !strings.Contains(stderr, "disk pressure") {
		t.Errorf("agent --once under --keep-free 99.99%%: disk pressure not logged:\n%s", stderr)
	}

	stdout, _, _ := run(pluginBinary, "--help")
	if !strings.Contains(stdout, "kubectl crashdump ls -n prod") || strings.Contains(stdout, "\n  agent ") {
		t.Errorf("kubectl-crashdump --help:\n%s", stdout)
	}
	stdout, stderr, code := run(pluginBinary, "ls", "-A")
	rs := rows(t, stdout, true)
	if code != 0 || len(rs) != 1 || rs[0][2] != "_unknown" {
		t.Fatalf("kubectl-crashdump ls -A: exit %d: %s%s", code, stdout, stderr)
	}
	id := rs[0][len(rs[0])-1]
	stdout, _, code = run(pluginCompleter, "get", id[:5])
	if code != 0 || !strings.HasPrefix(stdout, id+"\t_unknown/_unknown ") {
		t.Errorf("kubectl_complete-crashdump get %s: exit %d: %q", id[:5], code, stdout)
	}
	if _, stderr, code := run("crashdump", "get", id, "-o", "ok.core"); code != 0 {
		t.Fatalf("get: exit %d: %s", code, stderr)
	}
	if b, _ := os.ReadFile(filepath.Join(base, "ok.core")); string(b) != string(data) {
		t.Fatal("get returned different bytes")
	}

	// Corrupt the stored object: exit status 3, nothing saved.
	keys, _ := filepath.Glob(filepath.Join(store, "_unknown", "_unknown", "*_core.5"))
	if len(keys) != 1 {
		t.Fatalf("stored objects %v", keys)
	}
	b, err := os.ReadFile(keys[0])
	if err != nil {
		t.Fatal(err)
	}
	b[10] ^= 1
	if err := os.WriteFile(keys[0], b, 0o644); err != nil {
		t.Fatal(err)
	}
	_, stderr, code = run(pluginBinary, "get", id, "-o", "bad.core")
	if code != exitIntegrity || !strings.Contains(stderr, "kubectl-crashdump: integrity check") || !strings.Contains(stderr, "SHA-256 mismatch") {
		t.Errorf("corrupt get: exit %d: %s", code, stderr)
	}
	if _, err := os.Stat(filepath.Join(base, "bad.core")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("corrupt get left bad.core behind: %v", err)
	}
	if m, _ := filepath.Glob(filepath.Join(base, ".bad.core*")); len(m) != 0 {
		t.Errorf("corrupt get left %v behind", m)
	}
}

// TestArgumentErrors: a missing or extra dump argument says what is wanted,
// with the command as the user types it (issue 19 item 8).
func TestArgumentErrors(t *testing.T) {
	isolateKube(t)
	for _, tt := range []struct {
		argv0 string
		args  []string
		want  string
	}{
		{"crashdump", []string{"describe"}, "crashdump: describe needs one dump ID, key or URL (see `crashdump ls`)"},
		{"crashdump", []string{"get"}, "crashdump: get needs one dump ID, key or URL (see `crashdump ls`)"},
		{pluginBinary, []string{"get"}, "kubectl-crashdump: get needs one dump ID, key or URL (see `kubectl crashdump ls`)"},
		{"crashdump", []string{"get", "abcd1234", "beef5678"}, "crashdump: get takes one dump ID, key or URL, got 2: abcd1234 beef5678 (run it once per dump)"},
	} {
		r := runCLI(t, tt.argv0, tt.args...)
		if r.code != 1 || strings.TrimSpace(r.stderr) != tt.want {
			t.Errorf("%s %v: exit %d, %q; want %q", tt.argv0, tt.args, r.code, r.stderr, tt.want)
		}
	}
}

// TestVersion: version prints semver, commit, Go version and platform, as
// text and as JSON, and --version says the same (issue 19 item 8).
func TestVersion(t *testing.T) {
	isolateKube(t)
	semver := regexp.MustCompile(`^v\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$`)
	r := runCLI(t, "crashdump", "version")
	want := fmt.Sprintf("crashdump %s (commit ", version)
	if r.code != 0 || !strings.HasPrefix(r.stdout, want) || !strings.Contains(r.stdout, runtime.Version()+", "+runtime.GOOS+"/"+runtime.GOARCH+")") {
		t.Errorf("version: exit %d, %q", r.code, r.stdout)
	}
	if !semver.MatchString(version) {
		t.Errorf("default version %q is not semver", version)
	}
	r = runCLI(t, "crashdump", "version", "-o", "json")
	var b buildInfo
	if err := json.Unmarshal([]byte(r.stdout), &b); err != nil || r.code != 0 || !semver.MatchString(b.Version) || b.Go != runtime.Version() || b.Platform == "" || b.Commit == "" {
		t.Errorf("version -o json: exit %d, %q (%v)", r.code, r.stdout, err)
	}
	v := runCLI(t, "crashdump", "--version")
	if text := runCLI(t, "crashdump", "version"); v.code != 0 || v.stdout != text.stdout {
		t.Errorf("--version %q, version %q: want the same line", v.stdout, text.stdout)
	}
	// The Makefile's version is semver too.
	out, err := exec.Command("make", "-s", "-C", "../..", "print-version").Output()
	if err != nil {
		t.Fatalf("make print-version: %v", err)
	}
	if got := strings.TrimSpace(string(out)); !semver.MatchString(got) {
		t.Errorf("make VERSION %q is not semver", got)
	}
}
