package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/crashdump-io/crashdump/collector/kubeapi"
)

// fakeConfigMaps answers like the API server: list by the label selector
// (or listErr), get by name.
type fakeConfigMaps struct {
	items   []corev1.ConfigMap
	listErr error
	gets    []string
}

func (f *fakeConfigMaps) ListConfigMaps(_ context.Context, ns string, opts kubeapi.ListOptions) (*corev1.ConfigMapList, error) {
	if f.listErr != nil {
		return nil, f.listErr
	}
	if opts.LabelSelector != clientConfigSelector {
		return nil, fmt.Errorf("selector %q", opts.LabelSelector)
	}
	list := &corev1.ConfigMapList{}
	for _, cm := range f.items {
		if cm.Namespace == ns && cm.Labels["app.kubernetes.io/component"] == "client-config" && cm.Labels["app.kubernetes.io/part-of"] == "crashdump" {
			list.Items = append(list.Items, cm)
		}
	}
	return list, nil
}

func (f *fakeConfigMaps) GetConfigMap(_ context.Context, ns, name string) (*corev1.ConfigMap, error) {
	f.gets = append(f.gets, ns+"/"+name)
	for _, cm := range f.items {
		if cm.Namespace == ns && cm.Name == name {
			return &cm, nil
		}
	}
	return nil, apierrors.NewNotFound(schema.GroupResource{Resource: "configmaps"}, name)
}

// chartConfigMap is a client ConfigMap as the chart renders it for release.
func chartConfigMap(ns, release string) corev1.ConfigMap {
	return corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: clientConfigMapName(release), Namespace: ns, Labels: map[string]string{
			"app.kubernetes.io/component": "client-config", "app.kubernetes.io/part-of": "crashdump",
			"app.kubernetes.io/instance": release}},
		Data: map[string]string{"store": "s3://" + release},
	}
}

func TestFindClientConfigMap(t *testing.T) {
	forbidden := apierrors.NewForbidden(schema.GroupResource{Resource: "configmaps"}, "", fmt.Errorf("cannot list"))
	legacy := corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "crashdump-client", Namespace: "crashdump"},
		Data: map[string]string{"store": "s3://legacy"}}
	for _, tt := range []struct {
		name     string
		items    []corev1.ConfigMap
		listErr  error
		ns       string
		release  string
		want     string // store of the ConfigMap found
		wantErr  []string
		wantGets []string
	}{
		{name: "the default release", items: []corev1.ConfigMap{chartConfigMap("crashdump", "crashdump")}, ns: "crashdump", want: "s3://crashdump"},
		{name: "the only release, any name", items: []corev1.ConfigMap{chartConfigMap("monitoring", "dumps"), chartConfigMap("crashdump", "crashdump")},
			ns: "monitoring", want: "s3://dumps"},
		{name: "two releases: an error naming both", items: []corev1.ConfigMap{chartConfigMap("crashdump", "crashdump"), chartConfigMap("crashdump", "staging")},
			ns: "crashdump", wantErr: []string{"2 crashdump releases in namespace crashdump", "crashdump-client (release crashdump)",
				"staging-crashdump-client (release staging)", "--release NAME"}},
		{name: "two releases, --release picks", items: []corev1.ConfigMap{chartConfigMap("crashdump", "crashdump"), chartConfigMap("crashdump", "staging")},
			ns: "crashdump", release: "staging", want: "s3://staging"},
		{name: "unknown --release: not found, the others listed", items: []corev1.ConfigMap{chartConfigMap("crashdump", "crashdump")},
			ns: "crashdump", release: "prod", wantGets: []string{"crashdump/prod-crashdump-client"},
			wantErr: []string{"crashdump/prod-crashdump-client not found", `release "prod"`, "crashdump-client (release crashdump)"}},
		{name: "no label (older chart, by hand): by name", items: []corev1.ConfigMap{legacy}, ns: "crashdump",
			want: "s3://legacy", wantGets: []string{"crashdump/crashdump-client"}},
		{name: "list forbidden: by name", items: []corev1.ConfigMap{chartConfigMap("crashdump", "crashdump")}, listErr: forbidden,
			ns: "crashdump", want: "s3://crashdump", wantGets: []string{"crashdump/crashdump-client"}},
		{name: "list forbidden, --release: by the chart's name", items: []corev1.ConfigMap{chartConfigMap("crashdump", "staging")}, listErr: forbidden,
			ns: "crashdump", release: "staging", want: "s3://staging", wantGets: []string{"crashdump/staging-crashdump-client"}},
		{name: "nothing installed", ns: "elsewhere", wantGets: []string{"elsewhere/crashdump-client"},
			wantErr: []string{"ConfigMap elsewhere/crashdump-client not found", `installed in namespace "elsewhere"`}},
		{name: "list fails otherwise", listErr: fmt.Errorf("connection reset"), ns: "crashdump",
			wantErr: []string{"list ConfigMaps in crashdump", "connection reset"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := &fakeConfigMaps{items: tt.items, listErr: tt.listErr}
			cm, err := findClientConfigMap(context.Background(), f, tt.ns, tt.release)
			if len(tt.wantErr) > 0 {
				if err == nil {
					t.Fatalf("found %s, want an error", cm.Name)
				}
				for _, w := range tt.wantErr {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error lacks %q: %v", w, err)
					}
				}
			} else if err != nil {
				t.Fatal(err)
			} else if cm.Data["store"] != tt.want {
				t.Errorf("found %s (store %s), want store %s", cm.Name, cm.Data["store"], tt.want)
			}
			if strings.Join(f.gets, " ") != strings.Join(tt.wantGets, " ") {
				t.Errorf("read by name %v, want %v", f.gets, tt.wantGets)
			}
		})
	}
}

func TestClientConfigMapName(t *testing.T) {
	// The chart's fullname without overrides: the release if it contains
	// "crashdump", else <release>-crashdump (deploy's TestClientConfigMapNames).
	for release, want := range map[string]string{"": "crashdump-client", "crashdump": "crashdump-client",
		"crashdump-staging": "crashdump-staging-client", "dumps": "dumps-crashdump-client"} {
		if got := clientConfigMapName(release); got != want {
			t.Errorf("clientConfigMapName(%q) = %q, want %q", release, got, want)
		}
	}
}

// TestReleaseFlag: through the real API client, two releases in one
// namespace make ls fail with both named, and --release picks one.
func TestReleaseFlag(t *testing.T) {
	isolateKube(t)
	store := "file://" + t.TempDir()
	items := []corev1.ConfigMap{chartConfigMap("monitoring", "a"), chartConfigMap("monitoring", "b")}
	items[1].Data["store"] = store
	api := &fakeAPIServer{}
	api.Server = httptest.NewTLSServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		rw.Header().Set("Content-Type", "application/json")
		if r.URL.Path != "/api/v1/namespaces/monitoring/configmaps" || r.URL.Query().Get("labelSelector") != clientConfigSelector {
			rw.WriteHeader(http.StatusNotFound)
			fmt.Fprint(rw, `{"kind":"Status","apiVersion":"v1","status":"Failure","reason":"NotFound","code":404}`)
			return
		}
		_ = json.NewEncoder(rw).Encode(corev1.ConfigMapList{TypeMeta: metav1.TypeMeta{Kind: "ConfigMapList", APIVersion: "v1"}, Items: items})
	}))
	t.Cleanup(api.Close)
	t.Setenv("KUBECONFIG", writeKubeconfig(t, api))

	r := runCLI(t, "crashdump", "ls", "--agent-namespace", "monitoring")
	for _, want := range []string{"2 crashdump releases in namespace monitoring", "a-crashdump-client (release a)", "b-crashdump-client (release b)", "--release"} {
		if r.code != 1 || !strings.Contains(r.stderr, want) {
			t.Errorf("exit %d, stderr lacks %q: %s", r.code, want, r.stderr)
		}
	}
	r = runCLI(t, "crashdump", "ls", "-v", "--agent-namespace", "monitoring", "--release", "b")
	if r.code != 0 || !strings.Contains(r.stderr, "from ConfigMap monitoring/b-crashdump-client") {
		t.Errorf("--release b: exit %d: %s", r.code, r.stderr)
	}
}
