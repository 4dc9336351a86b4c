package platform

import (
	"errors"
	"os/exec"
	"syscall"

	"golang.org/x/sys/windows"
)

const startSlack = 0

// IdentifyProcess reads pid's creation time and image path.
func IdentifyProcess(pid int) (ProcessIdentity, error) {
	id := ProcessIdentity{PID: pid}
	if pid <= 0 {
		return id, ErrNoProcess
	}
	h, err := windows.OpenProcess(windows.PROCESS_QUERY_LIMITED_INFORMATION, false, uint32(pid))
	if err != nil {
		if errors.Is(err, windows.ERROR_INVALID_PARAMETER) {
			return id, ErrNoProcess
		}
		return id, err
	}
	defer windows.CloseHandle(h)
	var code uint32
	if err := windows.GetExitCodeProcess(h, &code); err != nil {
		return id, err
	}
	if code != stillActive {
		return id, ErrNoProcess
	}
	var created, exited, kernel, user windows.Filetime
	if err := windows.GetProcessTimes(h, &created, &exited, &kernel, &user); err != nil {
		return id, err
	}
	id.Start = created.Nanoseconds() / 100
	buf := make([]uint16, windows.MAX_LONG_PATH)
	n := uint32(len(buf))
	if err := windows.QueryFullProcessImageName(h, 0, &buf[0], &n); err != nil {
		return id, err
	}
	id.Exe = windows.UTF16ToString(buf[:n])
	return id, nil
}

// PrepareChild gives the agent its own process group so that a console
// ^C reaches only the supervisor, which then stops the agent in order.
func PrepareChild(cmd *exec.Cmd) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.CreationFlags |= windows.CREATE_NEW_PROCESS_GROUP
}

// TerminateProcess ends pid. Windows has no polite signal for a process
// without a console window; the polite request is the control channel's
// "stop", sent before this.
func TerminateProcess(pid int) error { return terminate(pid) }

// KillProcess ends pid at once.
func KillProcess(pid int) error { return terminate(pid) }

func terminate(pid int) error {
	if pid <= 0 {
		return ErrNoProcess
	}
	h, err := windows.OpenProcess(windows.PROCESS_TERMINATE, false, uint32(pid))
	if err != nil {
		if errors.Is(err, windows.ERROR_INVALID_PARAMETER) {
			return ErrNoProcess
		}
		return err
	}
	defer windows.CloseHandle(h)
	return windows.TerminateProcess(h, 1)
}
