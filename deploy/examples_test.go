package deploy

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
)

// The app examples decode strictly, and every pod in a namespace labelled
// for the "restricted" Pod Security level passes its checks — the point of
// the PVC layout.
func TestExamples(t *testing.T) {
	files, err := filepath.Glob("examples/*/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 4 {
		t.Fatalf("only %d example manifests", len(files))
	}
	for _, f := range files {
		t.Run(f, func(t *testing.T) {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			objs := decodeAll(t, string(b))
			levels := map[string]string{}
			for _, ns := range find[*corev1.Namespace](objs) {
				levels[ns.Name] = ns.Labels["pod-security.kubernetes.io/enforce"]
			}
			check := func(ns string, spec corev1.PodSpec) {
				if levels[ns] == "" {
					t.Errorf("example namespace %s sets no Pod Security level", ns)
				}
				if levels[ns] == "restricted" {
					checkRestricted(t, spec)
				}
				mounted := false
				for _, c := range spec.Containers {
					for _, m := range c.VolumeMounts {
						mounted = mounted || m.MountPath == "/dumps"
					}
				}
				if !mounted {
					t.Error("the app does not mount /dumps")
				}
			}
			n := 0
			for _, d := range find[*appsv1.Deployment](objs) {
				check(d.Namespace, d.Spec.Template.Spec)
				n++
			}
			for _, p := range find[*corev1.Pod](objs) {
				check(p.Namespace, p.Spec)
				n++
			}
			if n == 0 {
				t.Error("no workload in the example")
			}
		})
	}
}

// checkRestricted applies the Pod Security "restricted" rules (v1.25+)
// that an example could break.
func checkRestricted(t *testing.T, spec corev1.PodSpec) {
	t.Helper()
	allowed := map[string]bool{"configMap": true, "csi": true, "downwardAPI": true, "emptyDir": true, "ephemeral": true,
		"persistentVolumeClaim": true, "projected": true, "secret": true}
	for _, v := range spec.Volumes {
		kind := ""
		switch {
		case v.ConfigMap != nil:
			kind = "configMap"
		case v.EmptyDir != nil:
			kind = "emptyDir"
		case v.PersistentVolumeClaim != nil:
			kind = "persistentVolumeClaim"
		case v.Secret != nil:
			kind = "secret"
		case v.Projected != nil:
			kind = "projected"
		case v.DownwardAPI != nil:
			kind = "downwardAPI"
		case v.HostPath != nil:
			kind = "hostPath"
		}
		if !allowed[kind] {
			t.Errorf("restricted: volume %s of type %q", v.Name, kind)
		}
	}
	if spec.HostPID || spec.HostIPC || spec.HostNetwork {
		t.Error("restricted: host namespaces")
	}
	psc := spec.SecurityContext
	for _, c := range append(spec.InitContainers, spec.Containers...) {
		sc := c.SecurityContext
		if sc == nil {
			t.Errorf("restricted: container %s has no securityContext", c.Name)
			continue
		}
		if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
			t.Errorf("restricted: container %s allowPrivilegeEscalation", c.Name)
		}
		if sc.Capabilities == nil || len(sc.Capabilities.Drop) != 1 || sc.Capabilities.Drop[0] != "ALL" {
			t.Errorf("restricted: container %s must drop ALL", c.Name)
		}
		for _, a := range sc.Capabilities.Add {
			if a != "NET_BIND_SERVICE" {
				t.Errorf("restricted: container %s adds %s", c.Name, a)
			}
		}
		nonRoot := (sc.RunAsNonRoot != nil && *sc.RunAsNonRoot) || (sc.RunAsNonRoot == nil && psc != nil && psc.RunAsNonRoot != nil && *psc.RunAsNonRoot)
		if !nonRoot {
			t.Errorf("restricted: container %s runAsNonRoot", c.Name)
		}
		seccomp := (sc.SeccompProfile != nil) || (psc != nil && psc.SeccompProfile != nil)
		if !seccomp {
			t.Errorf("restricted: container %s seccompProfile", c.Name)
		}
		if sc.Privileged != nil && *sc.Privileged {
			t.Errorf("restricted: container %s privileged", c.Name)
		}
		for _, e := range c.Env {
			if strings.HasPrefix(e.Name, "DOTNET_DbgMiniDumpName") && !strings.HasPrefix(e.Value, "/dumps/") {
				t.Errorf("dump name %q is not under /dumps", e.Value)
			}
		}
	}
}
