package identify_test

import (
	"context"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/crashdump-io/crashdump/collector"
	"github.com/crashdump-io/crashdump/collector/pods/podstest"
	"github.com/crashdump-io/crashdump/uploader/manifest"
)

type staticSource []podstest.Pod

func (s staticSource) List(context.Context) ([]corev1.Pod, error) {
	return podstest.List(s...).Items, nil
}
func (s staticSource) String() string { return "static" }

// A kernel core is attributed by the crashing process's cgroup only: the
// method is kernel, and neither its path nor its file name may name a pod
// when the container is unknown.
func TestKernelEvidence(t *testing.T) {
	res, _ := newResolver(t, staticSource(nodePods()))
	tests := []struct {
		name      string
		path      string
		kernel    collector.Writer
		method    string
		pod       string // namespace/name/container, "" for none
		container string
		reason    string
	}{
		{name: "container ID", path: "core.api.4242",
			kernel: collector.Writer{HostPID: 4242, Writable: true, ContainerID: shopCrashed, PodUID: shopUID},
			method: manifest.MethodKernel, pod: "shop/api-7d9f8c6b5-x2k4p/api", container: "containerd://" + shopCrashed},
		{name: "container of a multi-container pod", path: "core.envoy.7",
			kernel: collector.Writer{HostPID: 7, Writable: true, ContainerID: envoyRun, PodUID: workerUID},
			method: manifest.MethodKernel, pod: "shop/worker-0/envoy", container: "docker://" + envoyRun},
		{name: "unknown container: no path or host name fallback", path: "web/web/core.web.9",
			kernel: collector.Writer{HostPID: 9, Writable: true, ContainerID: strangerRun, PodUID: strangerUID},
			method: manifest.MethodNone, reason: "kernel: pod uid " + strangerUID + " (container " + strangerRun[:13] + ") is not in the pod list"},
		{name: "host process", path: "core.web.10",
			kernel: collector.Writer{HostPID: 10, Writable: true},
			method: manifest.MethodNone, reason: "kernel: the process writing the dump is not in a pod"},
		{name: "pod UID contradicts container", path: "core.api.11",
			kernel: collector.Writer{HostPID: 11, Writable: true, ContainerID: shopRun, PodUID: billingUID},
			method: manifest.MethodNone, reason: "not trusted"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			k := tc.kernel
			a := res.Resolve(context.Background(), collector.Evidence{Path: tc.path, Kernel: &k, ClaimedAt: time.Now()})
			if a.Method != tc.method {
				t.Fatalf("method %q, want %q (%s)", a.Method, tc.method, a.Reason)
			}
			got := ""
			if a.Pod != nil {
				got = a.Pod.Namespace + "/" + a.Pod.Name + "/" + a.Pod.Container
			}
			if got != tc.pod {
				t.Errorf("pod %q, want %q (%s)", got, tc.pod, a.Reason)
			}
			if a.Pod != nil && a.Pod.ContainerID != tc.container {
				t.Errorf("containerID %q, want %q", a.Pod.ContainerID, tc.container)
			}
			if !strings.Contains(a.Reason, tc.reason) {
				t.Errorf("reason %q, want it to contain %q", a.Reason, tc.reason)
			}
			if a.Writer == nil || a.Writer.HostPID != tc.kernel.HostPID {
				t.Errorf("writer %+v: the kernel's process is the evidence", a.Writer)
			}
		})
	}
}

// NodePods is the cached list for the core handler's policy snapshot.
func TestNodePods(t *testing.T) {
	res, cache := newResolver(t, staticSource(nodePods()))
	if got := res.NodePods(); len(got) != 0 {
		t.Errorf("before any list: %d pods", len(got))
	}
	if _, err := cache.Fresh(context.Background(), time.Now()); err != nil {
		t.Fatal(err)
	}
	got := res.NodePods()
	if len(got) != len(nodePods()) {
		t.Fatalf("%d pods, want %d", len(got), len(nodePods()))
	}
	for _, p := range got {
		if p.Namespace == "shop" && p.Name == "api-7d9f8c6b5-x2k4p" {
			if len(p.UIDs) != 1 || p.UIDs[0] != shopUID || len(p.Containers) != 1 ||
				strings.Join(p.Containers[0].IDs, ",") != shopRun+","+shopCrashed && strings.Join(p.Containers[0].IDs, ",") != shopCrashed+","+shopRun {
				t.Errorf("shop api: %+v", p)
			}
			return
		}
	}
	t.Errorf("shop api not listed: %+v", got)
}
