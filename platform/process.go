package platform

import (
	"errors"
	"fmt"
)

// ErrNoProcess means no live process has the pid (it exited, or it is a
// zombie waiting to be reaped).
var ErrNoProcess = errors.New("no such process")

// ProcessIdentity names one process so that a pid recorded on disk can be
// recognised later even after the pid was reused: a new process with the
// same pid has another start time or another executable.
type ProcessIdentity struct {
	PID int `json:"pid"`
	// Start is the process start time in a per-OS unit (clock ticks since
	// boot on Linux, 100 ns FILETIME on Windows, Unix seconds elsewhere).
	Start int64 `json:"start"`
	// Exe is the executable as the OS reports it.
	Exe string `json:"exe"`
}

// Same reports whether p and q are the same process. Where the OS only
// reports the start time to the second (through ps), a small slack absorbs
// the rounding.
func (p ProcessIdentity) Same(q ProcessIdentity) bool {
	d := p.Start - q.Start
	if d < 0 {
		d = -d
	}
	return p.PID == q.PID && p.Exe == q.Exe && d <= startSlack
}

func (p ProcessIdentity) String() string {
	return fmt.Sprintf("pid %d (%s)", p.PID, p.Exe)
}
