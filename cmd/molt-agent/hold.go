package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/moltfleet/molt/agent"
	"github.com/moltfleet/molt/home"
	"github.com/moltfleet/molt/internal/cli"
)

func newHoldCmd() *cobra.Command {
	var (
		dir, reason, forText string
		asJSON               bool
	)
	cmd := &cobra.Command{
		Use:   "hold --reason TEXT (--for DURATION | [--for DURATION] -- COMMAND [ARGS...])",
		Short: "Hold off the agent's restart while a command runs or for a while",
		Long: `Hold off upgrades of this agent: while a hold is active, an upgrade may
download and stage, but the switch to the new version and the agent's
restart wait until every hold has ended. The agent tells the supervisor and
the server that it is busy.

With a COMMAND, the hold lasts while the command runs; its exit code is
passed through (127 if it cannot be started). If this process is killed, the
hold ends with it. SIGTERM is passed on to the command.

With --for alone, the hold lasts that long (at most 7 days) and the command
returns at once, printing the hold's id; "molt-agent release" ends it early.

With --for and a COMMAND, --for caps the hold: it ends when the command
ends or when the time passes, whichever comes first, so a command that hangs
does not hold off upgrades for ever. When the time passes first, a line on
stderr says so; the command goes on running, no longer held.

DURATION is a number with a unit: s, m or h (30m, 12h, 72h; days as hours).`,
		Example: `  # no restart during the nightly backup
  molt-agent hold --reason "nightly backup" -- /usr/local/bin/backup.sh --full

  # a maintenance window of two hours
  molt-agent hold --reason "db migration" --for 2h
  molt-agent release --id 3f2a9c0d1e4b5a67

  # while the reindex runs, but at most 6 hours
  molt-agent hold --reason reindex --for 6h -- /usr/local/bin/reindex.sh`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := agent.CheckReason(reason); err != nil {
				return cli.Usage("%v", err)
			}
			dur, err := parseHoldFor(forText, cmd.Flags().Changed("for"))
			if err != nil {
				return err
			}
			dash := cmd.ArgsLenAtDash()
			if len(args) > 0 && dash != 0 {
				return cli.Usage("put the command after --, e.g. molt-agent hold --reason %q -- %s", reason, args[0])
			}
			if len(args) == 0 && dur == 0 {
				return cli.Usage("give --for DURATION or a command after --")
			}
			h := home.New(dir)
			// A hold in a directory no agent reads would hold nothing.
			if !agent.LooksLikeHome(h) {
				return fmt.Errorf("%s is not a molt home (no state/active.json, bin/, versions/ or agent.yaml): check --home", h.Dir)
			}
			holds := agent.HoldsOf(h)
			if len(args) == 0 {
				held, err := holds.Add(reason, 0, dur)
				if err != nil {
					return err
				}
				if asJSON {
					return cli.PrintJSON(cmd.OutOrStdout(), held)
				}
				say(cmd.OutOrStdout(), "hold %s until %s: %s", held.ID, held.Expires.Local().Format(time.RFC3339), held.Reason)
				say(cmd.OutOrStdout(), "end it early with: molt-agent release --id %s", held.ID)
				return nil
			}
			held, err := holds.Add(reason, os.Getpid(), dur)
			if err != nil {
				return err
			}
			defer holds.Release(held.ID)
			var capped <-chan time.Time
			if dur > 0 {
				t := time.NewTimer(dur)
				defer t.Stop()
				capped = t.C
			}
			return runHeld(args, capped, func() {
				say(cmd.ErrOrStderr(), "molt-agent: hold %s ended after %s (--for); %s still runs, no longer holding off a restart", held.ID, forText, args[0])
			})
		},
	}
	homeFlag(cmd, &dir)
	cmd.Flags().StringVar(&reason, "reason", "", "why the agent must not restart (shown in status and on the server)")
	cmd.Flags().StringVar(&forText, "for", "", "hold for this long: a `DURATION` such as 30m, 12h or 72h, at most 168h; with a command, at most this long")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the hold as JSON (with --for)")
	return cmd
}

// parseHoldFor reads --for (given tells whether it was on the command
// line): zero when not given, else a duration between 1s and
// agent.MaxHoldFor, refused with a usage error naming the value.
func parseHoldFor(s string, given bool) (time.Duration, error) {
	if !given {
		return 0, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, cli.Usage("--for %q: not a duration (e.g. 30m, 12h, 72h)", s)
	}
	if d < time.Second || d > agent.MaxHoldFor {
		return 0, cli.Usage("--for %q: must be between 1s and %.0fh (7 days)", s, agent.MaxHoldFor.Hours())
	}
	return d, nil
}

// runHeld runs the command in the foreground and returns its exit code as
// an ExitError. When capped fires first, expired is called once and the
// command goes on.
func runHeld(args []string, capped <-chan time.Time, expired func()) error {
	c := exec.Command(args[0], args[1:]...)
	c.Stdin, c.Stdout, c.Stderr = os.Stdin, os.Stdout, os.Stderr
	// Ctrl-C reaches the command from the terminal itself; the holder only
	// waits for it. SIGTERM is sent to this process alone: pass it on.
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sigs)
	if err := c.Start(); err != nil {
		return cli.Exit(127, fmt.Errorf("start %s: %w", args[0], err))
	}
	done := make(chan error, 1)
	go func() { done <- c.Wait() }()
	for {
		select {
		case s := <-sigs:
			if s == syscall.SIGTERM {
				if err := c.Process.Signal(s); err != nil {
					_ = c.Process.Kill()
				}
			}
		case <-capped:
			expired()
			capped = nil
		case err := <-done:
			return exitOf(err)
		}
	}
}

func exitOf(err error) error {
	var ee *exec.ExitError
	if err == nil {
		return nil
	}
	if !errors.As(err, &ee) {
		return cli.Exit(1, err)
	}
	if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return cli.Exit(128+int(ws.Signal()), nil)
	}
	return cli.Exit(ee.ExitCode(), nil)
}

func newReleaseCmd() *cobra.Command {
	var (
		dir, id string
		all     bool
	)
	cmd := &cobra.Command{
		Use:   "release (--id ID | --all)",
		Short: "End a hold early",
		Long: `End a hold made with "molt-agent hold --for". A hold that runs with a
command ends when the command ends; releasing it lets a waiting upgrade go
on while the command still runs.`,
		Example: `  molt-agent release --id 3f2a9c0d1e4b5a67
  molt-agent release --all`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if (id == "") == !all {
				return cli.Usage("give exactly one of --id ID or --all")
			}
			holds := agent.HoldsOf(home.New(dir))
			out := cmd.OutOrStdout()
			if all {
				released, err := holds.ReleaseAll()
				for _, h := range released {
					say(out, "released %s: %s", h.ID, h.Reason)
				}
				if len(released) == 0 && err == nil {
					say(out, "no active hold")
				}
				return err
			}
			if err := holds.Release(id); err != nil {
				return err
			}
			say(out, "released %s", id)
			return nil
		},
	}
	homeFlag(cmd, &dir)
	cmd.Flags().StringVar(&id, "id", "", "the hold's id (from molt-agent hold or status)")
	cmd.Flags().BoolVar(&all, "all", false, "release every hold")
	return cmd
}
