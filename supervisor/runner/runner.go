// Package runner runs one instance of a workload: it starts the process
// in its own process group (job object on Windows) with molt's
// variables, keeps its output in logs/workload-<name>-<version>.log,
// runs its ready check and then its live checks, and reports what
// happens as events. It neither restarts the workload nor decides a
// trial: the supervisor owns that policy.
package runner

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
	"gopkg.in/natefinch/lumberjack.v2"

	"github.com/moltfleet/molt/home"
	"github.com/moltfleet/molt/platform"
	"github.com/moltfleet/molt/workload/probe"
	"github.com/moltfleet/molt/workload/spec"
)

// Config is what one instance runs.
type Config struct {
	Home home.Home
	// Version is the version directory the files come from
	// (versions/<Version>/workloads/<name>).
	Version string
	// Workload is the spec and its files; the runner applies
	// Spec.Defaults.
	Workload spec.Workload
	// AgentID is $MOLT_AGENT_ID ("" before enrollment).
	AgentID string
	// BaseEnv is the environment to start from (the supervisor's,
	// without molt's control variables).
	BaseEnv []string
	// Log gets the lifecycle lines (started, ready, unhealthy, exited).
	Log *zap.Logger
	// Now is the clock of the events (default time.Now).
	Now func() time.Time
}

// Kind is what an Event reports.
type Kind int

const (
	// Ready: the ready check passed.
	Ready Kind = iota + 1
	// NotReady: the ready check did not pass within its Within; the
	// process is left running, the caller decides.
	NotReady
	// Unhealthy: the live check failed Failures times in a row; sent once
	// per run of failures (a pass starts the count again).
	Unhealthy
	// Exited: the process exited; the last event.
	Exited
)

func (k Kind) String() string {
	switch k {
	case Ready:
		return "ready"
	case NotReady:
		return "not ready"
	case Unhealthy:
		return "unhealthy"
	case Exited:
		return "exited"
	}
	return fmt.Sprintf("Kind(%d)", int(k))
}

// Event is one thing that happened to an instance.
type Event struct {
	Kind Kind
	At   time.Time
	// Reason: for NotReady and Unhealthy the failed check's line ("did
	// not pass its ready check within 30s: GET ...: connection
	// refused"); for Exited the exit ("exit status 3", "signal: killed").
	Reason string
	// Code is Exited's exit code, -1 for a signal or an unknown status.
	Code int
	// Asked: the exit followed Stop.
	Asked bool
}

// Errors of Start and Adopt.
var (
	// ErrStart wraps every failure to start the process.
	ErrStart = errors.New("start")
	// ErrAdopt wraps every failure to adopt a handed-off process.
	ErrAdopt = errors.New("adopt")
)

// firstReadyPause is the pause after the first failed ready check.
const firstReadyPause = 5 * time.Millisecond

// drainWait bounds the wait for the output after the process exited: a
// process that escaped the group can hold the pipes open.
const drainWait = 2 * time.Second

// Instance is one running (or exited) process of a workload.
type Instance struct {
	cfg      Config
	spec     spec.Spec // with defaults
	dir      string    // versions/<v>/workloads/<name>
	env      []string
	identity string
	log      *zap.Logger
	now      func() time.Time

	proc    *os.Process
	id      platform.ProcessIdentity
	group   *platform.Group
	started time.Time
	ready   atomic.Bool

	out, errOut *os.File
	logw        *lumberjack.Logger
	pumpMu      sync.Mutex // guards pumps and handedOff
	pumpCond    *sync.Cond // on pumpMu: handedOff changed
	pumps       []*pump
	// handedOff: Handoff stopped the pumps and gave the pipes to the next
	// image; nothing may close them until Resume.
	handedOff bool

	events chan Event
	exited chan struct{} // closed once the process has exited (reaped)
	done   chan struct{} // closed once exited and the output drained

	stopOnce sync.Once
	asked    atomic.Bool
	sigMu    sync.Mutex // orders group signals before the group is gone
	gone     bool       // under sigMu: the process was reaped

	checksCancel context.CancelFunc
	checksDone   chan struct{}
}

// Start starts the workload of cfg and begins its ready check (see the
// package doc). The caller reads Events until it is closed.
func Start(cfg Config) (*Instance, error) {
	i, err := newInstance(cfg)
	if err != nil {
		return nil, err
	}
	sp := i.spec
	h := cfg.Home
	if err := os.MkdirAll(h.DataDir(sp.Name), 0o750); err != nil {
		return nil, fmt.Errorf("%w: data directory: %w", ErrStart, err)
	}
	for _, d := range []string{filepath.Dir(h.ReadyFile(sp.Name)), h.HoldsDir(), h.LogsDir()} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrStart, err)
		}
	}
	// A ready file left by an earlier run must not make this one ready.
	if err := os.Remove(h.ReadyFile(sp.Name)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%w: remove the old ready file: %w", ErrStart, err)
	}
	cwd := h.DataDir(sp.Name)
	if sp.Dir != "" {
		cwd = filepath.Join(i.dir, filepath.FromSlash(sp.Dir))
	}
	exe := filepath.Join(i.dir, filepath.FromSlash(sp.Command))
	cmd := exec.Command(exe, sp.Args...)
	cmd.Dir = cwd
	cmd.Env = i.env
	outR, outW, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrStart, err)
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		outR.Close()
		outW.Close()
		return nil, fmt.Errorf("%w: %w", ErrStart, err)
	}
	// *os.File outputs go straight to the child: no copying goroutines
	// in os/exec, so the process can be waited for on its own and its
	// output read (and handed on) by the pumps.
	cmd.Stdout, cmd.Stderr = outW, errW
	platform.PrepareGroup(cmd)
	err = cmd.Start()
	outW.Close()
	errW.Close()
	if err != nil {
		outR.Close()
		errR.Close()
		return nil, fmt.Errorf("%w %s: %w", ErrStart, filepath.ToSlash(filepath.Join("versions", cfg.Version, "workloads", sp.Name, sp.Command)), unwrapPath(err))
	}
	i.started = i.now()
	i.proc, i.out, i.errOut = cmd.Process, outR, errR
	i.group, err = platform.NewGroup(cmd.Process.Pid)
	if err != nil {
		// Without its group the workload could not be stopped whole:
		// it does not run.
		_ = cmd.Process.Kill()
		_, _ = cmd.Process.Wait()
		outR.Close()
		errR.Close()
		return nil, fmt.Errorf("%w: process group: %w", ErrStart, err)
	}
	i.id, err = platform.IdentifyProcess(cmd.Process.Pid)
	if err != nil {
		i.id = platform.ProcessIdentity{PID: cmd.Process.Pid, Exe: exe}
	}
	i.log = i.log.With(zap.Int("pid", i.proc.Pid))
	i.log.Info("workload started", zap.String("command", exe), zap.String("dir", cwd))
	i.run(false)
	return i, nil
}

// unwrapPath drops os/exec's repetition of the path from a start error
// ("fork/exec /a/b: no such file or directory" → "no such file or
// directory").
func unwrapPath(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

func newInstance(cfg Config) (*Instance, error) {
	w := cfg.Workload
	sp := w.Spec.Defaults()
	if !spec.ValidName(sp.Name) || !spec.SafePath(sp.Command) {
		return nil, fmt.Errorf("%w: workload %q: not a valid spec", ErrStart, sp.Name)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Log == nil {
		cfg.Log = zap.NewNop()
	}
	i := &Instance{
		cfg: cfg, spec: sp, dir: cfg.Home.WorkloadDir(cfg.Version, sp.Name), identity: w.Identity(),
		now: cfg.Now, events: make(chan Event, 16), exited: make(chan struct{}), done: make(chan struct{}),
		log: cfg.Log.With(zap.String("workload", sp.Name), zap.String("workload_version", cfg.Version)),
	}
	i.pumpCond = sync.NewCond(&i.pumpMu)
	i.env = i.environ()
	return i, nil
}

// environ is BaseEnv, the spec's env and molt's variables
// (docs/workloads.md), later ones replacing earlier ones of the same
// name.
func (i *Instance) environ() []string {
	h, name := i.cfg.Home, i.spec.Name
	env := slices.Clone(i.cfg.BaseEnv)
	keys := make([]string, 0, len(i.spec.Env))
	for k := range i.spec.Env {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		env = append(env, k+"="+i.spec.Env[k])
	}
	env = append(env,
		"MOLT_HOME="+h.Dir,
		"MOLT_WORKLOAD="+name,
		"MOLT_WORKLOAD_VERSION="+i.cfg.Version,
		"MOLT_WORKLOAD_DIR="+i.dir,
		"MOLT_DATA_DIR="+h.DataDir(name),
		"MOLT_AGENT_ID="+i.cfg.AgentID,
		"MOLT_HOLDS_DIR="+h.HoldsDir(),
		"MOLT_READY_FILE="+h.ReadyFile(name),
	)
	return dedupEnv(env)
}

// dedupEnv keeps the last value of each name, in the order of their
// first appearance (os/exec does the same on Unix, not everywhere).
func dedupEnv(env []string) []string {
	last := map[string]int{}
	for j, kv := range env {
		last[envKey(kv)] = j
	}
	out := make([]string, 0, len(last))
	for j, kv := range env {
		if last[envKey(kv)] == j {
			out = append(out, kv)
		}
	}
	return out
}

// run starts the pumps, the wait and the checks (the ready check, or the
// live checks of an instance already ready).
func (i *Instance) run(ready bool) {
	i.logw = &lumberjack.Logger{
		Filename:   filepath.Join(i.cfg.Home.LogsDir(), home.WorkloadLogName(i.spec.Name, i.cfg.Version)),
		MaxSize:    logMaxMB,
		MaxBackups: logBackups,
	}
	i.pumpMu.Lock()
	i.startPumpsLocked()
	i.pumpMu.Unlock()
	ctx, cancel := context.WithCancel(context.Background())
	i.checksCancel, i.checksDone = cancel, make(chan struct{})
	go i.checks(ctx, ready)
	go i.wait()
}

func (i *Instance) startPumpsLocked() {
	i.pumps = []*pump{
		startPump(i.out, "stdout", i.logw, i.now),
		startPump(i.errOut, "stderr", i.logw, i.now),
	}
}

// wait waits for the process, ends the rest of its group, drains the
// output and sends Exited.
func (i *Instance) wait() {
	st, err := i.proc.Wait()
	at := i.now()
	i.sigMu.Lock()
	// Whatever the workload started dies with it (as under systemd's
	// default KillMode): a restart must not meet a leftover holding its
	// port. The group id cannot be reused while a member lives.
	_ = i.group.Kill()
	_ = i.group.Close()
	i.gone = true
	i.sigMu.Unlock()
	close(i.exited)
	i.checksCancel()
	<-i.checksDone

	// Handed off: the pipes belong to the next image now (the exec is
	// under way), unless it fails and Resume gives them back.
	i.pumpMu.Lock()
	for i.handedOff {
		i.pumpCond.Wait()
	}
	ps, out, errOut := i.pumps, i.out, i.errOut
	i.pumpMu.Unlock()
	drained := make(chan struct{})
	go func() {
		for _, p := range ps {
			<-p.done
		}
		close(drained)
	}()
	select {
	case <-drained:
	case <-time.After(drainWait):
		stopped := true
		for _, p := range ps {
			stopped = p.stop() == nil && stopped
		}
		if stopped {
			<-drained
			break
		}
		// A pipe without deadlines (Windows) held by a process outside
		// the job: its pump ends when that process does; the instance
		// does not wait for it.
		i.log.Warn("workload output still open after its exit; not waiting for it")
	}
	go func() {
		<-drained
		out.Close()
		errOut.Close()
	}()
	_ = i.logw.Close()

	ev := Event{Kind: Exited, At: at, Code: -1, Asked: i.asked.Load()}
	switch {
	case err != nil:
		ev.Reason = "unknown exit status: " + err.Error()
	case st != nil:
		ev.Code, ev.Reason = st.ExitCode(), st.String()
	}
	i.log.Info("workload exited", zap.String("status", ev.Reason), zap.Bool("asked", ev.Asked),
		zap.Duration("ran", at.Sub(i.started)))
	close(i.done)
	i.events <- ev
	close(i.events)
}

// checks runs the ready check until it passes or Within passes, then the
// live checks, until ctx ends (the process exited).
func (i *Instance) checks(ctx context.Context, ready bool) {
	defer close(i.checksDone)
	if !ready {
		if !i.readyCheck(ctx) {
			return
		}
	}
	if i.spec.Live != nil {
		i.liveChecks(ctx)
	}
}

func (i *Instance) target() probe.Target {
	return probe.Target{
		Dir: i.dir, Env: i.env, Started: i.started, ReadyFile: i.cfg.Home.ReadyFile(i.spec.Name), Now: i.now,
		Alive: func() bool {
			select {
			case <-i.exited:
				return false
			default:
				return true
			}
		},
	}
}

// readyCheck tries the ready check every Interval until it passes
// (Ready, true) or Within of the start passes (NotReady, false). It
// measures from the start, so an adopted instance keeps its deadline.
func (i *Instance) readyCheck(ctx context.Context) bool {
	r := i.spec.Ready
	deadline := i.started.Add(r.Within.D())
	t := i.target()
	// The first tries come quickly and the pauses double up to Interval:
	// a workload that starts in 30 ms is seen ready in about that, not
	// at the next Interval.
	pause := min(firstReadyPause, r.Interval.D())
	for {
		err := probe.Check(ctx, r.Probe, t)
		if ctx.Err() != nil {
			return false
		}
		if err == nil {
			i.ready.Store(true)
			at := i.now()
			i.log.Info("workload ready", zap.Duration("after", at.Sub(i.started)))
			return i.send(ctx, Event{Kind: Ready, At: at})
		}
		left := deadline.Sub(i.now())
		if left <= 0 {
			reason := fmt.Sprintf("did not pass its ready check within %s: %v", r.Within.D(), err)
			i.log.Warn("workload not ready", zap.String("reason", reason))
			i.send(ctx, Event{Kind: NotReady, At: i.now(), Reason: reason})
			return false
		}
		if !sleep(ctx, min(pause, left)) {
			return false
		}
		pause = min(2*pause, r.Interval.D())
	}
}

// liveChecks runs the live check every Interval; Failures failures in a
// row send Unhealthy once, and a pass starts the count again.
func (i *Instance) liveChecks(ctx context.Context) {
	l := i.spec.Live
	t := i.target()
	failed := 0
	for sleep(ctx, l.Interval.D()) {
		err := probe.Check(ctx, l.Probe, t)
		if ctx.Err() != nil {
			return
		}
		if err == nil {
			if failed >= l.Failures {
				i.log.Info("workload healthy again")
			}
			failed = 0
			continue
		}
		failed++
		i.log.Debug("live check failed", zap.Int("in_a_row", failed), zap.Error(err))
		if failed == l.Failures {
			reason := fmt.Sprintf("failed its live check %d times in a row: %v", failed, err)
			i.log.Warn("workload unhealthy", zap.String("reason", reason))
			if !i.send(ctx, Event{Kind: Unhealthy, At: i.now(), Reason: reason}) {
				return
			}
		}
	}
}

// send delivers a check's event unless the process exits first (its
// Exited follows, and a check's word about an exited process is stale).
func (i *Instance) send(ctx context.Context, ev Event) bool {
	select {
	case i.events <- ev:
		return true
	case <-ctx.Done():
		return false
	}
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// Events returns the instance's events: at most one of Ready and
// NotReady, Unhealthy, and last Exited, after which it is closed. The
// caller must read it until it is closed.
func (i *Instance) Events() <-chan Event { return i.events }

// Done is closed when the process has exited and its output is drained.
func (i *Instance) Done() <-chan struct{} { return i.done }

// Stop stops the process: the spec's stop signal to its group (Windows:
// CTRL_BREAK_EVENT), then after the grace a kill of the whole group
// (job). It returns once the process has exited and its output is
// drained. It is idempotent and safe to call from any goroutine.
func (i *Instance) Stop() {
	i.stopOnce.Do(func() {
		i.asked.Store(true)
		st := i.spec.Stop
		if st.Signal != "kill" {
			if err := i.signal(func(g *platform.Group) error { return g.Signal(st.Signal) }); err != nil {
				i.log.Warn("signal the workload", zap.String("signal", st.Signal), zap.Error(err))
			}
			t := time.NewTimer(st.Grace.D())
			defer t.Stop()
			select {
			case <-i.exited:
				return
			case <-t.C:
			}
			i.log.Warn("workload did not stop within its grace; killing its process group", zap.Duration("grace", st.Grace.D()))
		}
		if err := i.signal((*platform.Group).Kill); err != nil {
			i.log.Warn("kill the workload", zap.Error(err))
		}
	})
	<-i.done
}

// signal applies send to the group unless the process was already
// reaped (its pid could belong to another process then).
func (i *Instance) signal(send func(*platform.Group) error) error {
	i.sigMu.Lock()
	defer i.sigMu.Unlock()
	if i.gone {
		return nil
	}
	if err := send(i.group); err != nil && !errors.Is(err, platform.ErrNoProcess) {
		return err
	}
	return nil
}

// Process identifies the process (pid, start time, executable), as
// state/workloads.json records it.
func (i *Instance) Process() platform.ProcessIdentity { return i.id }

// Started is when the process started.
func (i *Instance) Started() time.Time { return i.started }

// Ready reports whether the ready check passed.
func (i *Instance) Ready() bool { return i.ready.Load() }

// Name is the workload's name.
func (i *Instance) Name() string { return i.spec.Name }

// Version is the version directory the files come from.
func (i *Instance) Version() string { return i.cfg.Version }

// Identity is the workload's identity (spec.Workload.Identity).
func (i *Instance) Identity() string { return i.identity }
