//go:build !windows && !linux

package platform

import (
	"errors"
	"syscall"
)

// ProcessAlive reports whether a process with this pid exists. Signal 0
// checks existence and permission without disturbing the process; EPERM
// means it exists but belongs to someone else.
func ProcessAlive(pid int) bool {
	if pid <= 0 {
		return false
	}
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}
