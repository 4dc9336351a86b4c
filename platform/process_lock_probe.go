package platform

import (
	"errors"
	"io/fs"
	"os"
	"strconv"
	"strings"
)

// LockHolder reports whether a process holds the lock at path (taken by
// LockProcess) and that process's pid when it can be told (0 otherwise).
// It never writes the file. On Unix it only looks; Windows has no way to
// look, so there the lock is tried and given back at once (a supervisor
// starting in that instant fails and its service manager starts it
// again). A missing file is held by nobody. The answer is only meaningful from
// another process than the holder: a process's own lock never conflicts
// with itself.
func LockHolder(path string) (pid int, held bool, err error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, err
	}
	defer f.Close()
	pid, held, err = lockHeld(f)
	if err != nil || !held || pid > 0 {
		return pid, held, err
	}
	b := make([]byte, 32)
	n, _ := f.ReadAt(b, 0)
	if p, perr := strconv.Atoi(strings.TrimSpace(string(b[:n]))); perr == nil && p > 0 {
		pid = p
	}
	return pid, true, nil
}
