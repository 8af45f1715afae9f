package main

// The retrieval commands' shared settings: which store to read (flags,
// environment, or the cluster's crashdump-client ConfigMap), which
// namespace to look in (flags, or the kubeconfig context for the kubectl
// plugin), and opening the store as a catalog.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/crashdump-io/crashdump/uploader/catalog"
	"github.com/crashdump-io/crashdump/uploader/s3store"
	"github.com/crashdump-io/crashdump/uploader/stores"
)

// clientOptions are the flags every retrieval command shares. One value per
// command; not safe for concurrent use (a command runs once).
type clientOptions struct {
	mode cliMode

	store          string
	s3Endpoint     string
	s3Region       string
	agentNamespace string
	release        string
	verbose        bool

	// kube holds the kubectl connection flags (--kubeconfig, --context,
	// -n/--namespace and the rarely needed rest, hidden from help).
	kube *kubeFlags
	// flags is the command's flag set, to tell given flags from defaults.
	flags *pflag.FlagSet
}

// visibleKubeFlag reports the kubectl flags shown in help; the others
// (--token, --as, --server, ...) work as in kubectl but stay out of the way.
func visibleKubeFlag(name string) bool {
	return name == "namespace" || name == "context" || name == "kubeconfig"
}

func newClientOptions(mode cliMode, cmd *cobra.Command, nsUsage string) *clientOptions {
	o := &clientOptions{mode: mode, kube: &kubeFlags{}, flags: cmd.Flags()}
	fs := cmd.Flags()
	fs.StringVar(&o.store, "store", "", "where dumps are: s3://bucket/prefix or file:///path (default: the "+clientConfigMap+" ConfigMap of the cluster)")
	fs.StringVar(&o.s3Endpoint, "s3-endpoint", "", "custom S3 endpoint such as MinIO (implies path-style addressing); empty for AWS")
	fs.StringVar(&o.s3Region, "s3-region", "", "S3 region (default: from the AWS config, else us-east-1)")
	fs.StringVar(&o.agentNamespace, "agent-namespace", "crashdump", "namespace of the crashdump agent, whose "+clientConfigMap+" ConfigMap names the store")
	fs.StringVar(&o.release, "release", "", "Helm release of the agent whose client ConfigMap to read, when several share --agent-namespace (default: the only one)")
	fs.BoolVarP(&o.verbose, "verbose", "v", false, "print where the store setting came from and how many requests and manifests were needed")
	kfs := pflag.NewFlagSet("kube", pflag.ContinueOnError)
	o.kube.addFlags(kfs)
	kfs.VisitAll(func(f *pflag.Flag) {
		if f.Name == "namespace" {
			f.Usage = nsUsage
		}
		f.Hidden = !visibleKubeFlag(f.Name)
		fs.AddFlag(f)
	})
	return o
}

// changed reports whether a flag was given, on the command line or through
// its CRASHDUMP_ environment variable (bindEnv marks those as changed).
func (o *clientOptions) changed(name string) bool {
	f := o.flags.Lookup(name)
	return f != nil && f.Changed
}

// explicitNamespace is -n when given, else "".
func (o *clientOptions) explicitNamespace() string {
	if o.changed("namespace") {
		return o.kube.namespace()
	}
	return ""
}

// listNamespace decides which namespace ls looks in:
//   - -A: all namespaces (an error together with -n);
//   - -n NS: NS;
//   - as the kubectl plugin: the kubeconfig context's namespace, as every
//     kubectl command does;
//   - as crashdump: all namespaces. The standalone binary is also used
//     where there is no kubeconfig (on a node, with a file:// store, in CI
//     with only S3 credentials), and a default that depends on a file it
//     otherwise does not need would surprise.
func (o *clientOptions) listNamespace(all bool) (ns string, allNamespaces bool, err error) {
	explicit := o.explicitNamespace()
	switch {
	case all && explicit != "":
		return "", false, errors.New("-A/--all-namespaces and -n/--namespace cannot be used together")
	case all:
		return "", true, nil
	case explicit != "":
		return explicit, false, nil
	case o.mode.plugin:
		ns, _, err := o.kube.clientConfig().Namespace()
		if err != nil {
			return "", false, fmt.Errorf("namespace of the kubeconfig context: %w (pass -n NAMESPACE or -A)", err)
		}
		return ns, false, nil
	}
	return "", true, nil
}

// session is an opened store.
type session struct {
	cat    *catalog.Catalog
	loc    stores.Location
	url    string
	source string // where the store setting came from
	close  func()
	start  time.Time
}

// storeSettings resolves --store, --s3-endpoint and --s3-region: flags and
// environment win; without a store, the cluster's ConfigMap supplies all
// three, except those given individually (an SRE on a laptop reaches an
// in-cluster MinIO through a port-forward: --s3-endpoint
// http://127.0.0.1:9000 overrides the ConfigMap's in-cluster endpoint).
func (o *clientOptions) storeSettings(ctx context.Context) (source string, err error) {
	if o.changed("store") && o.store != "" {
		return "--store / " + envName("store"), nil
	}
	cm, name, err := o.readClientConfigMap(ctx)
	if err != nil {
		return "", fmt.Errorf("no store configured: pass --store s3://bucket/prefix (or file:///path), "+
			"set %s, or install crashdump in the cluster so that ConfigMap %s/%s (or the one of --release) names it "+
			"(--agent-namespace, --release, --context); reading that ConfigMap: %w",
			envName("store"), o.agentNamespace, clientConfigMapName(o.release), err)
	}
	o.store = cm["store"]
	if o.store == "" {
		return "", fmt.Errorf("ConfigMap %s has no %q key: pass --store", name, "store")
	}
	if !o.changed("s3-endpoint") {
		o.s3Endpoint = cm["s3-endpoint"]
	}
	if !o.changed("s3-region") {
		o.s3Region = cm["s3-region"]
	}
	return "ConfigMap " + name, nil
}

// open resolves the store settings and opens the store as a catalog.
func (o *clientOptions) open(ctx context.Context) (*session, error) {
	start := time.Now()
	source, err := o.storeSettings(ctx)
	if err != nil {
		return nil, err
	}
	loc, err := stores.Parse(o.store)
	if err != nil {
		return nil, err
	}
	if loc.Scheme == "file" {
		// stores.Open creates a missing directory (the agent's need); a
		// reader must not, and a typo deserves an error.
		if st, err := os.Stat(loc.Dir); err != nil || !st.IsDir() {
			return nil, fmt.Errorf("store %s: directory %s does not exist or is not a directory", o.store, loc.Dir)
		}
	}
	log := slog.New(slog.DiscardHandler)
	opened, err := stores.Open(ctx, o.store, s3store.Config{
		Endpoint: o.s3Endpoint, Region: o.s3Region,
		// Concurrency sizes the idle connection pool: one per manifest
		// read in flight, so they are reused rather than re-dialled.
		Concurrency: catalog.DefaultConcurrency,
		MaxAttempts: 3, MaxBackoff: 2 * time.Second,
		UserAgent: "crashdump-cli/" + version,
	}, log)
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w", o.store, err)
	}
	s := &session{loc: loc, url: o.store, source: source, close: func() {}, start: start}
	opts := catalog.Options{Prefix: loc.Prefix}
	switch {
	case opened.S3 != nil:
		opts.Bucket = loc.Bucket
		s.cat = catalog.New(opened.S3, opts)
	case opened.File != nil:
		opts.Dir = opened.File.Dir()
		s.cat = catalog.New(opened.File, opts)
		s.close = func() { opened.File.Close() }
	default:
		return nil, fmt.Errorf("open store %s: no reader for this kind of store", o.store)
	}
	return s, nil
}

// report prints the --verbose summary: where the store came from and what
// the command cost. The benchmark reads the "manifests read" count.
func (o *clientOptions) report(w io.Writer, s *session) {
	if !o.verbose || s == nil {
		return
	}
	st := s.cat.Stats()
	fmt.Fprintf(w, "store %s (from %s)", s.url, s.source)
	if o.s3Endpoint != "" {
		fmt.Fprintf(w, ", endpoint %s", o.s3Endpoint)
	}
	fmt.Fprintf(w, "\n%d list request(s), %d keys listed, %d skipped (not in the default key layout), %d manifests read, %s\n",
		st.ListRequests, st.KeysListed, st.KeysSkipped, st.ManifestsRead, time.Since(s.start).Round(time.Millisecond))
}

// objectURL addresses a key for people, as the agent's manifests do.
func (s *session) objectURL(key string) string {
	if s.loc.Scheme == "s3" {
		return "s3://" + s.loc.Bucket + "/" + key
	}
	return "file://" + path.Join(s.loc.Dir, key)
}

// parseTimeFlag parses --since/--until: a duration back from now ("2h",
// "90m", "3d" for days), an RFC 3339 time, or a UTC date or date-time.
func parseTimeFlag(s string, now time.Time) (time.Time, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return time.Time{}, nil
	}
	if days, ok := strings.CutSuffix(s, "d"); ok {
		var n int
		if _, err := fmt.Sscanf(days, "%d", &n); err == nil && fmt.Sprint(n) == days && n >= 0 {
			return now.Add(-time.Duration(n) * 24 * time.Hour), nil
		}
	}
	if d, err := time.ParseDuration(s); err == nil {
		if d < 0 {
			// -5m could mean "5 minutes ago" or "in 5 minutes": refuse
			// rather than guess.
			return time.Time{}, fmt.Errorf("bad time %q: a duration counts back from now and is positive (%s means %s ago)", s, strings.TrimPrefix(s, "-"), strings.TrimPrefix(s, "-"))
		}
		return now.Add(-d), nil
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02 15:04:05", "2006-01-02T15:04", "2006-01-02"} {
		if t, err := time.ParseInLocation(layout, s, time.UTC); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("bad time %q: want a duration back from now (30m, 2h, 7d) or a time (2026-01-02T15:04:05Z, 2026-01-02)", s)
}

// humanBytes renders a size in IEC units ("-" for unknown).
func humanBytes(n int64) string {
	if n < 0 {
		return "-"
	}
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%dB", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	v := float64(n) / float64(div)
	if v >= 100 {
		return fmt.Sprintf("%.0f%ciB", v, "KMGTPE"[exp])
	}
	return fmt.Sprintf("%.1f%ciB", v, "KMGTPE"[exp])
}

// commandContext is the command's context, ended by SIGINT/SIGTERM so an
// interrupted get removes its partial file instead of dying mid-write.
func commandContext(cmd *cobra.Command) (context.Context, context.CancelFunc) {
	ctx := cmd.Context()
	if ctx == nil {
		ctx = context.Background()
	}
	return signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
}
