package main

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/pflag"

	"github.com/crashdump-io/crashdump/collector"
)

// attributionFlags configure pod attribution (SPEC §5) and Kubernetes Events.
type attributionFlags struct {
	podSource        string
	kubeletURL       string
	kubeletTokenFile string
	kubeletCAFile    string
	kubeletInsecure  bool
}

func (a *attributionFlags) register(fs *pflag.FlagSet) {
	fs.StringVar(&a.podSource, "pod-source", "kubelet", "where the pod list comes from: kubelet, apiserver or none")
	fs.StringVar(&a.kubeletURL, "kubelet-url", "", "kubelet base URL (default https://$NODE_NAME:10250)")
	fs.StringVar(&a.kubeletTokenFile, "kubelet-token-file", "/var/run/secrets/kubernetes.io/serviceaccount/token", "bearer token for the kubelet")
	fs.StringVar(&a.kubeletCAFile, "kubelet-ca-file", "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt", "CA bundle for the kubelet's serving certificate")
	fs.BoolVar(&a.kubeletInsecure, "kubelet-insecure-skip-tls-verify", false, "do not verify the kubelet's serving certificate (explicit opt-out)")
}

// attribution is the wired resolver and notifier.
type attribution struct {
	resolver collector.PodResolver
	notifier collector.Notifier
	close    func()
}

// newAttribution builds the pod resolver for --pod-source and the event
// notifier.
func newAttribution(_ context.Context, a attributionFlags, node string, log *slog.Logger, _ prometheus.Registerer) (*attribution, error) {
	out := &attribution{resolver: collector.NoResolver{}, notifier: collector.NopNotifier{}, close: func() {}}
	switch strings.ToLower(a.podSource) {
	case "none":
		return out, nil
	case "kubelet", "apiserver":
		log.Warn("pod attribution is not available in this build; dumps get correlation method none", "pod_source", a.podSource, "node", node)
		return out, nil
	}
	return nil, fmt.Errorf("--pod-source %q: want kubelet, apiserver or none", a.podSource)
}
