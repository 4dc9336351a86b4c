//go:build !windows

package platform

import (
	"os"
	"os/exec"
	"syscall"
)

// InheritFiles arranges for files to be open in the child started by cmd
// and returns the numbers the child knows them by (for OpenInherited).
func InheritFiles(cmd *exec.Cmd, files ...*os.File) ([]uintptr, error) {
	ids := make([]uintptr, len(files))
	for i, f := range files {
		ids[i] = uintptr(3 + len(cmd.ExtraFiles))
		cmd.ExtraFiles = append(cmd.ExtraFiles, f)
	}
	return ids, nil
}

// OpenInherited opens a file a parent passed with InheritFiles. It is marked
// close-on-exec so that the child's own children do not hold it open.
func OpenInherited(id uintptr, name string) *os.File {
	syscall.CloseOnExec(int(id))
	return os.NewFile(id, name)
}

// KeepAcrossExec clears close-on-exec on f so that it survives an exec of
// this process (the supervisor's in-place self-upgrade).
func KeepAcrossExec(f *os.File) error {
	_, _, errno := syscall.Syscall(syscall.SYS_FCNTL, f.Fd(), syscall.F_SETFD, 0)
	if errno != 0 {
		return errno
	}
	return nil
}
