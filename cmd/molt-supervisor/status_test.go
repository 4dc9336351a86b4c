package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/moltfleet/molt/home"
	"github.com/moltfleet/molt/platform"
	"github.com/moltfleet/molt/supervisor"
)

// holdLockEnv names the lock file the helper process holds.
const holdLockEnv = "MOLT_TEST_HOLD_LOCK"

// TestHelperHoldLock is not a test: it is the process holdLock starts, a
// supervisor in all but name, holding the home's lock until its stdin
// closes.
func TestHelperHoldLock(t *testing.T) {
	path := os.Getenv(holdLockEnv)
	if path == "" {
		t.Skip("helper process of holdLock")
	}
	lock, err := platform.LockProcess(path)
	if err != nil {
		fmt.Println(err)
		os.Exit(1)
	}
	fmt.Println("locked")
	_, _ = bufio.NewReader(os.Stdin).ReadString('\n')
	lock.Unlock()
	os.Exit(0)
}

// holdLock starts a process that holds the supervisor lock of h, as a
// running supervisor does, until the test ends; it returns its pid. A
// process of its own is needed: a process's own lock never conflicts
// with itself.
func holdLock(t *testing.T, h home.Home) int {
	t.Helper()
	if err := os.MkdirAll(h.StateDir(), 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperHoldLock$")
	cmd.Env = append(os.Environ(), holdLockEnv+"="+supervisor.LockPath(h))
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stdin.Close()
		_ = cmd.Wait()
	})
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || line != "locked\n" {
		t.Fatalf("lock holder: %q %v", line, err)
	}
	return cmd.Process.Pid
}

// status tells, beside the service's state, that a supervisor runs the
// home (its pid from the lock), and that it runs unmanaged when the
// service does not run; the exit status stays the service's.
func TestServiceStatusUnmanagedSupervisor(t *testing.T) {
	for _, tc := range []struct {
		name     string
		state    platform.ServiceState
		held     bool
		wantCode int
		want     string // after "service NAME (fake-init, DEFINITION): "
	}{
		{"not installed, runs by hand", platform.ServiceNotInstalled, true, 4, "not installed; a supervisor runs this home unmanaged (pid %d)\n"},
		{"stopped, runs by hand", platform.ServiceStopped, true, 3, "installed, stopped; a supervisor runs this home unmanaged (pid %d)\n"},
		{"running", platform.ServiceRunning, true, 0, "installed, running (pid %d)\n"},
		{"not installed, stale lock file", platform.ServiceNotInstalled, false, 4, "not installed\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := home.New(t.TempDir())
			want := tc.want
			if tc.held {
				want = fmt.Sprintf(want, holdLock(t, h))
			} else if err := os.MkdirAll(h.StateDir(), 0o755); err != nil {
				t.Fatal(err)
			} else if err := os.WriteFile(supervisor.LockPath(h), []byte(fmt.Sprintf("%d\n", os.Getpid())), 0o644); err != nil {
				t.Fatal(err)
			}
			f := &fakeService{state: tc.state}
			out, code := runServiceCmd(t, f, "status", "--home", h.Dir)
			name := platform.ServiceNameFor(h.Dir)
			if prefix := "service " + name + " (fake-init, /etc/fake/" + name + "): "; code != tc.wantCode || out != prefix+want {
				t.Errorf("exit %d, output %q; want %d and %q", code, out, tc.wantCode, prefix+want)
			}
		})
	}
}

func TestServiceStatusUnmanagedJSON(t *testing.T) {
	h := home.New(t.TempDir())
	pid := holdLock(t, h)
	out, code := runServiceCmd(t, &fakeService{state: platform.ServiceNotInstalled}, "status", "--json", "--home", filepath.Clean(h.Dir))
	var st serviceStatus
	if err := json.Unmarshal([]byte(out), &st); err != nil || code != 4 {
		t.Fatalf("exit %d, %v: %s", code, err, out)
	}
	if st.Running || st.Installed || !st.Unmanaged || st.SupervisorPid != pid || st.State != "not-installed" {
		t.Errorf("status %+v; want not installed, not running, unmanaged with pid %d", st, pid)
	}
}
