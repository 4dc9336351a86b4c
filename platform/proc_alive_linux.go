package platform

import (
	"errors"
	"fmt"
	"os"
	"syscall"
)

// ProcessAlive reports whether a process with this pid runs. A zombie
// (exited, not yet reaped by its parent) does not count: its work is done,
// and a hold it kept must end. /proc tells; without /proc, signal 0 does.
func ProcessAlive(pid int) bool {
	if pid <= 0 {
		return false
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err == nil {
		state, _, perr := parseProcStat(b)
		return perr != nil || (state != "Z" && state != "X")
	}
	if errors.Is(err, os.ErrNotExist) {
		if _, serr := os.Stat("/proc/self/stat"); serr == nil {
			return false
		}
	}
	err = syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}
