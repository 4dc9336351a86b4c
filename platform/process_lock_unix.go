//go:build !windows

package platform

import (
	"errors"
	"os"

	"golang.org/x/sys/unix"
)

// lockFile takes a POSIX record lock (fcntl), which every Unix here has
// (flock is missing on Solaris and AIX). Such a lock is released when any
// descriptor of the file is closed in the process: the file is opened
// once, by LockProcess only.
func lockFile(f *os.File) error {
	lk := unix.Flock_t{Type: unix.F_WRLCK, Whence: 0, Start: 0, Len: 0}
	err := unix.FcntlFlock(f.Fd(), unix.F_SETLK, &lk)
	if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EACCES) {
		return ErrLocked
	}
	return err
}
