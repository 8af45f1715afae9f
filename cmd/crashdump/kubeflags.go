package main

// kubectl's connection flags for the retrieval commands, on clientcmd
// directly: cli-runtime's genericclioptions would do the same, but it links
// client-go's clientset scheme (every built-in API group, registered at
// start-up), which the agent in the same binary would pay for in memory on
// every node.

import (
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/pflag"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"k8s.io/client-go/util/homedir"
)

// kubeFlags hold --kubeconfig, --context, -n/--namespace and the rest of
// kubectl's connection flags, with kubectl's names, shorthands and help
// texts. One value per command; not safe for concurrent use.
type kubeFlags struct {
	kubeconfig string
	// cacheDir is accepted as kubectl accepts it; nothing is cached (no
	// discovery is done).
	cacheDir  string
	userExtra []string
	overrides clientcmd.ConfigOverrides
}

// addFlags registers the flags on fs.
func (k *kubeFlags) addFlags(fs *pflag.FlagSet) {
	fs.StringVar(&k.kubeconfig, "kubeconfig", "", "Path to the kubeconfig file to use for CLI requests.")
	fs.StringVar(&k.cacheDir, "cache-dir", defaultCacheDir(), "Default cache directory")
	names := clientcmd.RecommendedConfigOverrideFlags("")
	// kubectl has no basic-auth flags (the API server dropped basic auth).
	names.AuthOverrideFlags.Username.LongName = ""
	names.AuthOverrideFlags.Password.LongName = ""
	// kubectl's own wording and the -s shorthand, which kubectl has and
	// clientcmd's recommendation does not.
	names.AuthOverrideFlags.Impersonate.Description = "Username to impersonate for the operation. User could be a regular user or a service account in a namespace."
	names.AuthOverrideFlags.ImpersonateUID.Description = "UID to impersonate for the operation."
	names.ClusterOverrideFlags.APIServer.ShortName = "s"
	names.ClusterOverrideFlags.TLSServerName.Description = "Server name to use for server certificate validation. If it is not provided, the hostname used to contact the server is used"
	names.ClusterOverrideFlags.ProxyURL.Description = "Proxy URL to use for requests to the API server"
	clientcmd.BindOverrideFlags(&k.overrides, fs, names)
	fs.StringArrayVar(&k.userExtra, "as-user-extra", nil, "User extras to impersonate for the operation, this flag can be repeated to specify multiple values for the same key.")
}

// namespace is the -n value ("" when not given).
func (k *kubeFlags) namespace() string { return k.overrides.Context.Namespace }

// server is the --server value ("" when not given).
func (k *kubeFlags) server() string { return k.overrides.ClusterInfo.Server }

// clientConfig is the kubeconfig as kubectl loads it: --kubeconfig, else
// KUBECONFIG, else ~/.kube/config, with the flags as overrides, and the
// in-cluster service account when nothing else names a cluster.
func (k *kubeFlags) clientConfig() clientcmd.ClientConfig {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	// As kubectl: a config that only has the defaults (localhost:8080) is
	// replaced by the in-cluster one when running in a pod.
	rules.DefaultClientConfig = &clientcmd.DefaultClientConfig
	rules.ExplicitPath = k.kubeconfig
	overrides := k.overrides
	overrides.ClusterDefaults = clientcmd.ClusterDefaults
	if len(k.userExtra) > 0 {
		extra := map[string][]string{}
		for _, kv := range k.userExtra {
			if key, v, ok := strings.Cut(kv, "="); ok {
				extra[key] = append(extra[key], v)
			}
		}
		overrides.AuthInfo.ImpersonateUserExtra = extra
	}
	return emptyConfigHint{cc: clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &overrides)}
}

// defaultCacheDir is kubectl's: $KUBECACHEDIR, else ~/.kube/cache.
func defaultCacheDir() string {
	if d := os.Getenv("KUBECACHEDIR"); d != "" {
		return d
	}
	return filepath.Join(homedir.HomeDir(), ".kube", "cache")
}

// errEmptyConfig is kubectl's message for a missing kubeconfig.
var errEmptyConfig = clientcmd.NewEmptyConfigError(`Missing or incomplete configuration info.  Please point to an existing, complete config file:


  1. Via the command-line flag --kubeconfig
  2. Via the KUBECONFIG environment variable
  3. In your home directory as ~/.kube/config

To view or setup config directly use the 'config' command.`)

// emptyConfigHint says where a kubeconfig is looked for when there is none,
// as kubectl does, instead of clientcmd's terse "invalid configuration".
type emptyConfigHint struct{ cc clientcmd.ClientConfig }

func hint(err error) error {
	if clientcmd.IsEmptyConfig(err) {
		return errEmptyConfig
	}
	return err
}

func (c emptyConfigHint) RawConfig() (clientcmdapi.Config, error) {
	cfg, err := c.cc.RawConfig()
	return cfg, hint(err)
}

func (c emptyConfigHint) ClientConfig() (*rest.Config, error) {
	cfg, err := c.cc.ClientConfig()
	return cfg, hint(err)
}

func (c emptyConfigHint) Namespace() (string, bool, error) {
	ns, overridden, err := c.cc.Namespace()
	return ns, overridden, hint(err)
}

func (c emptyConfigHint) ConfigAccess() clientcmd.ConfigAccess { return c.cc.ConfigAccess() }
