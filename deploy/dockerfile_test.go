package deploy

import (
	"bufio"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// No Docker engine runs where the tests run, so the image is checked by what
// can be checked without building it.

// dockerIgnore is a .dockerignore, matched like BuildKit does: patterns are
// relative to the context root, a path is excluded if it or one of its
// parent directories matches, "**" matches any number of directories, the
// last matching pattern wins and "!" re-includes.
type dockerIgnore []struct {
	pattern string
	negate  bool
}

func readDockerIgnore(t *testing.T) dockerIgnore {
	t.Helper()
	f, err := os.Open(repoFile(".dockerignore"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var d dockerIgnore
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		neg := strings.HasPrefix(line, "!")
		line = path.Clean(strings.TrimPrefix(strings.TrimPrefix(line, "!"), "/"))
		d = append(d, struct {
			pattern string
			negate  bool
		}{line, neg})
	}
	return d
}

func globMatch(pattern, name string) bool {
	re := regexp.QuoteMeta(pattern)
	re = strings.ReplaceAll(re, `\*\*/`, `(.*/)?`)
	re = strings.ReplaceAll(re, `/\*\*`, `(/.*)?`)
	re = strings.ReplaceAll(re, `\*\*`, `.*`)
	re = strings.ReplaceAll(re, `\*`, `[^/]*`)
	re = strings.ReplaceAll(re, `\?`, `[^/]`)
	return regexp.MustCompile("^" + re + "$").MatchString(name)
}

func (d dockerIgnore) excluded(rel string) bool {
	out := false
	for _, p := range d {
		// The path or any parent directory.
		for cur := rel; cur != "." && cur != "/"; cur = path.Dir(cur) {
			if globMatch(p.pattern, cur) {
				out = !p.negate
				break
			}
		}
	}
	return out
}

// Every file the binary is built from reaches the builder; the rest of the
// repository (tests, docs, deploy, bin) does not.
func TestDockerContextHasEverySourceFile(t *testing.T) {
	ign := readDockerIgnore(t)
	cmd := exec.Command("go", "list", "-deps", "-f", `{{if not .Standard}}{{.Module}} {{.Dir}} {{join .GoFiles " "}} {{join .EmbedFiles " "}}{{end}}`, "./cmd/crashdump")
	cmd.Dir = repoFile(".")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	root, err := filepath.Abs(repoFile("."))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		fields := strings.Fields(line)
		if len(fields) < 2 || fields[0] != "github.com/crashdump-io/crashdump" {
			continue // a dependency from the module cache
		}
		dir := fields[1]
		for _, f := range fields[2:] {
			rel, err := filepath.Rel(root, filepath.Join(dir, f))
			if err != nil {
				t.Fatal(err)
			}
			n++
			if ign.excluded(filepath.ToSlash(rel)) {
				t.Errorf("%s is needed to build the binary but .dockerignore excludes it", rel)
			}
		}
	}
	if n < 20 {
		t.Fatalf("only %d source files found", n)
	}
	for _, p := range []string{"go.mod", "go.sum"} {
		if ign.excluded(p) {
			t.Errorf(".dockerignore excludes %s", p)
		}
	}
	for _, p := range []string{"bin/crashdump", ".git/config", "docs/install.md", "deploy/helm/crashdump/values.yaml",
		"test/e2e/run.sh", "collector/agent_test.go", "demo/store/x"} {
		if !ign.excluded(p) {
			t.Errorf(".dockerignore lets %s into the build context", p)
		}
	}
}

// The Dockerfile builds like `make build`, for the target platform, with a
// Go at least as new as go.mod asks, into the path the chart's DaemonSet
// (and the e2e harness's image) run: the image's entrypoint /crashdump with
// args [agent ...]. It runs as non-root by default.
func TestDockerfile(t *testing.T) {
	b, err := os.ReadFile(repoFile("Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	df := string(b)
	mk, err := os.ReadFile(repoFile("Makefile"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"FROM --platform=$BUILDPLATFORM golang:${GO_VERSION}",
		"ARG TARGETOS", "ARG TARGETARCH", "GOOS=$TARGETOS GOARCH=$TARGETARCH",
		"CGO_ENABLED=0", "-trimpath", `-X main.version=${VERSION}`, `-X main.commit=${COMMIT}`, "./cmd/crashdump",
		"COPY --from=build /out/crashdump /crashdump",
		`ENTRYPOINT ["/crashdump"]`, "USER 65532:65532",
	} {
		if !strings.Contains(df, want) {
			t.Errorf("Dockerfile lacks %q", want)
		}
	}
	// make build's flags, so the image's binary is the same.
	for _, want := range []string{"CGO_ENABLED=0", "-trimpath", "-X main.version=$(VERSION)", "-X main.commit=$(COMMIT)"} {
		if !strings.Contains(string(mk), want) {
			t.Errorf("Makefile's build no longer has %q: update the Dockerfile to match", want)
		}
	}
	goVer := regexp.MustCompile(`(?m)^ARG GO_VERSION=(\d+)\.(\d+)(?:\.(\d+))?$`).FindStringSubmatch(df)
	mod, err := os.ReadFile(repoFile("go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	modVer := regexp.MustCompile(`(?m)^go (\d+)\.(\d+)(?:\.(\d+))?$`).FindStringSubmatch(string(mod))
	if goVer == nil || modVer == nil {
		t.Fatalf("versions: Dockerfile %v go.mod %v", goVer, modVer)
	}
	if cmpVersion(goVer[1:], modVer[1:]) < 0 {
		t.Errorf("Dockerfile's Go %s is older than go.mod's %s", strings.Join(goVer[1:], "."), strings.Join(modVer[1:], "."))
	}
	// The final stage is distroless/static or scratch: no shell, no libc.
	stages := regexp.MustCompile(`(?m)^FROM\s+(\S+)`).FindAllStringSubmatch(df, -1)
	last := stages[len(stages)-1][1]
	if last != "${BASE_IMAGE}" || !strings.Contains(df, "ARG BASE_IMAGE=gcr.io/distroless/static") {
		t.Errorf("final stage %q: want distroless/static via BASE_IMAGE", last)
	}
}

func cmpVersion(a, b []string) int {
	for i := 0; i < 3; i++ {
		x, y := 0, 0
		if i < len(a) && a[i] != "" {
			x = atoi(a[i])
		}
		if i < len(b) && b[i] != "" {
			y = atoi(b[i])
		}
		if x != y {
			if x < y {
				return -1
			}
			return 1
		}
	}
	return 0
}

func atoi(s string) int {
	n := 0
	for _, c := range s {
		n = n*10 + int(c-'0')
	}
	return n
}
