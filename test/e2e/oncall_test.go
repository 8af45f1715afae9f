//go:build e2e

// The on-call loop of issue 16, with the real parts: a Prometheus configured
// from the chart's rendered PodMonitor and PrometheusRule scrapes the agent
// through Kubernetes service discovery, an Alertmanager routes its alerts to
// a webhook in this process, the dashboard's queries run against that
// Prometheus, the SRE's `kubectl crashdump` runs as a kubectl plugin that
// finds the store in the chart's client ConfigMap, and the AWS CLI (not our
// code) reads what the agent wrote.
package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/crashdump-io/crashdump/test/e2e/oncall"
	"github.com/minio/minio-go/v7"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/yaml"
)

// onCallValues are the chart values the monitoring objects are rendered
// with, on top of the installed release's own: Prometheus scrapes every 2 s
// and the two store alerts fire within a minute of an outage (their
// defaults wait 10 to 15 minutes). CrashdumpPodCrashed keeps its default.
var onCallValues = map[string]any{
	"metrics": map[string]any{
		"podMonitor": map[string]any{"enabled": true, "interval": "2s", "scrapeTimeout": "2s"},
	},
	"prometheusRule": map[string]any{
		"enabled": true,
		"alerts": map[string]any{
			"CrashdumpUploadsFailing":   map[string]any{"for": "5s", "window": "30s"},
			"CrashdumpStoreUnreachable": map[string]any{"for": "5s", "window": "30s"},
		},
	},
}

// onCallStack is the running Prometheus, Alertmanager and webhook receiver.
type onCallStack struct {
	prom  *oncall.Prometheus
	hook  *oncall.Webhook
	procs []*exec.Cmd
}

// startOnCall renders the chart's monitoring objects with the release's
// values, starts Alertmanager and Prometheus from them and waits until
// Prometheus scrapes the agent. Stopped at the end of t.
func startOnCall(t *testing.T, f *agentFixture) *onCallStack {
	t.Helper()
	if os.Getenv("E2E_PROMETHEUS") == "" || os.Getenv("E2E_ALERTMANAGER") == "" {
		t.Fatal("E2E_PROMETHEUS / E2E_ALERTMANAGER unset: run.sh writes them into e2e.env (make e2e builds both into ./bin)")
	}
	// The servers' data in the work directory (removed at teardown), their
	// configuration with the logs (kept for post-mortems).
	data, dir := filepath.Join(env.Work, "oncall"), filepath.Join(env.Artifacts, "oncall")
	os.RemoveAll(data)
	for _, d := range []string{data, dir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	rendered := renderChart(t, f, onCallValues)
	if err := os.WriteFile(filepath.Join(dir, "chart-rendered.yaml"), rendered, 0o644); err != nil {
		t.Fatal(err)
	}
	scrapes, err := oncall.ScrapeConfigs(rendered, oncall.SDOptions{KubeconfigFile: env.Kubeconfig})
	if err != nil {
		t.Fatalf("scrape config from the chart's PodMonitor: %v", err)
	}
	rules, err := oncall.RuleFile(rendered)
	if err != nil {
		t.Fatalf("rule file from the chart's PrometheusRule: %v", err)
	}
	hook, err := oncall.NewWebhook()
	if err != nil {
		t.Fatal(err)
	}
	s := &onCallStack{hook: hook}
	t.Cleanup(s.stop)

	amPort, promPort := os.Getenv("E2E_ALERTMANAGER_PORT"), os.Getenv("E2E_PROMETHEUS_PORT")
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	amConf := write("alertmanager.yml", oncall.AlertmanagerConfig(hook.URL(), time.Second, 2*time.Second, time.Hour))
	rulesFile := write("rules.yaml", rules)
	promConf := map[string]any{
		"global":         map[string]any{"scrape_interval": "2s", "evaluation_interval": "2s"},
		"rule_files":     []string{rulesFile},
		"alerting":       map[string]any{"alertmanagers": []any{map[string]any{"static_configs": []any{map[string]any{"targets": []string{"127.0.0.1:" + amPort}}}}}},
		"scrape_configs": scrapes,
	}
	pc, err := yaml.Marshal(promConf)
	if err != nil {
		t.Fatal(err)
	}
	promFile := write("prometheus.yml", pc)

	s.start(t, "alertmanager", os.Getenv("E2E_ALERTMANAGER"), "--config.file="+amConf, "--storage.path="+filepath.Join(data, "alertmanager"),
		"--web.listen-address=127.0.0.1:"+amPort, "--web.external-url=http://127.0.0.1:"+amPort, "--cluster.listen-address=", "--log.level=info")
	s.start(t, "prometheus", os.Getenv("E2E_PROMETHEUS"), "--config.file="+promFile, "--storage.tsdb.path="+filepath.Join(data, "prometheus"),
		"--web.listen-address=127.0.0.1:"+promPort, "--web.external-url=http://127.0.0.1:"+promPort, "--log.level=info")
	s.prom = &oncall.Prometheus{URL: "http://127.0.0.1:" + promPort, HTTP: &http.Client{Timeout: 10 * time.Second}}
	for _, u := range []string{"http://127.0.0.1:" + amPort + "/-/ready", s.prom.URL + "/-/ready"} {
		waitHTTP(t, u, time.Minute)
	}
	// Up through the PodMonitor's selection: the target exists only if
	// service discovery, the selector and the port name all match.
	var last string
	err = wait.PollUntilContextTimeout(ctxFor(t, 2*time.Minute), time.Second, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
		_, n, err := s.prom.Query(ctx, `up{job=~".*crashdump.*", node!="", namespace="`+agentNamespace+`"} == 1`)
		if err != nil {
			last = err.Error()
			return false, nil
		}
		last = fmt.Sprintf("%d agent targets up", n)
		return n == 1, nil
	})
	if err != nil {
		t.Fatalf("Prometheus does not scrape the agent through the chart's PodMonitor after 2m: %s (config %s; log %s)", last, promFile, filepath.Join(env.Artifacts, "prometheus.log"))
	}
	t.Logf("Prometheus %s scrapes the agent (%d scrape configs from the chart), Alertmanager on :%s, webhook %s", s.prom.URL, len(scrapes), amPort, hook.URL())
	return s
}

// start runs a server in its own process group, killed with this process.
func (s *onCallStack) start(t *testing.T, name, bin string, args ...string) {
	t.Helper()
	logf, err := os.Create(filepath.Join(env.Artifacts, name+".log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", name, err)
	}
	s.procs = append(s.procs, cmd)
}

func (s *onCallStack) stop() {
	for _, c := range s.procs {
		c.Process.Signal(syscall.SIGTERM)
	}
	for _, c := range s.procs {
		done := make(chan struct{})
		go func() { c.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			c.Process.Kill()
			<-done
		}
	}
	if s.hook != nil {
		s.hook.Close()
	}
}

func waitHTTP(t *testing.T, url string, timeout time.Duration) {
	t.Helper()
	var last string
	err := wait.PollUntilContextTimeout(ctxFor(t, timeout), 250*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			last = err.Error()
			return false, nil
		}
		resp.Body.Close()
		last = resp.Status
		return resp.StatusCode == http.StatusOK, nil
	})
	if err != nil {
		t.Fatalf("%s not ready after %s: %s", url, timeout, last)
	}
}

// renderChart is `helm template` of the installed release with more values.
func renderChart(t *testing.T, f *agentFixture, more map[string]any) []byte {
	t.Helper()
	vals, err := yaml.Marshal(f.values(nil))
	if err != nil {
		t.Fatal(err)
	}
	extra, err := yaml.Marshal(more)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	v1, v2 := filepath.Join(dir, "values.yaml"), filepath.Join(dir, "oncall.yaml")
	os.WriteFile(v1, vals, 0o600)
	os.WriteFile(v2, extra, 0o600)
	out, err := helm("template", releaseName, env.Chart, "-n", agentNamespace, "-f", v1, "-f", v2)
	if err != nil {
		t.Fatalf("helm template %s: %v\n%s", env.Chart, err, out)
	}
	return []byte(out)
}

// testOnCall runs after the attribution scenarios (the seed's crash loop
// among them), with the stack started before them.
func testOnCall(t *testing.T, f *agentFixture, s *onCallStack) {
	t.Run("PodCrashedPagesWithTheSeedPod", func(t *testing.T) { testPodCrashedAlert(t, f, s) })
	var got *manifest
	t.Run("KubectlPluginFromTheCluster", func(t *testing.T) { got = testKubectlPlugin(t, f) })
	t.Run("AWSCLIReadsOurObjects", func(t *testing.T) {
		if got == nil {
			t.Skip("no dump from KubectlPluginFromTheCluster")
		}
		testAWSCLI(t, got)
	})
	t.Run("StoreOutageFiresAndResolves", func(t *testing.T) { testStoreOutage(t, f, s) })
	t.Run("DashboardQueriesReturnData", func(t *testing.T) { testDashboard(t, s) })
}

// CrashdumpPodCrashed names the crashed pod (namespace and pod labels) and
// links a runbook section that exists.
func testPodCrashedAlert(t *testing.T, f *agentFixture, s *onCallStack) {
	ns := f.ns["seed"]
	ms, err := f.manifests(ctxFor(t, time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	seedPods := map[string]bool{}
	var first time.Time
	for _, m := range ms {
		if m.Pod != nil && m.Pod.Namespace == ns {
			seedPods[m.Pod.Name] = true
			if first.IsZero() || m.CollectedAt.Before(first) {
				first = m.CollectedAt
			}
		}
	}
	if len(seedPods) == 0 {
		t.Fatalf("no dump of the seed namespace %s in the store: the seed scenario must run first", ns)
	}
	ctx := ctxFor(t, 2*time.Minute)
	a, raw, err := s.hook.Wait(ctx, func(a oncall.Alert) bool {
		return a.Status == "firing" && a.Labels["alertname"] == "CrashdumpPodCrashed" && a.Labels["namespace"] == ns && seedPods[a.Labels["pod"]]
	})
	if err != nil {
		t.Fatalf("no CrashdumpPodCrashed notification for a seed pod %v of namespace %s within 2m: %v; received:\n%s", keysOf(seedPods), ns, err, hookSummary(s.hook))
	}
	saveArtifact(t, "oncall-webhook-CrashdumpPodCrashed.json", indentJSON(raw))
	t.Logf("CrashdumpPodCrashed fired %s after the seed's first dump was collected (%s)", a.StartsAt.Sub(first).Round(time.Second), first.Format(time.TimeOnly))
	t.Logf("Alertmanager webhook payload of CrashdumpPodCrashed:\n%s", indentJSON(raw))
	if a.Labels["container"] != "app" || a.Labels["node"] != env.NodeName || a.Labels["severity"] != "info" {
		t.Errorf("CrashdumpPodCrashed labels %v: want container app, node %s, severity info", a.Labels, env.NodeName)
	}
	if !strings.Contains(a.Annotations["summary"], ns+"/"+a.Labels["pod"]) {
		t.Errorf("summary %q does not name the pod %s/%s", a.Annotations["summary"], ns, a.Labels["pod"])
	}
	checkRunbook(t, a.Annotations["runbook_url"], "crashdumppodcrashed")
}

// checkRunbook: the link points into docs/operations.md at a heading that
// exists there (GitHub's anchor of "### CrashdumpPodCrashed").
func checkRunbook(t *testing.T, url, anchor string) {
	t.Helper()
	base, frag, ok := strings.Cut(url, "#")
	if !ok || frag != anchor || !strings.HasSuffix(base, "/docs/operations.md") {
		t.Errorf("runbook_url %q: want …/docs/operations.md#%s", url, anchor)
		return
	}
	doc, err := os.ReadFile(filepath.Join("..", "..", "docs", "operations.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(doc), "\n") {
		if h, ok := strings.CutPrefix(l, "### "); ok && githubAnchor(h) == anchor {
			return
		}
	}
	t.Errorf("runbook_url %q: docs/operations.md has no heading with the anchor #%s", url, anchor)
}

func githubAnchor(h string) string {
	h = strings.ToLower(strings.TrimSpace(h))
	h = regexp.MustCompile(`[^a-z0-9 _-]`).ReplaceAllString(h, "")
	return strings.ReplaceAll(h, " ", "-")
}

// The SRE's commands: kubectl finds the plugin on PATH, the plugin finds
// the store in the chart's crashdump-client ConfigMap through the
// kubeconfig alone (no --store), and `get` returns exactly the bytes the
// app's createdump wrote (the emulator logs their SHA-256).
func testKubectlPlugin(t *testing.T, f *agentFixture) *manifest {
	ns := f.ns["seed"]
	app := appPod{name: "oncall-get", namespace: ns, dumpName: "/dumps/coredump.%p.dmp"}
	p := app.create(t)
	p = waitPod(t, ns, p.Name, 2*time.Minute, "terminated", podTerminated)
	// The seed's pods crashed in this namespace's directory too.
	want := map[string]int{p.Name: 1}
	ms, err := f.manifests(ctxFor(t, time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range ms {
		if m.Pod != nil && m.Pod.Namespace == ns && m.Pod.Name != p.Name {
			want[m.Pod.Name] = 0
		}
	}
	m := f.waitDumps(t, ns, want, 2*time.Minute)[p.Name][0]
	logs, err := client.CoreV1().Pods(ns).GetLogs(p.Name, &corev1.PodLogOptions{Container: "app"}).Do(ctxFor(t, 30*time.Second)).Raw()
	if err != nil {
		t.Fatalf("logs of %s/%s: %v", ns, p.Name, err)
	}
	mm := regexp.MustCompile(`\[emulator\] dump \S+: (\d+) bytes, sha256 ([0-9a-f]{64})`).FindSubmatch(logs)
	if mm == nil {
		t.Fatalf("the emulator's log of %s/%s names no dump hash:\n%s", ns, p.Name, logs)
	}
	wrote := string(mm[2])

	bin := os.Getenv("E2E_AGENT_BINARY")
	pathDir := t.TempDir()
	if err := os.Symlink(bin, filepath.Join(pathDir, "kubectl-crashdump")); err != nil {
		t.Fatal(err)
	}
	home := t.TempDir()
	run := func(args ...string) string {
		t.Helper()
		cmd := exec.CommandContext(ctxFor(t, 2*time.Minute), env.Kubectl, args...)
		cmd.Dir = home
		// Only the kubeconfig and the user's own S3 credentials: the store,
		// bucket, endpoint and prefix come from the cluster.
		cmd.Env = []string{"PATH=" + pathDir + ":" + filepath.Dir(env.Kubectl) + ":/usr/bin:/bin", "HOME=" + home,
			"KUBECONFIG=" + env.Kubeconfig, "AWS_ACCESS_KEY_ID=" + env.S3AccessKey, "AWS_SECRET_ACCESS_KEY=" + env.S3SecretKey,
			"AWS_EC2_METADATA_DISABLED=true", "NO_COLOR=1"}
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	if out := run("plugin", "list"); !strings.Contains(out, filepath.Join(pathDir, "kubectl-crashdump")) {
		t.Errorf("kubectl plugin list does not find kubectl-crashdump in %s:\n%s", pathDir, out)
	}
	ls := run("crashdump", "ls", "-n", ns)
	saveArtifact(t, "oncall-kubectl-crashdump-ls.txt", []byte(ls))
	t.Logf("kubectl crashdump ls -n %s:\n%s", ns, ls)
	if !strings.Contains(ls, m.ID[:8]) || !strings.Contains(ls, p.Name) { // the table shows short IDs
		t.Errorf("kubectl crashdump ls -n %s does not list %s of pod %s", ns, m.ID, p.Name)
	}
	seedListed := false
	for _, l := range strings.Split(ls, "\n") {
		if strings.Contains(l, "dotnet-boom-") {
			seedListed = true
		}
	}
	if !seedListed {
		t.Errorf("kubectl crashdump ls -n %s lists no dump of the seed Deployment's pods (dotnet-boom-…)", ns)
	}
	desc := run("crashdump", "describe", m.ID)
	t.Logf("kubectl crashdump describe %s:\n%s", m.ID, desc)
	for _, want := range []string{"System.Exception", p.Name, "SIGSEGV|SIGABRT"} {
		if !regexp.MustCompile(want).MatchString(desc) {
			t.Errorf("kubectl crashdump describe %s does not show %q (exception and termination)", m.ID, want)
		}
	}
	if m.Pod.Termination == nil {
		t.Errorf("%s: the manifest has no termination to describe", m.manifestKey)
	} else if !strings.Contains(desc, fmt.Sprint(m.Pod.Termination.ExitCode)) {
		t.Errorf("kubectl crashdump describe %s does not show the exit code %d", m.ID, m.Pod.Termination.ExitCode)
	}
	run("crashdump", "get", m.ID, "-o", "f")
	b, err := os.ReadFile(filepath.Join(home, "f"))
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	if got := hex.EncodeToString(sum[:]); got != wrote || fmt.Sprint(len(b)) != string(mm[1]) {
		t.Errorf("kubectl crashdump get %s -o f: %d bytes sha256 %s; the emulator wrote %s bytes sha256 %s", m.ID, len(b), got, mm[1], wrote)
	}
	return m
}

// The AWS CLI, not our code, shows the object metadata SPEC §6 promises,
// and its copy, decompressed by zstd, has the manifest's SHA-256.
func testAWSCLI(t *testing.T, m *manifest) {
	// Debian's packages (run.sh installs them), not whatever is first on PATH.
	for _, c := range []string{"/usr/bin/aws", "/usr/bin/zstd"} {
		if _, err := os.Stat(c); err != nil {
			t.Fatalf("%s not installed: run.sh installs awscli and zstd from apt", c)
		}
	}
	home := t.TempDir()
	aws := func(args ...string) []byte {
		t.Helper()
		cmd := exec.CommandContext(ctxFor(t, 2*time.Minute), "/usr/bin/aws", append(args, "--endpoint-url", env.S3Endpoint, "--region", env.S3Region)...)
		cmd.Dir = home
		cmd.Env = []string{"PATH=/usr/bin:/bin", "HOME=" + home, "AWS_ACCESS_KEY_ID=" + env.S3AccessKey, "AWS_SECRET_ACCESS_KEY=" + env.S3SecretKey,
			"AWS_EC2_METADATA_DISABLED=true", "AWS_PAGER=", "AWS_CONFIG_FILE=/nonexistent", "AWS_SHARED_CREDENTIALS_FILE=/nonexistent"}
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("aws %s: %v\n%s%s", strings.Join(args, " "), err, out, stderr.Bytes())
		}
		return out
	}
	out := aws("s3api", "head-object", "--bucket", env.S3Bucket, "--key", m.Object.Key)
	saveArtifact(t, "oncall-aws-s3api-head-object.json", out)
	t.Logf("aws s3api head-object --bucket %s --key %s:\n%s", env.S3Bucket, m.Object.Key, out)
	var head struct {
		ContentLength int64
		Metadata      map[string]string
	}
	if err := json.Unmarshal(out, &head); err != nil {
		t.Fatalf("aws s3api head-object output: %v\n%s", err, out)
	}
	want := map[string]string{
		"namespace": m.Pod.Namespace, "pod": m.Pod.Name, "container": m.Pod.Container, "node": m.Node,
		"sha256": m.File.SHA256, "original-size": fmt.Sprint(m.File.Size), "compression": m.Object.Compression,
	}
	for k, v := range want {
		if head.Metadata[k] != v {
			t.Errorf("head-object metadata %q = %q, want %q (manifest)", k, head.Metadata[k], v)
		}
	}
	if head.ContentLength != m.Object.StoredSize {
		t.Errorf("head-object ContentLength %d, manifest object.storedSize %d", head.ContentLength, m.Object.StoredSize)
	}
	aws("s3", "cp", "--only-show-errors", "s3://"+env.S3Bucket+"/"+m.Object.Key, filepath.Join(home, "dump.zst"))
	if m.Object.Compression != "zstd" {
		t.Fatalf("%s: compression %q, the test expects zstd", m.Object.Key, m.Object.Compression)
	}
	cmd := exec.CommandContext(ctxFor(t, time.Minute), "/usr/bin/zstd", "-q", "-d", "-c", filepath.Join(home, "dump.zst"))
	h := sha256.New()
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = h, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("zstd -d: %v\n%s", err, stderr.Bytes())
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != m.File.SHA256 {
		t.Errorf("aws s3 cp + zstd -d of %s: sha256 %s, manifest %s", m.Object.Key, got, m.File.SHA256)
	}
}

// With MinIO stopped, CrashdumpUploadsFailing and CrashdumpStoreUnreachable
// page; with MinIO back they resolve, and every dump written in between is
// in the store exactly once.
func testStoreOutage(t *testing.T, f *agentFixture, s *onCallStack) {
	ns := f.ns["outage"]
	ctl := os.Getenv("E2E_MINIO_CTL")
	minioCtl := func(what string) {
		out, err := exec.Command(ctl, "minio", what).CombinedOutput()
		if err != nil {
			t.Fatalf("%s minio %s: %v\n%s", ctl, what, err, out)
		}
	}
	minioCtl("stop")
	stopped := time.Now()
	restarted := false
	t.Cleanup(func() {
		if !restarted { // every exit path: the later scenarios need the store
			exec.Command(ctl, "minio", "start").Run()
		}
	})
	// A crash every 5 s during the outage: each new dump's first upload
	// attempt fails at once, so failures keep coming while the retries of
	// the earlier ones back off.
	want := map[string]int{}
	fired := map[string]bool{}
	deadline := time.Now().Add(4 * time.Minute)
	for i := 0; len(fired) < 2; i++ {
		if time.Now().After(deadline) {
			t.Fatalf("after %s of store outage, fired: %v, want CrashdumpUploadsFailing and CrashdumpStoreUnreachable; received:\n%s", time.Since(stopped).Round(time.Second), keysOf(fired), hookSummary(s.hook))
		}
		if i < 24 {
			name := fmt.Sprintf("outage-%02d", i)
			appPod{name: name, namespace: ns, dumpName: "/dumps/coredump.%p.dmp"}.create(t)
			want[name] = 1
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		for _, name := range []string{"CrashdumpUploadsFailing", "CrashdumpStoreUnreachable"} {
			if fired[name] {
				continue
			}
			if a, raw, err := s.hook.Wait(ctx, func(a oncall.Alert) bool {
				return a.Status == "firing" && a.Labels["alertname"] == name && a.StartsAt.After(stopped.Add(-time.Minute))
			}); err == nil {
				fired[name] = true
				t.Logf("%s fired %s after MinIO stopped (starts %s)", name, time.Since(stopped).Round(time.Second), a.StartsAt.Format(time.TimeOnly))
				saveArtifact(t, "oncall-webhook-"+name+"-firing.json", indentJSON(raw))
			}
		}
		<-ctx.Done()
		cancel()
	}
	minioCtl("start")
	restarted = true
	back := time.Now()
	t.Logf("MinIO back after %s; %d pods crashed during the outage", back.Sub(stopped).Round(time.Second), len(want))
	ctx := ctxFor(t, 4*time.Minute)
	for _, name := range []string{"CrashdumpUploadsFailing", "CrashdumpStoreUnreachable"} {
		a, raw, err := s.hook.Wait(ctx, func(a oncall.Alert) bool {
			return a.Status == "resolved" && a.Labels["alertname"] == name && !a.EndsAt.Before(back.Add(-5*time.Second))
		})
		if err != nil {
			t.Fatalf("%s not resolved within 4m of MinIO's return: %v; received:\n%s", name, err, hookSummary(s.hook))
		}
		t.Logf("%s resolved %s after MinIO came back (ends %s)", name, a.EndsAt.Sub(back).Round(time.Second), a.EndsAt.Format(time.TimeOnly))
		saveArtifact(t, "oncall-webhook-"+name+"-resolved.json", indentJSON(raw))
	}
	got := f.waitDumps(t, ns, want, 4*time.Minute)
	// Exactly once: one manifest per pod, and one dump object under its key.
	for pod, ms := range got {
		if len(ms) != 1 {
			t.Errorf("pod %s/%s: %d manifests, want exactly 1", ns, pod, len(ms))
			continue
		}
		n := 0
		for o := range f.s3.ListObjects(ctxFor(t, time.Minute), env.S3Bucket, minio.ListObjectsOptions{Prefix: f.prefix + "/" + ns + "/" + pod + "/", Recursive: true}) {
			if o.Err == nil && !strings.HasSuffix(o.Key, ".json") {
				n++
			}
		}
		if n != 1 {
			t.Errorf("pod %s/%s: %d dump objects in the store, want exactly 1", ns, pod, n)
		}
		f.verifyObject(t, ms[0])
	}
}

// mustHaveData are the panels that show series after the scenarios.
var mustHaveData = []string{"Uploaded (24h)", "Upload throughput", "Pending dumps", "Attribution method", "Upload attempts by result"}

// Every panel query of the dashboard runs without error on the real
// Prometheus and names only metrics and labels the agent exports; the
// panels an SRE looks at first have series.
func testDashboard(t *testing.T, s *onCallStack) {
	b, err := os.ReadFile(filepath.Join("..", "..", "deploy", "dashboards", "crashdump.json"))
	if err != nil {
		t.Fatal(err)
	}
	qs, err := oncall.DashboardQueries(b, map[string]string{"__rate_interval": "1m", "__interval": "2s", "__range": "1h", "__range_s": "3600"})
	if err != nil {
		t.Fatalf("dashboard queries: %v", err)
	}
	ctx := ctxFor(t, 3*time.Minute)
	var table bytes.Buffer
	tw := tabwriter.NewWriter(&table, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "PANEL\tREF\tSERIES")
	series := map[string]int{}
	for _, q := range qs {
		_, n, err := s.prom.Query(ctx, q.Expr)
		if err != nil {
			t.Errorf("panel %q %s: %s: %v", q.Panel, q.RefID, q.Expr, err)
			continue
		}
		for _, e := range s.prom.CheckExported(ctx, q.Expr) {
			t.Errorf("panel %q %s: %v", q.Panel, q.RefID, e)
		}
		series[q.Panel] += n
		fmt.Fprintf(tw, "%s\t%s\t%d\n", q.Panel, q.RefID, n)
	}
	tw.Flush()
	saveArtifact(t, "oncall-dashboard-panels.txt", table.Bytes())
	t.Logf("dashboard panels against Prometheus (%d queries):\n%s", len(qs), table.String())
	for _, p := range mustHaveData {
		if _, ok := series[p]; !ok {
			t.Errorf("panel %q is not in the dashboard", p)
		} else if series[p] == 0 {
			t.Errorf("panel %q returns no series after the scenarios", p)
		}
	}
}

// hookSummary lists every alert the webhook received, for failure messages.
func hookSummary(w *oncall.Webhook) string {
	var b strings.Builder
	for _, r := range w.Received() {
		for _, a := range r.Payload.Alerts {
			fmt.Fprintf(&b, "  %s %s %v starts %s ends %s\n", a.Status, a.Labels["alertname"], a.Labels, a.StartsAt.Format(time.TimeOnly), a.EndsAt.Format(time.TimeOnly))
		}
	}
	if b.Len() == 0 {
		return "  (nothing)\n"
	}
	return b.String()
}

func saveArtifact(t *testing.T, name string, b []byte) {
	if env.Artifacts == "" {
		return
	}
	if err := os.WriteFile(filepath.Join(env.Artifacts, name), b, 0o644); err != nil {
		t.Logf("saving %s: %v", name, err)
	}
}

func indentJSON(b []byte) []byte {
	var out bytes.Buffer
	if json.Indent(&out, b, "", "  ") != nil {
		return b
	}
	return out.Bytes()
}
