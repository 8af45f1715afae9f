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
	// the CLI where the dumps are. The Helm chart creates it; its data keys
	// are the flag names: store, s3-endpoint, s3-region.
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

// readClientConfigMap reads the data of the crashdump-client ConfigMap in
// --agent-namespace, with the kubeconfig and context of the kubectl flags.
func (o *clientOptions) readClientConfigMap(ctx context.Context) (map[string]string, error) {
	// Without any kubeconfig client-go would try http://localhost:8080;
	// say what is missing instead (unless running in a pod, where the
	// in-cluster configuration applies).
	loader := o.kube.clientConfig()
	if raw, err := loader.RawConfig(); err == nil && len(raw.Clusters) == 0 &&
		o.kube.server() == "" && os.Getenv("KUBERNETES_SERVICE_HOST") == "" {
		return nil, errors.New("no kubeconfig found (KUBECONFIG, ~/.kube/config or --kubeconfig) to reach the cluster")
	}
	cfg, err := loader.ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("kubeconfig: %w", err)
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = configMapTimeout
	}
	cfg.UserAgent = "crashdump-cli/" + version
	client, err := kubeapi.New(cfg)
	if err != nil {
		return nil, fmt.Errorf("kubernetes client: %w", err)
	}
	cm, err := client.GetConfigMap(ctx, o.agentNamespace, clientConfigMap)
	switch {
	case apierrors.IsNotFound(err):
		return nil, fmt.Errorf("ConfigMap %s/%s not found on %s: is crashdump installed in namespace %q? (--agent-namespace): %w",
			o.agentNamespace, clientConfigMap, cfg.Host, o.agentNamespace, err)
	case apierrors.IsForbidden(err) || apierrors.IsUnauthorized(err):
		return nil, fmt.Errorf("not allowed to read ConfigMap %s/%s on %s (the chart's crashdump-client Role grants get on it): %w",
			o.agentNamespace, clientConfigMap, cfg.Host, err)
	case err != nil:
		return nil, fmt.Errorf("get ConfigMap %s/%s from %s: %w", o.agentNamespace, clientConfigMap, cfg.Host, err)
	}
	return cm.Data, nil
}
