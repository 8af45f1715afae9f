package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"
)

// addRetrievalCommands adds the SRE's commands (ls, describe, get,
// completion) and, when the binary runs as kubectl-crashdump, turns the
// root into the kubectl plugin.
func addRetrievalCommands(root *cobra.Command) {
	addRetrievalCommandsAs(root, os.Args[0], os.Args[1:])
}

// addRetrievalCommandsAs is addRetrievalCommands for an explicit argv, so
// tests can run the plugin face in-process.
func addRetrievalCommandsAs(root *cobra.Command, argv0 string, args []string) {
	mode := modeFor(argv0)
	if mode.plugin {
		if root.Annotations == nil {
			root.Annotations = map[string]string{}
		}
		root.Annotations[cobra.CommandDisplayNameAnnotation] = mode.name
		// The program's own name, which main puts before errors.
		root.Use = pluginBinary
		root.Short = "Find, inspect and fetch the crash dumps of your pods"
		root.Long = `kubectl crashdump finds, describes and downloads the crash dumps that the
crashdump agent collected from your nodes into S3 or MinIO, attributed to the
pod and container that crashed.

The namespace and the cluster come from your kubeconfig (-n, --context,
--kubeconfig), as with every kubectl command. The store comes from --store,
CRASHDUMP_STORE, or the ConfigMap crashdump-client that the agent's Helm
chart creates in its namespace (--agent-namespace, default crashdump); S3
credentials come from the AWS SDK default chain (environment, profile, SSO).`
		for _, c := range root.Commands() {
			if c.Name() == "agent" {
				// The node agent runs as a DaemonSet, never as a
				// kubectl plugin.
				c.Hidden = true
			}
		}
	}
	if mode.completer {
		// kubectl runs kubectl_complete-crashdump with the words to
		// complete: that is cobra's __complete request.
		root.SetArgs(append([]string{cobra.ShellCompRequestCmd}, args...))
	}
	root.Example = examples(mode, `
  # The newest dumps in a namespace, and where they came from
  {{name}} ls -n prod
  {{name}} ls -A --since 24h

  # Everything about one dump: pod, image, exception, crashed thread
  {{name}} describe 3f2a9c1e

  # Download, decompress and verify it, then open it
  {{name}} get 3f2a9c1e`)
	root.AddCommand(newLsCmd(mode), newDescribeCmd(mode), newGetCmd(mode), newCompletionCmd(mode))
	for _, c := range root.Commands() {
		if c.Name() == "version" && c.Example == "" {
			c.Example = examples(mode, `  {{name}} version`)
		}
	}
}

// examples renders an Example text with the command name as the user
// types it ("crashdump" or "kubectl crashdump").
// oneDump is the argument check of commands that take one dump: its errors
// say what is wanted and where to find it, not "accepts 1 arg(s), received
// 0".
func oneDump(mode cliMode, verb string) cobra.PositionalArgs {
	return func(_ *cobra.Command, args []string) error {
		switch {
		case len(args) == 0:
			return fmt.Errorf("%s needs one dump ID, key or URL (see `%s ls`)", verb, mode.name)
		case len(args) > 1:
			return fmt.Errorf("%s takes one dump ID, key or URL, got %d: %s (run it once per dump)", verb, len(args), strings.Join(args, " "))
		}
		return nil
	}
}

func examples(mode cliMode, text string) string {
	return strings.Trim(strings.ReplaceAll(text, "{{name}}", mode.name), "\n")
}
