package runner

import (
	"errors"
	"fmt"
	"os"
	"time"

	"go.uber.org/zap"

	"github.com/moltfleet/molt/platform"
)

// Handoff carries a running instance across the supervisor's exec in
// place (Unix): the process stays this pid's child, and its output pipes
// stay open under the descriptor numbers Stdout and Stderr.
type Handoff struct {
	Name     string                   `json:"name"`
	Version  string                   `json:"version"`
	Identity string                   `json:"identity"`
	Process  platform.ProcessIdentity `json:"process"`
	Started  time.Time                `json:"started"`
	Ready    bool                     `json:"ready"`
	Stdout   int                      `json:"stdout"`
	Stderr   int                      `json:"stderr"`
}

// Handoff stops the output pumps (what they read is written, what they
// did not stays in the pipes for the next image: no line lost or written
// twice, a line cut in the middle is written in two) and returns the
// instance's description with the read ends of its output pipes,
// close-on-exec cleared. Call Resume if the exec fails. An instance whose
// process already exited hands off no process (Process.PID 0).
func (i *Instance) Handoff() (Handoff, []*os.File) {
	h := Handoff{Name: i.spec.Name, Version: i.cfg.Version, Identity: i.identity}
	i.pumpMu.Lock()
	defer i.pumpMu.Unlock()
	select {
	case <-i.exited:
		return h, nil
	default:
	}
	if !i.handedOff {
		for _, p := range i.pumps {
			if err := p.stop(); err != nil {
				i.log.Warn("stop reading the workload's output for the handoff", zap.Error(err))
			}
		}
		_ = i.logw.Close()
		i.handedOff = true
	}
	var files []*os.File
	for _, f := range []*os.File{i.out, i.errOut} {
		if err := platform.KeepAcrossExec(f); err != nil && !errors.Is(err, platform.ErrNotSupported) {
			i.log.Warn("keep the workload's output open across the exec", zap.Error(err))
		}
		files = append(files, f)
	}
	h.Process, h.Started, h.Ready = i.id, i.started, i.Ready()
	h.Stdout, h.Stderr = int(i.out.Fd()), int(i.errOut.Fd())
	return h, files
}

// Resume undoes Handoff after an exec that failed: the output is read
// again (and close-on-exec set again).
func (i *Instance) Resume() {
	i.pumpMu.Lock()
	defer i.pumpMu.Unlock()
	if !i.handedOff {
		return
	}
	for _, f := range []**os.File{&i.out, &i.errOut} {
		nf, err := platform.Repoll(*f)
		if err != nil {
			i.log.Warn("read the workload's output again", zap.Error(err))
			platform.DropAcrossExec(nf)
		}
		_ = nf.SetReadDeadline(time.Time{})
		*f = nf
	}
	i.startPumpsLocked()
	i.handedOff = false
	i.pumpCond.Broadcast()
}

// Adopt takes over the process a previous image of this process handed
// off: it is still this pid's child, so it can be waited for. Adopt
// resumes reading its output and its checks: the live checks of a ready
// instance, else the ready check with the deadline of its start.
func Adopt(cfg Config, h Handoff) (*Instance, error) {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w workload %q: %s", ErrAdopt, h.Name, fmt.Sprintf(format, args...))
	}
	if h.Process.PID <= 0 || h.Stdout <= 2 || h.Stderr <= 2 || h.Stdout == h.Stderr {
		return nil, bad("no process or output descriptors handed off")
	}
	out := platform.AdoptFile(uintptr(h.Stdout), h.Name+"-stdout")
	errOut := platform.AdoptFile(uintptr(h.Stderr), h.Name+"-stderr")
	closeAll := func() {
		out.Close()
		errOut.Close()
	}
	i, err := newInstance(cfg)
	if err != nil {
		closeAll()
		return nil, err
	}
	if h.Name != i.spec.Name || h.Version != cfg.Version {
		closeAll()
		return nil, bad("handed off as %s of %s, adopted as %s of %s", h.Name, h.Version, i.spec.Name, cfg.Version)
	}
	// The previous image may have reaped it after the handoff: never
	// take a pid that is not the same process any more.
	if cur, err := platform.IdentifyProcess(h.Process.PID); err != nil || !sameWorkload(cur, h.Process) {
		closeAll()
		return nil, bad("%s no longer runs", h.Process)
	}
	proc, err := os.FindProcess(h.Process.PID)
	if err != nil {
		closeAll()
		return nil, bad("%v", err)
	}
	g, err := platform.NewGroup(h.Process.PID)
	if err != nil {
		closeAll()
		return nil, bad("process group: %v", err)
	}
	i.proc, i.group, i.id, i.started = proc, g, h.Process, h.Started
	i.out, i.errOut = out, errOut
	i.ready.Store(h.Ready)
	i.log = i.log.With(zap.Int("pid", h.Process.PID))
	i.run(h.Ready)
	return i, nil
}
