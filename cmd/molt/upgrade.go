package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/moltfleet/molt/internal/apiclient"
	"github.com/moltfleet/molt/internal/cli"
	"github.com/moltfleet/molt/internal/sleep"
	"github.com/moltfleet/molt/protocol"
	"github.com/moltfleet/molt/updater/pack"
)

type upgradeOpts struct {
	target           string
	targetFor        []string
	agents           []string
	labels           []string
	all              bool
	text             string
	scope            string
	failureThreshold int
	rolloutFlags
	wait     bool
	yes      bool
	asJSON   bool
	interval time.Duration
}

func newUpgradeCmd() *cobra.Command {
	var o upgradeOpts
	cmd := &cobra.Command{
		Use:   "upgrade --target latest|V (--agents ID,... | --label K=V | --all) [flags]",
		Short: "Start an upgrade run over a selection of agents (operator)",
		Long: `Start an upgrade run. Before anything starts, molt asks the server for the
plan and shows, per platform, how many agents go to which version and
which selected agents are left out and why; then it asks for confirmation
on a terminal. --yes skips the question; without a terminal and without
--yes it refuses (exit 2).

Offline, busy or held agents wait (waiting_for_host) and are upgraded
when they come back and are idle; agents of one cluster go one at a time.
A target below an agent's version is a revert.

Rollout control (docs/rollouts.md): --canary upgrades a few agents first,
chosen so that every platform and OS family (and every value of the
--canary-cover labels) has one, and halts the run if one fails; --waves or
--wave-label roll out in stages, each done once 90% succeeded (--wave-done)
and followed by a soak (--wave-wait) or a promotion (--wave-approve, then
"molt runs promote ID"). Limits take counts or shares (--max-concurrent
5%, --max-failures 2% with --min-sample), --rate and --ramp pace the
starts, --start-at and --spread schedule them, and --window keeps them
inside a maintenance window. Agents whose target is quarantined for their
platform are left out unless --force.

With --wait, molt follows the run to its end: a bar and counts per state,
redrawn in place on a terminal, one line per change otherwise.

Exit codes with --wait: 0 the run ended OK; 3 it ended not OK (a
deployment failed or rolled back, or the run was cancelled); 4 it paused
(failure threshold reached or paused by an operator; resume it with
"molt runs resume ID" and follow it again with "molt runs watch ID"); 130
interrupted (Ctrl-C stops the waiting, not the run; "molt runs watch ID"
follows it again). Without --wait, 0 once the run has started. Other codes: 1
error, 2 usage or configuration, 5 server unreachable or not trusted, 6
token refused.`,
		Example: `  molt upgrade --target latest --all --text "monthly update" --wait
  molt upgrade --target 1.5.0 --label env=staging --max-concurrent 5 --failure-threshold 2 --yes
  molt upgrade --target 1.6.0 --all --canary 10 --canary-cover role --waves 5%,25%,100% --max-concurrent 5% --max-failures 2% --min-sample 50
  molt upgrade --target 1.6.0 --label env=prod --window "Mon-Fri 01:00-05:00 Europe/Berlin" --wave-label ring=early,ring=broad --wave-approve
  molt upgrade --target latest --target-for windows/amd64=1.4.2 --agents a1b2,c3d4`,
		Args: cobra.NoArgs,
	}
	cf := addConnFlags(cmd)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		req, err := o.request()
		if err != nil {
			return err
		}
		c, err := cf.client()
		if err != nil {
			return err
		}
		// Ctrl-C while waiting stops the waiting, not the run.
		ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt)
		defer stop()
		return runUpgrade(ctx, c, req, o, upgradeIO{
			in: cmd.InOrStdin(), out: cmd.OutOrStdout(), errw: cmd.ErrOrStderr(),
			interactive: isTerminal(cmd.InOrStdin()) && isTerminal(cmd.ErrOrStderr()),
			live:        isTerminal(cmd.ErrOrStderr()),
			width:       termWidth(cmd.ErrOrStderr()),
		})
	}
	f := cmd.Flags()
	f.StringVar(&o.target, "target", "latest", "target version: latest or an exact version")
	f.StringArrayVar(&o.targetFor, "target-for", nil, "PLATFORM=VERSION: another target for one platform, once per platform (repeatable; the platform needs a pack, as for settings set version.PLATFORM)")
	f.StringSliceVar(&o.agents, "agents", nil, "agent ids, comma-separated")
	f.StringArrayVar(&o.labels, "label", nil, "K=V: agents with this label (repeatable; all must match)")
	f.BoolVar(&o.all, "all", false, "every agent")
	f.StringVar(&o.text, "text", "", "a text describing the run (shown in listings and hooks)")
	f.StringVar(&o.scope, "scope", protocol.ScopeSupervised, "supervised (only supervised agents) or all")
	f.IntVar(&o.failureThreshold, "failure-threshold", 0, "pause the run when this many deployments failed or rolled back (0: never)")
	o.rolloutFlags.add(f)
	f.BoolVar(&o.wait, "wait", false, "follow the run to its end; the exit code says how it ended")
	f.BoolVarP(&o.yes, "yes", "y", false, "do not ask for confirmation")
	f.BoolVar(&o.asJSON, "json", false, "print the run as JSON on stdout (the plan and progress go to stderr)")
	f.DurationVar(&o.interval, "interval", 2*time.Second, "how often --wait asks the server for progress")
	return cmd
}

// request checks the flags and builds the run request.
func (o upgradeOpts) request() (protocol.RunRequest, error) {
	req := protocol.RunRequest{
		Text: o.text, Target: o.target, Scope: o.scope, FailureThreshold: o.failureThreshold,
	}
	n := 0
	if len(o.agents) > 0 {
		n++
	}
	if len(o.labels) > 0 {
		n++
	}
	if o.all {
		n++
	}
	if n != 1 {
		return req, cli.Usage("choose the agents with exactly one of --agents, --label or --all")
	}
	if o.target == "" {
		return req, cli.Usage("--target: give latest or a version")
	}
	switch o.scope {
	case protocol.ScopeSupervised, protocol.ScopeAll:
	default:
		return req, cli.Usage("--scope: %q is not supervised or all", o.scope)
	}
	if o.failureThreshold < 0 {
		return req, cli.Usage("--failure-threshold: must not be negative")
	}
	if err := o.rolloutFlags.apply(&req, time.Now()); err != nil {
		return req, err
	}
	if o.interval < 200*time.Millisecond || o.interval > time.Minute {
		return req, cli.Usage("--interval: %s is not between 200ms and 1m", o.interval)
	}
	if len(o.text) > 4096 {
		return req, cli.Usage("--text: longer than 4096 characters")
	}
	for _, id := range o.agents {
		if id = strings.TrimSpace(id); id != "" {
			req.Selection.AgentIDs = append(req.Selection.AgentIDs, id)
		}
	}
	if len(o.agents) > 0 && len(req.Selection.AgentIDs) == 0 {
		return req, cli.Usage("--agents: no agent id given")
	}
	if len(req.Selection.AgentIDs) > protocol.MaxRunAgents {
		return req, cli.Usage("--agents: more than %d agents", protocol.MaxRunAgents)
	}
	for _, l := range o.labels {
		k, v, ok := strings.Cut(l, "=")
		if !ok || k == "" {
			return req, cli.Usage("--label: %q is not KEY=VALUE", l)
		}
		if req.Selection.Labels == nil {
			req.Selection.Labels = map[string]string{}
		}
		req.Selection.Labels[k] = v
	}
	req.Selection.All = o.all
	for _, tf := range o.targetFor {
		p, v, ok := strings.Cut(tf, "=")
		if !ok || !validPlatform(p) || v == "" {
			return req, cli.Usage("--target-for: %q is not PLATFORM=VERSION like linux/amd64=1.5.0", tf)
		}
		if v != "latest" && !pack.ValidVersion(v) {
			return req, cli.Usage("--target-for %s: %q is not latest or a version like 1.5.0", p, v)
		}
		// A map would keep the last one silently: the operator meant one.
		if prev, dup := req.TargetFor[p]; dup {
			return req, cli.Usage("--target-for: %s is given twice (%s and %s); give one version per platform", p, prev, v)
		}
		if req.TargetFor == nil {
			req.TargetFor = map[string]string{}
		}
		req.TargetFor[p] = v
	}
	return req, nil
}

// validPlatform reports whether p is goos/goarch as packs name platforms
// (lowercase letters and digits). Whether a pack has it, the server says.
func validPlatform(p string) bool {
	goos, goarch, ok := strings.Cut(p, "/")
	word := func(s string) bool {
		return s != "" && !strings.ContainsFunc(s, func(r rune) bool { return (r < 'a' || r > 'z') && (r < '0' || r > '9') })
	}
	return ok && word(goos) && word(goarch)
}

type upgradeIO struct {
	in          io.Reader
	out, errw   io.Writer
	interactive bool
	live        bool
	width       int
}

// runsAPI is what molt upgrade needs of the client.
type runsAPI interface {
	CreateRun(ctx context.Context, req protocol.RunRequest) (protocol.Run, error)
	Run(ctx context.Context, id string) (protocol.Run, error)
}

func runUpgrade(ctx context.Context, c runsAPI, req protocol.RunRequest, o upgradeOpts, uio upgradeIO) error {
	dry := req
	dry.DryRun = true
	plan, err := c.CreateRun(ctx, dry)
	if err != nil {
		return apiErr(fmt.Errorf("plan the run: %w", err))
	}
	// The plan goes to stderr with --json so stdout stays one JSON document.
	pw := uio.out
	if o.asJSON {
		pw = uio.errw
	}
	total := 0
	for _, p := range plan.Plan {
		total += p.Agents
	}
	if total == 0 {
		if len(plan.Excluded) > 0 {
			printExcluded(pw, plan.Excluded, 20)
		}
		return cli.Exit(1, errors.New("no agent to upgrade: the selection matches no agent that needs this target"))
	}
	fmt.Fprintf(pw, "Upgrade run: %d agent(s), at most %d at once", total, req.MaxConcurrent)
	if req.FailureThreshold > 0 {
		fmt.Fprintf(pw, ", pause after %d failure(s)", req.FailureThreshold)
	}
	fmt.Fprintln(pw)
	printPlan(pw, plan.Plan)
	if len(plan.Excluded) > 0 {
		printExcluded(pw, plan.Excluded, 20)
	}
	if !o.yes {
		if err := confirm(uio.in, uio.errw, uio.interactive, fmt.Sprintf("Start upgrading %d agent(s)?", total)); err != nil {
			return err
		}
	}
	run, err := c.CreateRun(ctx, req)
	if err != nil {
		return apiErr(fmt.Errorf("start the run: %w", err))
	}
	if !o.wait {
		if o.asJSON {
			return cli.PrintJSON(uio.out, run)
		}
		fmt.Fprintf(uio.out, "started run %s; follow it with: molt runs watch %s\n", run.ID, run.ID)
		return nil
	}
	fmt.Fprintf(uio.errw, "started run %s\n", run.ID)
	return followRun(ctx, c, run, o.interval, o.asJSON, uio)
}

// followRun is molt upgrade --wait and molt runs watch: the live display
// until run ends or pauses, then the run (as JSON with asJSON) and the
// exit code of how it ended.
func followRun(ctx context.Context, c runsAPI, run protocol.Run, every time.Duration, asJSON bool, uio upgradeIO) error {
	run, err := waitRun(ctx, c, run, every, progressView{w: uio.errw, live: uio.live, width: uio.width})
	if errors.Is(err, context.Canceled) {
		return cli.Exit(exitInterrupted, fmt.Errorf("stopped waiting; run %s goes on (molt runs watch %s)", run.ID, run.ID))
	}
	if err != nil {
		return apiErr(err)
	}
	if asJSON {
		if err := cli.PrintJSON(uio.out, run); err != nil {
			return err
		}
	} else {
		fmt.Fprintf(uio.out, "run %s %s: %s\n", run.ID, run.Status, dash(fmtCounts(run.Counts)))
		if run.Reason != "" {
			fmt.Fprintf(uio.out, "reason: %s\n", run.Reason)
		}
	}
	return runExit(run)
}

// runExit maps a finished wait to the documented exit codes. The reason
// is the server's words: cleaned, as cli.Main prints the error as it is.
func runExit(r protocol.Run) error {
	switch r.Status {
	case protocol.RunEndedOK:
		return nil
	case protocol.RunPaused:
		return cli.Exit(exitRunPaused, cleanError{fmt.Errorf("run %s paused: %s; resume it with: molt runs resume %s, and follow it again with: molt runs watch %s", r.ID, dash(r.Reason), r.ID, r.ID)})
	default:
		return cli.Exit(exitRunNotOK, cleanError{fmt.Errorf("run %s did not end OK (%s): see molt runs report %s", r.ID, r.Status, r.ID)})
	}
}

// waitRun polls the run until it ends or pauses. A server that goes away
// (restarted, or killed and started again) is waited for.
func waitRun(ctx context.Context, c runsAPI, run protocol.Run, every time.Duration, v progressView) (protocol.Run, error) {
	down := false
	for {
		v.show(run)
		switch run.Status {
		case protocol.RunEndedOK, protocol.RunEndedNotOK, protocol.RunCancelled, protocol.RunPaused:
			v.done()
			return run, nil
		}
		if err := sleep.For(ctx, every); err != nil {
			v.done()
			return run, err
		}
		r, err := c.Run(ctx, run.ID)
		if err != nil {
			var ce *apiclient.ConnectError
			if errors.As(err, &ce) && ctx.Err() == nil {
				if !down {
					v.note(fmt.Sprintf("%v; still waiting", err))
					down = true
				}
				continue
			}
			v.done()
			return run, err
		}
		if down {
			v.note("server reachable again")
			down = false
		}
		run = r
	}
}

// progressView draws a run's progress: one line redrawn in place on a
// terminal, or a new line whenever the counts change otherwise.
type progressView struct {
	w     io.Writer
	live  bool
	width int
	last  *string
}

func (v *progressView) show(r protocol.Run) {
	line := clean(progressLine(r))
	if v.last == nil {
		v.last = new(string)
	}
	if v.live {
		if v.width > 1 && len(line) >= v.width {
			line = line[:v.width-1]
		}
		fmt.Fprintf(rawWriter(v.w), "\r\033[K%s", line)
		*v.last = line
		return
	}
	if line != *v.last {
		fmt.Fprintf(v.w, "%s %s\n", time.Now().Format("15:04:05"), line)
		*v.last = line
	}
}

func (v *progressView) note(msg string) {
	if v.live {
		fmt.Fprint(rawWriter(v.w), "\r\033[K")
	}
	fmt.Fprintf(v.w, "molt: %s\n", clean(msg))
}

func (v *progressView) done() {
	if v.live && v.last != nil && *v.last != "" {
		fmt.Fprintln(v.w)
	}
}

// progressLine is "[#####.....] 12/40 running: succeeded 10, failed 1, ...".
func progressLine(r protocol.Run) string {
	done := endedCount(r.Counts)
	return fmt.Sprintf("%s %d/%d %s: %s", bar(done, r.Total, 24), done, r.Total, r.Status, dash(fmtCounts(r.Counts)))
}

func termWidth(w io.Writer) int {
	if f, ok := rawWriter(w).(*os.File); ok {
		if wd, _, err := term.GetSize(int(f.Fd())); err == nil {
			return wd
		}
	}
	return 0
}
