//go:build !windows

package platform

import (
	"os"

	"golang.org/x/sys/unix"
)

// lockHeld asks (F_GETLK) whether a lock that conflicts with a read lock
// on the whole file, i.e. LockProcess's write lock, is held; the kernel
// names its holder. A read lock is asked about because f is open for
// reading only: status may run as a user who cannot write the file.
func lockHeld(f *os.File) (int, bool, error) {
	lk := unix.Flock_t{Type: unix.F_RDLCK, Whence: 0, Start: 0, Len: 0}
	if err := unix.FcntlFlock(f.Fd(), unix.F_GETLK, &lk); err != nil {
		return 0, false, err
	}
	if lk.Type == unix.F_UNLCK {
		return 0, false, nil
	}
	return int(lk.Pid), true, nil
}
