package main

// The kubectl plugin face of the binary: installed (or symlinked) as
// kubectl-crashdump, `kubectl crashdump ls` runs it with the plugin's name
// as argv[0]; installed as kubectl_complete-crashdump, kubectl (1.26+) runs
// it to complete `kubectl crashdump <TAB>`.

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"github.com/crashdump-io/crashdump/collector/kubeapi"
)

const (
	// pluginBinary is the name kubectl looks for to run `kubectl crashdump`.
	pluginBinary = "kubectl-crashdump"
	// pluginCompleter is the name kubectl looks for to complete
	// `kubectl crashdump ...`; it speaks cobra's __complete protocol.
	pluginCompleter = "kubectl_complete-crashdump"
	// clientConfigMap is the ConfigMap, in the agent's namespace, that tells
	// the CLI where the dumps are: the one of the release crashdump, and the
	// name read when none carries the chart's label (findClientConfigMap).
	// The Helm chart creates it; its data keys are the flag names: store,
	// s3-endpoint, s3-region.
	clientConfigMap = "crashdump-client"
	// configMapTimeout bounds the ConfigMap read when no --request-timeout
	// is given: an unreachable cluster must not hang `ls`.
	configMapTimeout = 10 * time.Second
)

// cliMode is how the binary was invoked.
type cliMode struct {
	// plugin: as kubectl-crashdump (or its completer). Usage strings say
	// "kubectl crashdump" and ls defaults to the context's namespace.
	plugin bool
	// completer: as kubectl_complete-crashdump; the arguments are a
	// command line to complete.
	completer bool
	// name is the command as the user types it.
	name string
}

// modeFor derives the mode from argv[0].
func modeFor(argv0 string) cliMode {
	switch strings.TrimSuffix(filepath.Base(argv0), ".exe") {
	case pluginBinary:
		return cliMode{plugin: true, name: "kubectl crashdump"}
	case pluginCompleter:
		return cliMode{plugin: true, completer: true, name: "kubectl crashdump"}
	}
	return cliMode{name: "crashdump"}
}

// readClientConfigMap reads the client ConfigMap of --agent-namespace
// (findClientConfigMap), with the kubeconfig and context of the kubectl
// flags, and returns its data and its namespace/name.
func (o *clientOptions) readClientConfigMap(ctx context.Context) (map[string]string, string, error) {
	// Without any kubeconfig client-go would try http://localhost:8080;
	// say what is missing instead (unless running in a pod, where the
	// in-cluster configuration applies).
	loader := o.kube.clientConfig()
	if raw, err := loader.RawConfig(); err == nil && len(raw.Clusters) == 0 &&
		o.kube.server() == "" && os.Getenv("KUBERNETES_SERVICE_HOST") == "" {
		return nil, "", errors.New("no kubeconfig found (KUBECONFIG, ~/.kube/config or --kubeconfig) to reach the cluster")
	}
	cfg, err := loader.ClientConfig()
	if err != nil {
		return nil, "", fmt.Errorf("kubeconfig: %w", err)
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = configMapTimeout
	}
	cfg.UserAgent = "crashdump-cli/" + version
	client, err := kubeapi.New(cfg)
	if err != nil {
		return nil, "", fmt.Errorf("kubernetes client: %w", err)
	}
	cm, err := findClientConfigMap(ctx, client, o.agentNamespace, o.release)
	if err != nil {
		return nil, "", fmt.Errorf("on %s: %w", cfg.Host, err)
	}
	return cm.Data, cm.Namespace + "/" + cm.Name, nil
}

// configMapReader is the part of the API client the lookup needs.
type configMapReader interface {
	GetConfigMap(ctx context.Context, namespace, name string) (*corev1.ConfigMap, error)
	ListConfigMaps(ctx context.Context, namespace string, opts kubeapi.ListOptions) (*corev1.ConfigMapList, error)
}

const (
	// clientConfigSelector selects the chart's client ConfigMaps, one per
	// release; app.kubernetes.io/instance is the release.
	clientConfigSelector = "app.kubernetes.io/component=client-config,app.kubernetes.io/part-of=crashdump"
	instanceLabel        = "app.kubernetes.io/instance"
)

// clientConfigMapName is the name the chart gives the client ConfigMap of
// release (without name overrides): <fullname>-client, crashdump-client
// for the release crashdump, and for no release.
func clientConfigMapName(release string) string {
	switch {
	case release == "":
		return clientConfigMap
	case strings.Contains(release, "crashdump"):
		return release + "-client"
	}
	return release + "-crashdump-client"
}

// findClientConfigMap finds the client ConfigMap in namespace ns by its
// label, which every release's carries; release ("" for any) picks one
// when several releases share the namespace, and more than one without it
// is an error that names them. Where none is labelled (a chart from before
// the label, a ConfigMap made by hand) or listing is not allowed (an SRE
// granted get on that one ConfigMap), it reads the ConfigMap by name:
// crashdump-client, or the name the chart gives release's.
func findClientConfigMap(ctx context.Context, c configMapReader, ns, release string) (*corev1.ConfigMap, error) {
	var others []string
	list, err := c.ListConfigMaps(ctx, ns, kubeapi.ListOptions{LabelSelector: clientConfigSelector})
	switch {
	case err == nil:
		var match []*corev1.ConfigMap
		for i := range list.Items {
			cm := &list.Items[i]
			if release == "" || cm.Labels[instanceLabel] == release {
				match = append(match, cm)
			} else {
				others = append(others, describeClientConfigMap(cm))
			}
		}
		if len(match) == 1 {
			return match[0], nil
		}
		if len(match) > 1 {
			var names []string
			for _, cm := range match {
				names = append(names, describeClientConfigMap(cm))
			}
			return nil, fmt.Errorf("%d crashdump releases in namespace %s have a client ConfigMap (%s): pass --release NAME to pick one",
				len(match), ns, strings.Join(names, ", "))
		}
	case apierrors.IsNotFound(err) || apierrors.IsForbidden(err) || apierrors.IsUnauthorized(err):
		// Read by name below, which may still be allowed, and reports
		// the error of the request that matters.
	default:
		return nil, fmt.Errorf("list ConfigMaps in %s (%s): %w", ns, clientConfigSelector, err)
	}
	name := clientConfigMapName(release)
	cm, err := c.GetConfigMap(ctx, ns, name)
	switch {
	case apierrors.IsNotFound(err):
		hint := fmt.Sprintf("is crashdump installed in namespace %q? (--agent-namespace)", ns)
		if release != "" {
			hint = fmt.Sprintf("is crashdump installed as release %q in namespace %q? (--release, --agent-namespace)", release, ns)
		}
		if len(others) > 0 {
			hint += "; client ConfigMaps there: " + strings.Join(others, ", ")
		}
		return nil, fmt.Errorf("ConfigMap %s/%s not found: %s: %w", ns, name, hint, err)
	case apierrors.IsForbidden(err) || apierrors.IsUnauthorized(err):
		return nil, fmt.Errorf("not allowed to read ConfigMap %s/%s (get on it, or list ConfigMaps in %s): %w", ns, name, ns, err)
	case err != nil:
		return nil, fmt.Errorf("get ConfigMap %s/%s: %w", ns, name, err)
	}
	return cm, nil
}

func describeClientConfigMap(cm *corev1.ConfigMap) string {
	return fmt.Sprintf("%s (release %s)", cm.Name, cm.Labels[instanceLabel])
}
