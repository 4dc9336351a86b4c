//go:build !windows

package platform

import (
	"errors"
	"os/exec"
	"syscall"
)

// PrepareChild puts the agent in its own process group, so that a ^C in
// the supervisor's terminal or a signal to the supervisor's group does not
// reach it behind the supervisor's back: the supervisor stops it in order.
func PrepareChild(cmd *exec.Cmd) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Setpgid = true
}

// TerminateProcess asks pid to stop (SIGTERM).
func TerminateProcess(pid int) error { return signalProcess(pid, syscall.SIGTERM) }

// KillProcess stops pid at once (SIGKILL).
func KillProcess(pid int) error { return signalProcess(pid, syscall.SIGKILL) }

func signalProcess(pid int, sig syscall.Signal) error {
	if pid <= 0 {
		return ErrNoProcess
	}
	err := syscall.Kill(pid, sig)
	if errors.Is(err, syscall.ESRCH) {
		return ErrNoProcess
	}
	return err
}
