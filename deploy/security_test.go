package deploy

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
)

// TestDaemonSetLeastPrivilege: in every mode the agent is not privileged,
// has a read-only root filesystem, cannot gain privileges, runs under the
// runtime's seccomp profile, drops ALL capabilities and adds back exactly
// the ones documented for that mode; hostPID comes only with writer-pid
// attribution, and the only host path is the dump root.
func TestDaemonSetLeastPrivilege(t *testing.T) {
	documented := documentedCapabilities(t)
	for _, c := range chartCases() {
		t.Run(c.name, func(t *testing.T) {
			objs := renderObjects(t, c.args...)
			ds := one[*appsv1.DaemonSet](t, objs)
			spec := ds.Spec.Template.Spec
			writerPid := slices.Contains(c.caps, "SYS_PTRACE")
			if spec.HostPID != writerPid {
				t.Errorf("hostPID %v, want %v (writer-pid attribution %v)", spec.HostPID, writerPid, writerPid)
			}
			if spec.HostIPC {
				t.Error("hostIPC")
			}
			if spec.HostNetwork && c.name != "e2e" {
				t.Error("hostNetwork without asking for it")
			}
			if spec.SecurityContext == nil || spec.SecurityContext.SeccompProfile == nil ||
				spec.SecurityContext.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
				t.Error("pod seccomp profile is not RuntimeDefault")
			}
			for _, v := range spec.Volumes {
				if v.HostPath != nil && v.HostPath.Path != "/var/lib/crashdump" {
					t.Errorf("hostPath volume %q on %s: only the dump root may be mounted", v.Name, v.HostPath.Path)
				}
			}
			for _, ctr := range append(spec.InitContainers, spec.Containers...) {
				sc := ctr.SecurityContext
				if sc == nil {
					t.Fatalf("container %s has no securityContext", ctr.Name)
				}
				if sc.Privileged != nil && *sc.Privileged {
					t.Errorf("container %s is privileged", ctr.Name)
				}
				if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
					t.Errorf("container %s: root filesystem not read-only", ctr.Name)
				}
				if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
					t.Errorf("container %s: allowPrivilegeEscalation is not false", ctr.Name)
				}
				if sc.SeccompProfile == nil || sc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
					t.Errorf("container %s: seccomp profile is not RuntimeDefault", ctr.Name)
				}
				if sc.ProcMount != nil && *sc.ProcMount != corev1.DefaultProcMount {
					t.Errorf("container %s: procMount %s", ctr.Name, *sc.ProcMount)
				}
				caps := sc.Capabilities
				if caps == nil || !slices.Equal(caps.Drop, []corev1.Capability{"ALL"}) {
					t.Fatalf("container %s: capabilities must drop exactly [ALL], have %+v", ctr.Name, caps)
				}
				var added []string
				for _, a := range caps.Add {
					added = append(added, string(a))
				}
				slices.Sort(added)
				if !slices.Equal(added, c.caps) {
					t.Errorf("container %s adds %v, want %v", ctr.Name, added, c.caps)
				}
				for _, a := range added {
					if !documented[a] {
						t.Errorf("capability %s is added but has no row in docs/security.md", a)
					}
				}
				for _, m := range ctr.VolumeMounts {
					if m.MountPropagation != nil && *m.MountPropagation != corev1.MountPropagationNone {
						t.Errorf("mount %s propagation %s", m.Name, *m.MountPropagation)
					}
				}
			}
		})
	}
}

// documentedCapabilities reads the capability table of docs/security.md:
// rows "| `CAP_X` | ...".
func documentedCapabilities(t *testing.T) map[string]bool {
	t.Helper()
	b, err := os.ReadFile(repoFile("docs/security.md"))
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile("(?m)^\\| `CAP_([A-Z_]+)` \\|")
	caps := map[string]bool{}
	for _, m := range re.FindAllStringSubmatch(string(b), -1) {
		caps[m[1]] = true
	}
	for _, want := range capsWriterPid {
		if !caps[want] {
			t.Errorf("docs/security.md has no row for CAP_%s", want)
		}
	}
	return caps
}

// The NOTES shown after install state the same capability list.
func TestNotesNameTheCapabilities(t *testing.T) {
	out := helmTemplate(t, "--show-only", "templates/daemonset.yaml")
	if !strings.Contains(out, "- SYS_PTRACE") {
		t.Fatal("default render lacks SYS_PTRACE")
	}
	b, err := os.ReadFile(chartDir + "/templates/NOTES.txt")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `include "crashdump.capabilities"`) {
		t.Error("NOTES.txt does not print the computed capability list")
	}
}
