package platform

import (
	"errors"
	"syscall"
)

// FreeDisk returns the bytes an unprivileged writer may still use on the
// file system that holds dir. It returns ErrNotSupported where the OS
// offers no way to ask.
func FreeDisk(dir string) (uint64, error) { return freeDisk(dir) }

// IsNoSpace reports whether err means the disk (or a quota) is full, so
// callers can turn a failed write into a clear "no space" refusal.
func IsNoSpace(err error) bool {
	if errors.Is(err, syscall.ENOSPC) {
		return true
	}
	return isNoSpace(err)
}
