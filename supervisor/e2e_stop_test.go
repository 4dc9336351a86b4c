//go:build linux

package supervisor_test

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/moltfleet/molt/home"
	"github.com/moltfleet/molt/workload/spec"
)

// 5c. A stop around the self-upgrade stops everything: the supervisor
// exits 0 within its stop grace, and neither the agent nor the workload
// (examples/exporter, in a process group of its own) outlives it. "after":
// SIGTERM to the new image once it adopted the agent and the workload.
// "during-install": SIGTERM while the new binary is being written
// (bin/.molt-supervisor.new appears), after the checks: the old image
// takes the signal, so it must not exec the new one, which would start
// with no stop asked for and run on until the service manager's kill.
func TestStopAroundSelfUpgrade(t *testing.T) {
	t.Parallel()
	for _, when := range []string{"after", "during-install"} {
		t.Run(when, func(t *testing.T) {
			t.Parallel()
			h := newHome(t)
			sp := exporterSpec(freePort(t), time.Second)
			sp.Name = "w" // the name the helpers read from workloads.json
			for _, v := range []string{"1.0.0", "1.1.0"} {
				h.writeInstalled(v, []spec.Workload{h.installedProgram(v, sp, exporter)})
			}
			h.install("1.0.0 healthy")
			h.setActive(home.Active{Current: "1.0.0"})
			const grace = 2 * time.Second
			sv := h.start("--watch", "500ms", "--stop-grace", grace.String())
			h.waitReady("1.0.0", 1)
			h.waitWorkloadState(home.WorkloadReady, 10*time.Second)
			h.copy(supervisor["2.0.0"], h.StagedSupervisor("1.1.0"))

			signalled := make(chan time.Time, 1)
			if when == "during-install" {
				created := watchCreate(t, filepath.Dir(h.SupervisorBinary()), ".molt-supervisor.new")
				go func() {
					if <-created {
						_ = sv.Process.Signal(syscall.SIGTERM)
						signalled <- time.Now()
					}
				}()
			}
			h.upgrade("1.1.0 healthy")
			if when == "after" {
				h.waitFor("the new supervisor adopting the workload", 20*time.Second, func() bool {
					return strings.Contains(h.supervisorLog(), `"msg":"adopted the running workload"`)
				})
				if err := sv.Process.Signal(syscall.SIGTERM); err != nil {
					t.Fatal(err)
				}
				signalled <- time.Now()
			}
			var t0 time.Time
			select {
			case t0 = <-signalled:
			case <-time.After(30 * time.Second):
				t.Fatal("the self-upgrade never began installing the new binary")
			}
			exited := make(chan error, 1)
			go func() { exited <- sv.Wait() }()
			// The agent and the workload stop at once, each within the
			// grace (the exporter's own is 10 s but it stops on SIGTERM
			// at once); 3 s more for the supervisor's own steps.
			limit := grace + 3*time.Second
			select {
			case err := <-exited:
				var ee *exec.ExitError
				if errors.As(err, &ee) || err != nil {
					t.Errorf("supervisor exit after SIGTERM: %v, want code 0", err)
				}
				if took := time.Since(t0); took > limit {
					t.Errorf("supervisor stopped %s after SIGTERM, want within %s", took, limit)
				}
			case <-time.After(limit):
				t.Errorf("supervisor (pid %d, %s) still runs %s after SIGTERM", sv.Process.Pid, exeOf(sv.Process.Pid), limit)
			}
			if pids := h.pids(func(string) bool { return true }); len(pids) != 0 {
				t.Errorf("processes of the home left after the stop: %v (agents %v, workloads %v)", pids, h.agentPIDs(), h.workloadPIDs())
			}
			if r, _ := h.result(); r.Supervisor == nil || !r.Supervisor.Upgraded {
				t.Errorf("result.json supervisor = %+v, want the new binary recorded as installed", r.Supervisor)
			}
			if r, _ := h.result(); when == "during-install" && (r.Supervisor == nil || !strings.Contains(r.Supervisor.Reason, "not restarted in place because the supervisor was stopped")) {
				t.Errorf("result.json supervisor = %+v, want the reason that the stop came before the restart in place", r.Supervisor)
			}
			if got := runVersion(t, h.SupervisorBinary()); got != "2.0.0" {
				t.Errorf("bin/molt-supervisor version = %s, want 2.0.0 installed for the next start", got)
			}
		})
	}
}

func exeOf(pid int) string {
	exe, _ := os.Readlink("/proc/" + itoa(pid) + "/exe")
	return exe
}

// watchCreate reports (true, once) when a file named name is created in
// dir, with the few microseconds of inotify's latency: a poll could miss
// the short-lived file.
func watchCreate(t *testing.T, dir, name string) <-chan bool {
	t.Helper()
	fd, err := syscall.InotifyInit1(syscall.IN_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := syscall.InotifyAddWatch(fd, dir, syscall.IN_CREATE|syscall.IN_MOVED_TO); err != nil {
		syscall.Close(fd)
		t.Fatal(err)
	}
	found := make(chan bool, 1)
	go func() {
		defer syscall.Close(fd)
		buf := make([]byte, 64<<10)
		for {
			n, err := syscall.Read(fd, buf)
			if err != nil || n <= 0 {
				found <- false
				return
			}
			for off := 0; off+syscall.SizeofInotifyEvent <= n; {
				ev := (*syscall.InotifyEvent)(unsafe.Pointer(&buf[off]))
				raw := buf[off+syscall.SizeofInotifyEvent : off+syscall.SizeofInotifyEvent+int(ev.Len)]
				if string(bytes.TrimRight(raw, "\x00")) == name {
					found <- true
					return
				}
				off += syscall.SizeofInotifyEvent + int(ev.Len)
			}
		}
	}()
	return found
}

// 5d. A stop that comes while `run` is still reading agent.yaml (as a
// new image after an exec in place does, with the agent and workloads
// handed to it) is not fatal: the signal is caught from the start of
// run, and the supervisor goes on to stop what it has and exits 0,
// instead of dying of the signal and leaving them running. agent.yaml
// is a FIFO here, so that the supervisor waits in its open.
func TestStopWhileStarting(t *testing.T) {
	t.Parallel()
	h := newHome(t)
	v := h.install("1.0.0 healthy")
	h.setActive(home.Active{Current: v})
	if err := syscall.Mkfifo(h.ConfigPath(), 0o600); err != nil {
		t.Fatal(err)
	}
	sv := h.start()
	// The log directory is made before agent.yaml is read.
	h.waitFor("the supervisor's log directory", 10*time.Second, func() bool {
		_, err := os.Stat(h.LogsDir())
		return err == nil
	})
	time.Sleep(200 * time.Millisecond)
	if err := sv.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	// Let agent.yaml be read (empty); no reader any more is fine too.
	if f, err := os.OpenFile(h.ConfigPath(), os.O_WRONLY|syscall.O_NONBLOCK, 0); err == nil {
		f.Close()
	}
	exited := make(chan error, 1)
	go func() { exited <- sv.Wait() }()
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("supervisor exit after SIGTERM while starting: %v, want code 0", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("supervisor still runs 10 s after SIGTERM")
	}
	if pids := h.pids(func(string) bool { return true }); len(pids) != 0 {
		t.Errorf("processes of the home left after the stop: %v", pids)
	}
}
