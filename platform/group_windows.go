package platform

import (
	"errors"
	"os/exec"
	"syscall"
	"unsafe"

	"golang.org/x/sys/windows"
)

// Group is the job object of a workload: its process and everything it
// started, so that a stop or a kill takes all of it. The job is made to
// kill what remains in it when its last handle closes, so a supervisor
// that dies takes its workloads with it. A process the workload starts
// in the instant between its start and its assignment to the job
// escapes it (Go's os/exec cannot start a process suspended).
type Group struct {
	pid int
	job windows.Handle // 0 for a group opened by OpenGroup
}

// PrepareGroup gives the process cmd starts a console process group of
// its own, the target of CTRL_BREAK_EVENT.
func PrepareGroup(cmd *exec.Cmd) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.CreationFlags |= windows.CREATE_NEW_PROCESS_GROUP
}

// NewGroup puts pid, started with PrepareGroup, into a new job object.
func NewGroup(pid int) (*Group, error) {
	if pid <= 0 {
		return nil, ErrNoProcess
	}
	job, err := windows.CreateJobObject(nil, nil)
	if err != nil {
		return nil, err
	}
	info := windows.JOBOBJECT_EXTENDED_LIMIT_INFORMATION{}
	info.BasicLimitInformation.LimitFlags = windows.JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE
	if _, err := windows.SetInformationJobObject(job, windows.JobObjectExtendedLimitInformation,
		uintptr(unsafe.Pointer(&info)), uint32(unsafe.Sizeof(info))); err != nil {
		windows.CloseHandle(job)
		return nil, err
	}
	h, err := windows.OpenProcess(windows.PROCESS_SET_QUOTA|windows.PROCESS_TERMINATE, false, uint32(pid))
	if err != nil {
		windows.CloseHandle(job)
		return nil, err
	}
	defer windows.CloseHandle(h)
	if err := windows.AssignProcessToJobObject(job, h); err != nil {
		windows.CloseHandle(job)
		return nil, err
	}
	return &Group{pid: pid, job: job}, nil
}

// OpenGroup returns pid alone, for a process this one did not start: its
// job died with the supervisor that made it.
func OpenGroup(pid int) (*Group, error) {
	if pid <= 0 {
		return nil, ErrNoProcess
	}
	return &Group{pid: pid}, nil
}

// Signal sends CTRL_BREAK_EVENT to the group, whatever the name: Windows
// has no other polite signal. It reaches a workload that shares the
// supervisor's console; one that does not is killed after the grace.
func (g *Group) Signal(name string) error {
	return windows.GenerateConsoleCtrlEvent(windows.CTRL_BREAK_EVENT, uint32(g.pid))
}

// Kill ends every process of the job at once.
func (g *Group) Kill() error {
	if g.job == 0 {
		return terminate(g.pid)
	}
	err := windows.TerminateJobObject(g.job, 1)
	if errors.Is(err, windows.ERROR_INVALID_HANDLE) {
		return ErrNoProcess
	}
	return err
}

// Close releases the job; what still runs in it is killed.
func (g *Group) Close() error {
	if g.job == 0 {
		return nil
	}
	err := windows.CloseHandle(g.job)
	g.job = 0
	return err
}
