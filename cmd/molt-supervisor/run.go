package main

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"
	"go.uber.org/zap"
	"golang.org/x/term"

	"github.com/moltfleet/molt/config"
	"github.com/moltfleet/molt/home"
	"github.com/moltfleet/molt/internal/buildinfo"
	"github.com/moltfleet/molt/internal/cli"
	"github.com/moltfleet/molt/platform"
	"github.com/moltfleet/molt/supervisor"
)

// exitRestart is the exit code after a self-upgrade on a system that
// cannot exec in place (Windows): non-zero, so the service manager's
// recovery action starts the new binary.
const exitRestart = 3

type runOptions struct {
	home         string
	logLevel     string
	readyTimeout time.Duration
	crashBudget  int
	watch        time.Duration
	stopGrace    time.Duration
	backoffMin   time.Duration
	backoffMax   time.Duration
	stableAfter  time.Duration
	badConfig    time.Duration
	cleanExit    time.Duration
}

func newRunCmd() *cobra.Command {
	var o runOptions
	cmd := &cobra.Command{
		Use:   "run",
		Short: "Run the home's agent in the foreground (what the OS service executes)",
		Long: `run starts versions/<current>/molt-agent as named by state/active.json and
keeps it running by its exit code:

  0   stopped cleanly: restarted after a short delay unless the supervisor asked
  10  restart at once, same version
  11  an upgrade is staged: start the version active.json now names, under trial
  12  configuration unusable: restart after a long delay (5m)
  *   crash: restart with backoff, 1s doubling to 60s, reset after 5m stable

A version under trial must say ready within --ready-timeout and may fail at most
--crash-budget times within --watch; otherwise it is rolled back to the previous
version and state/result.json says why. A version that survives the window is
committed; if it carries a molt-supervisor of another version, that binary is
checked (version --json, selftest), installed over this one and started in place.

SIGTERM or SIGINT stops the agent (stop over the control channel, terminate after
half of --stop-grace, kill at its end), then the supervisor.

Settings come from the flags, then from agent.yaml's supervisor: section, then
the defaults. The log is JSON in logs/supervisor.log (rotated), and also on
the console when stderr is a terminal.`,
		Example: `  molt-supervisor run --home /opt/molt
  molt-supervisor run --home /srv/molt-b --watch 10m --crash-budget 1`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return o.run(cmd) },
	}
	f := cmd.Flags()
	f.StringVar(&o.home, "home", "", "agent home (default $MOLT_HOME, else the OS default)")
	f.StringVar(&o.logLevel, "log-level", "info", "log level: debug, info, warn, error")
	f.DurationVar(&o.readyTimeout, "ready-timeout", supervisor.DefaultReadyTimeout, "time a version under trial has to say ready")
	f.IntVar(&o.crashBudget, "crash-budget", supervisor.DefaultCrashBudget, "failures a version under trial may have within the watch window")
	f.DurationVar(&o.watch, "watch", supervisor.DefaultWatch, "watch window of a version under trial")
	f.DurationVar(&o.stopGrace, "stop-grace", supervisor.DefaultStopGrace, "time the agent has to stop before it is killed")
	// Backoff tuning is for tests and benchmarks; the defaults are the
	// contract.
	f.DurationVar(&o.backoffMin, "backoff-min", supervisor.DefaultBackoffMin, "first delay after a crash")
	f.DurationVar(&o.backoffMax, "backoff-max", supervisor.DefaultBackoffMax, "longest delay after crashes")
	f.DurationVar(&o.stableAfter, "stable-after", supervisor.DefaultStableAfter, "run time that resets the crash backoff")
	f.DurationVar(&o.badConfig, "bad-config-delay", supervisor.DefaultBadConfigDelay, "delay after exit 12")
	f.DurationVar(&o.cleanExit, "clean-exit-delay", supervisor.DefaultCleanExitDelay, "delay after an exit 0 not asked for")
	for _, name := range []string{"backoff-min", "backoff-max", "stable-after", "bad-config-delay", "clean-exit-delay"} {
		_ = f.MarkHidden(name)
	}
	return cmd
}

func (o *runOptions) run(cmd *cobra.Command) error {
	// The stop signals are caught from here on (catchStop), not only
	// once RunService runs.
	early, stopEarly := catchStop()
	defer stopEarly()
	// The path this process was started from is captured now: after a
	// self-upgrade os.Executable would name the old file.
	exe, err := os.Executable()
	if err != nil {
		return cli.Exit(1, err)
	}
	handoff := os.Getenv(supervisor.EnvHandoff)
	os.Unsetenv(supervisor.EnvHandoff)

	for name, d := range map[string]time.Duration{"ready-timeout": o.readyTimeout, "watch": o.watch, "stop-grace": o.stopGrace,
		"backoff-min": o.backoffMin, "backoff-max": o.backoffMax, "stable-after": o.stableAfter,
		"bad-config-delay": o.badConfig, "clean-exit-delay": o.cleanExit} {
		if d <= 0 {
			return cli.Usage("--%s: %s is not a positive duration", name, d)
		}
	}
	if o.crashBudget < 0 {
		return cli.Usage("--crash-budget: %d must not be negative", o.crashBudget)
	}
	h := home.New(o.home)
	log, closeLog, err := cli.NewLogger(cli.LogOptions{
		Level:   o.logLevel,
		File:    filepath.Join(h.LogsDir(), "supervisor.log"),
		Console: term.IsTerminal(int(os.Stderr.Fd())),
	})
	if err != nil {
		return err
	}
	defer closeLog()

	cfg := supervisor.Config{
		Home: h, Version: buildinfo.Version, Executable: exe, Args: os.Args, Handoff: handoff,
		ReadyTimeout: o.readyTimeout, CrashBudget: o.crashBudget, Watch: o.watch, StopGrace: o.stopGrace,
		BackoffMin: o.backoffMin, BackoffMax: o.backoffMax, StableAfter: o.stableAfter,
		BadConfigDelay: o.badConfig, CleanExitDelay: o.cleanExit,
		Log: log,
	}
	o.applyFile(cmd, h, &cfg, log)
	sv, err := supervisor.New(cfg)
	if err != nil {
		return cli.Usage("%v", err)
	}

	// The one place that ties the supervisor to the OS's stop request:
	// SIGTERM/SIGINT, or the Windows SCM's stop.
	err = platform.RunService(platform.ServiceNameFor(h.Dir), func(ctx context.Context) error {
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		defer context.AfterFunc(early, cancel)()
		return sv.Run(ctx)
	})
	if errors.Is(err, supervisor.ErrRestart) {
		log.Info("exiting so that the service manager starts the new supervisor")
		return cli.Exit(exitRestart, nil)
	}
	if err != nil {
		log.Error("supervisor failed", zap.Error(err))
		return err
	}
	log.Info("supervisor stopped")
	return nil
}

// applyFile fills in agent.yaml's supervisor: settings for flags not
// given. An unreadable agent.yaml does not stop the supervisor: the agent
// reports it (exit 12), and the defaults keep the agent supervised.
func (o *runOptions) applyFile(cmd *cobra.Command, h home.Home, cfg *supervisor.Config, log *zap.Logger) {
	c, err := config.Load(h.ConfigPath())
	if errors.Is(err, config.ErrNotFound) {
		return
	}
	if err != nil {
		log.Warn("agent.yaml unusable; supervisor settings from flags and defaults", zap.Error(err))
		return
	}
	set := func(flag string, v config.Duration, dst *time.Duration) {
		if !cmd.Flags().Changed(flag) && v > 0 {
			*dst = time.Duration(v)
		}
	}
	set("ready-timeout", c.Supervisor.ReadyTimeout, &cfg.ReadyTimeout)
	set("watch", c.Supervisor.Watch, &cfg.Watch)
	set("stop-grace", c.Supervisor.StopGrace, &cfg.StopGrace)
	if !cmd.Flags().Changed("crash-budget") && c.Supervisor.CrashBudget != nil {
		cfg.CrashBudget = *c.Supervisor.CrashBudget
	}
}
