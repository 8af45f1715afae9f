// Command crashdump is crashdump's one binary: the node agent
// (`crashdump agent`, run as a DaemonSet) and the SRE's retrieval commands.
// This package only wires flags, logging, metrics and signals to the
// collector and uploader packages.
package main

import (
	"errors"
	"fmt"
	"os"
)

// version and commit are stamped at build time: -ldflags "-X
// main.version=v1.2.3 -X main.commit=<sha>" (make: the tag, else
// v0.0.0-dev+<commit>; the full commit). The commit is stamped rather than
// read from the Go build info because -buildvcs=false (in GOFLAGS on some
// machines, ours included) or a build without .git (docker) leaves none.
var (
	version = "v0.0.0-dev"
	commit  = ""
)

func main() { os.Exit(run()) }

func run() int {
	root := newRootCmd()
	if err := root.Execute(); err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", root.Name(), explainError(err))
		var ec exitCoder
		if errors.As(err, &ec) {
			return ec.ExitCode()
		}
		return 1
	}
	return 0
}

// exitCoder lets a command choose its exit status.
type exitCoder interface{ ExitCode() int }
