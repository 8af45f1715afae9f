package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/crashdump-io/crashdump/uploader/s3store"
)

// envPrefix: every flag but -o and --force (noEnv) has an environment
// variable CRASHDUMP_<FLAG_NAME>.
const envPrefix = "CRASHDUMP_"

// envName is the environment variable of a flag: --dump-dir ↔ CRASHDUMP_DUMP_DIR.
func envName(flag string) string {
	return envPrefix + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

// noEnv are flags no environment variable sets: what one command does
// with its output is chosen on its command line, as kubectl does.
// CRASHDUMP_OUTPUT was a format for ls and a path for get (`get` saved the
// dump as a file named "json"), and an exported CRASHDUMP_FORCE would
// overwrite files long after it was set.
var noEnv = map[string]bool{"output": true, "force": true}

// envCell is the environment variable of a flag as configuration.md shows
// it: "—" when there is none.
func envCell(flag string) string {
	if noEnv[flag] {
		return "—"
	}
	return "`" + envName(flag) + "`"
}

// explainError shortens an error chain whose cause says it all: the AWS
// SDK's "get identity: get credentials: failed to refresh cached
// credentials, no EC2 IMDS role found, …" becomes what was tried and what
// to set.
func explainError(err error) error {
	var nc *s3store.NoCredentialsError
	if errors.As(err, &nc) {
		return nc
	}
	return err
}

// bindEnv sets every flag not given on the command line from its
// environment variable: flags win over the environment.
func bindEnv(fs *pflag.FlagSet) error {
	var err error
	fs.VisitAll(func(f *pflag.Flag) {
		if f.Changed || err != nil || noEnv[f.Name] {
			return
		}
		if v, ok := os.LookupEnv(envName(f.Name)); ok {
			if serr := fs.Set(f.Name, v); serr != nil {
				err = fmt.Errorf("environment %s=%q: %w", envName(f.Name), v, serr)
			}
		}
	})
	return err
}

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "crashdump",
		Short: "Crash dumps off Kubernetes nodes and into S3, attributed to the pod that crashed",
		Long: `crashdump collects crash dumps (.NET createdump, ELF cores, JVM heap dumps,
Node.js heap snapshots) written on a Kubernetes node, uploads them to S3 or
MinIO attributed to the pod and container that crashed, and removes them
from the node. The same binary finds and fetches them for you.

Every flag but -o and --force can also be set through the environment:
CRASHDUMP_ and the flag name in upper snake case (--dump-dir is
CRASHDUMP_DUMP_DIR). Flags win.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			return bindEnv(cmd.Flags())
		},
	}
	root.Version = currentBuild().String()
	root.SetVersionTemplate("{{.Version}}\n")
	root.AddCommand(newAgentCmd(), newVersionCmd(), newCoreHandlerCmd())
	root.AddCommand(newGenDocsCmd()) // hidden: writes docs/configuration.md (make docs)
	addRetrievalCommands(root)
	return root
}

// buildInfo is what `version` prints.
type buildInfo struct {
	Version  string `json:"version"` // semver: v1.2.3, or v0.0.0-dev+<commit> between releases
	Commit   string `json:"commit"`
	Go       string `json:"go"`
	Platform string `json:"platform"`
}

func currentBuild() buildInfo {
	b := buildInfo{Version: version, Commit: "unknown", Go: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH}
	if commit != "" {
		b.Commit = commit
	} else if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" && s.Value != "" {
				b.Commit = s.Value
			}
		}
	}
	return b
}

func (b buildInfo) String() string {
	return fmt.Sprintf("crashdump %s (commit %s, %s, %s)", b.Version, b.Commit, b.Go, b.Platform)
}

func newVersionCmd() *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print the version, commit, Go version and platform",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			b := currentBuild()
			switch output {
			case "text":
				_, err := fmt.Fprintln(cmd.OutOrStdout(), b)
				return err
			case "json":
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(b)
			}
			return fmt.Errorf("-o %q: want text or json", output)
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "text", "output format: text or json")
	return cmd
}
