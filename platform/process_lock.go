package platform

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// ErrLocked means another process holds the lock.
var ErrLocked = errors.New("locked by another process")

// ProcessLock is an exclusive lock on a file, held while the process
// lives: the OS releases it when the process ends, also on kill -9, so a
// stale lock never blocks a restart.
type ProcessLock struct{ f *os.File }

// LockProcess takes the lock at path without waiting and writes this
// process's pid into the file. When another process holds it, the error
// wraps ErrLocked and names that process's pid.
func LockProcess(path string) (*ProcessLock, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	if err := lockFile(f); err != nil {
		b := make([]byte, 32)
		n, _ := f.ReadAt(b, 0)
		f.Close()
		if errors.Is(err, ErrLocked) {
			if pid, perr := strconv.Atoi(strings.TrimSpace(string(b[:n]))); perr == nil {
				return nil, fmt.Errorf("%w (pid %d)", ErrLocked, pid)
			}
		}
		return nil, err
	}
	if err := f.Truncate(0); err == nil {
		_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return &ProcessLock{f: f}, nil
}

// Unlock releases the lock.
func (l *ProcessLock) Unlock() error { return l.f.Close() }
