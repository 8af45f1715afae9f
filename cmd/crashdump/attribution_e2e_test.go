//go:build linux

package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/crashdump-io/crashdump/collector/dumptest"
	"github.com/crashdump-io/crashdump/collector/pods/podstest"
	"github.com/crashdump-io/crashdump/uploader/manifest"
	"github.com/crashdump-io/crashdump/uploader/miniotest"
)

const e2eNode = "node-1"

// The pods of the end-to-end node: the same pod name in two namespaces, a
// StatefulSet pod with an init container and a sidecar, two web pods.
var (
	e2eShopUID    = podstest.UID("e2e shop api")
	e2eBillingUID = podstest.UID("e2e billing api")
	e2eWorkerUID  = podstest.UID("e2e worker-0")
	e2eShopRun    = podstest.Hex64("e2e shop api running")
	e2eShopPrev   = podstest.Hex64("e2e shop api crashed")
	e2eBillingRun = podstest.Hex64("e2e billing api running")
	e2eWorkerRun  = podstest.Hex64("e2e worker running")
)

const e2eAPI = "api-7d9f8c6b5-x2k4p"

func e2ePods() []podstest.Pod {
	return []podstest.Pod{
		{Namespace: "shop", Name: e2eAPI, UID: e2eShopUID, Node: e2eNode,
			Labels: map[string]string{"app": "api", "pod-template-hash": "7d9f8c6b5"}, OwnerKind: "ReplicaSet", OwnerName: "api-7d9f8c6b5",
			Containers: []podstest.Container{{Name: "api", Image: "registry.example.com/shop/api:1.4.2",
				ID: "containerd://" + e2eShopRun, LastID: "containerd://" + e2eShopPrev, RestartCount: 1}}},
		{Namespace: "billing", Name: e2eAPI, UID: e2eBillingUID, Node: e2eNode,
			Labels: map[string]string{"app": "api", "pod-template-hash": "7d9f8c6b5"}, OwnerKind: "ReplicaSet", OwnerName: "api-7d9f8c6b5",
			Containers: []podstest.Container{{Name: "api", Image: "registry.example.com/billing/api:2.0.0", ID: "cri-o://" + e2eBillingRun}}},
		{Namespace: "shop", Name: "worker-0", UID: e2eWorkerUID, Node: e2eNode, OwnerKind: "StatefulSet", OwnerName: "worker",
			Labels:     map[string]string{"app": "worker"},
			Init:       []podstest.Container{{Name: "migrate", Image: "registry.example.com/shop/migrate:3", ID: "docker://" + podstest.Hex64("e2e migrate")}},
			Containers: []podstest.Container{{Name: "worker", Image: "registry.example.com/shop/worker:9", ID: "docker://" + e2eWorkerRun}, {Name: "envoy", Image: "envoyproxy/envoy:v1.31.0", ID: "docker://" + podstest.Hex64("e2e envoy")}}},
		{Namespace: "web", Name: "web-0", UID: podstest.UID("e2e web-0"), Node: e2eNode,
			Containers: []podstest.Container{{Name: "web", Image: "nginx:1.27", ID: "containerd://" + podstest.Hex64("e2e web-0")}}},
		{Namespace: "web", Name: "web-1", UID: podstest.UID("e2e web-1"), Node: e2eNode,
			Containers: []podstest.Container{{Name: "web", Image: "nginx:1.27", ID: "containerd://" + podstest.Hex64("e2e web-1")}}},
	}
}

// e2eEnv is one node: dump and state directories, a fixture /proc, a TLS
// kubelet and an API server that records events.
type e2eEnv struct {
	t                 *testing.T
	dumpDir, stateDir string
	proc              *procTree
	kubelet           *podstest.Kubelet
	api               *podstest.APIServer
}

func newE2EEnv(t *testing.T) *e2eEnv {
	t.Helper()
	base := t.TempDir()
	e := &e2eEnv{t: t, dumpDir: filepath.Join(base, "dumps"), stateDir: filepath.Join(base, "state"),
		proc: newProcTree(t), kubelet: podstest.StartKubelet(t, e2ePods()...), api: podstest.StartAPIServer(t, e2eNode)}
	for _, d := range []string{e.dumpDir, e.stateDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return e
}

// dump writes a minidump-shaped file at rel and returns its path.
func (e *e2eEnv) dump(rel string, size int) string {
	e.t.Helper()
	p := filepath.Join(e.dumpDir, filepath.FromSlash(rel))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		e.t.Fatal(err)
	}
	b := make([]byte, size)
	copy(b, "MDMP\x93\xa7\x00\x00")
	for i := 64; i < size; i++ {
		b[i] = byte(i * 7)
	}
	if err := os.WriteFile(p, b, 0o644); err != nil {
		e.t.Fatal(err)
	}
	return p
}

// runAgent runs `crashdump agent --once` with the given store flags and
// lets the writers close once the agent has taken their evidence.
func (e *e2eEnv) runAgent(store []string, writers ...*fixtureWriter) {
	e.t.Helper()
	args := append([]string{"agent", "--once",
		"--dump-dir", e.dumpDir, "--state-dir", e.stateDir, "--proc-root", e.proc.root,
		"--node-name", e2eNode, "--pod-source", "kubelet",
		"--kubelet-url", e.kubelet.URL, "--kubelet-token-file", e.kubelet.TokenFile, "--kubelet-ca-file", e.kubelet.CAFile,
		"--kubeconfig", e.api.Kubeconfig(e.t),
		"--settle-time", "100ms", "--log-level", "debug", "--log-format", "text",
		// The fixture's running writers never exit: no waiting for their
		// termination (an exited instance's is used all the same).
		"--termination-wait", "0"}, store...)
	root := newRootCmd()
	root.SetArgs(args)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- root.ExecuteContext(ctx) }()
	for _, w := range writers {
		if err := w.closeAfterScan(time.Minute); err != nil {
			cancel()
			<-done
			e.t.Fatal(err)
		}
	}
	if err := <-done; err != nil {
		e.t.Fatalf("agent: %v", err)
	}
}

// Real agent, real MinIO, fixture /proc, TLS kubelet: every dump lands under
// its pod's namespace and name with the full pod block, and the pod gets an
// Event.
func TestAgentAttributesDumpsEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("needs MinIO")
	}
	srv := miniotest.Start(t)
	srv.MakeBucket(t, "dumps")
	srv.SetEnv(t)
	e := newE2EEnv(t)

	// 1. createdump in shop's api pod (containerd, systemd driver, cgroup
	// v2) writes coredump.1.dmp and its crash report into a shared
	// directory: writer-pid.
	shopDump := e.dump("coredump.1.dmp", 256<<10)
	if err := os.WriteFile(shopDump+".crashreport.json", dumptest.Boom().Render(), 0o644); err != nil {
		t.Fatal(err)
	}
	w1 := e.proc.writer(40211, "createdump", "/usr/share/dotnet/shared/Microsoft.NETCore.App/8.0.1/createdump",
		"0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod"+strings.ReplaceAll(e2eShopUID, "-", "_")+".slice/cri-containerd-"+e2eShopPrev+".scope\n", shopDump)
	// createdump holds its report open while it writes it: the same
	// writer, PID and start time, proves the report is this dump's.
	w1.hold(shopDump+".crashreport.json", 43)

	// 2. billing's api pod (CRI-O, systemd driver, cgroup v1), same pod
	// name, writes into shop's directory of a shared volume: the writer
	// wins over the path.
	billingDump := e.dump("shop/"+e2eAPI+"/coredump.1.dmp", 128<<10)
	cg := "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + strings.ReplaceAll(e2eBillingUID, "-", "_") + ".slice/crio-" + e2eBillingRun + ".scope"
	w2 := e.proc.writer(51502, "createdump", "/usr/share/dotnet/shared/Microsoft.NETCore.App/8.0.1/createdump",
		"13:freezer:"+cg+"\n12:cpuset:"+cg+"\n11:files:/\n1:name=systemd:"+cg+"\n", billingDump)

	// 3. A real ELF core (gcore) written by worker-0's worker container
	// (Docker, cgroupfs driver, cgroup v1).
	corePath := filepath.Join(e.dumpDir, "core.4711")
	dumptest.SleepCore(t, corePath)
	wcg := "/kubepods/burstable/pod" + e2eWorkerUID + "/" + e2eWorkerRun
	w3 := e.proc.writer(4711, "worker", "/app/worker", "12:rdma:/\n11:pids:"+wcg+"\n4:memory:"+wcg+"\n1:name=systemd:"+wcg+"\n", corePath)

	// 4. No writer seen: the namespace directory and %h in the name.
	e.dump("web/coredump.web-1.7.dmp", 64<<10)

	e.runAgent([]string{"--store", "s3://dumps/prod", "--s3-endpoint", srv.Endpoint}, w1, w2, w3)

	manifests := map[string]*manifest.Manifest{} // "namespace/pod" -> manifest
	var keys []string
	for _, k := range srv.Keys(t, "dumps", "prod/") {
		keys = append(keys, k)
		if !strings.HasSuffix(k, ".json") || strings.HasSuffix(k, manifest.CrashReportSuffix) {
			continue
		}
		m, err := manifest.Unmarshal(srv.Get(t, "dumps", k))
		if err != nil {
			t.Fatal(err)
		}
		if m.Pod == nil {
			t.Fatalf("%s: not attributed: %+v", k, m.Correlation)
		}
		manifests[m.Pod.Namespace+"/"+m.Pod.Name] = m
		if want := "prod/" + m.Pod.Namespace + "/" + m.Pod.Name + "/"; !strings.HasPrefix(m.Object.Key, want) || k != m.Object.Key+".json" {
			t.Errorf("object %s of %s/%s is not under %s", m.Object.Key, m.Pod.Namespace, m.Pod.Name, want)
		}
	}
	sort.Strings(keys)
	if len(manifests) != 4 {
		t.Fatalf("want 4 attributed dumps, got keys %v", keys)
	}

	shop := manifests["shop/"+e2eAPI]
	if shop == nil {
		t.Fatalf("no dump under shop/%s: %v", e2eAPI, keys)
	}
	wantPod := manifest.Pod{Namespace: "shop", Name: e2eAPI, UID: e2eShopUID, Container: "api", ContainerID: "containerd://" + e2eShopPrev,
		Image: "registry.example.com/shop/api:1.4.2", ImageID: podstest.ImageID("registry.example.com/shop/api:1.4.2"),
		OwnerKind: "Deployment", OwnerName: "api", RestartCount: manifest.Restarts(0)}
	got := *shop.Pod
	got.Labels = nil
	// The crashed instance is the one before the restart: count 0, and how
	// it ended from lastState.terminated.
	if term := got.Termination; term == nil || term.ExitCode != 139 || term.SignalName != "SIGSEGV" || term.FinishedAt.IsZero() {
		t.Errorf("shop termination %+v, want exit 139 SIGSEGV with its time", term)
	}
	got.Termination = nil
	if !reflect.DeepEqual(got, wantPod) {
		t.Errorf("shop pod block:\n got %+v\nwant %+v", got, wantPod)
	}
	if shop.Pod.Labels["app"] != "api" || shop.Pod.Labels["pod-template-hash"] != "7d9f8c6b5" {
		t.Errorf("labels %v", shop.Pod.Labels)
	}
	if shop.Correlation.Method != manifest.MethodWriterPID {
		t.Errorf("shop: method %q (%s), want writer-pid", shop.Correlation.Method, shop.Correlation.Reason)
	}
	if shop.Process == nil || shop.Process.HostPID != 40211 || shop.Process.PID != 1 {
		t.Errorf("process %+v, want host PID 40211, PID 1", shop.Process)
	}
	if shop.CrashReport == nil || shop.CrashReport.ExceptionType != "System.Exception" || shop.CrashReport.PairedBy != "writer" ||
		shop.CrashReport.Key != shop.Object.Key+".crashreport.json" {
		t.Errorf("crash report %+v", shop.CrashReport)
	} else if got := srv.Get(t, "dumps", shop.CrashReport.Key); !bytes.Equal(got, dumptest.Boom().Render()) {
		t.Errorf("stored crash report differs from the one written (%d bytes)", len(got))
	}

	billing := manifests["billing/"+e2eAPI]
	if billing == nil || billing.Correlation.Method != manifest.MethodWriterPID || billing.Pod.UID != e2eBillingUID ||
		billing.Pod.ContainerID != "cri-o://"+e2eBillingRun || billing.Pod.Image != "registry.example.com/billing/api:2.0.0" {
		t.Fatalf("billing dump: %+v", billing)
	}
	if !strings.Contains(billing.Correlation.Reason, "writer wins") || billing.File.Path != "shop/"+e2eAPI+"/coredump.1.dmp" {
		t.Errorf("billing dump found at %s: reason %q should record the contradicting path", billing.File.Path, billing.Correlation.Reason)
	}

	worker := manifests["shop/worker-0"]
	if worker == nil || worker.Correlation.Method != manifest.MethodWriterPID || worker.Pod.Container != "worker" ||
		worker.Pod.OwnerKind != "StatefulSet" || worker.Kind != "elf-core" || worker.Core == nil {
		t.Fatalf("worker core: %+v", worker)
	}

	web := manifests["web/web-1"]
	if web == nil || web.Correlation.Method != manifest.MethodHostname || web.Pod.Container != "web" || web.Pod.UID == "" {
		t.Fatalf("web dump: %+v", web)
	}

	// Every attributed dump got its Event, posted before the agent exited.
	evs := e.api.Events()
	if len(evs) != 4 {
		t.Fatalf("%d events recorded, want 4", len(evs))
	}
	var shopEvent bool
	for _, ev := range evs {
		if ev.Reason != "CrashDumpUploaded" || ev.Type != "Warning" {
			t.Errorf("event %s: reason %q type %q", ev.Name, ev.Reason, ev.Type)
		}
		if ev.Regarding.Namespace == "shop" && ev.Regarding.Name == e2eAPI {
			shopEvent = true
			if string(ev.Regarding.UID) != e2eShopUID || !strings.Contains(ev.Note, shop.Object.URL) || !strings.Contains(ev.Note, "System.Exception") {
				t.Errorf("shop event: regarding %+v note %q", ev.Regarding, ev.Note)
			}
		}
	}
	if !shopEvent {
		t.Error("no event on shop's pod")
	}
	// The node copies are gone.
	for _, p := range []string{shopDump, billingDump, corePath} {
		if _, err := os.Lstat(p); !os.IsNotExist(err) {
			t.Errorf("%s still on the node: %v", p, err)
		}
	}
}

// The kubelet down, refusing the token, failing or answering garbage: the
// dump is uploaded all the same, with method none and the reason.
func TestAgentUploadsWhenKubeletFails(t *testing.T) {
	tests := []struct {
		name, mode string
		down       bool
		reason     string
	}{
		{name: "down", down: true, reason: "connection refused"},
		{name: "401", mode: podstest.Unauthorized, reason: "HTTP 401"},
		{name: "500", mode: podstest.Fail500, reason: "HTTP 500"},
		{name: "garbage", mode: podstest.Garbage, reason: "not a pod list"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newE2EEnv(t)
			e.kubelet.SetMode(tt.mode)
			if tt.down {
				e.kubelet.Close()
			}
			d := e.dump("coredump.1.dmp", 32<<10)
			w := e.proc.writer(40211, "createdump", "/usr/share/dotnet/createdump",
				"0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod"+strings.ReplaceAll(e2eShopUID, "-", "_")+".slice/cri-containerd-"+e2eShopRun+".scope\n", d)
			storeDir := filepath.Join(t.TempDir(), "store")
			e.runAgent([]string{"--store", "file://" + storeDir}, w)

			var found []*manifest.Manifest
			err := filepath.WalkDir(storeDir, func(p string, de os.DirEntry, err error) error {
				if err != nil || de.IsDir() || !strings.HasSuffix(p, ".json") || strings.HasSuffix(p, manifest.CrashReportSuffix) {
					return err
				}
				b, err := os.ReadFile(p)
				if err != nil {
					return err
				}
				m, err := manifest.Unmarshal(b)
				if err != nil {
					return err
				}
				found = append(found, m)
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if len(found) != 1 {
				t.Fatalf("%d manifests in the store, want 1", len(found))
			}
			m := found[0]
			if m.Correlation.Method != manifest.MethodNone || m.Pod != nil {
				t.Errorf("method %q pod %+v, want none", m.Correlation.Method, m.Pod)
			}
			if !strings.Contains(m.Correlation.Reason, tt.reason) || strings.Contains(m.Correlation.Reason, e.kubelet.Token()) {
				t.Errorf("reason %q, want it to mention %q (and never the token)", m.Correlation.Reason, tt.reason)
			}
			if !strings.HasPrefix(m.Object.Key, "_unknown/_unknown/") {
				t.Errorf("key %s, want under _unknown/_unknown/", m.Object.Key)
			}
			if m.Process == nil || m.Process.HostPID != 40211 {
				t.Errorf("process %+v: the writer seen should still be recorded", m.Process)
			}
			if n := len(e.api.Events()); n != 0 {
				t.Errorf("%d events for an unattributed dump", n)
			}
		})
	}
}
