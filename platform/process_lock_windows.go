package platform

import (
	"errors"
	"os"

	"golang.org/x/sys/windows"
)

// lockFile takes an exclusive byte-range lock far beyond the file's
// content, so that writing the pid into the file is not blocked by it.
func lockFile(f *os.File) error {
	ol := &windows.Overlapped{Offset: 0xFFFFFFF0}
	err := windows.LockFileEx(windows.Handle(f.Fd()), windows.LOCKFILE_EXCLUSIVE_LOCK|windows.LOCKFILE_FAIL_IMMEDIATELY, 0, 1, 0, ol)
	if errors.Is(err, windows.ERROR_LOCK_VIOLATION) {
		return ErrLocked
	}
	return err
}
