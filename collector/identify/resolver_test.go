package identify_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/client-go/rest"

	"github.com/crashdump-io/crashdump/collector"
	"github.com/crashdump-io/crashdump/collector/identify"
	"github.com/crashdump-io/crashdump/collector/kubeapi"
	"github.com/crashdump-io/crashdump/collector/pods"
	"github.com/crashdump-io/crashdump/collector/pods/podstest"
	"github.com/crashdump-io/crashdump/collector/procfs"
)

const node = "node-1"

// Container instances of the node's pods.
var (
	shopRun     = podstest.Hex64("shop api running")
	shopCrashed = podstest.Hex64("shop api crashed")
	billingRun  = podstest.Hex64("billing api running")
	workerRun   = podstest.Hex64("worker running")
	envoyRun    = podstest.Hex64("envoy running")
	migrateDone = podstest.Hex64("migrate done")
	etcdRun     = podstest.Hex64("etcd running")
	webRun      = podstest.Hex64("web running")
	web1Run     = podstest.Hex64("web-1 running")
	strangerRun = podstest.Hex64("a pod nobody knows")
)

// Pod UIDs.
var (
	shopUID     = podstest.UID("shop api")
	billingUID  = podstest.UID("billing api")
	workerUID   = podstest.UID("shop worker-0")
	webUID      = podstest.UID("web")
	web1UID     = podstest.UID("web-1")
	strangerUID = podstest.UID("stranger")
	etcdHash    = "8daa50c3a64c9ff60bb9eab7b44b56fd"
)

// nodePods is one node: two namespaces with the same pod name, a
// multi-container pod with an init container, pods whose names are
// prefixes of each other, a static pod.
func nodePods() []podstest.Pod {
	return []podstest.Pod{
		{Namespace: "shop", Name: "api-7d9f8c6b5-x2k4p", UID: shopUID, Node: node,
			Labels:    map[string]string{"app": "api", "pod-template-hash": "7d9f8c6b5"},
			OwnerKind: "ReplicaSet", OwnerName: "api-7d9f8c6b5",
			Containers: []podstest.Container{{Name: "api", Image: "registry.example.com/shop/api:1.4.2",
				ID: "containerd://" + shopRun, LastID: "containerd://" + shopCrashed, RestartCount: 1}}},
		{Namespace: "billing", Name: "api-7d9f8c6b5-x2k4p", UID: billingUID, Node: node,
			Labels:    map[string]string{"app": "api", "pod-template-hash": "7d9f8c6b5"},
			OwnerKind: "ReplicaSet", OwnerName: "api-7d9f8c6b5",
			Containers: []podstest.Container{{Name: "api", Image: "registry.example.com/billing/api:2.0.0", ID: "cri-o://" + billingRun}}},
		{Namespace: "shop", Name: "worker-0", UID: workerUID, Node: node, OwnerKind: "StatefulSet", OwnerName: "worker",
			Labels:     map[string]string{"app": "worker"},
			Init:       []podstest.Container{{Name: "migrate", Image: "registry.example.com/shop/migrate:3", ID: "docker://" + migrateDone}},
			Containers: []podstest.Container{{Name: "worker", Image: "registry.example.com/shop/worker:9", ID: "docker://" + workerRun}, {Name: "envoy", Image: "envoyproxy/envoy:v1.31.0", ID: "docker://" + envoyRun}}},
		{Namespace: "web", Name: "web", UID: webUID, Node: node,
			Containers: []podstest.Container{{Name: "web", Image: "nginx:1.27", ID: "containerd://" + webRun}}},
		{Namespace: "web", Name: "web-1", UID: web1UID, Node: node,
			Containers: []podstest.Container{{Name: "web", Image: "nginx:1.27", ID: "containerd://" + web1Run}}},
		{Namespace: "kube-system", Name: "etcd-" + node, UID: etcdHash, Node: node, OwnerKind: "Node", OwnerName: node,
			Annotations: map[string]string{"kubernetes.io/config.hash": etcdHash, "kubernetes.io/config.source": "file"},
			Containers:  []podstest.Container{{Name: "etcd", Image: "registry.k8s.io/etcd:3.5.21-0", ID: "containerd://" + etcdRun}}},
	}
}

// Real cgroup file contents, in the formats of procfs's tests (sources
// there), with this node's pod UIDs and container IDs.
func cgContainerdSystemdV2(uid, id string) string {
	return "0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + strings.ReplaceAll(uid, "-", "_") + ".slice/cri-containerd-" + id + ".scope\n"
}

func cgCRIOSystemdV1(uid, id string) string {
	p := "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + strings.ReplaceAll(uid, "-", "_") + ".slice/crio-" + id + ".scope"
	return "13:freezer:" + p + "\n12:cpuset:" + p + "\n11:files:/\n"
}

func cgDockerCgroupfsV1(uid, id string) string {
	p := "/kubepods/burstable/pod" + uid + "/" + id
	return "12:rdma:/\n11:pids:" + p + "\n10:blkio:" + p + "\n1:name=systemd:" + p + "\n"
}

func cgContainerdCgroupfsHybrid(uid, id string) string {
	p := "/kubepods/besteffort/pod" + uid + "/" + id
	return "9:name=systemd:" + p + "\n4:memory:" + p + "\n0::" + p + "\n"
}

func cgStaticPod(hash, id string) string {
	return "0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + hash + ".slice/cri-containerd-" + id + ".scope\n"
}

const cgHost = "0::/system.slice/systemd-coredump.service\n"

// writer is the evidence the collector records for a process holding the
// dump: the cgroup parsed by procfs, mapped as collector/claim.go does.
func writer(t *testing.T, pid int, cgroup string, writable bool) collector.Writer {
	t.Helper()
	cg, _ := procfs.ParseCgroup([]byte(cgroup))
	return collector.Writer{HostPID: pid, NSPID: 1, Writable: writable, Comm: "dotnet", Exe: "/usr/share/dotnet/dotnet",
		ContainerID: cg.ContainerID, Runtime: cg.Runtime, PodUID: cg.PodUID}
}

func discard() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// source starts a kubelet or an API server serving ps and returns a source
// for it, and the server for changing what it serves.
type served interface {
	SetPods(...podstest.Pod)
	SetMode(string)
	Requests() int
}

func startSource(t *testing.T, kind string, ps ...podstest.Pod) (pods.Source, served) {
	t.Helper()
	retry := pods.Retry{Attempts: 2, Backoff: time.Millisecond}
	switch kind {
	case "kubelet":
		k := podstest.StartKubelet(t, ps...)
		src, err := pods.NewKubelet(pods.KubeletConfig{URL: k.URL, TokenFile: k.TokenFile, CAFile: k.CAFile, UserAgent: "crashdump/test", Retry: retry})
		if err != nil {
			t.Fatal(err)
		}
		return src, k
	case "apiserver":
		a := podstest.StartAPIServer(t, node, ps...)
		c, err := kubeapi.New(&rest.Config{Host: a.URL, BearerToken: a.Token(), TLSClientConfig: rest.TLSClientConfig{CAData: a.CAData}})
		if err != nil {
			t.Fatal(err)
		}
		src, err := pods.NewAPIServer(c, node, retry)
		if err != nil {
			t.Fatal(err)
		}
		return src, a
	}
	t.Fatalf("unknown source %s", kind)
	return nil, nil
}

func newResolver(t *testing.T, src pods.Source) (*identify.Resolver, *pods.Cache) {
	t.Helper()
	c := pods.NewCache(src, pods.CacheOptions{MinInterval: 20 * time.Millisecond}, discard(), prometheus.NewRegistry())
	t.Cleanup(c.Close)
	return identify.New(c, identify.Options{Timeout: 10 * time.Second, TerminationWait: -1}, discard()), c
}

// want describes an expected attribution.
type want struct {
	method     string
	ns, pod    string
	uid        string
	container  string
	cid        string // full container ID
	image      string
	restarts   string // the crashed instance's count; "" when it is unknown (absent)
	exit       string // "exitCode/signal" of the instance's termination; "" when absent
	owner      string // "Kind/name"
	label      string // "key=value" that must be among the labels
	candidates []string
	reason     string // substring of Reason
}

func check(t *testing.T, got collector.Attribution, w want) {
	t.Helper()
	if got.Method != w.method {
		t.Errorf("method %q, want %q (reason: %s)", got.Method, w.method, got.Reason)
	}
	if w.ns == "" && w.pod == "" {
		if got.Pod != nil {
			t.Errorf("pod %+v, want none", got.Pod)
		}
	} else if got.Pod == nil {
		t.Fatalf("no pod, want %s/%s (reason: %s)", w.ns, w.pod, got.Reason)
	} else {
		p := got.Pod
		if p.Namespace != w.ns || p.Name != w.pod || p.UID != w.uid || p.Container != w.container || p.ContainerID != w.cid {
			t.Errorf("pod %s/%s uid %q container %q (%q), want %s/%s uid %q container %q (%q)",
				p.Namespace, p.Name, p.UID, p.Container, p.ContainerID, w.ns, w.pod, w.uid, w.container, w.cid)
		}
		if w.image != "" && (p.Image != w.image || !strings.Contains(p.ImageID, "@sha256:")) {
			t.Errorf("image %q %q, want %q and a digest", p.Image, p.ImageID, w.image)
		}
		rc := ""
		if p.RestartCount != nil {
			rc = fmt.Sprint(*p.RestartCount)
		}
		if rc != w.restarts {
			t.Errorf("restartCount %q, want %q", rc, w.restarts)
		}
		exit := ""
		if p.Termination != nil {
			exit = fmt.Sprintf("%d/%s", p.Termination.ExitCode, p.Termination.SignalName)
		}
		if exit != w.exit {
			t.Errorf("termination %q, want %q", exit, w.exit)
		}
		if w.owner != "" && p.OwnerKind+"/"+p.OwnerName != w.owner {
			t.Errorf("owner %s/%s, want %s", p.OwnerKind, p.OwnerName, w.owner)
		}
		if w.label != "" {
			k, v, _ := strings.Cut(w.label, "=")
			if p.Labels[k] != v {
				t.Errorf("labels %v, want %s", p.Labels, w.label)
			}
		}
	}
	var cands []string
	for _, c := range got.Candidates {
		cands = append(cands, c.Namespace+"/"+c.Name)
	}
	if strings.Join(cands, ",") != strings.Join(w.candidates, ",") {
		t.Errorf("candidates %v, want %v", cands, w.candidates)
	}
	if w.reason != "" && !strings.Contains(got.Reason, w.reason) {
		t.Errorf("reason %q, want it to mention %q", got.Reason, w.reason)
	}
}

func TestResolve(t *testing.T) {
	const api = "api-7d9f8c6b5-x2k4p"
	tests := []struct {
		name    string
		path    string
		writers func(t *testing.T) []collector.Writer
		want    want
	}{
		{name: "writer-pid containerd systemd cgroup v2", path: "coredump.1.dmp",
			writers: func(t *testing.T) []collector.Writer {
				return []collector.Writer{writer(t, 4242, cgContainerdSystemdV2(shopUID, shopRun), true)}
			},
			want: want{method: "writer-pid", ns: "shop", pod: api, uid: shopUID, container: "api", cid: "containerd://" + shopRun,
				image: "registry.example.com/shop/api:1.4.2", restarts: "1", owner: "Deployment/api", label: "app=api"}},
		{name: "writer-pid crashed instance in lastState", path: "coredump.1.dmp",
			writers: func(t *testing.T) []collector.Writer {
				return []collector.Writer{writer(t, 4242, cgContainerdCgroupfsHybrid(shopUID, shopCrashed), true)}
			},
			want: want{method: "writer-pid", ns: "shop", pod: api, uid: shopUID, container: "api", cid: "containerd://" + shopCrashed, restarts: "0", exit: "139/SIGSEGV",
				image: "registry.example.com/shop/api:1.4.2", owner: "Deployment/api"}},
		{name: "writer-pid CRI-O systemd cgroup v1, same pod name in another namespace", path: "coredump.1.dmp",
			writers: func(t *testing.T) []collector.Writer {
				return []collector.Writer{writer(t, 5151, cgCRIOSystemdV1(billingUID, billingRun), true)}
			},
			want: want{method: "writer-pid", restarts: "0", ns: "billing", pod: api, uid: billingUID, container: "api", cid: "cri-o://" + billingRun,
				image: "registry.example.com/billing/api:2.0.0", owner: "Deployment/api"}},
		{name: "writer-pid Docker cgroupfs v1, multi-container pod", path: "core.17",
			writers: func(t *testing.T) []collector.Writer {
				return []collector.Writer{writer(t, 777, cgDockerCgroupfsV1(workerUID, workerRun), true)}
			},
			want: want{method: "writer-pid", restarts: "0", ns: "shop", pod: "worker-0", uid: workerUID, container: "worker", cid: "docker://" + workerRun,
				image: "registry.example.com/shop/worker:9", owner: "StatefulSet/worker"}},
		{name: "writer-pid init container", path: "core.3",
			writers: func(t *testing.T) []collector.Writer {
				return []collector.Writer{writer(t, 778, cgDockerCgroupfsV1(workerUID, migrateDone), true)}
			},
			want: want{method: "writer-pid", restarts: "0", exit: "0/", ns: "shop", pod: "worker-0", uid: workerUID, container: "migrate", cid: "docker://" + migrateDone,
				image: "registry.example.com/shop/migrate:3", owner: "StatefulSet/worker"}},
		{name: "writer-pid static pod by container ID", path: "core.1",
			writers: func(t *testing.T) []collector.Writer {
				return []collector.Writer{writer(t, 99, cgStaticPod(etcdHash, etcdRun), true)}
			},
			want: want{method: "writer-pid", restarts: "0", ns: "kube-system", pod: "etcd-" + node, uid: etcdHash, container: "etcd", cid: "containerd://" + etcdRun,
				image: "registry.k8s.io/etcd:3.5.21-0", owner: "Node/" + node}},
		{name: "writer-pid static pod by config hash", path: "core.2",
			writers: func(t *testing.T) []collector.Writer {
				// procfs reports a static pod's hash as StaticPodUID; the
				// kubelet lists the pod under that hash as its UID.
				return []collector.Writer{{HostPID: 98, Writable: true, ContainerID: podstest.Hex64("etcd instance not listed yet"), PodUID: etcdHash}}
			},
			want: want{method: "writer-pid", ns: "kube-system", pod: "etcd-" + node, uid: etcdHash, container: "etcd",
				image: "registry.k8s.io/etcd:3.5.21-0", owner: "Node/" + node, reason: "the pod has one container"}},
		{name: "writer wins over a contradicting path", path: "shop/" + api + "/coredump.1.dmp",
			writers: func(t *testing.T) []collector.Writer {
				return []collector.Writer{writer(t, 5151, cgCRIOSystemdV1(billingUID, billingRun), true)}
			},
			want: want{method: "writer-pid", restarts: "0", ns: "billing", pod: api, uid: billingUID, container: "api", cid: "cri-o://" + billingRun,
				image: "registry.example.com/billing/api:2.0.0", owner: "Deployment/api", reason: "does not match the writer's pod billing/" + api}},
		{name: "writers in two pods are ambiguous", path: "shared/coredump.1.dmp",
			writers: func(t *testing.T) []collector.Writer {
				return []collector.Writer{writer(t, 4242, cgContainerdSystemdV2(shopUID, shopRun), true), writer(t, 5151, cgCRIOSystemdV1(billingUID, billingRun), true)}
			},
			want: want{method: "none", candidates: []string{"billing/" + api, "shop/" + api}, reason: "2 pods"}},
		{name: "a reader is not the writer", path: "coredump.1.dmp",
			writers: func(t *testing.T) []collector.Writer {
				return []collector.Writer{writer(t, 4242, cgContainerdSystemdV2(shopUID, shopRun), false)}
			},
			want: want{method: "none", reason: "only open for reading"}},
		{name: "writer outside any pod leaves it to the path", path: "billing/" + api + "/core.1",
			writers: func(t *testing.T) []collector.Writer { return []collector.Writer{writer(t, 1, cgHost, true)} },
			want: want{method: "path", ns: "billing", pod: api, uid: billingUID, container: "api", image: "registry.example.com/billing/api:2.0.0",
				owner: "Deployment/api", reason: "not in a pod"}},
		{name: "writer gone before its cgroup was read is not called a host process", path: "coredump.1.dmp",
			writers: func(t *testing.T) []collector.Writer {
				return []collector.Writer{{HostPID: 4242, Writable: true, StartTime: 987654, Unread: true}}
			},
			want: want{method: "none", reason: "exited before its cgroup could be read"}},
		{name: "unknown writer pod contradicts the path", path: "shop/" + api + "/coredump.1.dmp",
			writers: func(t *testing.T) []collector.Writer {
				return []collector.Writer{writer(t, 31, cgContainerdSystemdV2(strangerUID, strangerRun), true)}
			},
			want: want{method: "none", candidates: []string{"shop/" + api}, reason: "writer ran in pod uid " + strangerUID}},
		{name: "container ID in one pod, cgroup names another", path: "coredump.1.dmp",
			writers: func(t *testing.T) []collector.Writer {
				return []collector.Writer{writer(t, 31, cgContainerdSystemdV2(billingUID, shopRun), true)}
			},
			want: want{method: "none", candidates: []string{"shop/" + api}, reason: "not trusted"}},
		{name: "path namespace and pod", path: "shop/" + api + "/coredump.1.dmp",
			want: want{method: "path", ns: "shop", pod: api, uid: shopUID, container: "api", image: "registry.example.com/shop/api:1.4.2", owner: "Deployment/api", reason: "container instance not determined"}},
		{name: "path same pod name, other namespace", path: "billing/" + api + "/coredump.1.dmp",
			want: want{method: "path", ns: "billing", pod: api, uid: billingUID, container: "api", image: "registry.example.com/billing/api:2.0.0", owner: "Deployment/api"}},
		{name: "path below the pod directory", path: "shop/" + api + "/dotnet/coredump.1.dmp",
			want: want{method: "path", ns: "shop", pod: api, uid: shopUID, container: "api", image: "registry.example.com/shop/api:1.4.2", owner: "Deployment/api", reason: "container instance not determined"}},
		{name: "path pod uid, several containers", path: workerUID + "/core.17",
			want: want{method: "path", ns: "shop", pod: "worker-0", uid: workerUID, owner: "StatefulSet/worker", reason: "container not determined"}},
		{name: "path namespace only", path: "web/core.17",
			want: want{method: "path", ns: "web", candidates: []string{"web/web", "web/web-1"}, reason: "pod not determined"}},
		{name: "path namespace with a directory that is no pod", path: "shop/dumps/coredump.1.dmp",
			want: want{method: "path", ns: "shop", candidates: []string{"shop/" + api, "shop/worker-0"}, reason: "no pod shop/dumps"}},
		{name: "path namespace narrows hostname", path: "billing/coredump." + api + ".1.dmp",
			want: want{method: "hostname", ns: "billing", pod: api, uid: billingUID, container: "api", image: "registry.example.com/billing/api:2.0.0", owner: "Deployment/api"}},
		{name: "hostname unique", path: "coredump.worker-0.1.dmp",
			want: want{method: "hostname", ns: "shop", pod: "worker-0", uid: workerUID, owner: "StatefulSet/worker", label: "app=worker"}},
		{name: "hostname in two namespaces is ambiguous", path: "coredump." + api + ".1.dmp",
			want: want{method: "none", candidates: []string{"billing/" + api, "shop/" + api}, reason: "matches 2 pods"}},
		{name: "hostname prefix of another is ambiguous", path: "core.web-1.dmp",
			want: want{method: "none", candidates: []string{"web/web", "web/web-1"}}},
		{name: "hostname must be a whole token", path: "core.webserver.dmp",
			want: want{method: "none", reason: "no pod's host name"}},
		{name: "invalid namespace directory", path: "Not_A_Namespace/coredump.1.dmp",
			want: want{method: "none", reason: "not a namespace name"}},
		{name: "nothing to go on", path: "coredump.1.dmp",
			want: want{method: "none", reason: "no process held the dump open"}},
	}
	for _, kind := range []string{"kubelet", "apiserver"} {
		t.Run(kind, func(t *testing.T) {
			src, _ := startSource(t, kind, nodePods()...)
			claimed := time.Now()
			r, c := newResolver(t, src)
			if _, err := c.Fresh(context.Background(), claimed); err != nil {
				t.Fatal(err)
			}
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					ev := collector.Evidence{Path: tt.path, ClaimedAt: claimed}
					if tt.writers != nil {
						ev.Writers = tt.writers(t)
					}
					check(t, r.Resolve(context.Background(), ev), tt.want)
				})
			}
		})
	}
}

// A pod deleted between the claim and the resolve is still attributed:
// the list served changes in between.
func TestResolvePodDeletedBeforeSettle(t *testing.T) {
	for _, kind := range []string{"kubelet", "apiserver"} {
		t.Run(kind, func(t *testing.T) {
			src, srv := startSource(t, kind, nodePods()...)
			r, c := newResolver(t, src)
			if _, err := c.Fresh(context.Background(), time.Now()); err != nil {
				t.Fatal(err)
			}
			ev := collector.Evidence{Path: "coredump.1.dmp", ClaimedAt: time.Now(),
				Writers: []collector.Writer{writer(t, 4242, cgContainerdSystemdV2(shopUID, shopCrashed), true)}}
			r.DumpClaimed(ev)
			// The pod is deleted while the dump settles.
			var rest []podstest.Pod
			for _, p := range nodePods() {
				if p.UID != shopUID {
					rest = append(rest, p)
				}
			}
			srv.SetPods(rest...)
			before := srv.Requests()
			got := r.Resolve(context.Background(), ev)
			if srv.Requests() == before {
				t.Fatal("Resolve did not refresh the pod list after the claim")
			}
			if p, ok := c.Snapshot().ByUID(shopUID); !ok || p.Listed() {
				t.Fatal("the served list still has the deleted pod")
			}
			check(t, got, want{method: "writer-pid", ns: "shop", pod: "api-7d9f8c6b5-x2k4p", uid: shopUID, container: "api",
				cid: "containerd://" + shopCrashed, image: "registry.example.com/shop/api:1.4.2", restarts: "0", exit: "139/SIGSEGV", owner: "Deployment/api"})
		})
	}
}

// A container too new for the cached list: one refresh finds it.
func TestResolveUnknownContainerRefreshesOnce(t *testing.T) {
	src, srv := startSource(t, "kubelet", nodePods()...)
	r, c := newResolver(t, src)
	if _, err := c.Fresh(context.Background(), time.Now()); err != nil {
		t.Fatal(err)
	}
	claimed := time.Now().Add(-time.Second) // the cached list is newer than the claim
	newID := podstest.Hex64("web restarted")
	ps := nodePods()
	ps[3].Containers[0].LastID, ps[3].Containers[0].ID, ps[3].Containers[0].RestartCount = ps[3].Containers[0].ID, "containerd://"+newID, 1
	srv.SetPods(ps...)
	before := srv.Requests()
	got := r.Resolve(context.Background(), collector.Evidence{Path: "core.1", ClaimedAt: claimed,
		Writers: []collector.Writer{writer(t, 12, cgContainerdSystemdV2(webUID, newID), true)}})
	if n := srv.Requests() - before; n != 1 {
		t.Errorf("%d lists, want exactly one on-demand refresh", n)
	}
	check(t, got, want{method: "writer-pid", ns: "web", pod: "web", uid: webUID, container: "web", cid: "containerd://" + newID, image: "nginx:1.27", restarts: "1"})

	// Still unknown after the refresh: not attributed, and said why.
	got = r.Resolve(context.Background(), collector.Evidence{Path: "core.1", ClaimedAt: claimed,
		Writers: []collector.Writer{writer(t, 13, cgContainerdSystemdV2(strangerUID, strangerRun), true)}})
	check(t, got, want{method: "none", reason: "pod uid " + strangerUID + " (container " + strangerRun[:13] + ") is not in the pod list"})
}

// The kubelet down or answering 401, 500 or garbage: "none" with the
// reason; never an error, never a token in the reason.
func TestResolvePodSourceFailures(t *testing.T) {
	tests := []struct {
		name, mode string
		down       bool
		reason     string
	}{
		{name: "401", mode: podstest.Unauthorized, reason: "HTTP 401"},
		{name: "500", mode: podstest.Fail500, reason: "HTTP 500"},
		{name: "garbage", mode: podstest.Garbage, reason: "not a pod list"},
		{name: "empty object", mode: podstest.EmptyObject, reason: "not a pod list"},
		{name: "down", down: true, reason: "connection refused"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k := podstest.StartKubelet(t, nodePods()...)
			k.SetMode(tt.mode)
			src, err := pods.NewKubelet(pods.KubeletConfig{URL: k.URL, TokenFile: k.TokenFile, CAFile: k.CAFile, Retry: pods.Retry{Attempts: 2, Backoff: time.Millisecond}})
			if err != nil {
				t.Fatal(err)
			}
			if tt.down {
				k.Close()
			}
			r, _ := newResolver(t, src)
			got := r.Resolve(context.Background(), collector.Evidence{Path: "coredump.1.dmp", ClaimedAt: time.Now(),
				Writers: []collector.Writer{writer(t, 4242, cgContainerdSystemdV2(shopUID, shopRun), true)}})
			check(t, got, want{method: "none", reason: tt.reason})
			if !strings.Contains(got.Reason, "pod list unavailable") {
				t.Errorf("reason %q does not say the pod list is unavailable", got.Reason)
			}
			if strings.Contains(got.Reason, k.Token()) {
				t.Error("reason contains the token")
			}
		})
	}
}

// --pod-source none: the path alone, validated.
func TestResolveWithoutPodList(t *testing.T) {
	r := identify.New(nil, identify.Options{}, discard())
	tests := []struct {
		name    string
		path    string
		writers []collector.Writer
		want    want
	}{
		{name: "namespace and pod", path: "shop/api-7d9f8c6b5-x2k4p/coredump.1.dmp",
			want: want{method: "path", ns: "shop", pod: "api-7d9f8c6b5-x2k4p", reason: "from the path alone"}},
		{name: "namespace only", path: "shop/coredump.1.dmp", want: want{method: "path", ns: "shop"}},
		{name: "pod name is not a DNS subdomain", path: "shop/API_X/coredump.1.dmp", want: want{method: "path", ns: "shop", reason: "not a pod name"}},
		{name: "namespace is not a DNS label", path: "shop.prod/x/coredump.1.dmp", want: want{method: "none", reason: "not a namespace name"}},
		{name: "control characters", path: "sh\nop/x/core", want: want{method: "none"}},
		{name: "too long for a namespace", path: strings.Repeat("a", 64) + "/x/core", want: want{method: "none"}},
		{name: "root", path: "core.1", want: want{method: "none"}},
		{name: "no hostname without a pod list", path: "coredump.web.1.dmp", want: want{method: "none"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			check(t, r.Resolve(context.Background(), collector.Evidence{Path: tt.path, Writers: tt.writers}), tt.want)
		})
	}
	// Writer evidence cannot be checked without a list; the answer says so.
	got := r.Resolve(context.Background(), collector.Evidence{Path: "shop/api-7d9f8c6b5-x2k4p/coredump.1.dmp",
		Writers: []collector.Writer{writer(t, 4242, cgContainerdSystemdV2(shopUID, shopRun), true)}})
	check(t, got, want{method: "path", ns: "shop", pod: "api-7d9f8c6b5-x2k4p", reason: "could not be checked against the writer's pod uid " + shopUID})
}

// A StatefulSet pod deleted and created again under the same name: the
// path names it, the UID stays open unless only one existed at the claim.
func TestResolveRecreatedPod(t *testing.T) {
	now := time.Now()
	old := podstest.Pod{Namespace: "db", Name: "pg-0", UID: podstest.UID("pg-0 old"), Node: node, OwnerKind: "StatefulSet", OwnerName: "pg",
		Created:    now.Add(-time.Hour).Truncate(time.Second),
		Containers: []podstest.Container{{Name: "pg", Image: "postgres:17", ID: "containerd://" + podstest.Hex64("pg old")}}}
	src, srv := startSource(t, "kubelet", old)
	r, c := newResolver(t, src)
	if _, err := c.Fresh(context.Background(), now); err != nil {
		t.Fatal(err)
	}
	newer := old
	newer.UID, newer.Created = podstest.UID("pg-0 new"), now.Add(-2*time.Second).Truncate(time.Second)
	newer.Containers = []podstest.Container{{Name: "pg", Image: "postgres:17", ID: "containerd://" + podstest.Hex64("pg new")}}
	srv.SetPods(newer)
	if _, err := c.Fresh(context.Background(), time.Now()); err != nil {
		t.Fatal(err)
	}
	// Claimed before the new pod was created: the old one wrote it.
	check(t, r.Resolve(context.Background(), collector.Evidence{Path: "db/pg-0/core.1", ClaimedAt: now.Add(-30 * time.Second)}),
		want{method: "path", ns: "db", pod: "pg-0", uid: old.UID, container: "pg", image: "postgres:17", owner: "StatefulSet/pg"})
	// Claimed when both existed: namespace and name, no UID.
	check(t, r.Resolve(context.Background(), collector.Evidence{Path: "db/pg-0/core.1", ClaimedAt: now}),
		want{method: "path", ns: "db", pod: "pg-0", reason: "2 pods named db/pg-0"})
}

// TestResolvePolicyInputs: the attribution carries the pod's crashdump.io/*
// annotations (and nothing else of its annotations) and, when a namespace
// lookup is configured, the namespace's labels.
func TestResolvePolicyInputs(t *testing.T) {
	ps := nodePods()
	ps[0].Annotations = map[string]string{
		"crashdump.io/collect":                             "false",
		"crashdump.io/max-per-hour":                        "7",
		"kubectl.kubernetes.io/last-applied-configuration": `{"env":[{"name":"DB_PASSWORD","value":"hunter2"}]}`,
	}
	k := podstest.StartKubelet(t, ps...)
	src, err := pods.NewKubelet(pods.KubeletConfig{URL: k.URL, TokenFile: k.TokenFile, CAFile: k.CAFile, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	c := pods.NewCache(src, pods.CacheOptions{MinInterval: 20 * time.Millisecond}, discard(), prometheus.NewRegistry())
	t.Cleanup(c.Close)
	var asked []string
	r := identify.New(c, identify.Options{Timeout: 10 * time.Second, NamespaceLabels: func(_ context.Context, ns string) map[string]string {
		asked = append(asked, ns)
		return map[string]string{"tenant": "b"}
	}}, discard())
	got := r.Resolve(context.Background(), collector.Evidence{Path: "coredump.1.dmp", ClaimedAt: time.Now(),
		Writers: []collector.Writer{{HostPID: 4242, Writable: true, ContainerID: shopRun, PodUID: shopUID}}})
	if got.Pod == nil || got.Pod.Namespace != "shop" {
		t.Fatalf("attribution %+v", got)
	}
	if got.Annotations["crashdump.io/collect"] != "false" || got.Annotations["crashdump.io/max-per-hour"] != "7" {
		t.Errorf("policy annotations %v", got.Annotations)
	}
	if _, leaked := got.Annotations["kubectl.kubernetes.io/last-applied-configuration"]; leaked || len(got.Annotations) != 2 {
		t.Errorf("annotations beyond crashdump.io/* passed on: %v", got.Annotations)
	}
	if got.NamespaceLabels["tenant"] != "b" || len(asked) != 1 || asked[0] != "shop" {
		t.Errorf("namespace labels %v (asked %v)", got.NamespaceLabels, asked)
	}
}

// A crash-looping container, list by list as a kubelet reports it: each
// dump gets the restart count of the instance that wrote it and that
// instance's exit, never the container's latest state. Earlier lists are
// remembered: an instance two restarts back keeps its count.
func TestResolveCrashLoopInstances(t *testing.T) {
	a, b, c := podstest.Hex64("loop instance a"), podstest.Hex64("loop instance b"), podstest.Hex64("loop instance c")
	loop := func(cs podstest.Container) podstest.Pod {
		cs.Name, cs.Image = "app", "registry.example.com/loop:1"
		return podstest.Pod{Namespace: "loop", Name: "boom-5f7c9-abcde", UID: webUID, Node: node, Containers: []podstest.Container{cs}}
	}
	src, srv := startSource(t, "kubelet", loop(podstest.Container{ID: "containerd://" + a}))
	cache := pods.NewCache(src, pods.CacheOptions{MinInterval: 20 * time.Millisecond}, discard(), prometheus.NewRegistry())
	t.Cleanup(cache.Close)
	short := identify.New(cache, identify.Options{Timeout: 10 * time.Second, TerminationWait: 300 * time.Millisecond}, discard())
	resolve := func(r *identify.Resolver, id string) collector.Attribution {
		return r.Resolve(context.Background(), collector.Evidence{Path: "coredump.1.dmp", ClaimedAt: time.Now(),
			Writers: []collector.Writer{writer(t, 4242, cgContainerdSystemdV2(webUID, id), true)}})
	}
	inst := func(id, restarts, exit string) want {
		return want{method: "writer-pid", ns: "loop", pod: "boom-5f7c9-abcde", uid: webUID, container: "app",
			cid: "containerd://" + id, restarts: restarts, exit: exit}
	}
	steps := []struct {
		name  string
		state podstest.Container
		check map[string]want // instance -> expected
	}{
		{"first instance running", podstest.Container{ID: "containerd://" + a},
			map[string]want{a: func() want { w := inst(a, "0", ""); w.reason = "no termination reported within"; return w }()}},
		{"first instance exited, back-off", podstest.Container{ID: "containerd://" + a, Exited: true, BackOff: true, ExitCode: 134},
			map[string]want{a: inst(a, "0", "134/SIGABRT")}},
		{"second instance running", podstest.Container{ID: "containerd://" + b, LastID: "containerd://" + a, LastExitCode: 134, RestartCount: 1},
			map[string]want{a: inst(a, "0", "134/SIGABRT"), b: inst(b, "1", "")}},
		{"second instance exited", podstest.Container{ID: "containerd://" + b, LastID: "containerd://" + a, LastExitCode: 134, RestartCount: 1, Exited: true, ExitCode: 139},
			map[string]want{b: inst(b, "1", "139/SIGSEGV")}},
		{"third instance running", podstest.Container{ID: "containerd://" + c, LastID: "containerd://" + b, LastExitCode: 139, RestartCount: 2},
			map[string]want{a: inst(a, "0", "134/SIGABRT"), b: inst(b, "1", "139/SIGSEGV"), c: inst(c, "2", "")}},
	}
	for _, st := range steps {
		srv.SetPods(loop(st.state))
		for _, id := range []string{a, b, c} {
			w, ok := st.check[id]
			if !ok {
				continue
			}
			t.Run(st.name+"/"+id[:6], func(t *testing.T) { check(t, resolve(short, id), w) })
		}
	}

	// A fresh agent never saw the first instance: its count is unknown,
	// not the latest one.
	fresh := pods.NewCache(src, pods.CacheOptions{MinInterval: 20 * time.Millisecond}, discard(), prometheus.NewRegistry())
	t.Cleanup(fresh.Close)
	r := identify.New(fresh, identify.Options{Timeout: 10 * time.Second, TerminationWait: -1}, discard())
	check(t, resolve(r, a), want{method: "writer-pid", ns: "loop", pod: "boom-5f7c9-abcde", uid: webUID, container: "app",
		image: "", reason: "instance not determined"})

	// The resolver waits for the kubelet to report the exit.
	long := identify.New(cache, identify.Options{Timeout: 20 * time.Second, TerminationWait: 15 * time.Second}, discard())
	done := make(chan collector.Attribution, 1)
	before := srv.Requests()
	go func() { done <- resolve(long, c) }()
	if err := pollUntil(10*time.Second, func() bool { return srv.Requests() >= before+2 }); err != nil {
		t.Fatalf("the resolver did not look again for the termination: %v", err)
	}
	srv.SetPods(loop(podstest.Container{ID: "containerd://" + c, LastID: "containerd://" + b, RestartCount: 2, Exited: true, ExitCode: 139}))
	select {
	case got := <-done:
		check(t, got, inst(c, "2", "139/SIGSEGV"))
	case <-time.After(15 * time.Second):
		t.Fatal("Resolve did not return after the termination was reported")
	}
}

func pollUntil(d time.Duration, cond func() bool) error {
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			return fmt.Errorf("not within %s", d)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return nil
}

// TestResolveRanksCandidates: an unattributed dump's candidates are the
// containers on the node that ended abnormally around its last write,
// nearest first, each with its instance and exit; a clean exit or an end
// outside the window is no lead.
// The method stays "none" and no pod is named.
func TestResolveRanksCandidates(t *testing.T) {
	t0 := time.Now().Add(-30 * time.Minute).UTC().Truncate(time.Second)
	ps := nodePods()
	for i := range ps {
		ps[i].Created = t0 // shop api's earlier instance: 139 at t0+52s; worker's init container: exit 0 at t0+3s
	}
	// Ended (state terminated) at Created+122s.
	jobX := podstest.Pod{Namespace: "batch", Name: "job-x", UID: podstest.UID("job-x"), Node: node, Created: t0,
		Containers: []podstest.Container{{Name: "run", Image: "registry.example.com/job:1", ID: "containerd://" + podstest.Hex64("job-x run"), Exited: true, ExitCode: 1}}}
	jobY := podstest.Pod{Namespace: "batch", Name: "job-y", UID: podstest.UID("job-y"), Node: node, Created: t0.Add(10 * time.Second),
		Containers: []podstest.Container{{Name: "run", Image: "registry.example.com/job:1", ID: "containerd://" + podstest.Hex64("job-y run"), Exited: true, ExitCode: 134}}}
	src, _ := startSource(t, "kubelet", append(ps, jobX, jobY)...)
	r, _ := newResolver(t, src)

	type lead struct{ pod, container, exit, restarts string }
	for _, tc := range []struct {
		name    string
		written time.Duration // after t0
		want    []lead
	}{
		{"the crash a second after the write", 51 * time.Second, []lead{{"shop/api-7d9f8c6b5-x2k4p", "api", "139/SIGSEGV", "0"}}},
		{"nearest first", 120 * time.Second, []lead{{"batch/job-x", "run", "1/", "0"}, {"batch/job-y", "run", "134/SIGABRT", "0"}}},
		{"an end before the write is no lead", 126 * time.Second, []lead{{"batch/job-y", "run", "134/SIGABRT", "0"}}},
		{"a clean exit is no lead", -10 * time.Second, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := r.Resolve(context.Background(), collector.Evidence{Path: "coredump.1.dmp", ClaimedAt: time.Now(), Written: t0.Add(tc.written)})
			var names []string
			for _, l := range tc.want {
				names = append(names, l.pod)
			}
			check(t, got, want{method: "none", candidates: names})
			for i, l := range tc.want {
				if i >= len(got.Candidates) {
					break
				}
				c := got.Candidates[i]
				exit, rc := "", ""
				if c.Termination != nil {
					exit = fmt.Sprintf("%d/%s", c.Termination.ExitCode, c.Termination.SignalName)
				}
				if c.RestartCount != nil {
					rc = fmt.Sprint(*c.RestartCount)
				}
				if c.Container != l.container || exit != l.exit || rc != l.restarts || !strings.HasPrefix(c.ContainerID, "containerd://") {
					t.Errorf("candidate %d: container %q (%q) exit %q restarts %q, want %q exit %q restarts %q",
						i, c.Container, c.ContainerID, exit, rc, l.container, l.exit, l.restarts)
				}
			}
			if len(tc.want) > 0 && !strings.Contains(got.Reason, "never used to attribute") {
				t.Errorf("reason %q does not say the ranking is not an attribution", got.Reason)
			}
		})
	}

	// A recent dump: the resolver waits, bounded, for the kubelet to
	// report the crashed container's end.
	src2, srv := startSource(t, "kubelet", nodePods()...)
	cache := pods.NewCache(src2, pods.CacheOptions{MinInterval: 20 * time.Millisecond}, discard(), prometheus.NewRegistry())
	t.Cleanup(cache.Close)
	long := identify.New(cache, identify.Options{Timeout: 20 * time.Second, TerminationWait: 15 * time.Second}, discard())
	written := time.Now().UTC()
	done := make(chan collector.Attribution, 1)
	before := srv.Requests()
	go func() {
		done <- long.Resolve(context.Background(), collector.Evidence{Path: "coredump.1.dmp", ClaimedAt: written, Written: written})
	}()
	if err := pollUntil(10*time.Second, func() bool { return srv.Requests() >= before+2 }); err != nil {
		t.Fatalf("the resolver did not look again for an end: %v", err)
	}
	ended := jobX
	ended.Created = written.Add(-121 * time.Second) // ended a second after the write
	srv.SetPods(append(nodePods(), ended)...)
	select {
	case got := <-done:
		check(t, got, want{method: "none", candidates: []string{"batch/job-x"}})
	case <-time.After(15 * time.Second):
		t.Fatal("Resolve did not return after the end was reported")
	}
}
