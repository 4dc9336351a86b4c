package platform

import (
	"os"
	"os/exec"
	"syscall"

	"golang.org/x/sys/windows"
)

// InheritFiles arranges for files to be open in the child started by cmd
// and returns the handle values the child knows them by.
func InheritFiles(cmd *exec.Cmd, files ...*os.File) ([]uintptr, error) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	ids := make([]uintptr, len(files))
	for i, f := range files {
		h := windows.Handle(f.Fd())
		if err := windows.SetHandleInformation(h, windows.HANDLE_FLAG_INHERIT, windows.HANDLE_FLAG_INHERIT); err != nil {
			return nil, err
		}
		cmd.SysProcAttr.AdditionalInheritedHandles = append(cmd.SysProcAttr.AdditionalInheritedHandles, syscall.Handle(h))
		ids[i] = uintptr(h)
	}
	return ids, nil
}

// OpenInherited opens a handle a parent passed with InheritFiles and stops
// it from being inherited further.
func OpenInherited(id uintptr, name string) *os.File {
	_ = windows.SetHandleInformation(windows.Handle(id), windows.HANDLE_FLAG_INHERIT, 0)
	return os.NewFile(id, name)
}

// KeepAcrossExec is not needed on Windows, where the supervisor restarts
// through the service manager instead of exec.
func KeepAcrossExec(f *os.File) error { return ErrNotSupported }
