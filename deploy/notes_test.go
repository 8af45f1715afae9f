package deploy

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"
)

// helmRender renders the chart as release in namespace ns (helmTemplate
// always uses the release crashdump in crashdump).
func helmRender(t *testing.T, chart, release, ns string, args ...string) string {
	t.Helper()
	cmd := exec.Command(helmBin(t), append([]string{"template", release, chart, "--namespace", ns}, args...)...)
	cmd.Env = helmEnv(t)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("helm template %s %s -n %s %s: %v: %s", release, chart, ns, strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String()
}

// renderNotes renders NOTES.txt, which helm template leaves out (only
// install and upgrade print it, and they need a cluster): a copy of the
// chart includes it into a manifest as a string.
func renderNotes(t *testing.T, release, ns string, args ...string) string {
	t.Helper()
	chart := filepath.Join(t.TempDir(), "crashdump")
	if err := os.CopyFS(chart, os.DirFS(chartDir)); err != nil {
		t.Fatal(err)
	}
	notes, err := os.ReadFile(filepath.Join(chart, "templates", "NOTES.txt"))
	if err != nil {
		t.Fatal(err)
	}
	for name, body := range map[string]string{
		"_notes_test.tpl": `{{- define "test.notes" -}}` + string(notes) + `{{- end -}}`,
		"notes-test.yaml": "notes: {{ include \"test.notes\" . | toJson }}\n",
	} {
		if err := os.WriteFile(filepath.Join(chart, "templates", name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	out := helmRender(t, chart, release, ns, append(args, "--show-only", "templates/notes-test.yaml")...)
	var v struct {
		Notes string `json:"notes"`
	}
	if err := yaml.Unmarshal([]byte(out), &v); err != nil || v.Notes == "" {
		t.Fatalf("rendered notes: %v\n%s", err, out)
	}
	return v.Notes
}

// TestNotesCLICommands: the commands the install notes print work as
// printed: the CLI looks in the namespace crashdump unless told
// --agent-namespace, and picks a release among several only with --release.
func TestNotesCLICommands(t *testing.T) {
	for _, tt := range []struct {
		release, ns string
		want        []string
		wantNot     []string
	}{
		{release: "crashdump", ns: "crashdump",
			want:    []string{"  kubectl crashdump ls -A --since 1h\n", "  kubectl crashdump get <id>\n"},
			wantNot: []string{"--agent-namespace", "--release"}},
		{release: "crashdump", ns: "monitoring",
			want:    []string{"  kubectl crashdump ls -A --since 1h --agent-namespace monitoring\n", "  kubectl crashdump get <id> --agent-namespace monitoring\n"},
			wantNot: []string{"--release"}},
		{release: "dumps", ns: "monitoring",
			want: []string{"  kubectl crashdump ls -A --since 1h --agent-namespace monitoring --release dumps\n"}},
		{release: "dumps", ns: "crashdump",
			want:    []string{"  kubectl crashdump ls -A --since 1h --release dumps\n"},
			wantNot: []string{"--agent-namespace"}},
	} {
		t.Run(tt.release+"/"+tt.ns, func(t *testing.T) {
			notes := renderNotes(t, tt.release, tt.ns)
			for _, w := range append(tt.want, "kubectl krew install --manifest=dist/crashdump.yaml", "make install") {
				if !strings.Contains(notes, w) {
					t.Errorf("NOTES lack %q:\n%s", w, notes)
				}
			}
			for _, w := range tt.wantNot {
				if strings.Contains(notes, w) {
					t.Errorf("NOTES have %q:\n%s", w, notes)
				}
			}
		})
	}
}

// clientConfigMaps are the CLI's ConfigMaps a rendering holds.
func clientConfigMaps(t *testing.T, out string) []*corev1.ConfigMap {
	t.Helper()
	var cms []*corev1.ConfigMap
	for _, o := range decodeAll(t, out) {
		if cm, ok := o.obj.(*corev1.ConfigMap); ok && cm.Labels["app.kubernetes.io/component"] == "client-config" {
			cms = append(cms, cm)
		}
	}
	return cms
}

// TestClientConfigMapNames: the release crashdump keeps the name older CLIs
// read, and two releases in one namespace never collide; each carries the
// label and the release the CLI selects by.
func TestClientConfigMapNames(t *testing.T) {
	seen := map[string]string{}
	for _, tt := range []struct{ release, want string }{
		{"crashdump", "crashdump-client"},
		{"dumps", "dumps-crashdump-client"},
		{"crashdump-staging", "crashdump-staging-client"},
	} {
		cms := clientConfigMaps(t, helmRender(t, chartDir, tt.release, "monitoring"))
		if len(cms) != 1 {
			t.Fatalf("release %s: %d client ConfigMaps (by label app.kubernetes.io/component=client-config), want 1", tt.release, len(cms))
		}
		cm := cms[0]
		if cm.Name != tt.want || cm.Namespace != "monitoring" || cm.Labels["app.kubernetes.io/instance"] != tt.release {
			t.Errorf("release %s: ConfigMap %s/%s instance %q, want monitoring/%s", tt.release, cm.Namespace, cm.Name, cm.Labels["app.kubernetes.io/instance"], tt.want)
		}
		if other, ok := seen[cm.Name]; ok {
			t.Errorf("releases %s and %s in one namespace both create ConfigMap %s", other, tt.release, cm.Name)
		}
		seen[cm.Name] = tt.release
		if cm.Data["store"] == "" {
			t.Errorf("release %s: no store key", tt.release)
		}
	}
	if cms := clientConfigMaps(t, helmRender(t, chartDir, "crashdump", "crashdump", "--set", "clientConfig.create=false")); len(cms) != 0 {
		t.Errorf("clientConfig.create=false: %d client ConfigMaps", len(cms))
	}
}
