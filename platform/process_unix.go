//go:build !windows

package platform

import (
	"errors"
	"os/exec"
	"syscall"

	"golang.org/x/sys/unix"
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

// KillProcess stops pid at once (SIGKILL), and with it the rest of its
// process group when pid leads one (PrepareChild made it so): what the
// agent started must not outlive it.
func KillProcess(pid int) error {
	if pid > 0 {
		if pgid, err := unix.Getpgid(pid); err == nil && pgid == pid {
			_ = syscall.Kill(-pid, syscall.SIGKILL)
		}
	}
	return signalProcess(pid, syscall.SIGKILL)
}

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
