package main

import (
	"github.com/spf13/cobra"

	"github.com/moltfleet/molt/internal/cli"
)

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "molt-agent",
		Short: "The molt agent daemon",
	}
	root.AddCommand(cli.NewVersionCommand("molt-agent"))
	root.AddCommand(newRunCmd(), newHoldCmd(), newReleaseCmd(), newResetIdentityCmd(), newStatusCmd(), newInstallCmd(), newUninstallCmd(), newUpgradeCmd())
	return root
}
