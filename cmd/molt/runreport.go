package main

import (
	"fmt"
	"time"

	"github.com/moltfleet/molt/internal/cli"
	"github.com/spf13/cobra"
)

func newRunsReportCmd(cf *connFlags) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "report ID",
		Short: "The run report: every deployment of the run and how it ended",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := cf.client()
			if err != nil {
				return err
			}
			rep, err := c.RunReport(cmd.Context(), args[0])
			if err != nil {
				return apiErr(err)
			}
			if asJSON {
				rep.Deployments = nonNil(rep.Deployments)
				return cli.PrintJSON(cmd.OutOrStdout(), rep)
			}
			now := time.Now()
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "Run %s: %s, target %s, %d deployment(s)\n", rep.Run.ID, rep.Run.Status, fmtTarget(rep.Run), len(rep.Deployments))
			if rep.Run.Text != "" {
				fmt.Fprintf(w, "  %s\n", oneLineText(rep.Run.Text, 200))
			}
			fmt.Fprintln(w)
			return printDeployments(w, rep.Deployments, now, false)
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print as JSON")
	return cmd
}
