//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
)

// clusterEnv is the contract between test/e2e/run.sh and the scenarios:
// run.sh writes $E2E_WORK/e2e.env and exports it before running the tests.
type clusterEnv struct {
	Work           string // E2E_WORK: the harness work directory
	Kubeconfig     string // E2E_KUBECONFIG: cluster-admin kubeconfig
	NodeName       string // E2E_NODE_NAME: the only node (127.0.0.1)
	KubeletURL     string // E2E_KUBELET_URL: https://127.0.0.1:10250
	CAFile         string // E2E_CA_FILE: cluster CA (apiserver and kubelet serving certs)
	PodLogsDir     string // E2E_POD_LOGS_DIR: the kubelet's pod log directory
	HostDir        string // E2E_HOST_DIR: scratch directory on the node for hostPath volumes / PVs
	Artifacts      string // E2E_ARTIFACTS: where logs of this run go
	Kubectl        string // E2E_KUBECTL
	Helm           string // E2E_HELM
	S3Endpoint     string // E2E_S3_ENDPOINT: MinIO on 127.0.0.1
	S3Region       string // E2E_S3_REGION
	S3Bucket       string // E2E_S3_BUCKET: bucket name the scenarios use (they create it)
	S3AccessKey    string // E2E_S3_ACCESS_KEY
	S3SecretKey    string // E2E_S3_SECRET_KEY
	PauseImage     string // E2E_PAUSE_IMAGE
	EmulatorImage  string // E2E_EMULATOR_IMAGE: the createdump emulator
	AgentImage     string // E2E_AGENT_IMAGE: empty when no agent binary was given
	Chart          string // E2E_CHART: the agent's Helm chart; empty when absent
	AgentMetrics   string // E2E_AGENT_METRICS_PORT
	KubernetesVers string // E2E_K8S_VERSION
}

var (
	env    clusterEnv
	client kubernetes.Interface
)

func TestMain(m *testing.M) {
	get := func(k string) string { return os.Getenv(k) }
	env = clusterEnv{
		Work: get("E2E_WORK"), Kubeconfig: get("E2E_KUBECONFIG"), NodeName: get("E2E_NODE_NAME"),
		KubeletURL: get("E2E_KUBELET_URL"), CAFile: get("E2E_CA_FILE"), PodLogsDir: get("E2E_POD_LOGS_DIR"),
		HostDir: get("E2E_HOST_DIR"), Artifacts: get("E2E_ARTIFACTS"), Kubectl: get("E2E_KUBECTL"), Helm: get("E2E_HELM"),
		S3Endpoint: get("E2E_S3_ENDPOINT"), S3Region: get("E2E_S3_REGION"), S3Bucket: get("E2E_S3_BUCKET"),
		S3AccessKey: get("E2E_S3_ACCESS_KEY"), S3SecretKey: get("E2E_S3_SECRET_KEY"),
		PauseImage: get("E2E_PAUSE_IMAGE"), EmulatorImage: get("E2E_EMULATOR_IMAGE"),
		AgentImage: get("E2E_AGENT_IMAGE"), Chart: get("E2E_CHART"), AgentMetrics: get("E2E_AGENT_METRICS_PORT"),
		KubernetesVers: get("E2E_K8S_VERSION"),
	}
	for k, v := range map[string]string{"E2E_KUBECONFIG": env.Kubeconfig, "E2E_NODE_NAME": env.NodeName,
		"E2E_HOST_DIR": env.HostDir, "E2E_EMULATOR_IMAGE": env.EmulatorImage, "E2E_S3_ENDPOINT": env.S3Endpoint} {
		if v == "" {
			fmt.Fprintf(os.Stderr, "e2e: %s is not set: run the scenarios through test/e2e/run.sh (make e2e), "+
				"or against a `run.sh up` cluster with `test/e2e/run.sh test`\n", k)
			os.Exit(2)
		}
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", env.Kubeconfig)
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e: kubeconfig:", err)
		os.Exit(2)
	}
	cfg.QPS, cfg.Burst = 50, 100
	if client, err = kubernetes.NewForConfig(cfg); err != nil {
		fmt.Fprintln(os.Stderr, "e2e: client:", err)
		os.Exit(2)
	}
	os.Exit(m.Run())
}

func ctxFor(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// newNamespace creates a namespace for one test (deleted at the end) and
// waits for its default service account (made by the controller manager).
func newNamespace(t *testing.T, prefix string, labels map[string]string) string {
	t.Helper()
	ctx := ctxFor(t, time.Minute)
	ns, err := client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{
		ObjectMeta: metav1.ObjectMeta{GenerateName: prefix + "-", Labels: labels},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create namespace: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = client.CoreV1().Namespaces().Delete(ctx, ns.Name, metav1.DeleteOptions{})
	})
	err = wait.PollUntilContextTimeout(ctx, 250*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		_, err := client.CoreV1().ServiceAccounts(ns.Name).Get(ctx, "default", metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return false, nil
		}
		return err == nil, err
	})
	if err != nil {
		t.Fatalf("namespace %s: no default service account: %v", ns.Name, err)
	}
	return ns.Name
}

// hostDir makes a fresh directory on the node (under E2E_HOST_DIR) for
// hostPath volumes, removed at the end of the test.
func hostDir(t *testing.T, name string) string {
	t.Helper()
	d := filepath.Join(env.HostDir, name+"-"+rand.String(6))
	if err := os.MkdirAll(d, 0o777); err != nil {
		t.Fatal(err)
	}
	os.Chmod(d, 0o777) // no umask: non-root pods write here too
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}

// waitPod polls a pod until cond is true.
func waitPod(t *testing.T, ns, name string, timeout time.Duration, what string, cond func(*corev1.Pod) bool) *corev1.Pod {
	t.Helper()
	var last *corev1.Pod
	err := wait.PollUntilContextTimeout(ctxFor(t, timeout), 500*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		p, err := client.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		last = p
		return cond(p), nil
	})
	if err != nil {
		t.Fatalf("pod %s/%s: %s: %v; last status: %+v", ns, name, what, err, podSummary(last))
	}
	return last
}

func podSummary(p *corev1.Pod) string {
	if p == nil {
		return "<none>"
	}
	s := fmt.Sprintf("phase=%s", p.Status.Phase)
	for _, c := range p.Status.ContainerStatuses {
		s += fmt.Sprintf(" %s{restarts=%d state=%+v last=%+v}", c.Name, c.RestartCount, c.State, c.LastTerminationState)
	}
	return s
}

// requireAgent skips scenarios that need the agent installed by its chart.
func requireAgent(t *testing.T) {
	t.Helper()
	if env.AgentImage == "" || env.Chart == "" {
		t.Skipf("needs agent chart: run with E2E_AGENT_BINARY=<static crashdump binary> and the chart at deploy/helm/crashdump "+
			"(E2E_CHART); have image=%q chart=%q", env.AgentImage, env.Chart)
	}
}
