package main

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/moltfleet/molt/internal/apiclient"
	"github.com/moltfleet/molt/internal/cli"
	"github.com/moltfleet/molt/protocol"
)

func newHistoryCmd() *cobra.Command {
	var f apiclient.DeploymentFilter
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "history [--agent ID] [--run ID] [--state S]",
		Short: "The upgrade history: deployments, newest first",
		Long: `The upgrade history lists deployments of runs, repairs and activation
upgrades, newest first. "molt history show DEPLOYMENT" prints one
deployment's DEPLOY report: every step, on the server and on the agent,
with its time.`,
		Args: cobra.NoArgs,
	}
	cf := addConnFlags(cmd)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		if f.Limit < 0 || f.Limit > 100000 {
			return cli.Usage("--limit: %d is not between 1 and 100000", f.Limit)
		}
		if f.State != "" && !slices.Contains(protocol.DeploymentStates, f.State) {
			return cli.Usage("--state: %q is not one of %s", f.State, strings.Join(protocol.DeploymentStates, ", "))
		}
		return listAndPrint(cmd, cf, asJSON, func(c *apiclient.Client, ctx context.Context) ([]protocol.Deployment, error) {
			return c.Deployments(ctx, f)
		}, func(w io.Writer, ds []protocol.Deployment, now time.Time) error {
			return printDeployments(w, ds, now, true)
		})
	}
	cmd.Flags().StringVar(&f.AgentID, "agent", "", "only this agent's deployments")
	cmd.Flags().StringVar(&f.RunID, "run", "", "only this run's deployments")
	cmd.Flags().StringVar(&f.State, "state", "", "only deployments in this state (failed, rolled_back, waiting_for_host, ...)")
	cmd.Flags().IntVar(&f.Limit, "limit", 100, "at most this many deployments")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print as a JSON array")
	cmd.AddCommand(newHistoryShowCmd(cf))
	return cmd
}

func newHistoryShowCmd(cf *connFlags) *cobra.Command {
	return newShowCmd(cf, "show DEPLOYMENT", "The DEPLOY report of one deployment: each step with its time",
		func(c *apiclient.Client, ctx context.Context, id string) (protocol.DeploymentReport, error) {
			rep, err := c.Deployment(ctx, id)
			rep.Steps = nonNil(rep.Steps)
			return rep, err
		}, printDeployReport)
}

func printDeployReport(w io.Writer, rep protocol.DeploymentReport, now time.Time) error {
	d := rep.Deployment
	tw := newTable(w)
	kv := func(k string, v any) { row(tw, k+":", v) }
	kv("Deployment", d.ID)
	if d.RunID != "" {
		kv("Run", d.RunID)
	}
	agent := d.AgentID
	if d.AgentName != "" {
		agent += " (" + clean(d.AgentName) + ")"
	}
	kv("Agent", agent)
	kv("Platform", d.Platform)
	kind := d.Kind
	if d.Revert {
		kind += " (revert)"
	}
	kv("Kind", kind)
	kv("Version", dash(d.From)+" -> "+d.Target)
	kv("State", d.State)
	if d.Workload != "" {
		kv("Workload", clean(d.Workload))
	}
	if d.Reason != "" {
		kv("Reason", clean(d.Reason))
	}
	if d.Total > 0 && !protocol.Terminal(d.State) {
		kv("Download", fmt.Sprintf("%s %s of %s", bar(int(d.Done>>10), int(d.Total>>10), 20), fmtBytes(d.Done), fmtBytes(d.Total)))
	}
	kv("Created", fmtTime(d.Created, now))
	if !d.Started.IsZero() {
		kv("Started", fmtTime(d.Started, now))
	}
	if !d.Ended.IsZero() {
		kv("Ended", fmtTime(d.Ended, now))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w)
	if len(rep.Steps) == 0 {
		_, err := fmt.Fprintln(w, "No steps yet.")
		return err
	}
	tw = newTable(w)
	row(tw, "TIME", "STEP", "DETAIL")
	for _, s := range rep.Steps {
		row(tw, local(s.At).Format("2006-01-02 15:04:05.000"), clean(s.Name), dash(clean(s.Detail)))
	}
	return tw.Flush()
}
