//go:build linux

package main

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/spf13/pflag"

	"github.com/crashdump-io/crashdump/collector"
	"github.com/crashdump-io/crashdump/collector/pods/podstest"
	"github.com/crashdump-io/crashdump/uploader/manifest"
)

// notInCluster makes rest.InClusterConfig fail as it does off-cluster.
func notInCluster(t *testing.T) {
	t.Setenv("KUBERNETES_SERVICE_HOST", "")
	t.Setenv("KUBERNETES_SERVICE_PORT", "")
}

func parseAttributionFlags(t *testing.T, args ...string) attributionFlags {
	t.Helper()
	var a attributionFlags
	fs := pflag.NewFlagSet("agent", pflag.ContinueOnError)
	a.register(fs)
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	if err := bindEnv(fs); err != nil {
		t.Fatal(err)
	}
	return a
}

func TestAttributionFlags(t *testing.T) {
	t.Setenv("CRASHDUMP_POD_RETENTION", "2h")
	t.Setenv("CRASHDUMP_EVENTS", "false")
	a := parseAttributionFlags(t, "--pod-refresh-interval", "10s")
	if a.podSource != "kubelet" || a.podRetention != 2*time.Hour || a.podRefreshInterval != 10*time.Second || a.events ||
		a.podSourceTimeout != 10*time.Second || a.kubeletTokenFile != "/var/run/secrets/kubernetes.io/serviceaccount/token" {
		t.Errorf("flags %+v", a)
	}
	fs := pflag.NewFlagSet("agent", pflag.ContinueOnError)
	(&attributionFlags{}).register(fs)
	for _, name := range []string{"pod-source", "kubelet-url", "kubelet-token-file", "kubelet-ca-file", "kubelet-insecure-skip-tls-verify",
		"kubeconfig", "pod-retention", "pod-refresh-interval", "pod-source-timeout", "events", "events-qps"} {
		f := fs.Lookup(name)
		if f == nil || len(f.Usage) < 20 {
			t.Errorf("flag --%s missing or without help", name)
		}
	}
}

func TestNewAttributionErrors(t *testing.T) {
	notInCluster(t)
	k := podstest.StartKubelet(t)
	tests := []struct {
		name string
		args []string
		node string
		want string
	}{
		{"unknown source", []string{"--pod-source", "crictl"}, "node-1", "want kubelet, apiserver or none"},
		{"no node name", nil, "", "--node-name"},
		{"apiserver off-cluster", []string{"--pod-source", "apiserver"}, "node-1", "no API server connection"},
		{"bad kubeconfig", []string{"--pod-source", "none", "--kubeconfig", "/nonexistent/kubeconfig"}, "node-1", "/nonexistent/kubeconfig"},
		{"missing token file", []string{"--kubelet-url", k.URL, "--kubelet-token-file", "/nonexistent/token", "--kubelet-ca-file", k.CAFile}, "node-1", "/nonexistent/token"},
		{"zero retention", []string{"--pod-retention", "0s"}, "node-1", "must be positive"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := parseAttributionFlags(t, tt.args...)
			_, err := newAttribution(context.Background(), a, tt.node, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("newAttribution: %v, want an error mentioning %q", err, tt.want)
			}
		})
	}
}

// --pod-source none works with no cluster at all: paths only, events off
// with one log line.
func TestAttributionWithoutCluster(t *testing.T) {
	notInCluster(t)
	var logs bytes.Buffer
	reg := prometheus.NewRegistry()
	attr, err := newAttribution(context.Background(), parseAttributionFlags(t, "--pod-source", "none"), "", slog.New(slog.NewTextHandler(&logs, nil)), reg)
	if err != nil {
		t.Fatal(err)
	}
	defer attr.close()
	got := attr.resolver.Resolve(context.Background(), collector.Evidence{Path: "shop/api-0/coredump.1.dmp"})
	if got.Method != manifest.MethodPath || got.Pod == nil || got.Pod.Namespace != "shop" || got.Pod.Name != "api-0" {
		t.Errorf("attribution %+v", got)
	}
	attr.notifier.DumpUploaded(context.Background(), &manifest.Manifest{Pod: got.Pod})
	if n := strings.Count(logs.String(), "Kubernetes events disabled"); n != 1 {
		t.Errorf("%d log lines about events being disabled, want 1:\n%s", n, logs.String())
	}
	if n, err := testutil.GatherAndCount(reg, "crashdump_events_total"); err != nil || n != 4 {
		t.Errorf("crashdump_events_total: %d series (%v), want 4 at zero", n, err)
	}
}

// --pod-source apiserver with --kubeconfig: the same pod set, the same
// answers; events go to the same API server.
func TestAttributionAPIServerSource(t *testing.T) {
	notInCluster(t)
	api := podstest.StartAPIServer(t, e2eNode, e2ePods()...)
	reg := prometheus.NewRegistry()
	attr, err := newAttribution(context.Background(), parseAttributionFlags(t, "--pod-source", "apiserver", "--kubeconfig", api.Kubeconfig(t)),
		e2eNode, slog.New(slog.DiscardHandler), reg)
	if err != nil {
		t.Fatal(err)
	}
	ev := collector.Evidence{Path: "coredump.1.dmp", ClaimedAt: time.Now(), Writers: []collector.Writer{{HostPID: 5151, NSPID: 1, Writable: true,
		ContainerID: e2eBillingRun, Runtime: "cri-o", PodUID: e2eBillingUID}}}
	got := attr.resolver.Resolve(context.Background(), ev)
	if got.Method != manifest.MethodWriterPID || got.Pod == nil || got.Pod.Namespace != "billing" || got.Pod.Name != e2eAPI || got.Pod.Container != "api" {
		t.Fatalf("attribution %+v (reason %s)", got.Pod, got.Reason)
	}
	for _, q := range api.Queries() {
		if !strings.Contains(q, "fieldSelector=spec.nodeName%3D"+e2eNode) {
			t.Errorf("pod list query %q does not select this node", q)
		}
	}
	attr.notifier.DumpUploaded(context.Background(), &manifest.Manifest{Pod: got.Pod, Kind: "minidump",
		Object: manifest.Object{URL: "s3://dumps/billing/x"}, File: manifest.File{Size: 1 << 20}})
	attr.close() // posts what is queued
	evs := api.Events()
	if len(evs) != 1 || evs[0].Regarding.Name != e2eAPI || evs[0].Regarding.Namespace != "billing" || !strings.Contains(evs[0].Note, "s3://dumps/billing/x") {
		t.Fatalf("events %+v", evs)
	}
	if n, err := testutil.GatherAndCount(reg, "crashdump_pod_cache_pods"); err != nil || n != 1 {
		t.Errorf("crashdump_pod_cache_pods: %d (%v)", n, err)
	}
}
