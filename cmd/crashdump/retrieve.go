package main

import "github.com/spf13/cobra"

// addRetrievalCommands adds the SRE's commands (ls, describe, get).
func addRetrievalCommands(_ *cobra.Command) {}
