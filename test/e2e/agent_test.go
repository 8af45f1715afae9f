//go:build e2e

// The agent side of the scenarios: installing the chart, building app pods,
// reading what arrived in MinIO, scraping the agent's metrics.
package e2e

import (
	"bufio"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/yaml"
)

const (
	agentNamespace = "crashdump"
	releaseName    = "crashdump"
	agentSecret    = "e2e-minio"
	agentSelector  = "app.kubernetes.io/name=crashdump,app.kubernetes.io/instance=crashdump"
)

// The manifest fields the scenarios check (docs/manifest.md), decoded into
// local structs: the e2e module does not import the product's packages.
type manifest struct {
	SchemaVersion int       `json:"schemaVersion"`
	ID            string    `json:"id"`
	CollectedAt   time.Time `json:"collectedAt"`
	Node          string    `json:"node"`
	Incomplete    bool      `json:"incomplete"`
	File          struct {
		Name   string `json:"name"`
		Path   string `json:"path"`
		Size   int64  `json:"size"`
		SHA256 string `json:"sha256"`
	} `json:"file"`
	Object struct {
		Store        string `json:"store"`
		Bucket       string `json:"bucket"`
		Key          string `json:"key"`
		URL          string `json:"url"`
		Compression  string `json:"compression"`
		StoredSize   int64  `json:"storedSize"`
		ManifestOnly bool   `json:"manifestOnly"`
	} `json:"object"`
	Pod *struct {
		Namespace    string `json:"namespace"`
		Name         string `json:"name"`
		UID          string `json:"uid"`
		Container    string `json:"container"`
		ContainerID  string `json:"containerID"`
		Image        string `json:"image"`
		RestartCount *int32 `json:"restartCount"` // nil: the instance is not known
		Termination  *struct {
			ExitCode   int32     `json:"exitCode"`
			Signal     int32     `json:"signal"`
			SignalName string    `json:"signalName"`
			Reason     string    `json:"reason"`
			StartedAt  time.Time `json:"startedAt"`
			FinishedAt time.Time `json:"finishedAt"`
		} `json:"termination"`
	} `json:"pod"`
	Process *struct {
		HostPID int    `json:"hostPID"`
		PID     int    `json:"pid"`
		Exe     string `json:"exe"`
	} `json:"process"`
	Correlation struct {
		Method string `json:"method"`
		Reason string `json:"reason"`
	} `json:"correlation"`
	CrashReport *struct {
		ExceptionType string `json:"exceptionType"`
		ProcessName   string `json:"processName"`
		Key           string `json:"key"`
		Size          int64  `json:"size"`
		SHA256        string `json:"sha256"`
		PairedBy      string `json:"pairedBy"`
	} `json:"crashReport"`
	Core *struct {
		Signal int `json:"signal"`
		PID    int `json:"pid"`
	} `json:"core"`

	manifestKey string // where it was read from
}

func (m *manifest) podName() string {
	if m.Pod == nil {
		return "<none>"
	}
	return m.Pod.Namespace + "/" + m.Pod.Name
}

// restarts is the crashed instance's restart count, "unknown" when absent.
func (m *manifest) restarts() string {
	if m.Pod == nil || m.Pod.RestartCount == nil {
		return "unknown"
	}
	return fmt.Sprint(*m.Pod.RestartCount)
}

func (m *manifest) String() string {
	s := fmt.Sprintf("%s: file %s (%d bytes) pod %s method %s", m.manifestKey, m.File.Path, m.File.Size, m.podName(), m.Correlation.Method)
	if m.Correlation.Reason != "" {
		s += " (" + m.Correlation.Reason + ")"
	}
	if m.Pod != nil {
		s += " container " + m.Pod.Container + " restartCount " + m.restarts()
		if t := m.Pod.Termination; t != nil {
			s += fmt.Sprintf(" exit %d %s", t.ExitCode, t.SignalName)
		}
	}
	if m.CrashReport != nil {
		s += " exception " + m.CrashReport.ExceptionType
	}
	if p := m.Process; p != nil && m.Correlation.Method != "writer-pid" {
		// Whose descriptor the agent saw, when it did not name the pod.
		s += fmt.Sprintf(" writer host PID %d %s", p.HostPID, p.Exe)
	}
	return s
}

// agentFixture is the chart installed once for all scenarios: one S3 key
// prefix and one set of app namespaces per test process, so that a rerun
// against a `run.sh up` cluster sees only its own dumps.
type agentFixture struct {
	runID    string
	prefix   string            // S3 key prefix of this test process
	ns       map[string]string // role -> namespace
	hostRoot string            // the chart's hostRoot on the node
	s3       *minio.Client
}

var (
	fxOnce sync.Once
	fx     *agentFixture
	fxErr  error
)

// App namespaces, created before the chart (which makes their PV/PVC pairs).
// Role -> Pod Security level enforced on it ("" for none).
var appNamespaces = map[string]string{
	"seed":       "restricted", // the seed's example namespace enforces restricted too
	"shared":     "",
	"restricted": "restricted",
	"deleted":    "",
	"metrics":    "",
	"large":      "",
	"herd":       "", // 20 pods crash into one shared directory during a 1 GiB upload
	"upgrade":    "",
	"hostpath":   "privileged", // hostPath + subPathExpr layout: namespaceDirs only
	"outage":     "",           // pods that crash while MinIO is stopped (the on-call loop)
}

// breakAttribution: E2E_BREAK_ATTRIBUTION=1 installs the agent with
// --pod-source none, to show that the scenarios catch broken attribution.
func breakAttribution() bool { return os.Getenv("E2E_BREAK_ATTRIBUTION") == "1" }

// ensureAgent installs the chart (once per process, and again after a
// scenario uninstalled it) and returns the fixture.
func ensureAgent(t *testing.T) *agentFixture {
	t.Helper()
	requireAgent(t)
	fxOnce.Do(func() { fx, fxErr = newAgentFixture() })
	if fxErr != nil {
		t.Fatalf("setting up the agent: %v", fxErr)
	}
	if out, err := helm("status", releaseName, "-n", agentNamespace); err != nil {
		t.Logf("release %s not installed (%s): installing", releaseName, strings.TrimSpace(out))
		if err := fx.install(nil); err != nil {
			t.Fatal(err)
		}
	}
	if strings.Contains(t.Name(), "/") { // scenarios are subtests: log once, where it failed
		t.Cleanup(func() {
			if t.Failed() {
				logAgent(t)
			}
		})
	}
	return fx
}

func newAgentFixture() (*agentFixture, error) {
	f := &agentFixture{runID: rand.String(5), ns: map[string]string{}, hostRoot: filepath.Join(env.HostDir, "crashdump")}
	f.prefix = "e2e-" + f.runID
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var err error
	host := strings.TrimPrefix(strings.TrimPrefix(env.S3Endpoint, "http://"), "https://")
	f.s3, err = minio.New(host, &minio.Options{
		Creds:  credentials.NewStaticV4(env.S3AccessKey, env.S3SecretKey, ""),
		Secure: strings.HasPrefix(env.S3Endpoint, "https://"), Region: env.S3Region,
	})
	if err != nil {
		return nil, fmt.Errorf("MinIO client for %s: %w", env.S3Endpoint, err)
	}
	if ok, err := f.s3.BucketExists(ctx, env.S3Bucket); err != nil {
		return nil, fmt.Errorf("checking bucket %s at %s: %w", env.S3Bucket, env.S3Endpoint, err)
	} else if !ok {
		if err := f.s3.MakeBucket(ctx, env.S3Bucket, minio.MakeBucketOptions{Region: env.S3Region}); err != nil {
			return nil, fmt.Errorf("creating bucket %s: %w", env.S3Bucket, err)
		}
	}
	// The agent's namespace: hostPath, hostPID and capabilities need "privileged".
	if err := createNamespace(ctx, agentNamespace, "privileged"); err != nil {
		return nil, err
	}
	for role, level := range appNamespaces {
		name := "e2e-" + role + "-" + f.runID
		if err := createNamespace(ctx, name, level); err != nil {
			return nil, err
		}
		f.ns[role] = name
	}
	sec := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: agentSecret},
		StringData: map[string]string{"AWS_ACCESS_KEY_ID": env.S3AccessKey, "AWS_SECRET_ACCESS_KEY": env.S3SecretKey},
	}
	if _, err := client.CoreV1().Secrets(agentNamespace).Create(ctx, sec, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return nil, fmt.Errorf("creating secret %s/%s: %w", agentNamespace, agentSecret, err)
	} else if err != nil {
		if _, err := client.CoreV1().Secrets(agentNamespace).Update(ctx, sec, metav1.UpdateOptions{}); err != nil {
			return nil, fmt.Errorf("updating secret %s/%s: %w", agentNamespace, agentSecret, err)
		}
	}
	return f, f.install(nil)
}

func createNamespace(ctx context.Context, name, level string) error {
	labels := map[string]string{"e2e.crashdump.io/scenario": "true"}
	if level != "" {
		labels["pod-security.kubernetes.io/enforce"] = level
		labels["pod-security.kubernetes.io/enforce-version"] = "latest"
	}
	_, err := client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("creating namespace %s: %w", name, err)
	}
	err = wait.PollUntilContextTimeout(ctx, 250*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		_, err := client.CoreV1().ServiceAccounts(name).Get(ctx, "default", metav1.GetOptions{})
		return err == nil, nil
	})
	if err != nil {
		return fmt.Errorf("namespace %s: no default service account: %w", name, err)
	}
	return nil
}

// values are the chart values of the e2e install; override is merged on top
// (one level deep for maps).
func (f *agentFixture) values(override map[string]any) map[string]any {
	repo, tag := env.AgentImage, "latest"
	if i := strings.LastIndex(repo, ":"); i > strings.LastIndex(repo, "/") {
		repo, tag = repo[:i], repo[i+1:]
	}
	var appNS, dirNS []string
	for role, ns := range f.ns {
		if role == "hostpath" {
			dirNS = append(dirNS, ns)
		} else {
			appNS = append(appNS, ns)
		}
	}
	sort.Strings(appNS)
	v := map[string]any{
		"image": map[string]any{"repository": repo, "tag": tag, "pullPolicy": "Never"},
		// The cluster's pods cannot leave their network namespace; the agent
		// reaches the kubelet, the API server and MinIO on the host's loopback.
		"hostNetwork": true,
		"metrics":     map[string]any{"bindAddress": "127.0.0.1"},
		"hostRoot":    f.hostRoot,
		"s3": map[string]any{"bucket": env.S3Bucket, "prefix": f.prefix, "endpoint": env.S3Endpoint, "region": env.S3Region,
			"credentials": map[string]any{"existingSecret": agentSecret}},
		"agent": map[string]any{
			"logLevel": "debug",
			// The host disk is shared with other work: no free-space floor.
			"keepFree": "0",
			// The seed scenario wants every restart's dump.
			"maxDumpsPerWindow": 0,
			// Uploads of a large dump last long enough (seconds) to delete
			// the agent pod in the middle of one; small dumps do not notice.
			"maxUploadBandwidth": "16MiB",
			// No kube-proxy: the in-cluster config's service address
			// (10.0.0.1) would be routed off the machine. The API server
			// listens on the host's loopback, which hostNetwork reaches.
			"extraEnv": []any{
				map[string]any{"name": "KUBERNETES_SERVICE_HOST", "value": "127.0.0.1"},
				map[string]any{"name": "KUBERNETES_SERVICE_PORT", "value": apiserverPort()},
			},
		},
		"appVolumes":    map[string]any{"namespaces": appNS},
		"namespaceDirs": dirNS,
	}
	if breakAttribution() {
		v["attribution"] = map[string]any{"podSource": "none"}
	}
	for k, ov := range override {
		if om, ok := ov.(map[string]any); ok {
			if bm, ok := v[k].(map[string]any); ok {
				for kk, vv := range om {
					bm[kk] = vv
				}
				continue
			}
		}
		v[k] = ov
	}
	return v
}

// apiserverPort is the port of the API server in the kubeconfig (6443).
func apiserverPort() string {
	cfg, err := os.ReadFile(env.Kubeconfig)
	if err == nil {
		for _, l := range strings.Split(string(cfg), "\n") {
			if i := strings.Index(l, "server: https://127.0.0.1:"); i >= 0 {
				return strings.TrimSpace(l[i+len("server: https://127.0.0.1:"):])
			}
		}
	}
	return "6443"
}

// install runs `helm upgrade --install --wait` with the e2e values (plus
// override) and waits for the agent pod to be Ready.
func (f *agentFixture) install(override map[string]any) error {
	vals, err := yaml.Marshal(f.values(override))
	if err != nil {
		return err
	}
	vf := filepath.Join(os.TempDir(), "crashdump-e2e-values-"+f.runID+".yaml")
	if err := os.WriteFile(vf, vals, 0o600); err != nil {
		return err
	}
	defer os.Remove(vf)
	out, err := helm("upgrade", "--install", releaseName, env.Chart, "-n", agentNamespace, "-f", vf, "--wait", "--timeout", "3m")
	if err != nil {
		return fmt.Errorf("helm upgrade --install %s (values:\n%s): %v\n%s", env.Chart, vals, err, out)
	}
	return nil
}

func helm(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, env.Helm, args...)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+env.Kubeconfig)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func kubectl(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, env.Kubectl, append([]string{"--kubeconfig", env.Kubeconfig}, args...)...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// agentPod is the running, Ready agent pod (there is one node).
func agentPod(t *testing.T, timeout time.Duration) *corev1.Pod {
	t.Helper()
	var pod *corev1.Pod
	var last string
	err := wait.PollUntilContextTimeout(ctxFor(t, timeout), 250*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		pods, err := client.CoreV1().Pods(agentNamespace).List(ctx, metav1.ListOptions{LabelSelector: agentSelector})
		if err != nil {
			last = err.Error()
			return false, nil
		}
		last = fmt.Sprintf("%d pods", len(pods.Items))
		for i := range pods.Items {
			p := &pods.Items[i]
			last += "; " + p.Name + " " + podSummary(p)
			if p.DeletionTimestamp == nil && p.Status.Phase == corev1.PodRunning && podReady(p) {
				pod = p
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		t.Fatalf("no Ready agent pod in %s after %s: %s", agentNamespace, timeout, last)
	}
	return pod
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// logAgent puts the agent's recent log lines into the test output (on failure).
func logAgent(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	pods, err := client.CoreV1().Pods(agentNamespace).List(ctx, metav1.ListOptions{LabelSelector: agentSelector})
	if err != nil {
		t.Logf("agent logs: listing agent pods: %v", err)
		return
	}
	tail := int64(40)
	for _, p := range pods.Items {
		b, err := client.CoreV1().Pods(agentNamespace).GetLogs(p.Name, &corev1.PodLogOptions{TailLines: &tail}).Do(ctx).Raw()
		if err != nil {
			t.Logf("agent pod %s logs: %v", p.Name, err)
			continue
		}
		t.Logf("agent pod %s (%s), last %d log lines:\n%s", p.Name, podSummary(&p), tail, b)
	}
}

// saveAgentLogs writes the logs of every agent pod to
// $E2E_ARTIFACTS/agent-<pod>.log (kept after teardown), before a scenario
// deletes the pods.
func saveAgentLogs(t *testing.T) {
	if env.Artifacts == "" {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	pods, err := client.CoreV1().Pods(agentNamespace).List(ctx, metav1.ListOptions{LabelSelector: agentSelector})
	if err != nil {
		t.Logf("saving agent logs: listing agent pods: %v", err)
		return
	}
	for _, p := range pods.Items {
		b, err := client.CoreV1().Pods(agentNamespace).GetLogs(p.Name, &corev1.PodLogOptions{}).Do(ctx).Raw()
		if err != nil {
			t.Logf("saving agent logs of %s: %v", p.Name, err)
			continue
		}
		if err := os.WriteFile(filepath.Join(env.Artifacts, "agent-"+p.Name+".log"), b, 0o644); err != nil {
			t.Logf("saving agent logs of %s: %v", p.Name, err)
		}
	}
}

// ---- app pods -------------------------------------------------------------

type appPod struct {
	name, namespace string
	dumpName        string            // DOTNET_DbgMiniDumpName
	dumpType        string            // DOTNET_DbgMiniDumpType (default "1", Mini)
	env             map[string]string // more variables (CRASHDUMP_EMULATOR_*)
	volume          corev1.VolumeSource
	subPathExpr     string
	restartPolicy   corev1.RestartPolicy
}

// writeDuration is how long the emulator's createdump takes to write a
// dump (E2E_WRITE_DURATION, see README.md).
func writeDuration() string {
	if v := os.Getenv("E2E_WRITE_DURATION"); v != "" {
		return v
	}
	// Real createdump writes a Mini dump of a .NET 7 app in Kubernetes in
	// about 190 ms ("Dump successfully written in 186ms"): the agent must
	// find the writer within that, at its 250m CPU limit.
	return "150ms"
}

// pvcVolume is the chart's per-namespace claim (appVolumes).
func pvcVolume() corev1.VolumeSource {
	return corev1.VolumeSource{PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: "crashdump-dumps"}}
}

// spec is the createdump emulator as a .NET app with the seed's variables,
// under the Pod Security "restricted" profile (as deploy/examples/dotnet-boom).
func (a appPod) spec() corev1.PodSpec {
	dt := a.dumpType
	if dt == "" {
		dt = "1"
	}
	envs := []corev1.EnvVar{
		{Name: "DOTNET_DbgEnableMiniDump", Value: "1"},
		{Name: "DOTNET_DbgMiniDumpType", Value: dt},
		{Name: "DOTNET_DbgMiniDumpName", Value: a.dumpName},
		{Name: "DOTNET_EnableCrashReport", Value: "1"},
		{Name: "POD_NAME", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}},
	}
	if _, ok := a.env["CRASHDUMP_EMULATOR_WRITE_DURATION"]; !ok && a.env["CRASHDUMP_EMULATOR_CHUNK_DELAY"] == "" {
		envs = append(envs, corev1.EnvVar{Name: "CRASHDUMP_EMULATOR_WRITE_DURATION", Value: writeDuration()})
	}
	keys := make([]string, 0, len(a.env))
	for k := range a.env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		envs = append(envs, corev1.EnvVar{Name: k, Value: a.env[k]})
	}
	rp := a.restartPolicy
	if rp == "" {
		rp = corev1.RestartPolicyNever
	}
	return corev1.PodSpec{
		RestartPolicy:                 rp,
		TerminationGracePeriodSeconds: ptr(int64(1)),
		EnableServiceLinks:            ptr(false),
		SecurityContext: &corev1.PodSecurityContext{
			RunAsNonRoot: ptr(true), RunAsUser: ptr(int64(1654)), RunAsGroup: ptr(int64(1654)),
			SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
		},
		Containers: []corev1.Container{{
			Name:            "app",
			Image:           env.EmulatorImage,
			ImagePullPolicy: corev1.PullNever,
			Env:             envs,
			SecurityContext: &corev1.SecurityContext{
				AllowPrivilegeEscalation: ptr(false), ReadOnlyRootFilesystem: ptr(true),
				Capabilities: &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
			},
			VolumeMounts: []corev1.VolumeMount{
				{Name: "dumps", MountPath: "/dumps", SubPathExpr: a.subPathExpr},
				{Name: "tmp", MountPath: "/tmp"},
			},
		}},
		Volumes: []corev1.Volume{
			{Name: "dumps", VolumeSource: a.volume},
			{Name: "tmp", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{SizeLimit: ptr(resource.MustParse("16Mi"))}}},
		},
	}
}

func (a appPod) create(t *testing.T) *corev1.Pod {
	t.Helper()
	if a.volume == (corev1.VolumeSource{}) {
		a.volume = pvcVolume()
	}
	p, err := client.CoreV1().Pods(a.namespace).Create(ctxFor(t, 30*time.Second), &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: a.name, Labels: map[string]string{"app": a.name}},
		Spec:       a.spec(),
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("creating pod %s/%s: %v", a.namespace, a.name, err)
	}
	return p
}

func podTerminated(p *corev1.Pod) bool {
	return p.Status.Phase == corev1.PodFailed || p.Status.Phase == corev1.PodSucceeded
}

// ---- what arrived in the store -----------------------------------------------

// manifests reads every manifest under the fixture's prefix.
func (f *agentFixture) manifests(ctx context.Context) ([]*manifest, error) {
	var out []*manifest
	for o := range f.s3.ListObjects(ctx, env.S3Bucket, minio.ListObjectsOptions{Prefix: f.prefix + "/", Recursive: true}) {
		if o.Err != nil {
			return nil, fmt.Errorf("listing s3://%s/%s/: %w", env.S3Bucket, f.prefix, o.Err)
		}
		if !strings.HasSuffix(o.Key, ".json") || strings.HasSuffix(o.Key, ".crashreport.json") { // not a manifest, or a stored crash report
			continue
		}
		m, err := f.readManifest(ctx, o.Key)
		if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].CollectedAt.Before(out[j].CollectedAt) })
	return out, nil
}

func (f *agentFixture) readManifest(ctx context.Context, key string) (*manifest, error) {
	obj, err := f.s3.GetObject(ctx, env.S3Bucket, key, minio.GetObjectOptions{})
	if err != nil {
		return nil, fmt.Errorf("reading manifest %s: %w", key, err)
	}
	defer obj.Close()
	b, err := io.ReadAll(obj)
	if err != nil {
		return nil, fmt.Errorf("reading manifest %s: %w", key, err)
	}
	m := &manifest{manifestKey: key}
	if err := json.Unmarshal(b, m); err != nil {
		return nil, fmt.Errorf("manifest %s is not JSON: %w\n%s", key, err, b)
	}
	return m, nil
}

// waitDumps waits until want[pod] dumps of each named pod of namespace ns
// have arrived (manifest under <prefix>/<ns>/<pod>/), and fails at once when
// a dump written into ns's directory arrives attributed to no pod or to a
// pod outside want: wrong or missing attribution is what most scenarios
// test, and waiting for the timeout would only hide it.
func (f *agentFixture) waitDumps(t *testing.T, ns string, want map[string]int, timeout time.Duration) map[string][]*manifest {
	t.Helper()
	var got map[string][]*manifest
	var all []*manifest
	var lastErr error
	err := wait.PollUntilContextTimeout(ctxFor(t, timeout), 500*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		ms, err := f.manifests(ctx)
		if err != nil {
			lastErr = err
			return false, nil
		}
		all = ms
		got = map[string][]*manifest{}
		for _, m := range ms {
			if m.Pod != nil && m.Pod.Namespace == ns {
				if _, ok := want[m.Pod.Name]; ok {
					if !strings.HasPrefix(m.Object.Key, f.prefix+"/"+ns+"/"+m.Pod.Name+"/") {
						return false, fmt.Errorf("dump of pod %s/%s stored under %s, want %s/%s/%s/", ns, m.Pod.Name, m.Object.Key, f.prefix, ns, m.Pod.Name)
					}
					got[m.Pod.Name] = append(got[m.Pod.Name], m)
					continue
				}
			}
			// A dump from this namespace's directory attributed elsewhere.
			if strings.HasPrefix(m.File.Path, ns+"/") {
				return false, fmt.Errorf("a dump written in namespace %s's directory arrived attributed to pod %s, not to one of %v:\n  %s",
					ns, m.podName(), keysOf(want), m)
			}
		}
		for p, n := range want {
			if len(got[p]) < n {
				return false, nil
			}
		}
		return true, nil
	})
	if err != nil {
		var b strings.Builder
		for p, n := range want {
			fmt.Fprintf(&b, "\n  pod %s/%s: want %d dumps, have %d", ns, p, n, len(got[p]))
		}
		fmt.Fprintf(&b, "\n  every manifest under s3://%s/%s/ (%d):", env.S3Bucket, f.prefix, len(all))
		for _, m := range all {
			fmt.Fprintf(&b, "\n    %s", m)
		}
		if lastErr != nil {
			fmt.Fprintf(&b, "\n  last store error: %v", lastErr)
		}
		t.Fatalf("waiting for the dumps of namespace %s: %v%s", ns, err, b.String())
	}
	return got
}

func keysOf[K cmp.Ordered, V any](m map[K]V) []K {
	ks := slices.Collect(maps.Keys(m))
	slices.Sort(ks)
	return ks
}

// describe runs the retrieval CLI (the agent's own binary, E2E_AGENT_BINARY)
// on the host against the scenarios' MinIO: `crashdump describe KEY`.
func (f *agentFixture) describe(t *testing.T, m *manifest, args ...string) string {
	t.Helper()
	bin := os.Getenv("E2E_AGENT_BINARY")
	if bin == "" {
		t.Fatal("E2E_AGENT_BINARY unset: the agent scenarios need the crashdump binary")
	}
	ctx := ctxFor(t, time.Minute)
	cmd := exec.CommandContext(ctx, bin, append([]string{"describe", m.Object.Key, "--store", "s3://" + env.S3Bucket, "--s3-endpoint", env.S3Endpoint, "--s3-region", env.S3Region}, args...)...)
	cmd.Env = append(os.Environ(), "AWS_ACCESS_KEY_ID="+env.S3AccessKey, "AWS_SECRET_ACCESS_KEY="+env.S3SecretKey,
		"AWS_EC2_METADATA_DISABLED=true", "NO_COLOR=1", "KUBECONFIG=/nonexistent")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("crashdump describe %s: %v\n%s", m.Object.Key, err, out)
	}
	return string(out)
}

// verifyObject downloads the dump a manifest describes, decompresses it and
// checks size and sha256 against the manifest; returns the first bytes.
// verifyCrashReport checks that m's dump came with its own crash report,
// proven (never by name), stored beside it as <key>.crashreport.json with
// the size and SHA-256 the manifest names, and naming exception.
func (f *agentFixture) verifyCrashReport(t *testing.T, m *manifest, exception string) {
	t.Helper()
	cr := m.CrashReport
	switch {
	case cr == nil:
		t.Errorf("%s: no crash report, want its own (%s)", m.manifestKey, exception)
		return
	case cr.ExceptionType != exception:
		t.Errorf("%s: crash report of another process (%s), want its own (%s)", m.manifestKey, cr.ExceptionType, exception)
		return
	case cr.PairedBy != "writer" && cr.PairedBy != "thread":
		t.Errorf("%s: crash report paired by %q, want writer or thread", m.manifestKey, cr.PairedBy)
	case cr.Key != m.Object.Key+".crashreport.json":
		t.Errorf("%s: crash report stored as %q, want %s.crashreport.json", m.manifestKey, cr.Key, m.Object.Key)
		return
	}
	ctx := ctxFor(t, time.Minute)
	obj, err := f.s3.GetObject(ctx, env.S3Bucket, cr.Key, minio.GetObjectOptions{})
	if err != nil {
		t.Errorf("get crash report %s: %v", cr.Key, err)
		return
	}
	defer obj.Close()
	b, err := io.ReadAll(obj)
	if err != nil {
		t.Errorf("read crash report %s: %v", cr.Key, err)
		return
	}
	sum := sha256.Sum256(b)
	if int64(len(b)) != cr.Size || hex.EncodeToString(sum[:]) != cr.SHA256 {
		t.Errorf("%s: %d bytes sha256 %x, manifest says %d %s", cr.Key, len(b), sum, cr.Size, cr.SHA256)
	}
	if !strings.Contains(string(b), `"managed_exception_type" : "`+exception+`"`) {
		t.Errorf("%s: the stored report does not name %s", cr.Key, exception)
	}
}

func (f *agentFixture) verifyObject(t *testing.T, m *manifest) []byte {
	t.Helper()
	ctx := ctxFor(t, 5*time.Minute)
	if m.Object.Bucket != env.S3Bucket || m.Object.Store != "s3" {
		t.Fatalf("%s: object in store %q bucket %q, want s3 %q", m.manifestKey, m.Object.Store, m.Object.Bucket, env.S3Bucket)
	}
	if m.manifestKey != m.Object.Key+".json" {
		t.Errorf("manifest %s is not beside its dump %s (+.json)", m.manifestKey, m.Object.Key)
	}
	st, err := f.s3.StatObject(ctx, env.S3Bucket, m.Object.Key, minio.StatObjectOptions{})
	if err != nil {
		t.Fatalf("stat dump object %s: %v", m.Object.Key, err)
	}
	if st.Size != m.Object.StoredSize {
		t.Errorf("%s: stored size %d, manifest says %d", m.Object.Key, st.Size, m.Object.StoredSize)
	}
	obj, err := f.s3.GetObject(ctx, env.S3Bucket, m.Object.Key, minio.GetObjectOptions{})
	if err != nil {
		t.Fatalf("get dump object %s: %v", m.Object.Key, err)
	}
	defer obj.Close()
	var r io.Reader = obj
	switch m.Object.Compression {
	case "zstd":
		zr, err := zstd.NewReader(obj)
		if err != nil {
			t.Fatalf("zstd reader for %s: %v", m.Object.Key, err)
		}
		defer zr.Close()
		r = zr
	case "none", "":
	default:
		t.Fatalf("%s: unknown compression %q", m.Object.Key, m.Object.Compression)
	}
	h := sha256.New()
	head := make([]byte, 64)
	n, _ := io.ReadFull(r, head)
	h.Write(head[:n])
	rest, err := io.Copy(h, r)
	if err != nil {
		t.Fatalf("reading dump object %s: %v", m.Object.Key, err)
	}
	if size := int64(n) + rest; size != m.File.Size {
		t.Errorf("%s: %d bytes after decompression, manifest file.size %d", m.Object.Key, size, m.File.Size)
	}
	if sum := hex.EncodeToString(h.Sum(nil)); sum != m.File.SHA256 {
		t.Errorf("%s: sha256 %s, manifest file.sha256 %s", m.Object.Key, sum, m.File.SHA256)
	}
	return head[:n]
}

// nodeDumpFiles lists the regular files left in a namespace's dump
// directory on the node (the agent removes each dump after its upload).
func (f *agentFixture) nodeDumpFiles(ns string) []string {
	var out []string
	root := filepath.Join(f.hostRoot, "dumps", ns)
	filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			r, _ := filepath.Rel(root, p)
			out = append(out, r)
		}
		return nil
	})
	return out
}

// waitNodeClean waits until the namespace's dump directory holds no file.
func (f *agentFixture) waitNodeClean(t *testing.T, ns string, timeout time.Duration) {
	t.Helper()
	var left []string
	err := wait.PollUntilContextTimeout(ctxFor(t, timeout), 250*time.Millisecond, timeout, true, func(context.Context) (bool, error) {
		left = f.nodeDumpFiles(ns)
		return len(left) == 0, nil
	})
	if err != nil {
		t.Errorf("files left on the node in %s/dumps/%s after %s: %v", f.hostRoot, ns, timeout, left)
	}
}

// ---- metrics ----------------------------------------------------------------

// scrape reads the agent's /metrics from its pod: the pod's IP and its
// "metrics" container port, as Prometheus would.
func scrape(t *testing.T, pod *corev1.Pod) map[string]float64 {
	t.Helper()
	port := int32(0)
	for _, c := range pod.Spec.Containers {
		for _, p := range c.Ports {
			if p.Name == "metrics" {
				port = p.ContainerPort
			}
		}
	}
	if port == 0 || pod.Status.PodIP == "" {
		t.Fatalf("agent pod %s: no metrics port or pod IP (%v, %q)", pod.Name, pod.Spec.Containers[0].Ports, pod.Status.PodIP)
	}
	url := fmt.Sprintf("http://%s:%d/metrics", pod.Status.PodIP, port)
	req, _ := http.NewRequestWithContext(ctxFor(t, 10*time.Second), http.MethodGet, url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("scraping the agent pod %s: %v", pod.Name, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("scraping %s: %s", url, resp.Status)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		l := sc.Text()
		if l == "" || l[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(l, ' ')
		if i < 0 {
			continue
		}
		v, err := strconv.ParseFloat(l[i+1:], 64)
		if err == nil {
			out[l[:i]] = v
		}
	}
	return out
}
