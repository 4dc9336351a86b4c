// Package supervisor runs the agent of one home and keeps it running by the
// exit-code contract (supervisor/control), watches a freshly switched
// version under trial and rolls it back when it is unhealthy, commits it
// when it survives the watch window, and then upgrades the supervisor's own
// binary from the committed version, re-executing in place on Unix without
// restarting the agent. It never talks to the network.
package supervisor

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"go.uber.org/zap"
	"gopkg.in/natefinch/lumberjack.v2"

	"github.com/moltfleet/molt/home"
	"github.com/moltfleet/molt/internal/faults"
	"github.com/moltfleet/molt/platform"
)

// Defaults of Config (docs/design.md, "Defaults of the trial and restarts").
const (
	DefaultReadyTimeout   = 60 * time.Second
	DefaultCrashBudget    = 2
	DefaultWatch          = 5 * time.Minute
	DefaultStopGrace      = 30 * time.Second
	DefaultBackoffMin     = 1 * time.Second
	DefaultBackoffMax     = 60 * time.Second
	DefaultStableAfter    = 5 * time.Minute
	DefaultBadConfigDelay = 5 * time.Minute
	DefaultCleanExitDelay = 1 * time.Second
	// CheckTimeout bounds each run of a staged supervisor (version,
	// selftest) before it is installed.
	CheckTimeout = 10 * time.Second
)

// EnvHandoff carries the running agent across the supervisor's in-place
// exec: the new image reads it (and removes it from its environment) to
// adopt the agent instead of starting another.
const EnvHandoff = "MOLT_SUPERVISOR_HANDOFF"

// ErrRestart is returned by Run after the supervisor replaced its own
// binary on a system where it cannot exec in place (Windows): the caller
// exits non-zero and the service manager's recovery action starts the new
// binary.
var ErrRestart = errors.New("supervisor binary upgraded: restart required")

// errRestartPending: the new binary is installed, ErrRestart is due.
var errRestartPending = errors.New("restart into the new supervisor pending")

// Clock is the time source. After must deliver once, after d.
type Clock interface {
	Now() time.Time
	After(d time.Duration) <-chan time.Time
}

type realClock struct{}

func (realClock) Now() time.Time                         { return time.Now() }
func (realClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// Config configures a Supervisor. Zero durations take the defaults;
// CrashBudget is used as given (0 rolls back on the first failure).
type Config struct {
	Home home.Home
	// Version is the running supervisor's version.
	Version string
	// Executable is the path this supervisor was started from, captured
	// at process start (after a self-upgrade os.Executable names the old
	// file). Self-upgrade only replaces it when it is the home's
	// bin/molt-supervisor.
	Executable string
	// Args are the arguments (with argv[0]) to exec the new binary with.
	Args []string
	// Handoff is the value of EnvHandoff, if this process was exec'd by
	// its predecessor.
	Handoff string

	ReadyTimeout time.Duration
	CrashBudget  int
	Watch        time.Duration
	StopGrace    time.Duration

	// BackoffMin doubles up to BackoffMax between crashes and is reset
	// by a run that lasted StableAfter.
	BackoffMin  time.Duration
	BackoffMax  time.Duration
	StableAfter time.Duration
	// BadConfigDelay follows exit 12; CleanExitDelay an exit 0 the
	// supervisor did not ask for.
	BadConfigDelay time.Duration
	CleanExitDelay time.Duration

	Log   *zap.Logger
	Clock Clock
}

func (c *Config) setDefaults() {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&c.ReadyTimeout, DefaultReadyTimeout)
	def(&c.Watch, DefaultWatch)
	def(&c.StopGrace, DefaultStopGrace)
	def(&c.BackoffMin, DefaultBackoffMin)
	def(&c.BackoffMax, DefaultBackoffMax)
	def(&c.StableAfter, DefaultStableAfter)
	def(&c.BadConfigDelay, DefaultBadConfigDelay)
	def(&c.CleanExitDelay, DefaultCleanExitDelay)
	if c.Clock == nil {
		c.Clock = realClock{}
	}
	if c.Log == nil {
		c.Log = zap.NewNop()
	}
}

// Supervisor runs one home's agent. It is not safe for concurrent use: one
// Run at a time.
type Supervisor struct {
	cfg   Config
	h     home.Home
	log   *zap.Logger
	clock Clock

	// backoff is the last crash delay; 0 after a stable run.
	backoff time.Duration
	// crashes counts the agent's crashes since this supervisor started
	// (state/workloads.json, agent_restarts).
	crashes int

	logsMu sync.Mutex
	logs   map[string]*lumberjack.Logger

	// wl are the operator's workloads of the current version.
	wl *workloadSet
}

// New checks cfg and returns a Supervisor.
func New(cfg Config) (*Supervisor, error) {
	if cfg.Home.Dir == "" {
		return nil, fmt.Errorf("no home directory")
	}
	if cfg.CrashBudget < 0 {
		return nil, fmt.Errorf("crash budget %d: must not be negative", cfg.CrashBudget)
	}
	cfg.setDefaults()
	if cfg.BackoffMax < cfg.BackoffMin {
		return nil, fmt.Errorf("backoff maximum %s is below the minimum %s", cfg.BackoffMax, cfg.BackoffMin)
	}
	s := &Supervisor{
		cfg:   cfg,
		h:     cfg.Home,
		log:   cfg.Log,
		clock: cfg.Clock,
		logs:  map[string]*lumberjack.Logger{},
	}
	s.wl = newWorkloadSet(s)
	return s, nil
}

// Run supervises the agent until ctx ends, then stops the agent (stop
// over the channel, terminate, kill after the grace period) and returns
// nil. It returns ErrRestart when the supervisor must be restarted by its
// service manager to run its upgraded binary; on Unix a self-upgrade
// re-executes in place and Run does not return.
func (s *Supervisor) Run(ctx context.Context) error {
	// One supervisor per home: a second one would take the first one's
	// agent for a leftover and stop it.
	if err := os.MkdirAll(s.h.StateDir(), 0o755); err != nil {
		return fmt.Errorf("state directory: %w", err)
	}
	lock, err := platform.LockProcess(LockPath(s.h))
	if errors.Is(err, platform.ErrLocked) {
		return fmt.Errorf("another supervisor runs this home: %w", err)
	}
	if err != nil {
		return fmt.Errorf("lock the home: %w", err)
	}
	defer lock.Unlock()
	defer s.closeLogs()
	// Not reached after an exec in place, which hands the workloads over.
	defer s.wl.close()
	s.log.Info("supervisor running", zap.String("version", s.cfg.Version), zap.String("home", s.h.Dir), zap.Int("pid", os.Getpid()))
	var a *agent
	if s.cfg.Handoff != "" {
		if a, err = s.adopt(s.cfg.Handoff); err != nil {
			s.log.Error("cannot adopt the agent of the previous supervisor image", zap.Error(err))
			a = nil
		}
	}
	if a == nil {
		s.stopStale()
		if s.wl.adopted == 0 {
			s.wl.stopStale()
		}
	}
	// resume: the first agent this process supervises is followed by a
	// check for a self-upgrade that was interrupted. Not after an exec in
	// place: that image is the upgrade.
	resume := s.cfg.Handoff == ""
	var delay time.Duration
	for {
		if a == nil {
			if delay > 0 {
				s.log.Info("starting the agent after a delay", zap.Duration("delay", delay))
				if !s.pause(ctx, delay) {
					s.wl.stopEverything("supervisor stopping")
					return nil
				}
			}
			if ctx.Err() != nil {
				s.wl.stopEverything("supervisor stopping")
				return nil
			}
			act, err := s.prepare()
			if err != nil {
				delay = s.cfg.BackoffMax
				s.log.Error("nothing to run", zap.Error(err), zap.Duration("retry_in", delay))
				continue
			}
			a, err = s.start(act.Current)
			if act.Trial != nil {
				s.writeActive(act) // the window's start, and before a failure is counted
			}
			if werr := s.wl.reconcile(act.Current, act.Trial != nil); werr != nil {
				s.log.Error("cannot read the version's workloads", zap.String("agent_version", act.Current), zap.Error(werr))
				if act.Trial != nil {
					if a != nil {
						s.stopAgent(a, "rolling back")
						a = nil
					}
					s.rollback(act, fmt.Sprintf("version %s: %v", act.Current, werr))
					delay = 0
					continue
				}
			}
			if err != nil {
				s.log.Error("cannot start the agent", zap.String("agent_version", act.Current), zap.Error(err))
				delay = s.failed(act.Current, fmt.Sprintf("could not start: %v", err), 0)
				continue
			}
		}
		stopped, err := s.supervise(ctx, a, resume)
		resume = false
		if errors.Is(err, ErrRestart) {
			// The service manager starts the new binary, which starts
			// the workloads again.
			s.wl.stopEverything("supervisor restarts into its new binary")
		}
		if stopped || err != nil {
			return err
		}
		delay = s.afterExit(a)
		a = nil
	}
}

// pause waits d before the agent's next start, keeping the workloads
// going meanwhile (their restarts, checks and, under a trial, their
// verdicts). It returns false when ctx ended, and early (true) when a
// workload rolled the trial back: the previous version starts at once.
func (s *Supervisor) pause(ctx context.Context, d time.Duration) bool {
	t := s.clock.After(d)
	for {
		select {
		case <-ctx.Done():
			return false
		case <-t:
			return true
		case e := <-s.wl.events:
			act, err := s.h.ReadActive()
			trial := err == nil && trialOf(act, act.Current) != nil
			v := s.wl.handle(e, trial)
			if !trial {
				continue
			}
			if reason := s.judge(act.Current, v); reason != "" {
				if act, err := s.h.ReadActive(); err == nil && trialOf(act, act.Current) != nil {
					s.rollbackFor(act, reason, v.workload)
					return true
				}
			}
		}
	}
}

// stopEverything stops the agent and the workloads at once.
func (s *Supervisor) stopEverything(a *agent, why string) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.wl.stopEverything(why)
	}()
	s.stopAgent(a, why)
	<-done
}

// supervise watches a running agent until it exits (false, nil), until
// ctx ends and it was stopped (true, nil), or until the supervisor must
// restart through its service manager (true, ErrRestart). With resume, a
// self-upgrade that was interrupted is carried out first
// (resumeSelfUpgrade), once the agent runs.
func (s *Supervisor) supervise(ctx context.Context, a *agent, resume bool) (bool, error) {
	act, err := s.h.ReadActive()
	if err != nil {
		s.log.Error("read active.json while supervising", zap.Error(err))
	}
	trial := trialOf(act, a.version)
	var readyC, windowC <-chan time.Time
	if trial != nil {
		if !a.ready {
			readyC = s.clock.After(s.cfg.ReadyTimeout - s.clock.Now().Sub(a.started))
		}
		windowC = s.clock.After(trial.Started.Add(s.cfg.Watch).Sub(s.clock.Now()))
	}
	windowOver := false
	// restartPending: the new supervisor binary is installed and this
	// process must exit for it (Windows), once the agent is not busy.
	restartPending := false
	msgs := a.messages()
	commit := func() error {
		trial, readyC, windowC = nil, nil, nil
		if !s.commit(a.version) {
			return nil
		}
		return s.selfUpgrade(ctx, a)
	}
	if resume && err == nil {
		if stop, err := s.afterCommit(a, s.resumeSelfUpgrade(ctx, a, act), &restartPending); stop {
			return true, err
		}
	}
	for {
		select {
		case <-ctx.Done():
			s.stopEverything(a, "supervisor stopping")
			return true, nil
		case <-a.done:
			if restartPending {
				return true, ErrRestart
			}
			return false, nil
		case m, ok := <-msgs:
			if !ok {
				msgs = nil
				continue
			}
			if m != "ready" {
				s.log.Debug("agent says", zap.String("agent_version", a.version), zap.String("message", m))
				a.busy = m == "busy"
				if restartPending && !a.busy {
					s.stopAgent(a, "supervisor restarts into its new binary")
					return true, ErrRestart
				}
				continue
			}
			if a.ready {
				continue
			}
			a.ready = true
			readyC = nil
			s.log.Info("agent ready", zap.String("agent_version", a.version), zap.Int("pid", a.pid()),
				zap.Duration("after", s.clock.Now().Sub(a.started)))
			if trial == nil {
				continue
			}
			if !trial.Ready {
				trial.Ready = true
				s.updateTrial(a.version, func(t *home.Trial) { t.Ready = true })
			}
			if windowOver && s.wl.allReady() {
				if stop, err := s.afterCommit(a, commit(), &restartPending); stop {
					return true, err
				}
			}
		case <-readyC:
			readyC = nil
			if a.ready {
				continue
			}
			s.log.Warn("trial version did not say ready in time", zap.String("agent_version", a.version), zap.Duration("ready_timeout", s.cfg.ReadyTimeout))
			s.stopAgent(a, "not ready in time")
			a.handled = true
			if act, err := s.h.ReadActive(); err == nil && trialOf(act, a.version) != nil {
				s.rollback(act, fmt.Sprintf("version %s did not say ready within %s", a.version, s.cfg.ReadyTimeout))
			}
			return false, nil
		case e := <-s.wl.events:
			v := s.wl.handle(e, trial != nil)
			if trial == nil {
				continue
			}
			if reason := s.judge(a.version, v); reason != "" {
				s.log.Warn("trial version failed in a workload", zap.String("agent_version", a.version), zap.String("workload", v.workload), zap.String("reason", reason))
				s.stopAgent(a, "rolling back")
				a.handled = true
				if act, err := s.h.ReadActive(); err == nil && trialOf(act, a.version) != nil {
					s.rollbackFor(act, reason, v.workload)
				}
				return false, nil
			}
			if windowOver && a.ready && s.wl.allReady() {
				if stop, err := s.afterCommit(a, commit(), &restartPending); stop {
					return true, err
				}
			}
		case <-windowC:
			windowC = nil
			windowOver = true
			if a.ready && s.wl.allReady() {
				if stop, err := s.afterCommit(a, commit(), &restartPending); stop {
					return true, err
				}
			}
		}
	}
}

// afterCommit handles what the self-upgrade after a commit asks for: a
// restart through the service manager happens at once when the agent is
// not busy, else when it says idle (or exits).
func (s *Supervisor) afterCommit(a *agent, err error, pending *bool) (bool, error) {
	if !errors.Is(err, errRestartPending) {
		return err != nil, err
	}
	if !a.busy {
		s.stopAgent(a, "supervisor restarts into its new binary")
		return true, ErrRestart
	}
	s.log.Info("the agent is busy; restarting into the new supervisor when it is idle")
	*pending = true
	return false, nil
}

// afterExit decides what follows an agent's exit and returns the delay
// before the next start.
func (s *Supervisor) afterExit(a *agent) time.Duration {
	code, desc := a.exitCode()
	ran := a.exited.Sub(a.started)
	s.log.Info("agent exited", zap.String("agent_version", a.version), zap.Int("pid", a.pid()),
		zap.Int("code", code), zap.String("status", desc), zap.Duration("ran", ran))
	if ran >= s.cfg.StableAfter {
		s.backoff = 0
	}
	if a.handled {
		return 0
	}
	switch code {
	case exitUpgrade:
		faults.Point("supervisor/saw-exit-11")
		if act, err := s.h.ReadActive(); err == nil && act.Current != a.version {
			s.log.Info("agent switched versions; starting the one active.json names", zap.String("to", act.Current))
			return 0
		}
		s.log.Warn("agent exited 11 but active.json names no other version; restarting it")
		return s.quickRestart(ran)
	case exitRestart:
		return s.quickRestart(ran)
	case exitBadConfig:
		act, _ := s.h.ReadActive()
		if trialOf(act, a.version) != nil {
			s.rollback(act, fmt.Sprintf("version %s cannot use the configuration (exit 12)", a.version))
			return 0
		}
		s.log.Warn("agent says its configuration is unusable; waiting before the next try", zap.Duration("delay", s.cfg.BadConfigDelay))
		return s.cfg.BadConfigDelay
	case exitStopped:
		act, _ := s.h.ReadActive()
		if trialOf(act, a.version) != nil {
			return s.failed(a.version, "exited 0 without being asked to stop", ran)
		}
		return s.cfg.CleanExitDelay
	default:
		return s.failed(a.version, "crashed ("+desc+")", ran)
	}
}

// quickRestart is the delay after exit 10: none, unless the agent asks
// again within BackoffMin of its start, which would be a hot loop; then
// the crash backoff applies.
func (s *Supervisor) quickRestart(ran time.Duration) time.Duration {
	if ran >= s.cfg.BackoffMin {
		return 0
	}
	s.backoff = nextBackoff(s.backoff, s.cfg.BackoffMin, s.cfg.BackoffMax)
	s.log.Warn("agent asks for restarts too quickly; backing off", zap.Duration("ran", ran), zap.Duration("delay", s.backoff))
	return s.backoff
}

// failed handles a crash (or a start that failed): it counts toward the
// trial when the version is in trial, and returns the backoff delay.
func (s *Supervisor) failed(version, why string, ran time.Duration) time.Duration {
	s.crashes++
	s.wl.save() // the agent reports the count on its next check-in
	act, err := s.h.ReadActive()
	if t := trialOf(act, version); err == nil && t != nil {
		t.Crashes++
		s.writeActive(act)
		s.log.Warn("trial version failed", zap.String("agent_version", version), zap.String("why", why),
			zap.Int("failures", t.Crashes), zap.Int("crash_budget", s.cfg.CrashBudget))
		if t.Crashes > s.cfg.CrashBudget {
			s.rollback(act, fmt.Sprintf("version %s failed %d times within the %s watch window, more than the crash budget of %d; last: %s",
				version, t.Crashes, s.cfg.Watch, s.cfg.CrashBudget, why))
			return 0
		}
	}
	s.backoff = nextBackoff(s.backoff, s.cfg.BackoffMin, s.cfg.BackoffMax)
	return s.backoff
}

// nextBackoff doubles the previous crash delay within [min, max]; a
// previous delay of 0 (first crash, or after a stable run) gives min.
func nextBackoff(prev, min, max time.Duration) time.Duration {
	if prev < min {
		return min
	}
	if prev > max/2 {
		return max
	}
	return prev * 2
}
