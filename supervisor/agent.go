package supervisor

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/moltfleet/molt/platform"
	"github.com/moltfleet/molt/supervisor/control"
)

const (
	exitStopped   = control.ExitStopped
	exitRestart   = control.ExitRestart
	exitUpgrade   = control.ExitUpgrade
	exitBadConfig = control.ExitBadConfig
)

// agent is one running agent process, started or adopted.
type agent struct {
	version string
	id      platform.ProcessIdentity
	proc    *os.Process
	ch      *control.Channel
	// out and errOut are the supervisor's read ends of the agent's
	// stdout and stderr, kept for an in-place exec.
	out, errOut *os.File
	started     time.Time
	ready       bool
	// busy: the agent said busy (a hold, an order) and not idle since.
	busy bool
	// handled: the supervisor already decided what follows this exit
	// (it stopped the agent to roll back).
	handled bool

	done   chan struct{} // closed when the process has exited
	state  *os.ProcessState
	exited time.Time
}

func (a *agent) pid() int { return a.proc.Pid }

func (a *agent) messages() <-chan string {
	if a.ch == nil {
		return nil
	}
	return a.ch.Messages
}

// exitCode returns the exit code (-1 for a signal or an unknown status)
// and a description for the log.
func (a *agent) exitCode() (int, string) {
	if a.state == nil {
		return -1, "unknown exit status"
	}
	return a.state.ExitCode(), a.state.String()
}

// record is state/agent.json: enough to recognise the agent after the
// supervisor was killed, even if its pid was reused since.
type record struct {
	platform.ProcessIdentity
	Version    string    `json:"version"`
	Started    time.Time `json:"started"`
	Supervisor int       `json:"supervisor_pid"`
}

func (s *Supervisor) recordPath() string { return filepath.Join(s.h.StateDir(), "agent.json") }

// writeRecord records a right after its start. The record is renamed
// into place but not fsynced: it only matters while processes survive,
// which a host crash ends anyway, and every microsecond before it exists
// is a moment in which a kill -9 of the supervisor leaves an agent it
// cannot find.
func (s *Supervisor) writeRecord(a *agent) {
	r := record{ProcessIdentity: a.id, Version: a.version, Started: a.started, Supervisor: os.Getpid()}
	b, err := json.Marshal(r)
	if err == nil {
		tmp := s.recordPath() + ".tmp"
		if err = os.WriteFile(tmp, b, 0o644); err == nil {
			err = os.Rename(tmp, s.recordPath())
		}
	}
	if err != nil {
		s.log.Error("record the agent in state/agent.json", zap.Error(err))
	}
}

// removeRecord removes state/agent.json if it still names pid.
func (s *Supervisor) removeRecord(pid int) {
	r, err := s.readRecord()
	if err == nil && r.PID == pid {
		if err := os.Remove(s.recordPath()); err != nil && !errors.Is(err, fs.ErrNotExist) {
			s.log.Warn("remove state/agent.json", zap.Error(err))
		}
	}
}

func (s *Supervisor) readRecord() (record, error) {
	var r record
	b, err := os.ReadFile(s.recordPath())
	if err != nil {
		return r, err
	}
	if len(b) > 64<<10 {
		return r, fmt.Errorf("state/agent.json: too large")
	}
	if err := json.Unmarshal(b, &r); err != nil {
		return r, fmt.Errorf("state/agent.json: %w", err)
	}
	return r, nil
}

// agentEnv is the supervisor's environment without the variables it sets
// for the agent (and without the handoff, which is the supervisor's own).
func (s *Supervisor) agentEnv() []string {
	drop := map[string]bool{control.EnvSupervised: true, control.EnvSupervisorVersion: true,
		control.EnvHome: true, control.EnvChannel: true, EnvHandoff: true}
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if !drop[strings.ToUpper(k)] {
			env = append(env, kv)
		}
	}
	return append(env,
		control.EnvSupervised+"=1",
		control.EnvSupervisorVersion+"="+s.cfg.Version,
		control.EnvHome+"="+s.h.Dir,
	)
}

// start starts versions/<version>/molt-agent with the control channel,
// its output piped into the logs, and records it in state/agent.json.
func (s *Supervisor) start(version string) (*agent, error) {
	exe := s.h.AgentBinary(version)
	if _, err := os.Stat(exe); err != nil {
		return nil, fmt.Errorf("agent binary: %w", err)
	}
	cmd := exec.Command(exe, "run", "--home", s.h.Dir)
	cmd.Dir = s.h.Dir
	cmd.Env = s.agentEnv()
	outR, outW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		outR.Close()
		outW.Close()
		return nil, err
	}
	// *os.File outputs go straight to the child: no copying goroutines
	// in os/exec, so the process can be waited for on its own.
	cmd.Stdout, cmd.Stderr = outW, errW
	att, err := control.Attach(cmd)
	if err != nil {
		for _, f := range []*os.File{outR, outW, errR, errW} {
			f.Close()
		}
		return nil, fmt.Errorf("control channel: %w", err)
	}
	platform.PrepareChild(cmd)
	err = cmd.Start()
	outW.Close()
	errW.Close()
	ch := att.Started()
	if err != nil {
		ch.Close()
		outR.Close()
		errR.Close()
		return nil, err
	}
	a := &agent{version: version, proc: cmd.Process, ch: ch, out: outR, errOut: errR,
		started: s.clock.Now(), done: make(chan struct{})}
	a.id, err = platform.IdentifyProcess(a.pid())
	if err != nil {
		a.id = platform.ProcessIdentity{PID: a.pid(), Exe: exe}
	}
	s.writeRecord(a)
	s.log.Info("agent started", zap.String("agent_version", version), zap.Int("pid", a.pid()))
	s.follow(a)
	return a, nil
}

// follow pumps the agent's output into the logs and waits for its exit.
func (s *Supervisor) follow(a *agent) {
	w := s.agentLog(a.version)
	go s.pump(a.out, a.version, "stdout", w)
	go s.pump(a.errOut, a.version, "stderr", w)
	go func() {
		st, err := a.proc.Wait()
		if err != nil {
			s.log.Error("wait for the agent", zap.Int("pid", a.pid()), zap.Error(err))
		}
		a.state, a.exited = st, s.clock.Now()
		if a.ch != nil {
			a.ch.Close()
		}
		s.removeRecord(a.pid())
		close(a.done)
	}()
}

// stopAgent stops a: "stop" over the channel, the OS's terminate after
// half the grace period, kill at its end. It returns once a has exited.
func (s *Supervisor) stopAgent(a *agent, why string) {
	s.log.Info("stopping the agent", zap.String("agent_version", a.version), zap.Int("pid", a.pid()), zap.String("why", why))
	s.awaitStop(a)
	_, desc := a.exitCode()
	s.log.Info("agent stopped", zap.String("agent_version", a.version), zap.Int("pid", a.pid()), zap.String("status", desc))
}

func (s *Supervisor) awaitStop(a *agent) {
	if a.ch != nil {
		if err := a.ch.Stop(); err != nil {
			s.log.Debug("send stop", zap.Error(err))
		}
	}
	half := s.cfg.StopGrace / 2
	select {
	case <-a.done:
		return
	case <-s.clock.After(half):
	}
	s.log.Warn("agent did not stop; terminating it", zap.Int("pid", a.pid()), zap.Duration("after", half))
	if err := platform.TerminateProcess(a.pid()); err != nil && !errors.Is(err, platform.ErrNoProcess) {
		s.log.Warn("terminate the agent", zap.Error(err))
	}
	select {
	case <-a.done:
		return
	case <-s.clock.After(s.cfg.StopGrace - half):
	}
	s.log.Warn("agent did not stop within the grace period; killing it", zap.Int("pid", a.pid()), zap.Duration("grace", s.cfg.StopGrace))
	if err := platform.KillProcess(a.pid()); err != nil && !errors.Is(err, platform.ErrNoProcess) {
		s.log.Warn("kill the agent", zap.Error(err))
	}
	<-a.done
}

// stopStale stops an agent left by a supervisor that died without
// stopping it (kill -9, a crash). Its channel's other end is closed, so a
// well-behaved agent is already stopping; one that is not is terminated,
// then killed. state/agent.json identifies it by pid, start time and
// executable, so a reused pid is never signalled.
func (s *Supervisor) stopStale() {
	r, err := s.readRecord()
	if errors.Is(err, fs.ErrNotExist) {
		return
	}
	if err != nil {
		s.log.Warn("ignoring state/agent.json", zap.Error(err))
		os.Remove(s.recordPath())
		return
	}
	alive := func() bool {
		id, err := platform.IdentifyProcess(r.PID)
		return err == nil && id.Same(r.ProcessIdentity)
	}
	if !alive() {
		os.Remove(s.recordPath())
		return
	}
	s.log.Warn("an agent of a previous supervisor still runs; stopping it", zap.Int("pid", r.PID), zap.String("agent_version", r.Version))
	wait := func(d time.Duration) bool {
		deadline := s.clock.Now().Add(d)
		for s.clock.Now().Before(deadline) {
			if !alive() {
				return true
			}
			<-s.clock.After(50 * time.Millisecond)
		}
		return !alive()
	}
	half := s.cfg.StopGrace / 2
	if !wait(half) {
		s.log.Warn("terminating the previous agent", zap.Int("pid", r.PID))
		_ = platform.TerminateProcess(r.PID)
		if !wait(s.cfg.StopGrace - half) {
			s.log.Warn("killing the previous agent", zap.Int("pid", r.PID))
			_ = platform.KillProcess(r.PID)
			if !wait(10 * time.Second) {
				s.log.Error("the previous agent survives a kill", zap.Int("pid", r.PID))
			}
		}
	}
	os.Remove(s.recordPath())
}
