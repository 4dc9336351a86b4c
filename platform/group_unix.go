//go:build !windows

package platform

import (
	"errors"
	"fmt"
	"os/exec"
	"syscall"

	"golang.org/x/sys/unix"
)

// Group is the process group of a workload: its leader and everything it
// started, so that a stop or a kill takes all of it.
type Group struct {
	pid int
	// lead: pid leads the group, and a signal goes to the whole group;
	// else to pid alone.
	lead bool
}

// PrepareGroup makes the process cmd starts the leader of a new process
// group.
func PrepareGroup(cmd *exec.Cmd) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Setpgid = true
}

// NewGroup returns the group of pid, started with PrepareGroup.
func NewGroup(pid int) (*Group, error) {
	if pid <= 0 {
		return nil, ErrNoProcess
	}
	return &Group{pid: pid, lead: true}, nil
}

// OpenGroup returns the group pid leads, for a process this one did not
// start (a workload of a previous supervisor). When pid leads no group,
// the group holds pid alone, so that no other process is signalled.
func OpenGroup(pid int) (*Group, error) {
	if pid <= 0 {
		return nil, ErrNoProcess
	}
	pgid, err := unix.Getpgid(pid)
	if errors.Is(err, unix.ESRCH) {
		return nil, ErrNoProcess
	}
	if err != nil {
		return nil, err
	}
	return &Group{pid: pid, lead: pgid == pid}, nil
}

// Signal sends the stop signal name ("SIGTERM", "SIGINT", "SIGHUP",
// "SIGQUIT", "SIGUSR1", "SIGUSR2") to every process of the group.
func (g *Group) Signal(name string) error {
	sig := unix.SignalNum(name)
	if sig == 0 {
		return fmt.Errorf("%w %q", ErrUnknownSignal, name)
	}
	return g.send(sig)
}

// Kill kills every process of the group at once.
func (g *Group) Kill() error { return g.send(unix.SIGKILL) }

// Close releases the group; on Unix there is nothing to release.
func (g *Group) Close() error { return nil }

func (g *Group) send(sig syscall.Signal) error {
	target := g.pid
	if g.lead {
		target = -g.pid // the whole group
	}
	err := syscall.Kill(target, sig)
	if errors.Is(err, syscall.ESRCH) {
		return ErrNoProcess
	}
	return err
}
