package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/moltfleet/molt/internal/cli"
	"github.com/moltfleet/molt/protocol"
)

type rollbackOpts struct {
	rolloutFlags
	text   string
	dryRun bool
	yes    bool
	asJSON bool
}

func newRunsRollbackCmd(cf *connFlags) *cobra.Command {
	var o rollbackOpts
	cmd := &cobra.Command{
		Use:   "rollback ID [--dry-run] [--yes] [--json] [rollout flags]",
		Short: "Bring the agents a run moved back to the versions they came from, as a new run (operator)",
		Long: `Start a new run that brings every agent run ID moved (its deployment
succeeded) back to the version it came from. Each agent has its own
target, so a run that moved agents from several versions is undone as one
run. Going back to a lower version is a revert, with the rules of every
revert: an agent's floor stops it, and quarantined versions are left out
unless --force.

Left out, with the reason, are agents that have moved since (they no
longer run what ID moved them to), whose earlier release was removed or
has no pack for their platform, that are below their floor, busy in
another deployment or no longer supervised (scope supervised). If none
can go back, nothing starts (exit 1).

The new run has the limits and rollout controls of ID (canaries, waves,
limits, rate, spread, window), but starts now: ID's --start-at has passed.
Any rollout flag replaces them all: the new run then has exactly the
rollout flags given, with their defaults for the rest.

A running run must be paused or cancelled first ("molt runs pause ID"),
so that its deployments still to start do not race the rollback's.

molt shows the plan (per platform and version, and who is left out) and
asks for confirmation on a terminal; --yes skips the question, --dry-run
only shows the plan. Follow the new run with "molt runs watch".`,
		Example: `  molt runs rollback r-7 --dry-run
  molt runs pause r-7 && molt runs rollback r-7 --yes
  molt runs rollback r-7 --yes --max-concurrent 20 --text "back from 1.6.0: disk leak"`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			req, err := o.request(cmd.Flags())
			if err != nil {
				return err
			}
			c, err := cf.client()
			if err != nil {
				return err
			}
			return runRollback(cmd.Context(), c, args[0], req, o, upgradeIO{
				in: cmd.InOrStdin(), out: cmd.OutOrStdout(), errw: cmd.ErrOrStderr(),
				interactive: isTerminal(cmd.InOrStdin()) && isTerminal(cmd.ErrOrStderr()),
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.text, "text", "", "a text describing the new run (default \"rollback of ID\")")
	o.rolloutFlags.add(f)
	f.BoolVar(&o.dryRun, "dry-run", false, "show the plan and who is left out; start nothing")
	f.BoolVarP(&o.yes, "yes", "y", false, "do not ask for confirmation")
	f.BoolVar(&o.asJSON, "json", false, "print the new run (with --dry-run, the plan) as JSON on stdout (the plan goes to stderr)")
	return cmd
}

// request builds the rollback request: the rollout flags replace the
// run's controls only when one of them (--force aside) was given.
func (o rollbackOpts) request(f *pflag.FlagSet) (protocol.RollbackRequest, error) {
	req := protocol.RollbackRequest{Text: o.text, Force: o.force}
	if len(o.text) > 4096 {
		return req, cli.Usage("--text: longer than 4096 characters")
	}
	names := pflag.NewFlagSet("rollout", pflag.ContinueOnError)
	new(rolloutFlags).add(names)
	given := false
	names.VisitAll(func(fl *pflag.Flag) {
		given = given || (fl.Name != "force" && f.Changed(fl.Name))
	})
	if !given {
		return req, nil
	}
	var rr protocol.RunRequest
	if err := o.rolloutFlags.apply(&rr, time.Now()); err != nil {
		return req, err
	}
	req.Rollout = &protocol.RolloutSettings{MaxConcurrent: rr.MaxConcurrent, FailureThreshold: rr.FailureThreshold, RunControls: rr.RunControls}
	return req, nil
}

// rollbackAPI is what molt runs rollback needs of the client.
type rollbackAPI interface {
	RollbackRun(ctx context.Context, id string, req protocol.RollbackRequest) (protocol.Run, error)
}

func runRollback(ctx context.Context, c rollbackAPI, id string, req protocol.RollbackRequest, o rollbackOpts, uio upgradeIO) error {
	dry := req
	dry.DryRun = true
	plan, err := c.RollbackRun(ctx, id, dry)
	if err != nil {
		return apiErr(fmt.Errorf("plan the rollback of %s: %w", id, err))
	}
	// The plan goes to stderr with --json so stdout stays one JSON document.
	pw := uio.out
	if o.asJSON {
		pw = uio.errw
	}
	if plan.Total == 0 {
		if len(plan.Excluded) > 0 {
			printExcluded(pw, plan.Excluded, 20)
		}
		return cli.Exit(1, errors.New("no agent to roll back: every agent the run moved is left out"))
	}
	fmt.Fprintf(pw, "Rollback of %s: %d agent(s) back to the versions they came from, ", id, plan.Total)
	if plan.MaxConcurrentPercent > 0 {
		fmt.Fprintf(pw, "at most %g%% at once", plan.MaxConcurrentPercent)
	} else {
		fmt.Fprintf(pw, "at most %d at once", plan.MaxConcurrent)
	}
	if plan.FailureThreshold > 0 {
		fmt.Fprintf(pw, ", pause after %d failure(s)", plan.FailureThreshold)
	}
	fmt.Fprintln(pw)
	printPlan(pw, plan.Plan)
	if len(plan.WaveList) > 1 {
		for _, w := range plan.WaveList {
			fmt.Fprintf(pw, "  wave %d %s: %d agent(s)\n", w.Wave, w.Name, w.Agents)
		}
	}
	if len(plan.Excluded) > 0 {
		printExcluded(pw, plan.Excluded, 20)
	}
	if o.dryRun {
		if o.asJSON {
			return cli.PrintJSON(uio.out, plan)
		}
		return nil
	}
	if !o.yes {
		if err := confirm(uio.in, uio.errw, uio.interactive, fmt.Sprintf("Roll %d agent(s) back?", plan.Total)); err != nil {
			return err
		}
	}
	run, err := c.RollbackRun(ctx, id, req)
	if err != nil {
		return apiErr(fmt.Errorf("start the rollback of %s: %w", id, err))
	}
	if o.asJSON {
		return cli.PrintJSON(uio.out, run)
	}
	fmt.Fprintf(uio.out, "started run %s (rollback of %s); follow it with: molt runs watch %s\n", run.ID, id, run.ID)
	return nil
}
