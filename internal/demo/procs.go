package demo

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/moltfleet/molt/home"
	"github.com/moltfleet/molt/platform"
)

// proc is one long-running process the demo started: the server, a
// supervisor or the unsupervised agent.
type proc struct {
	name string
	cmd  *exec.Cmd
	log  string
	// home is set for a supervisor: its agent and its workloads are found
	// through state/agent.json and state/workloads.json if the supervisor
	// has to be killed.
	home string
	done chan struct{}
	err  error // how it ended; valid once done is closed
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

// exited reports whether the process has ended, without waiting.
func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// procs owns every process the demo started and stops them all.
type procs struct {
	log *zap.Logger
	env []string
	// hurry is closed on a second interrupt: whatever is still being
	// stopped gracefully is killed at once.
	hurry <-chan struct{}

	mu   sync.Mutex
	list []*proc
}

// start runs bin with its output appended to logPath. The process gets
// its own process group: a ^C in the terminal reaches only the demo, which
// then stops everything in order (supervisors stop their agents).
func (ps *procs) start(name, logPath, home, bin string, args ...string) (*proc, error) {
	lf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	defer lf.Close()
	cmd := exec.Command(bin, args...)
	cmd.Env = ps.env
	// An *os.File is handed to the child as it is: no copying goroutine
	// that a grandchild holding the descriptor could keep alive.
	cmd.Stdout, cmd.Stderr = lf, lf
	platform.PrepareChild(cmd)
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, log: logPath, home: home, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	ps.mu.Lock()
	ps.list = append(ps.list, p)
	ps.mu.Unlock()
	ps.log.Debug("started", zap.String("process", name), zap.Int("pid", p.pid()), zap.String("command", bin), zap.Strings("args", args))
	return p, nil
}

// stop asks p to stop and waits up to grace (less if hurried), then kills
// it and what it leaves behind.
func (ps *procs) stop(p *proc, grace time.Duration) {
	if !p.exited() {
		_ = platform.TerminateProcess(p.pid())
		t := time.NewTimer(grace)
		select {
		case <-p.done:
		case <-t.C:
			ps.log.Warn("did not stop in time; killing it", zap.String("process", p.name), zap.Duration("grace", grace))
		case <-ps.hurry:
		}
		t.Stop()
		if !p.exited() {
			_ = platform.KillProcess(p.pid())
			<-p.done
		}
	}
	if p.home != "" {
		killRecordedAgent(p.home, ps.log)
		killRecordedWorkloads(p.home, ps.log)
	}
	ps.log.Debug("stopped", zap.String("process", p.name), zap.Error(p.err))
}

// stopAll stops the hosts first, in parallel, then the server, so the
// agents' last words reach it. It is safe to call more than once.
func (ps *procs) stopAll(server *proc, grace time.Duration) {
	ps.mu.Lock()
	list := ps.list
	ps.list = nil
	ps.mu.Unlock()
	var wg sync.WaitGroup
	for _, p := range list {
		if p == server {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			ps.stop(p, grace)
		}()
	}
	wg.Wait()
	for _, p := range list {
		if p == server {
			ps.stop(p, grace)
		}
	}
}

// killRecordedAgent kills the agent a supervisor recorded in
// state/agent.json if it still runs: a supervisor that had to be killed
// did not stop it. The record names the process by pid, start time and
// executable, so a reused pid is never signalled.
func killRecordedAgent(home string, log *zap.Logger) {
	b, err := os.ReadFile(filepath.Join(home, "state", "agent.json"))
	if err != nil {
		return
	}
	var rec platform.ProcessIdentity
	if err := json.Unmarshal(b, &rec); err != nil || rec.PID <= 0 {
		return
	}
	deadline := time.Now().Add(3 * time.Second)
	for {
		id, err := platform.IdentifyProcess(rec.PID)
		if err != nil || !id.Same(rec) {
			return
		}
		if time.Now().After(deadline) {
			log.Warn("the agent outlived its supervisor; killing it", zap.String("home", home), zap.Int("pid", rec.PID))
			_ = platform.KillProcess(rec.PID)
			return
		}
		// Without its supervisor the agent stops by itself when the
		// control channel closes; give it a moment to do so.
		time.Sleep(50 * time.Millisecond)
	}
}

// killRecordedWorkloads kills, with their process groups, the workloads
// a supervisor recorded in state/workloads.json that still run: a
// supervisor stopped in order stops them itself, one that had to be
// killed leaves them running (each in its own process group, as on a
// host). The record names each process by pid, start time and executable.
func killRecordedWorkloads(dir string, log *zap.Logger) {
	st, err := home.New(dir).ReadWorkloadState()
	if err != nil {
		return
	}
	for _, w := range st.Workloads {
		rec := w.Process
		if rec.PID <= 0 {
			continue
		}
		if id, err := platform.IdentifyProcess(rec.PID); err != nil || !id.Same(rec) {
			continue
		}
		log.Warn("a workload outlived its supervisor; killing it", zap.String("home", dir), zap.String("workload", w.Name), zap.Int("pid", rec.PID))
		_ = platform.KillProcess(rec.PID)
	}
}
