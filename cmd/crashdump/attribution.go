package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/pflag"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/crashdump-io/crashdump/collector"
	"github.com/crashdump-io/crashdump/collector/events"
	"github.com/crashdump-io/crashdump/collector/identify"
	"github.com/crashdump-io/crashdump/collector/kubeapi"
	"github.com/crashdump-io/crashdump/collector/pods"
)

// attributionFlags configure pod attribution (package collector/identify;
// docs/architecture.md) and Kubernetes Events.
type attributionFlags struct {
	podSource          string
	kubeletURL         string
	kubeletTokenFile   string
	kubeletCAFile      string
	kubeletInsecure    bool
	kubeconfig         string
	podRetention       time.Duration
	podRefreshInterval time.Duration
	podSourceTimeout   time.Duration
	terminationWait    time.Duration
	events             bool
	eventsQPS          float32
}

func (a *attributionFlags) register(fs *pflag.FlagSet) {
	fs.StringVar(&a.podSource, "pod-source", "kubelet", "where the pod list comes from: kubelet (GET /pods on --kubelet-url; RBAC get nodes/pods, or nodes/proxy before fine-grained kubelet authorization), apiserver (pods of this node; RBAC list pods) or none (the dump's directory alone names namespace and pod)")
	fs.StringVar(&a.kubeletURL, "kubelet-url", "", "kubelet base URL (default https://$NODE_NAME:10250; use https://$(HOST_IP):10250 where node names do not resolve)")
	fs.StringVar(&a.kubeletTokenFile, "kubelet-token-file", "/var/run/secrets/kubernetes.io/serviceaccount/token", "bearer token for the kubelet, read for every request so a rotated service account token is picked up")
	fs.StringVar(&a.kubeletCAFile, "kubelet-ca-file", "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt", "CA bundle for the kubelet's serving certificate (the cluster CA only signs it with serverTLSBootstrap; otherwise give the kubelet's CA); ignored with --kubelet-insecure-skip-tls-verify")
	fs.BoolVar(&a.kubeletInsecure, "kubelet-insecure-skip-tls-verify", false, "do not verify the kubelet's serving certificate (explicit opt-out; the token is still sent)")
	fs.StringVar(&a.kubeconfig, "kubeconfig", "", "kubeconfig for the API server connection (--pod-source apiserver and Kubernetes Events); default: the in-cluster service account")
	fs.DurationVar(&a.podRetention, "pod-retention", time.Hour, "how long pods and container instances that left the pod list stay known, so dumps that settle after their pod was deleted are still attributed")
	fs.DurationVar(&a.podRefreshInterval, "pod-refresh-interval", 30*time.Second, "background pod list refresh period; dumps also refresh it on demand (at most once a second)")
	fs.DurationVar(&a.podSourceTimeout, "pod-source-timeout", 10*time.Second, "timeout of one pod list request (failed requests are retried with backoff)")
	fs.DurationVar(&a.terminationWait, "termination-wait", 10*time.Second, "how long a dump attributed by its writer waits for the kubelet to report how the crashed container instance ended (exit code, signal), for pod.termination in the manifest and the Event; 0: do not wait")
	fs.BoolVar(&a.events, "events", true, "post a Kubernetes Event (CrashDumpUploaded) on the pod after each verified upload; needs the API server (RBAC create events.k8s.io events)")
	fs.Float32Var(&a.eventsQPS, "events-qps", 2, "Kubernetes Events posted per second at most (bursts of 10× allowed); the rest queue, and drop when the queue is full")
}

// attribution is the wired resolver and notifier.
type attribution struct {
	resolver collector.PodResolver
	notifier collector.Notifier
	close    func()
}

// eventsGrace is how long queued events may still be posted at shutdown.
const eventsGrace = 5 * time.Second

// newAttribution builds the pod resolver for --pod-source and the event
// notifier. The pod list cache runs until close is called.
func newAttribution(ctx context.Context, a attributionFlags, node string, log *slog.Logger, reg prometheus.Registerer) (*attribution, error) {
	source := strings.ToLower(a.podSource)
	switch source {
	case "none", "kubelet", "apiserver":
	default:
		return nil, fmt.Errorf("--pod-source %q: want kubelet, apiserver or none", a.podSource)
	}
	if source != "none" && node == "" {
		return nil, errors.New("pod attribution needs this node's name: set --node-name or NODE_NAME (or use --pod-source none)")
	}
	if a.podRetention <= 0 || a.podRefreshInterval <= 0 || a.podSourceTimeout <= 0 {
		return nil, errors.New("--pod-retention, --pod-refresh-interval and --pod-source-timeout must be positive")
	}

	// The API server connection serves --pod-source apiserver and events.
	var kube *kubeapi.Client
	rc, err := apiServerConfig(a.kubeconfig)
	switch {
	case err != nil:
		return nil, err
	case rc != nil:
		if kube, err = kubeapi.New(rc); err != nil {
			return nil, fmt.Errorf("API server client: %w", err)
		}
	}

	var src pods.Source
	retry := pods.Retry{Attempts: 3, Backoff: 250 * time.Millisecond}
	switch source {
	case "kubelet":
		u := a.kubeletURL
		if u == "" {
			u = "https://" + node + ":10250"
		}
		ca := a.kubeletCAFile
		if a.kubeletInsecure {
			ca = ""
			log.Warn("not verifying the kubelet's serving certificate (--kubelet-insecure-skip-tls-verify)", "kubelet_url", u)
		}
		k, err := pods.NewKubelet(pods.KubeletConfig{URL: u, TokenFile: a.kubeletTokenFile, CAFile: ca, Insecure: a.kubeletInsecure,
			UserAgent: "crashdump/" + version, Timeout: a.podSourceTimeout, Retry: retry})
		if err != nil {
			return nil, fmt.Errorf("--pod-source kubelet: %w", err)
		}
		src = k
	case "apiserver":
		if kube == nil {
			return nil, errors.New("--pod-source apiserver: no API server connection (not running in a cluster and no --kubeconfig)")
		}
		if src, err = pods.NewAPIServer(kube, node, retry); err != nil {
			return nil, err
		}
	}

	var closers []func()
	out := &attribution{}
	var lister identify.Lister
	if src != nil {
		cache := pods.NewCache(src, pods.CacheOptions{Retention: a.podRetention, Period: a.podRefreshInterval,
			ListTimeout: 4*a.podSourceTimeout + 5*time.Second}, log, reg)
		rctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		var wg sync.WaitGroup
		wg.Add(1)
		go func() { defer wg.Done(); cache.Run(rctx) }()
		closers = append(closers, func() { cancel(); cache.Close(); wg.Wait() })
		lister = cache
		log.Info("pod attribution", "pod_source", src.String(), "pod_retention", a.podRetention.String(),
			"pod_refresh_interval", a.podRefreshInterval.String())
	} else {
		log.Info("pod attribution from dump paths only", "pod_source", "none")
	}
	ropts := identify.Options{Timeout: 2*a.podSourceTimeout + a.terminationWait + 5*time.Second, TerminationWait: a.terminationWait}
	if a.terminationWait <= 0 {
		ropts.TerminationWait = -1
	}
	if source == "apiserver" {
		ropts.NamespaceLabels = pods.NewNamespaceLabels(kube, time.Minute, log).Labels
	}
	out.resolver = identify.New(lister, ropts, log)

	switch {
	case !a.events:
		events.NewMetrics(reg)
		out.notifier = collector.NopNotifier{}
	case kube == nil:
		events.NewMetrics(reg)
		out.notifier = collector.NopNotifier{}
		log.Warn("Kubernetes events disabled: no API server connection (not running in a cluster and no --kubeconfig)")
	default:
		n := events.New(kube, events.Options{Node: node, QPS: a.eventsQPS, Burst: int(10*a.eventsQPS) + 1}, log, reg)
		out.notifier = n
		closers = append(closers, func() { n.Close(eventsGrace) })
	}
	out.close = func() {
		for i := len(closers) - 1; i >= 0; i-- {
			closers[i]()
		}
	}
	return out, nil
}

// apiServerConfig is the API server connection: from kubeconfig when given
// (an error if it does not work), else in-cluster, else none (nil, nil).
func apiServerConfig(kubeconfig string) (*rest.Config, error) {
	var rc *rest.Config
	var err error
	if kubeconfig != "" {
		rc, err = clientcmd.BuildConfigFromFlags("", kubeconfig)
		if err != nil {
			return nil, fmt.Errorf("--kubeconfig %s: %w", kubeconfig, err)
		}
	} else {
		rc, err = rest.InClusterConfig()
		if errors.Is(err, rest.ErrNotInCluster) {
			return nil, nil
		}
		if err != nil {
			return nil, fmt.Errorf("in-cluster API server config: %w", err)
		}
	}
	rc.UserAgent = "crashdump/" + version
	rc.Timeout = 30 * time.Second
	return rc, nil
}
