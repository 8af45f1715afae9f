//go:build linux

package corepipe

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/crashdump-io/crashdump/collector/dumptest"
)

// Real cgroup lines (collector/procfs/cgroup_test.go has their origins).
const (
	cgCgroupfsHybrid = "9:name=systemd:/kubepods/besteffort/pode0bbe063-7fb9-4e56-84d7-99e74c5bd62b/ecbe247b2aa569ee9c21c519cd09888710d85992ae0ad83020bea0654414df91\n" +
		"4:memory:/kubepods/besteffort/pode0bbe063-7fb9-4e56-84d7-99e74c5bd62b/ecbe247b2aa569ee9c21c519cd09888710d85992ae0ad83020bea0654414df91\n" +
		"0::/kubepods/besteffort/pode0bbe063-7fb9-4e56-84d7-99e74c5bd62b/ecbe247b2aa569ee9c21c519cd09888710d85992ae0ad83020bea0654414df91\n"
	cgCgroupfsV1 = "12:rdma:/\n" +
		"11:pids:/kubepods/burstable/pod4613b903-4fc0-46ad-b749-744d4fe8da9d/9e28361324c3d1e766cd7b7f60c255c85802f1b2ef3744fd7883e36429db905e\n"
	cgCgroupfsV2    = "0::/kubepods/burstable/pod404bd273-57bc-4508-a386-e2b76d3c9cfe/3aaaa76f09e1de6bb75e84f9c15b737a2d590f69757953e3ec262bd5861dc15b\n"
	cgSystemdCrioV1 = "13:freezer:/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-poda5c1f8d5_1919_434d_add7_4afaafdaef89.slice/crio-5eed917563583925ffdbd40a64efb2aaffe58638e57add8becaf460fe74f5b1c.scope\n" +
		"11:files:/\n"
	cgSystemdContainerdV2 = "0::/kubepods.slice/kubepods-pod91f5b561_369f_4103_8015_66391059996a.slice/cri-containerd-24c53b774a586f06abc058619b47f71d9d869ac50c92898adbd199106fd0aaeb.scope\n"
	cgSystemdDockerV1     = "11:freezer:/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod7d4424e6_bb13_42f4_a47a_45a4828bf54d.slice/docker-d0b3604b67ac7930dd34ba3a796627e3e4717d12309e90a4afe3f38b6816ac98.scope\n"
	cgContainerdInline    = "10:blkio:/system.slice/containerd.service/kubepods-besteffort-pod0125ec2f_b64a_4868_8f5b_94b56cbab864.slice:cri-containerd:ee4b20e90ac7f42a10bd004d05646b13d8ab5e2c5e7cbc01abf8006bac016459\n"
	cgNamespaceRelative   = "0::/../../../kubepods-burstable.slice/kubepods-burstable-pod55c6c714_b240_4dec_9a45_57b61696ab6e.slice/cri-containerd-2032491dcae31e6746f47daa0ac74564f2843a1bd847c5e6c4eb501ca132ac36.scope\n"
	cgStaticPod           = "0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod8daa50c3a64c9ff60bb9eab7b44b56fd.slice/cri-containerd-2884d57c0e100d7a9a2f9487ce0bc2986bca3430e988af7a4865aff061f51ac5.scope\n"
	// A host daemon on a systemd host (cgroup v2).
	cgHost = "0::/system.slice/containerd.service\n"
)

const (
	fixturePID = "4242"
	nsPID      = "1"
)

// statusFile is /proc/<pid>/status as Linux 6.x writes it for a process
// in a container (PID 1 in its namespace), trimmed to the lines read.
func statusFile(uid int) string {
	u := strconv.Itoa(uid)
	return "Name:\tcrasher\nUmask:\t0022\nState:\tR (running)\nTgid:\t" + fixturePID + "\nNgid:\t0\nPid:\t" + fixturePID +
		"\nPPid:\t4200\nTracerPid:\t0\nUid:\t" + u + "\t" + u + "\t" + u + "\t" + u + "\nGid:\t" + u + "\t" + u + "\t" + u + "\t" + u +
		"\nFDSize:\t64\nNStgid:\t" + fixturePID + "\t" + nsPID + "\nNSpid:\t" + fixturePID + "\t" + nsPID + "\nNSpgid:\t" + fixturePID + "\t" + nsPID + "\n"
}

type env struct {
	t        *testing.T
	procRoot string
	stateDir string
	logs     []string
	mu       sync.Mutex
}

func newEnv(t *testing.T) *env {
	t.Helper()
	dir := t.TempDir()
	e := &env{t: t, procRoot: filepath.Join(dir, "proc"), stateDir: filepath.Join(dir, "state")}
	for _, d := range []string{e.procRoot, e.stateDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return e
}

// process writes <proc>/<pid>/{cgroup,status,cmdline} and the exe link.
func (e *env) process(pid, cgroup string) {
	e.t.Helper()
	d := filepath.Join(e.procRoot, pid)
	os.RemoveAll(d)
	if err := os.MkdirAll(d, 0o755); err != nil {
		e.t.Fatal(err)
	}
	e.write(filepath.Join(d, "cgroup"), cgroup)
	e.write(filepath.Join(d, "status"), statusFile(1000))
	e.write(filepath.Join(d, "cmdline"), "/app/crasher\x00--port\x008080\x00")
	e.write(filepath.Join(d, "environ"), "AWS_SECRET_ACCESS_KEY=never-read\x00")
	if err := os.Symlink("/app/crasher", filepath.Join(d, "exe")); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) write(path, s string) {
	e.t.Helper()
	if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) config() Config {
	return Config{ProcRoot: e.procRoot, StateDir: e.stateDir, Logf: func(l string) {
		e.mu.Lock()
		e.logs = append(e.logs, l)
		e.mu.Unlock()
	}}
}

func (e *env) policy(p Policy) {
	e.t.Helper()
	if err := WritePolicy(PolicyPath(e.stateDir), p); err != nil {
		e.t.Fatal(err)
	}
}

// run hands the file at core to the handler on stdin and checks that it
// was read to its end.
func (e *env) run(cfg Config, args []string, core string) Result {
	e.t.Helper()
	f, err := os.Open(core)
	if err != nil {
		e.t.Fatal(err)
	}
	defer f.Close()
	a, err := ParseArgs(args)
	if err != nil {
		e.t.Fatal(err)
	}
	r := Run(cfg, a, f)
	pos, _ := f.Seek(0, io.SeekCurrent)
	if fi, _ := f.Stat(); pos != fi.Size() {
		e.t.Errorf("stdin read to %d of %d bytes: not drained", pos, fi.Size())
	}
	return r
}

func kernelArgs(comm ...string) []string {
	return append([]string{fixturePID, "7", "11", "1796695554", "18446744073709551615", "1"}, comm...)
}

// entry reads inbox/<id>: its evidence and the names it holds.
func (e *env) entry(id string) (Evidence, []string) {
	e.t.Helper()
	dir := filepath.Join(e.stateDir, DirName, "inbox", id)
	b, err := os.ReadFile(filepath.Join(dir, EvidenceName))
	if err != nil {
		e.t.Fatal(err)
	}
	var ev Evidence
	if err := json.Unmarshal(b, &ev); err != nil {
		e.t.Fatal(err)
	}
	des, err := os.ReadDir(dir)
	if err != nil {
		e.t.Fatal(err)
	}
	var names []string
	for _, d := range des {
		names = append(names, d.Name())
		fi, _ := d.Info()
		if fi.Mode().Perm() != 0o600 {
			e.t.Errorf("%s: mode %v, want 0600", d.Name(), fi.Mode())
		}
	}
	if fi, _ := os.Stat(dir); fi.Mode().Perm() != 0o700 {
		e.t.Errorf("entry dir mode %v, want 0700", fi.Mode())
	}
	return ev, names
}

func (e *env) inbox() []string {
	des, _ := os.ReadDir(filepath.Join(e.stateDir, DirName, "inbox"))
	var n []string
	for _, d := range des {
		n = append(n, d.Name())
	}
	return n
}

var (
	coreOnce sync.Once
	corePath string
	coreErr  string
)

// realCore is a real ELF core of a live `sleep` (gdb's gcore), made once;
// dumptest fails the test when gdb is missing (make tools installs it).
func realCore(t *testing.T) string {
	t.Helper()
	coreOnce.Do(func() {
		dir, err := os.MkdirTemp("", "corepipe-core")
		if err != nil {
			coreErr = err.Error()
			return
		}
		corePath = filepath.Join(dir, "core")
		dumptest.SleepCore(t, corePath)
	})
	if coreErr != "" {
		t.Fatal(coreErr)
	}
	return corePath
}

func sha(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func TestMain(m *testing.M) {
	code := m.Run()
	if corePath != "" {
		os.RemoveAll(filepath.Dir(corePath))
	}
	os.Exit(code)
}

func TestAttributionEveryCgroupFormat(t *testing.T) {
	core := realCore(t)
	tests := []struct {
		name, cgroup, container, pod, static string
	}{
		{"cgroupfs containerd hybrid", cgCgroupfsHybrid, "ecbe247b2aa569ee9c21c519cd09888710d85992ae0ad83020bea0654414df91", "e0bbe063-7fb9-4e56-84d7-99e74c5bd62b", ""},
		{"cgroupfs v1", cgCgroupfsV1, "9e28361324c3d1e766cd7b7f60c255c85802f1b2ef3744fd7883e36429db905e", "4613b903-4fc0-46ad-b749-744d4fe8da9d", ""},
		{"cgroupfs v2 k3s", cgCgroupfsV2, "3aaaa76f09e1de6bb75e84f9c15b737a2d590f69757953e3ec262bd5861dc15b", "404bd273-57bc-4508-a386-e2b76d3c9cfe", ""},
		{"systemd crio v1", cgSystemdCrioV1, "5eed917563583925ffdbd40a64efb2aaffe58638e57add8becaf460fe74f5b1c", "a5c1f8d5-1919-434d-add7-4afaafdaef89", ""},
		{"systemd containerd v2", cgSystemdContainerdV2, "24c53b774a586f06abc058619b47f71d9d869ac50c92898adbd199106fd0aaeb", "91f5b561-369f-4103-8015-66391059996a", ""},
		{"systemd docker v1", cgSystemdDockerV1, "d0b3604b67ac7930dd34ba3a796627e3e4717d12309e90a4afe3f38b6816ac98", "7d4424e6-bb13-42f4-a47a-45a4828bf54d", ""},
		{"containerd slice:prefix:id", cgContainerdInline, "ee4b20e90ac7f42a10bd004d05646b13d8ab5e2c5e7cbc01abf8006bac016459", "0125ec2f-b64a-4868-8f5b-94b56cbab864", ""},
		{"cgroup namespace relative", cgNamespaceRelative, "2032491dcae31e6746f47daa0ac74564f2843a1bd847c5e6c4eb501ca132ac36", "55c6c714-b240-4dec-9a45-57b61696ab6e", ""},
		{"static pod", cgStaticPod, "2884d57c0e100d7a9a2f9487ce0bc2986bca3430e988af7a4865aff061f51ac5", "", "8daa50c3a64c9ff60bb9eab7b44b56fd"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			e.process(fixturePID, tc.cgroup)
			e.policy(Policy{BudgetBytesRemaining: -1})
			r := e.run(e.config(), kernelArgs("crasher"), core)
			if r.EntryID == "" {
				t.Fatalf("no entry: %+v, logs %q", r.Evidence, e.logs)
			}
			ev, names := e.entry(r.EntryID)
			if strings.Join(names, ",") != "core,evidence.json" {
				t.Errorf("entry holds %v", names)
			}
			if ev.Outcome != OutcomeCore || ev.Method != MethodKernel || !ev.InPod || ev.PolicyMode != "snapshot" {
				t.Errorf("outcome %q method %q inPod %v mode %q", ev.Outcome, ev.Method, ev.InPod, ev.PolicyMode)
			}
			if ev.Cgroup.ContainerID != tc.container || ev.Cgroup.PodUID != tc.pod || ev.Cgroup.StaticPodUID != tc.static {
				t.Errorf("cgroup %+v, want container %s pod %s static %s", ev.Cgroup, tc.container, tc.pod, tc.static)
			}
			p := ev.Process
			if p.HostPID != 4242 || p.PID != 1 || len(p.NSpid) != 2 || p.Tgid != 4242 || p.UID != 1000 || p.Exe != "/app/crasher" ||
				strings.Join(p.Cmdline, " ") != "/app/crasher --port 8080" {
				t.Errorf("process %+v", p)
			}
			if k := ev.Kernel; k.TID != 7 || k.Signal != 11 || k.Time != 1796695554 || k.KernelComm != "crasher" {
				t.Errorf("kernel %+v", k)
			}
			got := filepath.Join(e.stateDir, DirName, "inbox", r.EntryID, CoreName)
			if sha(t, got) != sha(t, core) {
				t.Error("the stored core differs from the one on stdin")
			}
			fi, _ := os.Stat(core)
			if c := ev.Counts; c.BytesReceived != fi.Size() || c.BytesWritten+c.BytesSparse != fi.Size() || c.BytesDrained != 0 {
				t.Errorf("counts %+v for a %d-byte core", c, fi.Size())
			}
			if b, _ := os.ReadFile(filepath.Join(e.stateDir, DirName, "inbox", r.EntryID, EvidenceName)); bytes.Contains(b, []byte("never-read")) {
				t.Error("evidence holds the environment")
			}
		})
	}
}

func TestHostProcessDropAndChain(t *testing.T) {
	core := realCore(t)
	t.Run("drop", func(t *testing.T) {
		e := newEnv(t)
		e.process(fixturePID, cgHost)
		cfg := e.config()
		cfg.HostCores = HostAuto // no previous handler: drop
		r := e.run(cfg, kernelArgs("containerd"), core)
		ev, names := e.entry(r.EntryID)
		if ev.Outcome != OutcomeDropped || ev.Reason != ReasonHost || ev.InPod || len(names) != 1 {
			t.Errorf("outcome %q reason %q inPod %v names %v", ev.Outcome, ev.Reason, ev.InPod, names)
		}
		fi, _ := os.Stat(core)
		if ev.Counts.BytesDrained != fi.Size() {
			t.Errorf("drained %d of %d", ev.Counts.BytesDrained, fi.Size())
		}
	})
	t.Run("chain", func(t *testing.T) {
		e := newEnv(t)
		e.process(fixturePID, cgHost)
		out := filepath.Join(t.TempDir(), "chained")
		script := filepath.Join(t.TempDir(), "prev-handler")
		e.write(script, "#!/bin/sh\nprintf '%s\\n' \"$@\" > "+out+".args\nsha256sum | cut -d' ' -f1 > "+out+".sha\n")
		if err := os.Chmod(script, 0o755); err != nil {
			t.Fatal(err)
		}
		cfg := e.config()
		cfg.PreviousPattern = "|" + script + " %P %p %u %g %s %t %c %e %E %% %Q"
		r := e.run(cfg, kernelArgs("contain/erd"), core)
		ev, _ := e.entry(r.EntryID)
		if ev.Outcome != OutcomeChained {
			t.Fatalf("outcome %q reason %q errors %v", ev.Outcome, ev.Reason, ev.ProcErrors)
		}
		args, _ := os.ReadFile(out + ".args")
		want := "4242\n1\n1000\n1000\n11\n1796695554\n18446744073709551615\ncontain_erd\n!app!crasher\n%\n\n"
		if string(args) != want {
			t.Errorf("previous handler's args %q, want %q", args, want)
		}
		got, _ := os.ReadFile(out + ".sha")
		if strings.TrimSpace(string(got)) != sha(t, core) {
			t.Errorf("the previous handler read a core with sha256 %q, want %s", got, sha(t, core))
		}
	})
	t.Run("chain to itself is refused", func(t *testing.T) {
		e := newEnv(t)
		e.process(fixturePID, cgHost)
		cfg := e.config()
		cfg.PreviousPattern = "|/var/lib/crashdump/bin/crashdump core-handler -- %P"
		r := e.run(cfg, kernelArgs("x"), core)
		if r.Evidence.Outcome != OutcomeDropped || r.Evidence.Reason != ReasonChainFailed {
			t.Errorf("outcome %q reason %q", r.Evidence.Outcome, r.Evidence.Reason)
		}
	})
}

func TestRefusalsWriteOnlyEvidence(t *testing.T) {
	core := realCore(t)
	const (
		container = "24c53b774a586f06abc058619b47f71d9d869ac50c92898adbd199106fd0aaeb"
		pod       = "91f5b561-369f-4103-8015-66391059996a"
	)
	tests := []struct {
		name   string
		policy Policy
		reason string
	}{
		{"budget", Policy{BudgetBytesRemaining: 0}, ReasonBudget},
		{"keep-free", Policy{BudgetBytesRemaining: -1, KeepFreeBytes: 1 << 62}, ReasonKeepFree},
		{"rate-limited", Policy{BudgetBytesRemaining: -1, LimitedContainers: []string{container}}, ReasonRateLimited},
		{"opted-out", Policy{BudgetBytesRemaining: -1, OptedOutPodUIDs: []string{pod}}, ReasonOptedOut},
		{"namespace excluded", Policy{BudgetBytesRemaining: -1, NamespaceExclude: []string{"kube-system"}, PodNamespaces: map[string]string{pod: "kube-system"}}, ReasonNotSelected},
		{"namespace not included", Policy{BudgetBytesRemaining: -1, NamespaceInclude: []string{"prod"}, PodNamespaces: map[string]string{pod: "dev"}}, ReasonNotSelected},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			e.process(fixturePID, cgSystemdContainerdV2)
			e.policy(tc.policy)
			r := e.run(e.config(), kernelArgs("crasher"), core)
			ev, names := e.entry(r.EntryID)
			if ev.Outcome != OutcomeRefused || ev.Reason != tc.reason || strings.Join(names, ",") != EvidenceName {
				t.Errorf("outcome %q reason %q names %v, want refused %s with only the evidence", ev.Outcome, ev.Reason, names, tc.reason)
			}
			fi, _ := os.Stat(core)
			if ev.Counts.BytesDrained != fi.Size() || ev.Counts.BytesWritten != 0 {
				t.Errorf("counts %+v", ev.Counts)
			}
			if ev.Cgroup.ContainerID != container {
				t.Errorf("a refusal keeps its attribution: %+v", ev.Cgroup)
			}
			if !strings.Contains(strings.Join(e.logs, "\n"), "refused ("+tc.reason+")") {
				t.Errorf("no log line with the reason: %q", e.logs)
			}
		})
	}
	t.Run("crash loop after the snapshot", func(t *testing.T) {
		e := newEnv(t)
		e.process(fixturePID, cgSystemdContainerdV2)
		e.policy(Policy{BudgetBytesRemaining: -1, MaxCoresPerContainer: 2, GeneratedAt: time.Now().Add(-time.Second)})
		var got []string
		for range 3 {
			r := e.run(e.config(), kernelArgs("crasher"), core)
			got = append(got, r.Evidence.Outcome+"/"+r.Evidence.Reason)
		}
		if strings.Join(got, " ") != "core/ core/ refused/rate-limited" {
			t.Errorf("outcomes %v", got)
		}
	})
	t.Run("budget used up by the inbox", func(t *testing.T) {
		// The inbox already holds more than the snapshot's remaining
		// budget: over it, not unlimited.
		e := newEnv(t)
		e.process(fixturePID, cgSystemdContainerdV2)
		e.policy(Policy{BudgetBytesRemaining: -1})
		if r := e.run(e.config(), kernelArgs("crasher"), core); r.Evidence.Outcome != OutcomeCore {
			t.Fatalf("first core: %q %q", r.Evidence.Outcome, r.Evidence.Reason)
		}
		e.policy(Policy{BudgetBytesRemaining: 4096})
		if r := e.run(e.config(), kernelArgs("crasher"), core); r.Evidence.Outcome != OutcomeRefused || r.Evidence.Reason != ReasonBudget {
			t.Errorf("over the budget: outcome %q reason %q, want refused budget", r.Evidence.Outcome, r.Evidence.Reason)
		}
	})
	t.Run("budget truncates while streaming", func(t *testing.T) {
		e := newEnv(t)
		e.process(fixturePID, cgSystemdContainerdV2)
		e.policy(Policy{BudgetBytesRemaining: 64 << 10})
		r := e.run(e.config(), kernelArgs("crasher"), core)
		ev, _ := e.entry(r.EntryID)
		fi, _ := os.Stat(core)
		if ev.Outcome != OutcomeCore || !ev.Truncated || ev.Counts.BytesWritten > 64<<10 || ev.Counts.BytesDrained == 0 ||
			ev.Counts.BytesReceived != fi.Size() {
			t.Errorf("truncated %v counts %+v", ev.Truncated, ev.Counts)
		}
		kept, _ := os.ReadFile(filepath.Join(e.stateDir, DirName, "inbox", r.EntryID, CoreName))
		all, _ := os.ReadFile(core)
		if len(kept) == 0 || !bytes.HasPrefix(all, kept) {
			t.Errorf("the truncated core (%d bytes) is not a prefix of the core", len(kept))
		}
	})
}

func TestHarmlessMode(t *testing.T) {
	core := realCore(t)
	for _, tc := range []struct {
		name, reason string
		setup        func(e *env)
	}{
		{"missing", "missing", func(*env) {}},
		{"stale", "stale", func(e *env) {
			// A stale snapshot's rules (here: no limits at all) are not used.
			e.policy(Policy{BudgetBytesRemaining: -1, GeneratedAt: time.Now().Add(-time.Hour), MaxAgeSeconds: 60})
		}},
		{"invalid", "invalid", func(e *env) {
			os.MkdirAll(filepath.Join(e.stateDir, DirName), 0o700)
			e.write(PolicyPath(e.stateDir), "{not json")
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			tc.setup(e)
			e.process(fixturePID, cgCgroupfsV2)
			first := e.run(e.config(), kernelArgs("crasher"), core)
			second := e.run(e.config(), kernelArgs("crasher"), core)
			if ev := first.Evidence; ev.Outcome != OutcomeCore || ev.PolicyMode != "harmless" || ev.HarmlessReason != tc.reason {
				t.Errorf("first: outcome %q mode %q (%q)", ev.Outcome, ev.PolicyMode, ev.HarmlessReason)
			}
			if ev := second.Evidence; ev.Outcome != OutcomeRefused || ev.Reason != ReasonRateLimited {
				t.Errorf("second within 10 min: outcome %q reason %q", ev.Outcome, ev.Reason)
			}
			// Another container is not limited by the first.
			e.process(fixturePID, cgSystemdCrioV1)
			if third := e.run(e.config(), kernelArgs("crasher"), core); third.Evidence.Outcome != OutcomeCore {
				t.Errorf("another container: %q %q", third.Evidence.Outcome, third.Evidence.Reason)
			}
			if !strings.Contains(strings.Join(e.logs, "\n"), "harmless mode") {
				t.Errorf("no harmless-mode log line: %q", e.logs)
			}
		})
	}
	t.Run("inbox byte cap", func(t *testing.T) {
		e := newEnv(t)
		e.process(fixturePID, cgCgroupfsV2)
		// A previous core fills the harmless cap.
		big := filepath.Join(e.stateDir, DirName, "inbox", "0123456789abcdef0123456789abcdef")
		os.MkdirAll(big, 0o700)
		f, _ := os.Create(filepath.Join(big, CoreName))
		if err := f.Truncate(0); err != nil {
			t.Fatal(err)
		}
		if err := fallocate(f, HarmlessInboxBytes); err != nil {
			t.Skipf("fallocate: %v", err)
		}
		f.Close()
		r := e.run(e.config(), kernelArgs("crasher"), core)
		if r.Evidence.Outcome != OutcomeRefused || r.Evidence.Reason != ReasonBudget {
			t.Errorf("outcome %q reason %q", r.Evidence.Outcome, r.Evidence.Reason)
		}
	})
}

func TestHostileKernelComm(t *testing.T) {
	core := realCore(t)
	for _, tc := range []struct {
		name string
		comm []string
	}{
		{"path", []string{"../../../../etc/passwd"}},
		{"newline", []string{"evil\nreason=forged outcome=core"}},
		{"nul", []string{"a\x00b"}},
		{"long", []string{strings.Repeat("A/", 2048)}},
		{"split words", []string{"-rf", "/", "--", "%P"}},
		{"invalid utf8", []string{"\xff\xfe\x1b[31m"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			e.process(fixturePID, cgCgroupfsV2)
			r := e.run(e.config(), kernelArgs(tc.comm...), core)
			if r.EntryID == "" || r.Evidence.Outcome != OutcomeCore {
				t.Fatalf("outcome %q reason %q", r.Evidence.Outcome, r.Evidence.Reason)
			}
			ev, _ := e.entry(r.EntryID)
			k := ev.Kernel.KernelComm
			if len(k) > maxCommText || strings.ContainsAny(k, "/\\\n\x00\x1b") {
				t.Errorf("kernelComm %q not sanitized", k)
			}
			if ev.Process.Exe != "/app/crasher" {
				t.Errorf("exe %q: facts must come from /proc", ev.Process.Exe)
			}
			if names := e.inbox(); len(names) != 1 || names[0] != r.EntryID {
				t.Errorf("inbox holds %v", names)
			}
			for _, l := range e.logs {
				if strings.Contains(l, "\n") {
					t.Errorf("log line with a newline: %q", l)
				}
			}
		})
	}
}

func TestSymlinksNotFollowed(t *testing.T) {
	core := realCore(t)
	t.Run("cgroup and exe links", func(t *testing.T) {
		e := newEnv(t)
		e.process(fixturePID, cgHost)
		elsewhere := filepath.Join(t.TempDir(), "elsewhere")
		os.MkdirAll(elsewhere, 0o755)
		e.write(filepath.Join(elsewhere, "cgroup"), cgCgroupfsV2)
		e.write(filepath.Join(elsewhere, "status"), statusFile(0))
		d := filepath.Join(e.procRoot, fixturePID)
		for _, n := range []string{"cgroup", "status"} {
			os.Remove(filepath.Join(d, n))
			if err := os.Symlink(filepath.Join(elsewhere, n), filepath.Join(d, n)); err != nil {
				t.Fatal(err)
			}
		}
		os.Remove(filepath.Join(d, "exe"))
		os.Symlink(filepath.Join(elsewhere, "cgroup"), filepath.Join(d, "exe"))
		r := e.run(e.config(), kernelArgs("x"), core)
		ev := r.Evidence
		if ev.InPod || ev.Cgroup.ContainerID != "" || ev.Process.UID != -1 {
			t.Errorf("a linked cgroup/status was followed: %+v %+v", ev.Cgroup, ev.Process)
		}
		if !strings.Contains(strings.Join(ev.ProcErrors, ";"), "cgroup") {
			t.Errorf("procErrors %v", ev.ProcErrors)
		}
		// An unreadable cgroup is unknown, not host: collected without a pod.
		if ev.Outcome != OutcomeCore {
			t.Errorf("outcome %q", ev.Outcome)
		}
	})
	t.Run("pid dir is a link", func(t *testing.T) {
		e := newEnv(t)
		e.process("99", cgCgroupfsV2)
		if err := os.Symlink(filepath.Join(e.procRoot, "99"), filepath.Join(e.procRoot, fixturePID)); err != nil {
			t.Fatal(err)
		}
		r := e.run(e.config(), kernelArgs("x"), core)
		if r.Evidence.Outcome != OutcomeRefused || r.Evidence.Reason != ReasonNoProcess || r.Evidence.Cgroup.ContainerID != "" {
			t.Errorf("outcome %q reason %q cgroup %+v", r.Evidence.Outcome, r.Evidence.Reason, r.Evidence.Cgroup)
		}
	})
	t.Run("pid not digits", func(t *testing.T) {
		e := newEnv(t)
		e.process(fixturePID, cgCgroupfsV2)
		for _, pid := range []string{"../4242", "self", "", "04242"} {
			a := kernelArgs("x")
			a[0] = pid
			if r := e.run(e.config(), a, core); r.Evidence.Reason != ReasonNoProcess {
				t.Errorf("pid %q: reason %q", pid, r.Evidence.Reason)
			}
		}
	})
	t.Run("inbox is a link", func(t *testing.T) {
		e := newEnv(t)
		e.process(fixturePID, cgCgroupfsV2)
		target := t.TempDir()
		os.MkdirAll(filepath.Join(e.stateDir, DirName), 0o700)
		if err := os.Symlink(target, filepath.Join(e.stateDir, DirName, "inbox")); err != nil {
			t.Fatal(err)
		}
		r := e.run(e.config(), kernelArgs("x"), core)
		if r.EntryID != "" || r.Evidence.Reason != ReasonError {
			t.Errorf("entry %q reason %q", r.EntryID, r.Evidence.Reason)
		}
		if des, _ := os.ReadDir(target); len(des) != 0 {
			t.Errorf("wrote through the inbox link: %v", des)
		}
	})
}

func TestPolicyRoundTrip(t *testing.T) {
	path := PolicyPath(t.TempDir())
	now := time.Now().Truncate(time.Second)
	in := Policy{GeneratedAt: now, BudgetBytesRemaining: 5 << 30, KeepFreeBytes: 1 << 30, LimitedContainers: []string{"ab"},
		NamespaceInclude: []string{"prod"}, PodNamespaces: map[string]string{"u": "prod"}, OptedOutPodUIDs: []string{"v"}}
	if err := WritePolicy(path, in); err != nil {
		t.Fatal(err)
	}
	out, err := ReadPolicy(path)
	if err != nil {
		t.Fatal(err)
	}
	if out.SchemaVersion != 1 || out.MaxAgeSeconds != 300 || !out.GeneratedAt.Equal(now) || out.BudgetBytesRemaining != 5<<30 ||
		out.PodNamespaces["u"] != "prod" || out.Stale(now) || !out.Stale(now.Add(301*time.Second)) {
		t.Errorf("round trip: %+v", out)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v", fi.Mode())
	}
}
