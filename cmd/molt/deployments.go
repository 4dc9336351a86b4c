package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/moltfleet/molt/internal/apiclient"
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

// deploymentAction is one of the deployment commands: call the server on
// deployment ID and say what became of it.
type deploymentAction struct {
	use, short, long, jsonHelp string
	call                       func(c *apiclient.Client, ctx context.Context, id string) (protocol.Deployment, error)
	say                        func(id string, d protocol.Deployment) string
}

func newDeploymentActionCmd(cf *connFlags, a deploymentAction) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   a.use,
		Short: a.short,
		Long:  a.long,
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := cf.client()
			if err != nil {
				return err
			}
			d, err := a.call(c, cmd.Context(), args[0])
			if err != nil {
				return apiErr(err)
			}
			if asJSON {
				return cli.PrintJSON(cmd.OutOrStdout(), d)
			}
			_, err = fmt.Fprintln(cmd.OutOrStdout(), a.say(args[0], d))
			return err
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, a.jsonHelp)
	return cmd
}

func sayState(_ string, d protocol.Deployment) string {
	return fmt.Sprintf("deployment %s is %s", d.ID, d.State)
}

func newDeploymentsRetryCmd(cf *connFlags) *cobra.Command {
	return newDeploymentActionCmd(cf, deploymentAction{
		use:   "retry ID",
		short: "Queue a stuck or failed deployment again (operator)",
		long: `Retry queues a new deployment of the same agent to the same target, in
the same run and wave, and prints it. A stuck deployment is ended
(cancelled, "retried as d-N"); a failed one stays failed. The run's outcome
is then its retry's. Refused for any other state, and once the run ended.

  molt deployments retry d-42`,
		jsonHelp: "print the new deployment as JSON",
		call:     (*apiclient.Client).RetryDeployment,
		say: func(id string, d protocol.Deployment) string {
			return fmt.Sprintf("deployment %s retried as %s (%s)", id, d.ID, d.State)
		},
	})
}

func newDeploymentsCancelCmd(cf *connFlags) *cobra.Command {
	return newDeploymentActionCmd(cf, deploymentAction{
		use:   "cancel ID",
		short: "End a stuck deployment (operator)",
		long: `Cancel ends a stuck deployment: its agent is left out of the run, and
is not repaired back to an older version when it comes back. A deployment
that has not started is skipped instead (molt deployments skip); one in
progress is left to its agent.`,
		jsonHelp: "print the deployment as JSON",
		call:     (*apiclient.Client).CancelDeployment,
		say:      sayState,
	})
}

func newDeploymentsSkipCmd(cf *connFlags) *cobra.Command {
	return newDeploymentActionCmd(cf, deploymentAction{
		use:   "skip ID",
		short: "Skip a deployment that has not started on its agent (operator)",
		long: `Skip leaves one agent out of its run. It is refused once the agent has
been asked to upgrade (state requested or later). A skipped agent is not
repaired later.`,
		jsonHelp: "print the deployment as JSON",
		call:     (*apiclient.Client).SkipDeployment,
		say:      sayState,
	})
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
