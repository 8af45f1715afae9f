package main

// Shell completion: namespaces, pods, containers and dump IDs come from the
// store itself (delimiter listings of the key layout), so they complete what
// has dumps, not what the cluster happens to run now.

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/crashdump-io/crashdump/uploader/catalog"
)

const (
	// completionTimeout bounds a completion request: a slow store must not
	// freeze the user's shell.
	completionTimeout = 5 * time.Second
	// maxIDCompletions bounds the IDs offered (the newest).
	maxIDCompletions = 100
)

// registerCompletions wires completion for the retrieval flags o registered
// on cmd, and for the ID argument of describe and get.
func registerCompletions(cmd *cobra.Command, o *clientOptions) {
	noFiles := cobra.ShellCompDirectiveNoFileComp
	_ = cmd.RegisterFlagCompletionFunc("namespace", func(cmd *cobra.Command, _ []string, toComplete string) ([]string, cobra.ShellCompDirective) {
		return completeWith(cmd, o, func(ctx context.Context, s *session) ([]string, error) {
			return s.cat.Namespaces(ctx)
		}, toComplete)
	})
	if cmd.Flags().Lookup("pod") != nil {
		_ = cmd.RegisterFlagCompletionFunc("pod", func(cmd *cobra.Command, _ []string, toComplete string) ([]string, cobra.ShellCompDirective) {
			return completeWith(cmd, o, func(ctx context.Context, s *session) ([]string, error) {
				return completePods(ctx, o, s)
			}, toComplete)
		})
	}
	if cmd.Flags().Lookup("container") != nil {
		_ = cmd.RegisterFlagCompletionFunc("container", func(cmd *cobra.Command, _ []string, toComplete string) ([]string, cobra.ShellCompDirective) {
			return completeWith(cmd, o, func(ctx context.Context, s *session) ([]string, error) {
				ds, err := s.cat.Find(ctx, completionScope(cmd, o))
				if err != nil {
					return nil, err
				}
				seen := map[string]bool{}
				var out []string
				for _, d := range ds {
					if !seen[d.Container] {
						seen[d.Container] = true
						out = append(out, d.Container)
					}
				}
				sort.Strings(out)
				return out, nil
			}, toComplete)
		})
	}
	if cmd.Flags().Lookup("node") != nil {
		_ = cmd.RegisterFlagCompletionFunc("node", func(cmd *cobra.Command, _ []string, toComplete string) ([]string, cobra.ShellCompDirective) {
			return completeWith(cmd, o, func(ctx context.Context, s *session) ([]string, error) {
				return completeNodes(ctx, s, completionScope(cmd, o))
			}, toComplete)
		})
	}
	switch cmd.Name() {
	case "ls":
		_ = cmd.RegisterFlagCompletionFunc("output", cobra.FixedCompletions([]string{"table", "wide", "json", "yaml", "name"}, noFiles))
	case "describe":
		_ = cmd.RegisterFlagCompletionFunc("output", cobra.FixedCompletions([]string{"text", "json", "yaml"}, noFiles))
	case "get":
		_ = cmd.RegisterFlagCompletionFunc("progress", cobra.FixedCompletions([]string{"auto", "always", "never"}, noFiles))
	}
	if cmd.Name() == "describe" || cmd.Name() == "get" {
		cmd.ValidArgsFunction = func(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
			if len(args) > 0 {
				return nil, noFiles
			}
			return completeWith(cmd, o, func(ctx context.Context, s *session) ([]string, error) {
				return completeIDs(ctx, cmd, o, s, toComplete)
			}, "")
		}
	}
}

// completeWith opens the store (flags, environment, ConfigMap, as the
// command itself would) and returns the candidates that start with
// toComplete. Completion never reports errors into the shell: no candidates.
func completeWith(cmd *cobra.Command, o *clientOptions, list func(context.Context, *session) ([]string, error), toComplete string) ([]string, cobra.ShellCompDirective) {
	// Completion requests skip the root's PersistentPreRunE: apply the
	// CRASHDUMP_ environment here.
	if err := bindEnv(cmd.Flags()); err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	ctx, cancel := context.WithTimeout(context.Background(), completionTimeout)
	defer cancel()
	s, err := o.open(ctx)
	if err != nil {
		cobra.CompDebugln("crashdump completion: "+err.Error(), true)
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	defer s.close()
	all, err := list(ctx, s)
	if err != nil {
		cobra.CompDebugln("crashdump completion: "+err.Error(), true)
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	var out []string
	for _, c := range all {
		if strings.HasPrefix(c, toComplete) {
			out = append(out, c)
		}
	}
	return out, cobra.ShellCompDirectiveNoFileComp
}

// completionNamespace is the namespace completion looks in: -n, else (as
// the plugin) the context's, else none (all).
func completionNamespace(o *clientOptions) string {
	if ns := o.explicitNamespace(); ns != "" {
		return ns
	}
	if o.mode.plugin {
		if ns, _, err := o.kube.clientConfig().Namespace(); err == nil {
			return ns
		}
	}
	return ""
}

func completionScope(cmd *cobra.Command, o *clientOptions) catalog.Query {
	q := catalog.Query{Namespace: completionNamespace(o)}
	if all, err := cmd.Flags().GetBool("all-namespaces"); err == nil && all {
		q.Namespace = ""
	}
	if pod, err := cmd.Flags().GetString("pod"); err == nil {
		q.Pod = pod
	}
	return q
}

// completePods lists the pods with dumps in the namespace in scope; with
// all namespaces in scope, those of every namespace.
func completePods(ctx context.Context, o *clientOptions, s *session) ([]string, error) {
	nss := []string{completionNamespace(o)}
	if nss[0] == "" {
		var err error
		if nss, err = s.cat.Namespaces(ctx); err != nil {
			return nil, err
		}
	}
	seen := map[string]bool{}
	var out []string
	for _, ns := range nss {
		pods, err := s.cat.Pods(ctx, ns)
		if err != nil {
			return nil, err
		}
		for _, p := range pods {
			if !seen[p] {
				seen[p] = true
				out = append(out, p)
			}
		}
	}
	sort.Strings(out)
	return out, nil
}

// maxNodeManifests bounds the manifests node completion reads: the node is
// in the manifest, not the key, and completion must answer within
// completionTimeout.
const maxNodeManifests = 200

// completeNodes lists the nodes of the newest dumps in scope.
func completeNodes(ctx context.Context, s *session, q catalog.Query) ([]string, error) {
	ds, err := s.cat.Find(ctx, q)
	if err != nil {
		return nil, err
	}
	sort.Slice(ds, func(i, j int) bool { return ds[i].Time.After(ds[j].Time) })
	if len(ds) > maxNodeManifests {
		ds = ds[:maxNodeManifests]
	}
	if err := s.cat.ReadManifests(ctx, ds); err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	var out []string
	for _, d := range ds {
		if m := d.Manifest; m != nil && m.Node != "" && !seen[m.Node] {
			seen[m.Node] = true
			out = append(out, m.Node)
		}
	}
	sort.Strings(out)
	return out, nil
}

// completeIDs offers the short IDs of the newest dumps in scope, described
// by pod, container and time so the shell can show them.
func completeIDs(ctx context.Context, cmd *cobra.Command, o *clientOptions, s *session, toComplete string) ([]string, error) {
	q := catalog.Query{Namespace: o.explicitNamespace()}
	if pod, err := cmd.Flags().GetString("pod"); err == nil {
		q.Pod = pod
	}
	ds, err := s.cat.Find(ctx, q)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, d := range ds {
		if len(out) == maxIDCompletions {
			break
		}
		if strings.HasPrefix(d.ShortID, strings.ToLower(toComplete)) {
			out = append(out, fmt.Sprintf("%s\t%s/%s %s %s %s", d.ShortID, d.Namespace, d.Pod, d.Container,
				d.Time.UTC().Format(tableTime), d.FileName))
		}
	}
	return out, nil
}

func newCompletionCmd(mode cliMode) *cobra.Command {
	long := `Print the shell completion script for ` + mode.name + `. It completes
subcommands and flags, and from the store: namespaces (-n), pods (--pod),
containers (--container) and dump IDs (describe, get).`
	if mode.plugin {
		long += `

kubectl completes its plugins by running kubectl_complete-crashdump from the
PATH (kubectl 1.26 and later): make install and the krew plugin create it
as a link to this binary. Nothing else is needed for ` + "`kubectl crashdump <TAB>`" + `.`
	}
	return &cobra.Command{
		Use:   "completion bash|zsh|fish|powershell",
		Short: "Print the shell completion script",
		Long:  long,
		Example: examples(mode, `
  # bash (needs the bash-completion package)
  source <({{name}} completion bash)
  {{name}} completion bash > /etc/bash_completion.d/crashdump

  # zsh
  {{name}} completion zsh > "${fpath[1]}/_crashdump"

  # fish
  {{name}} completion fish > ~/.config/fish/completions/crashdump.fish

  # kubectl crashdump <TAB>: a kubectl_complete-crashdump link on the PATH
  ln -s "$(command -v crashdump)" /usr/local/bin/kubectl_complete-crashdump`),
		ValidArgs:             []string{"bash", "zsh", "fish", "powershell"},
		Args:                  cobra.MatchAll(cobra.ExactArgs(1), cobra.OnlyValidArgs),
		DisableFlagsInUseLine: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			root, out := cmd.Root(), cmd.OutOrStdout()
			switch args[0] {
			case "bash":
				return root.GenBashCompletionV2(out, true)
			case "zsh":
				return root.GenZshCompletion(out)
			case "fish":
				return root.GenFishCompletion(out, true)
			}
			return root.GenPowerShellCompletionWithDesc(out)
		},
	}
}
