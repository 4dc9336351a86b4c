//go:build unix

package e2etest

import (
	"os/exec"
	"syscall"
)

// ownGroup makes cmd the leader of a new process group, so that a kill
// reaches whatever it started in its group too.
func ownGroup(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
}

// terminate asks pid to stop (SIGTERM).
func terminate(pid int) { _ = syscall.Kill(pid, syscall.SIGTERM) }

// killGroup kills pid and its process group at once (SIGKILL).
func killGroup(pid int) {
	_ = syscall.Kill(-pid, syscall.SIGKILL)
	_ = syscall.Kill(pid, syscall.SIGKILL)
}

// kill kills pid alone (SIGKILL).
func kill(pid int) { _ = syscall.Kill(pid, syscall.SIGKILL) }

// alive reports whether pid exists and is not a zombie.
func alive(pid int) bool {
	if pid <= 0 || syscall.Kill(pid, 0) != nil {
		return false
	}
	return !zombie(pid)
}

// dumpStacks asks a Go program to print every goroutine's stack and exit
// (SIGQUIT).
func dumpStacks(pid int) bool { return syscall.Kill(pid, syscall.SIGQUIT) == nil }
