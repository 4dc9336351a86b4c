package supervisor

import (
	"path/filepath"

	"github.com/moltfleet/molt/home"
	"github.com/moltfleet/molt/platform"
)

// LockPath is the file a running supervisor holds locked, one per home;
// the lock holds the supervisor's pid and ends with its process.
func LockPath(h home.Home) string { return filepath.Join(h.StateDir(), "supervisor.lock") }

// Running reports whether a supervisor runs home h, started by a service
// manager or by hand, and its pid when it can be told. It asks the lock,
// never the pid alone, so a pid reused by another process is not taken
// for a supervisor.
func Running(h home.Home) (pid int, running bool, err error) {
	return platform.LockHolder(LockPath(h))
}
