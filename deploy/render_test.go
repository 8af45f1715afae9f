package deploy

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/yaml"
)

var update = flag.Bool("update", false, "rewrite the generated manifests and rule file instead of comparing them (make manifests)")

const (
	chartDir    = "helm/crashdump"
	releaseName = "crashdump"
	releaseNS   = "crashdump"
)

// repoFile is a path relative to the repository root (tests run in deploy/).
func repoFile(p string) string { return filepath.Join("..", p) }

// tool finds a binary that `make tools` installs into bin/ (or $env).
func tool(t testing.TB, name, env string) string {
	t.Helper()
	if p := os.Getenv(env); p != "" {
		return p
	}
	p, err := filepath.Abs(repoFile(filepath.Join("bin", name)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(p); err != nil {
		if testing.Short() {
			t.Skipf("%s not installed (make tools); skipped in -short", name)
		}
		t.Fatalf("%s not found at %s: run `make tools`", name, p)
	}
	return p
}

func helmBin(t testing.TB) string { return tool(t, "helm", "CRASHDUMP_HELM_BIN") }

// helmTemplate renders the chart with args (values files, --set ...) and
// returns helm's output.
func helmTemplate(t testing.TB, args ...string) string {
	t.Helper()
	out, err := helmTemplateErr(t, args...)
	if err != nil {
		t.Fatalf("helm template %s: %v", strings.Join(args, " "), err)
	}
	return out
}

func helmTemplateErr(t testing.TB, args ...string) (string, error) {
	t.Helper()
	full := append([]string{"template", releaseName, chartDir, "--namespace", releaseNS}, args...)
	cmd := exec.Command(helmBin(t), full...)
	cmd.Env = helmEnv(t)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("%v: %s", err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}

// helmEnv keeps helm away from the user's configuration and caches.
func helmEnv(t testing.TB) []string {
	home := t.TempDir()
	env := []string{"HOME=" + home, "PATH=" + os.Getenv("PATH"),
		"HELM_CACHE_HOME=" + filepath.Join(home, "cache"),
		"HELM_CONFIG_HOME=" + filepath.Join(home, "config"),
		"HELM_DATA_HOME=" + filepath.Join(home, "data")}
	return env
}

// doc is one YAML document of helm's output.
type doc struct {
	source string // "# Source:" line
	yaml   string
}

// splitDocs splits helm output into its documents, dropping empty ones.
func splitDocs(out string) []doc {
	var docs []doc
	for _, part := range strings.Split("\n"+out, "\n---") {
		var src string
		var body []string
		empty := true
		for _, line := range strings.Split(part, "\n") {
			if strings.HasPrefix(line, "# Source: ") {
				src = strings.TrimPrefix(line, "# Source: ")
			}
			trimmed := strings.TrimSpace(line)
			if trimmed != "" && !strings.HasPrefix(trimmed, "#") {
				empty = false
			}
			body = append(body, line)
		}
		if !empty {
			docs = append(docs, doc{source: src, yaml: strings.Join(body, "\n")})
		}
	}
	return docs
}

// object is a rendered object, decoded.
type object struct {
	src  string
	gvk  schema.GroupVersionKind
	obj  any // typed: *appsv1.DaemonSet, ..., or *serviceMonitor etc.
	name string
	ns   string
}

func (o object) String() string { return o.gvk.Kind + " " + o.ns + "/" + o.name + " (" + o.src + ")" }

// strictDecoder decodes built-in kinds into the client-go types, refusing
// unknown and duplicate fields.
var strictDecoder = serializer.NewCodecFactory(scheme.Scheme, serializer.EnableStrict).UniversalDeserializer()

// decodeStrict decodes one YAML document strictly: built-in kinds against
// the API types of the pinned client-go, the Prometheus operator's kinds
// against the subset of their schema declared in crds_test.go.
func decodeStrict(y string) (object, error) {
	js, err := yaml.YAMLToJSONStrict([]byte(y))
	if err != nil {
		return object{}, fmt.Errorf("yaml: %w", err)
	}
	var meta struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
		Metadata   struct {
			Name      string `json:"name"`
			Namespace string `json:"namespace"`
		} `json:"metadata"`
	}
	if err := json.Unmarshal(js, &meta); err != nil {
		return object{}, err
	}
	gv, err := schema.ParseGroupVersion(meta.APIVersion)
	if err != nil {
		return object{}, err
	}
	gvk := gv.WithKind(meta.Kind)
	o := object{gvk: gvk, name: meta.Metadata.Name, ns: meta.Metadata.Namespace}
	if gvk.Group == "monitoring.coreos.com" {
		v, err := decodeMonitoring(gvk, js)
		if err != nil {
			return o, err
		}
		o.obj = v
		return o, nil
	}
	if !scheme.Scheme.Recognizes(gvk) {
		return o, fmt.Errorf("%s is not a kind of the pinned Kubernetes API", gvk)
	}
	obj, _, err := strictDecoder.Decode(js, nil, nil)
	if err != nil {
		return o, err
	}
	o.obj = obj
	return o, nil
}

// renderObjects renders and strictly decodes; any decoding error fails t.
func renderObjects(t *testing.T, args ...string) []object {
	t.Helper()
	return decodeAll(t, helmTemplate(t, args...))
}

func decodeAll(t *testing.T, out string) []object {
	t.Helper()
	var objs []object
	for _, d := range splitDocs(out) {
		o, err := decodeStrict(d.yaml)
		if err != nil {
			t.Errorf("%s: %v", d.source, err)
			continue
		}
		o.src = d.source
		objs = append(objs, o)
	}
	return objs
}

// find returns the objects of one kind.
func find[T any](objs []object) []T {
	var out []T
	for _, o := range objs {
		if v, ok := o.obj.(T); ok {
			out = append(out, v)
		}
	}
	return out
}

// one returns the single object of a kind, failing otherwise.
func one[T any](t *testing.T, objs []object) T {
	t.Helper()
	all := find[T](objs)
	if len(all) != 1 {
		var zero T
		t.Fatalf("want exactly one %T, have %d", zero, len(all))
	}
	return all[0]
}
