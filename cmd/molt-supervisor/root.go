package main

import (
	"github.com/spf13/cobra"

	"github.com/moltfleet/molt/internal/cli"
)

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "molt-supervisor",
		Short: "Run and watch the molt agent as an OS service",
		Long: `molt-supervisor is the OS service of a molt agent home. It starts the agent
named by state/active.json, restarts it by its exit code, watches a freshly
upgraded agent and rolls a bad version back, then upgrades its own binary.`,
	}
	root.AddCommand(cli.NewVersionCommand("molt-supervisor"))
	root.AddCommand(newRunCmd(), newSelftestCmd())
	root.AddCommand(newServiceCmds(newPlatformService)...)
	return root
}
