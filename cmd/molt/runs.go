package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/moltfleet/molt/internal/apiclient"
	"github.com/moltfleet/molt/internal/cli"
	"github.com/moltfleet/molt/protocol"
)

func newRunsCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "runs",
		Short: "List, inspect and steer upgrade runs",
		Long: `An upgrade run (started by "molt upgrade") gives each selected agent a
deployment, which moves through

  pending -> waiting_for_host | waiting_for_window -> requested ->
  downloading -> staged -> restarting -> watching ->
  succeeded | failed | rolled_back | skipped | cancelled

A run is running, paused (by an operator, when failures reach its
threshold, or halted by its own rules: a failed canary, its failure
rate), ended_ok, ended_not_ok or cancelled. Pausing stops new
deployments from starting; those in progress finish. A run in waves
opens each wave once the one before is done and soaked, or when
promoted ("molt runs promote ID" with --wave-approve). "molt runs
rollback ID" brings the agents a run moved back where they came from.`,
	}
	cf := addConnFlags(cmd)
	cmd.AddCommand(newRunsListCmd(cf), newRunsShowCmd(cf), newRunsWatchCmd(cf), newRunsReportCmd(cf),
		newRunActionCmd(cf, "pause", "Pause a run: no new deployment starts"),
		newRunActionCmd(cf, "resume", "Resume a paused run"),
		newRunActionCmd(cf, "promote", "Open a run's next wave (a run started with --wave-approve)"),
		newRunActionCmd(cf, "cancel", "Cancel a run: deployments not yet started are cancelled"),
		newRunsRollbackCmd(cf))
	return cmd
}

func newRunsListCmd(cf *connFlags) *cobra.Command {
	var asJSON bool
	var status string
	cmd := &cobra.Command{
		Use:   "list [--status S]",
		Short: "List runs, newest first",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			switch status {
			case "", protocol.RunRunning, protocol.RunPaused, protocol.RunEndedOK, protocol.RunEndedNotOK, protocol.RunCancelled:
			default:
				return cli.Usage("--status: %q is not one of running, paused, ended_ok, ended_not_ok, cancelled", status)
			}
			return listAndPrint(cmd, cf, asJSON, func(c *apiclient.Client, ctx context.Context) ([]protocol.Run, error) {
				return c.RunsIn(ctx, status)
			}, printRuns)
		},
	}
	cmd.Flags().StringVar(&status, "status", "", "only runs in this status: running, paused, ended_ok, ended_not_ok, cancelled")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print as a JSON array")
	return cmd
}

func printRuns(w io.Writer, rs []protocol.Run, now time.Time) error {
	tw := newTable(w)
	row(tw, "ID", "STATUS", "TARGET", "DONE", "CREATED", "TEXT")
	for _, r := range rs {
		row(tw, r.ID, r.Status, fmtTarget(r), fmt.Sprintf("%d/%d", endedCount(r.Counts), r.Total), fmtTime(r.Created, now), dash(oneLineText(r.Text, 60)))
	}
	return tw.Flush()
}

// fmtTarget is the version(s) a run goes to: what its plan resolved
// "latest" (and each --target-for) to per platform, one version when all
// platforms go to the same; what was asked for when there is no plan.
func fmtTarget(r protocol.Run) string {
	if len(r.Plan) == 0 {
		return fmtRequested(r)
	}
	lines := slices.Clone(r.Plan)
	sort.Slice(lines, func(i, j int) bool { return lines[i].Platform < lines[j].Platform })
	same := true
	parts := make([]string, len(lines))
	for i, p := range lines {
		same = same && p.Target == lines[0].Target
		parts[i] = p.Platform + "=" + p.Target
	}
	if same {
		return lines[0].Target
	}
	return strings.Join(parts, " ")
}

// fmtRequested is the target as the run was asked for: "latest
// windows/amd64=1.4.2".
func fmtRequested(r protocol.Run) string {
	s := r.Target
	keys := make([]string, 0, len(r.TargetFor))
	for k := range r.TargetFor {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		s += " " + k + "=" + r.TargetFor[k]
	}
	return s
}

func oneLineText(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > n {
		s = s[:n-3] + "..."
	}
	return s
}

// endedCount is how many deployments reached an end state.
func endedCount(counts map[string]int) int {
	n := 0
	for s, c := range counts {
		if protocol.Terminal(s) {
			n += c
		}
	}
	return n
}

func newRunsShowCmd(cf *connFlags) *cobra.Command {
	return newShowCmd(cf, "show ID", "Show a run: its settings, plan, exclusions and counts per state", (*apiclient.Client).Run, printRun)
}

func printRun(w io.Writer, r protocol.Run, now time.Time) error {
	tw := newTable(w)
	kv := func(k string, v any) { row(tw, k+":", v) }
	kv("ID", r.ID)
	kv("Text", dash(r.Text))
	kv("Status", r.Status)
	if r.Reason != "" {
		kv("Reason", r.Reason)
	}
	kv("Target", fmtTarget(r))
	if req := fmtRequested(r); req != fmtTarget(r) {
		kv("Requested", req)
	}
	kv("Selection", fmtSelection(r.Selection))
	kv("Scope", r.Scope)
	if r.MaxConcurrentPercent > 0 {
		kv("Max concurrent", fmt.Sprintf("%g%%", r.MaxConcurrentPercent))
	} else {
		kv("Max concurrent", r.MaxConcurrent)
	}
	if r.FailureThreshold > 0 {
		kv("Failure threshold", r.FailureThreshold)
	}
	for _, c := range controlLines(r.RunControls, now) {
		kv(c[0], c[1])
	}
	if r.CreatedBy != "" {
		kv("Created by", r.CreatedBy)
	}
	kv("Created", fmtTime(r.Created, now))
	if !r.Ended.IsZero() {
		kv("Ended", fmtTime(r.Ended, now))
	}
	kv("Progress", fmt.Sprintf("%s %d/%d ended", bar(endedCount(r.Counts), r.Total, 30), endedCount(r.Counts), r.Total))
	kv("States", dash(fmtCounts(r.Counts)))
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(r.WaveList) > 1 {
		fmt.Fprintln(w)
		if err := printWaves(w, r, now); err != nil {
			return err
		}
	}
	if len(r.Plan) > 0 {
		fmt.Fprintln(w)
		if err := printPlan(w, r.Plan); err != nil {
			return err
		}
	}
	if len(r.Excluded) > 0 {
		fmt.Fprintln(w)
		printExcluded(w, r.Excluded, 20)
	}
	return nil
}

// controlLines are a run's rollout controls as label and value, only
// those it set.
func controlLines(c protocol.RunControls, now time.Time) [][2]string {
	var out [][2]string
	add := func(k, v string) { out = append(out, [2]string{k, v}) }
	if c.MaxFailuresPercent > 0 {
		add("Max failures", fmt.Sprintf("%g%% of those ended, once %d ended", c.MaxFailuresPercent, max(1, c.MinSample)))
	}
	if c.Canary > 0 {
		v := fmt.Sprintf("%d", c.Canary)
		if len(c.CanaryCover) > 0 {
			v += ", covering " + strings.Join(c.CanaryCover, ", ")
		}
		add("Canaries", v)
	}
	if c.WaveApprove {
		add("Next wave", "on promotion")
	} else if c.WaveWaitSeconds > 0 {
		add("Wave wait", (time.Duration(c.WaveWaitSeconds) * time.Second).String())
	}
	if c.RatePerMinute > 0 {
		v := fmt.Sprintf("%d a minute", c.RatePerMinute)
		if c.Ramp > 1 {
			v += fmt.Sprintf(", x%g every minute", c.Ramp)
		}
		add("Rate", v)
	}
	if !c.StartAt.IsZero() {
		add("Start at", fmtTime(c.StartAt, now))
	}
	if c.SpreadSeconds > 0 {
		add("Spread", (time.Duration(c.SpreadSeconds) * time.Second).String())
	}
	if c.Window != "" {
		add("Window", c.Window)
	}
	return out
}

// printWaves is a run's waves with their state and progress.
func printWaves(w io.Writer, r protocol.Run, now time.Time) error {
	tw := newTable(w)
	row(tw, "WAVE", "NAME", "AGENTS", "STATE", "ENDED", "STATES")
	for _, wv := range r.WaveList {
		state := wv.State
		if wv.Wave == r.Wave && !r.NextWave.IsZero() {
			state += ", next " + fmtTime(r.NextWave, now)
		}
		row(tw, wv.Wave, wv.Name, wv.Agents, state, fmt.Sprintf("%d/%d", endedCount(wv.Counts), wv.Agents), dash(fmtCounts(wv.Counts)))
	}
	return tw.Flush()
}

func fmtSelection(s protocol.Selection) string {
	switch {
	case s.All:
		return "all agents"
	case len(s.Labels) > 0:
		return "label " + fmtLabels(s.Labels)
	case s.Filter != nil:
		return "filter " + clean(s.Filter.String())
	case len(s.AgentIDs) > 0:
		if len(s.AgentIDs) > 5 {
			return fmt.Sprintf("%d agents: %s, ...", len(s.AgentIDs), strings.Join(s.AgentIDs[:5], ", "))
		}
		return "agents " + strings.Join(s.AgentIDs, ", ")
	}
	return "-"
}

func printPlan(w io.Writer, plan []protocol.PlanLine) error {
	tw := newTable(w)
	row(tw, "PLATFORM", "AGENTS", "TARGET")
	for _, p := range plan {
		if p.Revert > 0 {
			row(tw, p.Platform, p.Agents, p.Target, fmt.Sprintf("(%d revert to a lower version)", p.Revert))
			continue
		}
		row(tw, p.Platform, p.Agents, p.Target)
	}
	return tw.Flush()
}

// printExcluded lists up to max exclusions, then how many more.
func printExcluded(w io.Writer, ex []protocol.Exclusion, max int) {
	fmt.Fprintf(w, "Left out (%d):\n", len(ex))
	tw := newTable(w)
	for i, e := range ex {
		if i == max {
			row(tw, fmt.Sprintf("  ... and %d more (see --json)", len(ex)-max))
			break
		}
		name := e.AgentID
		if e.AgentName != "" {
			name += " (" + e.AgentName + ")"
		}
		row(tw, "  "+name, e.Reason)
	}
	tw.Flush()
}

func newRunsWatchCmd(cf *connFlags) *cobra.Command {
	var interval time.Duration
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "watch ID",
		Short: "Follow a run to its end, as molt upgrade --wait does",
		Long: `Follow a run with the display of "molt upgrade --wait": a bar and counts
per state, redrawn in place on a terminal, one line per change otherwise.
Use it to follow a run again after a pause ("molt runs resume ID", then
"molt runs watch ID"), or one another operator started.

Exit codes are those of molt upgrade --wait: 0 the run ended OK; 3 it
ended not OK; 4 it is paused; 130 interrupted (Ctrl-C stops the watching,
not the run).`,
		Example: `  molt runs resume r-4 && molt runs watch r-4`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if interval < 200*time.Millisecond || interval > time.Minute {
				return cli.Usage("--interval: %s is not between 200ms and 1m", interval)
			}
			c, err := cf.client()
			if err != nil {
				return err
			}
			// Ctrl-C stops the watching, not the run.
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt)
			defer stop()
			run, err := c.Run(ctx, args[0])
			if err != nil {
				return apiErr(err)
			}
			return followRun(ctx, c, run, interval, asJSON, upgradeIO{
				out: cmd.OutOrStdout(), errw: cmd.ErrOrStderr(),
				live: isTerminal(cmd.ErrOrStderr()), width: termWidth(cmd.ErrOrStderr()),
			})
		},
	}
	cmd.Flags().DurationVar(&interval, "interval", 2*time.Second, "how often to ask the server for progress")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the run as JSON on stdout when it ends or pauses (progress goes to stderr)")
	return cmd
}

func newRunActionCmd(cf *connFlags, action, short string) *cobra.Command {
	return &cobra.Command{
		Use:   action + " ID",
		Short: short + " (operator)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := cf.client()
			if err != nil {
				return err
			}
			r, err := c.RunAction(cmd.Context(), args[0], action)
			if err != nil {
				return apiErr(err)
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "run %s is %s\n", r.ID, r.Status)
			return err
		},
	}
}
