package main

import (
	"github.com/spf13/cobra"

	"github.com/moltfleet/molt/internal/cli"
)

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "molt",
		Short: "Centralized, safe upgrades for fleets of host agents",
	}
	root.AddCommand(cli.NewVersionCommand("molt"))
	root.AddCommand(newServeCmd())
	root.AddCommand(newPackCmd())
	root.AddCommand(newTokenCmd(), newEnrollTokenCmd(), newAgentsCmd(), newReleaseCmd(), newSettingsCmd(), newUpgradeCmd(), newRunsCmd(), newDeploymentsCmd(), newHistoryCmd(), newEventsCmd())
	root.AddCommand(newConsoleCmd())
	root.AddCommand(newAdminCmd())
	root.AddCommand(newDemoCmd())
	return root
}
