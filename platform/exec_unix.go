//go:build !windows

package platform

import (
	"os"
	"syscall"
)

// CanExecSelf reports whether ExecSelf can work here.
const CanExecSelf = true

// ExecSelf replaces the running program with path (same pid, open files
// without close-on-exec kept). It returns only on failure.
func ExecSelf(path string, args, env []string) error {
	return syscall.Exec(path, args, env)
}

// AdoptFile opens a file inherited across ExecSelf. It is made
// non-blocking so the runtime's poller serves it (os.File.Fd made it
// blocking before the exec) and close-on-exec again so the agent's own
// children do not inherit it.
func AdoptFile(fd uintptr, name string) *os.File {
	_ = syscall.SetNonblock(int(fd), true)
	syscall.CloseOnExec(int(fd))
	return os.NewFile(fd, name)
}

// DropAcrossExec sets close-on-exec on f again, after an ExecSelf that
// failed, so that the files KeepAcrossExec exposed do not leak into the
// next child.
func DropAcrossExec(f *os.File) {
	syscall.CloseOnExec(int(f.Fd()))
}
