package pods_test

import (
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/crashdump-io/crashdump/collector/pods"
	"github.com/crashdump-io/crashdump/collector/pods/podstest"
)

func TestOwner(t *testing.T) {
	tests := []struct {
		name      string
		pod       podstest.Pod
		kind, own string
	}{
		{"deployment through its replicaset",
			podstest.Pod{Name: "api-7d9f8c6b5-x2k4p", Labels: map[string]string{"pod-template-hash": "7d9f8c6b5"}, OwnerKind: "ReplicaSet", OwnerName: "api-7d9f8c6b5"},
			"Deployment", "api"},
		{"deployment with dashes",
			podstest.Pod{Name: "my-web-api-5f6d7c8b9-abcde", Labels: map[string]string{"pod-template-hash": "5f6d7c8b9"}, OwnerKind: "ReplicaSet", OwnerName: "my-web-api-5f6d7c8b9"},
			"Deployment", "my-web-api"},
		{"bare replicaset without the hash label",
			podstest.Pod{Name: "rs-abcde", OwnerKind: "ReplicaSet", OwnerName: "rs"},
			"ReplicaSet", "rs"},
		{"replicaset whose name does not end in the hash",
			podstest.Pod{Name: "x-abcde", Labels: map[string]string{"pod-template-hash": "7d9f8c6b5"}, OwnerKind: "ReplicaSet", OwnerName: "handmade"},
			"ReplicaSet", "handmade"},
		{"statefulset", podstest.Pod{Name: "db-0", OwnerKind: "StatefulSet", OwnerName: "db"}, "StatefulSet", "db"},
		{"daemonset", podstest.Pod{Name: "ds-x", OwnerKind: "DaemonSet", OwnerName: "ds"}, "DaemonSet", "ds"},
		{"job", podstest.Pod{Name: "backup-28391-abc", OwnerKind: "Job", OwnerName: "backup-28391"}, "Job", "backup-28391"},
		{"static pod mirror", podstest.Pod{Name: "etcd-node-1", OwnerKind: "Node", OwnerName: "node-1"}, "Node", "node-1"},
		{"bare pod", podstest.Pod{Name: "debug"}, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := tt.pod.Core()
			kind, name := pods.Owner(&p)
			if kind != tt.kind || name != tt.own {
				t.Errorf("Owner = %s/%s, want %s/%s", kind, name, tt.kind, tt.own)
			}
		})
	}
}

func TestHostname(t *testing.T) {
	long := strings.Repeat("a", 60) + "-b-cdef" // 67 characters, cut at a '-'
	tests := []struct {
		name, hostname, want string
	}{
		{"api-7d9f8c6b5-x2k4p", "", "api-7d9f8c6b5-x2k4p"},
		{"web-0", "custom", "custom"},
		{long, "", strings.Repeat("a", 60) + "-b"},
	}
	for _, tt := range tests {
		p := corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: tt.name}, Spec: corev1.PodSpec{Hostname: tt.hostname}}
		if got := pods.Hostname(&p); got != tt.want {
			t.Errorf("Hostname(%s, %q) = %q, want %q", tt.name, tt.hostname, got, tt.want)
		}
	}
}

func TestFromCore(t *testing.T) {
	core := richPod().Core()
	core.Annotations["kubernetes.io/config.hash"] = "8daa50c3a64c9ff60bb9eab7b44b56fd"
	p := pods.FromCore(&core, time.Now())
	if p.StaticHash != "8daa50c3a64c9ff60bb9eab7b44b56fd" {
		t.Errorf("static hash %q", p.StaticHash)
	}
	c, ok := p.Container("worker")
	if !ok {
		t.Fatal("no worker container")
	}
	if c.Image != "registry.example.com/shop/worker:9" || !strings.Contains(c.ImageID, "@sha256:") || c.RestartCount != 1 || len(c.IDs) != 2 {
		t.Errorf("worker container: %+v", c)
	}
	if len(p.Containers) != 4 {
		t.Errorf("%d containers, want init + 2 + ephemeral", len(p.Containers))
	}
	for _, tt := range []struct{ in, runtime, id string }{
		{"containerd://ABC123", "containerd", "abc123"},
		{"cri-o://" + podstest.Hex64("x"), "cri-o", podstest.Hex64("x")},
		{"docker://" + podstest.Hex64("y"), "docker", podstest.Hex64("y")},
		{podstest.Hex64("z"), "", podstest.Hex64("z")},
	} {
		rt, id, ok := pods.SplitContainerID(tt.in)
		if !ok || rt != tt.runtime || id != tt.id {
			t.Errorf("SplitContainerID(%q) = %q %q %v", tt.in, rt, id, ok)
		}
	}
	if _, _, ok := pods.SplitContainerID("containerd://"); ok {
		t.Error("empty ID accepted")
	}
}
