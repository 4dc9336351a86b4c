package platform

import (
	"errors"
	"os"

	"golang.org/x/sys/windows"
)

// lockHeld tries, without waiting, the byte-range lock lockFile takes and
// gives it back at once. Windows does not name a lock's holder: the pid
// is read from the file by LockHolder.
func lockHeld(f *os.File) (int, bool, error) {
	h := windows.Handle(f.Fd())
	ol := &windows.Overlapped{Offset: 0xFFFFFFF0}
	err := windows.LockFileEx(h, windows.LOCKFILE_EXCLUSIVE_LOCK|windows.LOCKFILE_FAIL_IMMEDIATELY, 0, 1, 0, ol)
	if errors.Is(err, windows.ERROR_LOCK_VIOLATION) {
		return 0, true, nil
	}
	if err != nil {
		return 0, false, err
	}
	return 0, false, windows.UnlockFileEx(h, 0, 1, 0, ol)
}
