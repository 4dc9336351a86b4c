//go:build !windows

package platform

import (
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// Repoll undoes, for a pipe, what f.Fd() did before an ExecSelf that
// failed: Fd puts the file in blocking mode for good, so reads on it can
// no longer be interrupted by a deadline. Repoll returns a new file on a
// duplicate of the descriptor (close-on-exec, served by the runtime's
// poller) and closes f.
func Repoll(f *os.File) (*os.File, error) {
	// Not every Unix has F_DUPFD_CLOEXEC (AIX): dup and mark under
	// ForkLock, as package os does, so no child starts in between.
	syscall.ForkLock.RLock()
	fd, err := unix.Dup(int(f.Fd()))
	if err == nil {
		unix.CloseOnExec(fd)
	}
	syscall.ForkLock.RUnlock()
	if err != nil {
		return f, err
	}
	name := f.Name()
	f.Close()
	return AdoptFile(uintptr(fd), name), nil
}
