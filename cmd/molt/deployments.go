package main

import (
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/moltfleet/molt/internal/cli"
	"github.com/moltfleet/molt/protocol"
)

func newDeploymentsCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "deployments",
		Short: "Act on single deployments of a run",
	}
	cf := addConnFlags(cmd)
	cmd.AddCommand(newDeploymentsSkipCmd(cf), newDeploymentsRetryCmd(cf), newDeploymentsCancelCmd(cf))
	return cmd
}

func newDeploymentsRetryCmd(cf *connFlags) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "retry ID",
		Short: "Queue a stuck or failed deployment again (operator)",
		Long: `Retry queues a new deployment of the same agent to the same target, in
the same run and wave, and prints it. A stuck deployment is ended
(cancelled, "retried as d-N"); a failed one stays failed. The run's outcome
is then its retry's. Refused for any other state, and once the run ended.

  molt deployments retry d-42`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := cf.client()
			if err != nil {
				return err
			}
			d, err := c.RetryDeployment(cmd.Context(), args[0])
			if err != nil {
				return apiErr(err)
			}
			if asJSON {
				return cli.PrintJSON(cmd.OutOrStdout(), d)
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "deployment %s retried as %s (%s)\n", args[0], d.ID, d.State)
			return err
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the new deployment as JSON")
	return cmd
}

func newDeploymentsCancelCmd(cf *connFlags) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "cancel ID",
		Short: "End a stuck deployment (operator)",
		Long: `Cancel ends a stuck deployment: its agent is left out of the run, and
is not repaired back to an older version when it comes back. A deployment
that has not started is skipped instead (molt deployments skip); one in
progress is left to its agent.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := cf.client()
			if err != nil {
				return err
			}
			d, err := c.CancelDeployment(cmd.Context(), args[0])
			if err != nil {
				return apiErr(err)
			}
			if asJSON {
				return cli.PrintJSON(cmd.OutOrStdout(), d)
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "deployment %s is %s\n", d.ID, d.State)
			return err
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the deployment as JSON")
	return cmd
}

func newDeploymentsSkipCmd(cf *connFlags) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "skip ID",
		Short: "Skip a deployment that has not started on its agent (operator)",
		Long: `Skip leaves one agent out of its run. It is refused once the agent has
been asked to upgrade (state requested or later). A skipped agent is not
repaired later.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := cf.client()
			if err != nil {
				return err
			}
			d, err := c.SkipDeployment(cmd.Context(), args[0])
			if err != nil {
				return apiErr(err)
			}
			if asJSON {
				return cli.PrintJSON(cmd.OutOrStdout(), d)
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "deployment %s is %s\n", d.ID, d.State)
			return err
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the deployment as JSON")
	return cmd
}

// printDeployments is the history and run report table.
func printDeployments(w io.Writer, ds []protocol.Deployment, now time.Time, withRun bool) error {
	tw := newTable(w)
	if withRun {
		row(tw, "ID", "RUN", "AGENT", "KIND", "FROM", "TARGET", "STATE", "ENDED", "REASON")
	} else {
		row(tw, "ID", "AGENT", "KIND", "FROM", "TARGET", "STATE", "ENDED", "REASON")
	}
	for _, d := range ds {
		agent := d.AgentID
		if d.AgentName != "" {
			agent += " (" + d.AgentName + ")"
		}
		state := d.State
		if protocol.InProgress(d.State) && d.Total > 0 {
			state += fmt.Sprintf(" %d%%", d.Done*100/d.Total)
		}
		kind := d.Kind
		if d.Revert {
			kind += " (revert)"
		}
		cols := []any{d.ID, agent, kind, dash(d.From), d.Target, state, fmtTime(d.Ended, now), dash(oneLineText(d.Reason, 80))}
		if withRun {
			cols = append([]any{d.ID, dash(d.RunID)}, cols[1:]...)
		}
		row(tw, cols...)
	}
	return tw.Flush()
}
