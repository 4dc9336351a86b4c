//go:build linux

package supervisor_test

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/moltfleet/molt/home"
	"github.com/moltfleet/molt/internal/atomicfile"
	"github.com/moltfleet/molt/workload/spec"
)

// workloadSpec is the test workload's spec: ready on /ready, live on
// /live, at a port of its own, with more flags for the bad versions.
func workloadSpec(port int, flags ...string) spec.Spec {
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	return spec.Spec{
		Name:    "w",
		Command: "testworkload",
		Args:    append([]string{"-listen", addr}, flags...),
		Ready:   spec.Ready{Probe: spec.Probe{HTTP: "http://" + addr + "/ready"}, Within: spec.Duration(3 * time.Second), Interval: spec.Duration(20 * time.Millisecond)},
		Live:    &spec.Live{Probe: spec.Probe{HTTP: "http://" + addr + "/live"}, Interval: spec.Duration(100 * time.Millisecond), Failures: 2},
		Stop:    spec.Stop{Grace: spec.Duration(2 * time.Second)},
		Restart: spec.Restart{BackoffMin: spec.Duration(200 * time.Millisecond)},
	}
}

// freePort returns a loopback port nobody listens on now.
func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// installWorkload puts the test workload with sp into versions/<v>/ as
// the updater stages it (files, workloads.json naming only it), before
// .valid.
func (h *testHome) installWorkload(v string, sp spec.Spec) {
	h.t.Helper()
	h.writeInstalled(v, []spec.Workload{h.installedWorkload(v, sp)})
}

// installedWorkload copies the test workload's program for sp into
// versions/<v>/ and returns its entry of workloads.json.
func (h *testHome) installedWorkload(v string, sp spec.Spec) spec.Workload {
	h.t.Helper()
	return h.installedProgram(v, sp, testWorkload)
}

// installedProgram copies program as sp's command into versions/<v>/ and
// returns its entry of workloads.json.
func (h *testHome) installedProgram(v string, sp spec.Spec, program string) spec.Workload {
	h.t.Helper()
	dst := filepath.Join(h.WorkloadDir(v, sp.Name), sp.Command)
	h.copy(program, dst)
	b, err := os.ReadFile(dst)
	if err != nil {
		h.t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	w := spec.Workload{Spec: sp, Files: []spec.File{{Path: sp.Command, Size: int64(len(b)), SHA256: hex.EncodeToString(sum[:]), Mode: "0755"}}}
	if err := w.Check(); err != nil {
		h.t.Fatal(err)
	}
	return w
}

// writeInstalled writes versions/<v>/workloads.json.
func (h *testHome) writeInstalled(v string, ws []spec.Workload) {
	h.t.Helper()
	if err := atomicfile.WriteJSON(h.WorkloadsFile(v), spec.Installed{Version: v, Platform: "linux/amd64", Workloads: ws}, 0o644); err != nil {
		h.t.Fatal(err)
	}
}

// installWith installs the agent build and the workload sp as one version.
func (h *testHome) installWith(build string, sp spec.Spec) string {
	h.t.Helper()
	v, _, _ := strings.Cut(build, " ")
	h.installWorkload(v, sp)
	return h.install(build)
}

// upgradeWith switches to build with workload sp under trial.
func (h *testHome) upgradeWith(build string, sp spec.Spec) string {
	h.t.Helper()
	v, _, _ := strings.Cut(build, " ")
	h.installWorkload(v, sp)
	return h.upgrade(build)
}

type wevent struct {
	at   time.Time
	pid  int
	tag  string
	what string
}

func (h *testHome) wevents() []wevent {
	h.t.Helper()
	f, err := os.Open(filepath.Join(h.Dir, "testworkload.events"))
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		h.t.Fatal(err)
	}
	defer f.Close()
	var evs []wevent
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) != 5 {
			continue
		}
		ns, _ := strconv.ParseInt(f[0], 10, 64)
		pid, _ := strconv.Atoi(f[1])
		evs = append(evs, wevent{time.Unix(0, ns), pid, f[3], f[4]})
	}
	return evs
}

func (h *testHome) wfind(tag, what string) []wevent {
	var out []wevent
	for _, e := range h.wevents() {
		if (tag == "" || e.tag == tag) && e.what == what {
			out = append(out, e)
		}
	}
	return out
}

// assertOneWorkload checks exactly one workload process runs, from
// version v's directory, and returns its pid.
func (h *testHome) assertOneWorkload(v string) int {
	h.t.Helper()
	pids := h.workloadPIDs()
	if len(pids) != 1 {
		h.t.Fatalf("workloads running: %v, want exactly one", pids)
	}
	exe, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", pids[0]))
	if want := filepath.Join(h.WorkloadDir(v, "w"), "testworkload"); exe != want {
		h.t.Fatalf("running workload is %s, want %s", exe, want)
	}
	return pids[0]
}

func (h *testHome) workloadState() home.WorkloadStatus {
	h.t.Helper()
	st, err := h.ReadWorkloadState()
	if err != nil {
		h.t.Fatal(err)
	}
	for _, w := range st.Workloads {
		if w.Name == "w" {
			return w
		}
	}
	return home.WorkloadStatus{}
}

func (h *testHome) waitWorkloadState(state string, d time.Duration) home.WorkloadStatus {
	h.t.Helper()
	var w home.WorkloadStatus
	h.waitFor("workload w "+state+" in state/workloads.json", d, func() bool {
		w = h.workloadState()
		return w.State == state
	})
	return w
}

// W1. A version with a workload: the supervisor runs it next to the
// agent, it passes its ready check, state/workloads.json says so, and
// after a crash it is restarted with the backoff; a kill -9 of the agent
// leaves it running.
func TestWorkloadRunsAndRestarts(t *testing.T) {
	t.Parallel()
	h := newHome(t)
	port := freePort(t)
	v := h.installWith("1.0.0 healthy", workloadSpec(port))
	h.setActive(home.Active{Current: v})
	h.start()
	h.waitReady(v, 1)
	w := h.waitWorkloadState(home.WorkloadReady, 10*time.Second)
	pid := h.assertOneWorkload(v)
	if w.Process.PID != pid || w.Version != v || w.Restarts != 0 {
		t.Errorf("state/workloads.json = %+v, want pid %d, version %s, no restarts", w, pid, v)
	}
	env, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"MOLT_WORKLOAD=w", "MOLT_DATA_DIR=" + h.DataDir("w"), "MOLT_HOLDS_DIR=" + h.HoldsDir(), "MOLT_WORKLOAD_VERSION=" + v} {
		if !strings.Contains(string(env), want+"\x00") {
			t.Errorf("the workload's environment lacks %s", want)
		}
	}
	if strings.Contains(string(env), "MOLT_CONTROL=") {
		t.Error("the workload got the agent's control channel")
	}

	// The agent killed: the workload keeps running, same pid.
	agentPID := h.assertOneAgent(v)
	if err := syscall.Kill(agentPID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	h.waitReady(v, 2)
	if got := h.assertOneWorkload(v); got != pid {
		t.Errorf("workload pid %d after the agent's kill -9, want %d (not restarted)", got, pid)
	}

	// The workload killed: restarted after its backoff.
	crashAt := time.Now()
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	h.waitFor("the workload restarted", 10*time.Second, func() bool { return len(h.wfind(v, "ready")) >= 2 })
	w = h.waitWorkloadState(home.WorkloadReady, 5*time.Second)
	if w.Restarts != 1 || !strings.Contains(w.LastExit, "killed") {
		t.Errorf("after a crash state/workloads.json = %+v, want 1 restart, last exit killed", w)
	}
	starts := h.wfind(v, "start")
	if gap := starts[len(starts)-1].at.Sub(crashAt); gap < 190*time.Millisecond {
		t.Errorf("restarted %s after the crash, before the 200ms backoff", gap)
	}
	h.assertOneWorkload(v)
	if b, err := os.ReadFile(filepath.Join(h.LogsDir(), home.WorkloadLogName("w", v))); err != nil || !strings.Contains(string(b), "testworkload w 1.0.0 starting") {
		t.Errorf("the workload's log: %v %q", err, b)
	}
}

// W2. A release whose workload never becomes ready, crashes within the
// window, or fails its live check is rolled back: the previous workload
// runs again, result.json names the workload and the reason, and the
// failed version's workload log is kept.
func TestWorkloadRollback(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		flags  []string
		reason string
	}{
		{"never-ready", []string{"-never-ready"}, "workload w did not pass its ready check within 3s"},
		{"crash", []string{"-crash-after", "300ms"}, "workload w failed 2 times within the 6s watch window, more than the crash budget of 1"},
		{"live", []string{"-unhealthy-after", "500ms"}, "workload w failed its live check 2 times in a row"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := newHome(t)
			port := freePort(t)
			old := h.installWith("1.0.0 healthy", workloadSpec(port, "-tag", "1.0.0"))
			h.setActive(home.Active{Current: old})
			h.start("--watch", "6s", "--crash-budget", "1", "--backoff-min", "100ms")
			h.waitReady(old, 1)
			h.waitWorkloadState(home.WorkloadReady, 10*time.Second)
			if err := os.WriteFile(filepath.Join(h.DataDir("w"), "config"), []byte("kept\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			v := h.upgradeWith("1.1.0 healthy", workloadSpec(port, append([]string{"-tag", "1.1.0"}, tt.flags...)...))
			r := h.waitResult(home.OutcomeRolledBack, 20*time.Second)
			if r.Version != v || r.Workload != "w" || !strings.Contains(r.Reason, tt.reason) {
				t.Errorf("result.json = %+v, want rolled back for workload w with reason containing %q", r, tt.reason)
			}
			if want := filepath.Join(h.LogsDir(), home.WorkloadLogName("w", v)); r.WorkloadLogs != want {
				t.Errorf("workload_logs = %q, want %q", r.WorkloadLogs, want)
			} else if b, err := os.ReadFile(want); err != nil || !strings.Contains(string(b), "testworkload w 1.1.0 starting") {
				t.Errorf("the failed version's workload log: %v %q", err, b)
			}
			h.waitFor("the previous workload ready again", 15*time.Second, func() bool { return len(h.wfind("1.0.0", "ready")) >= 2 })
			h.waitReady(old, 2)
			h.assertOneAgent(old)
			h.assertOneWorkload(old)
			if b, err := os.ReadFile(filepath.Join(h.DataDir("w"), "config")); err != nil || string(b) != "kept\n" {
				t.Errorf("the data directory did not survive the rollback: %v %q", err, b)
			}
			if a := h.active(); a.Current != old || a.Trial != nil {
				t.Errorf("active.json = %+v", a)
			}
		})
	}
}

// W3. A release that changes only molt-agent does not restart the
// workload: same pid, and its ready endpoint answered throughout.
func TestWorkloadUnchangedNotRestarted(t *testing.T) {
	t.Parallel()
	h := newHome(t)
	port := freePort(t)
	sp := workloadSpec(port)
	old := h.installWith("1.0.0 healthy", sp)
	h.setActive(home.Active{Current: old})
	h.start("--watch", "1s")
	h.waitReady(old, 1)
	h.waitWorkloadState(home.WorkloadReady, 10*time.Second)
	pid := h.assertOneWorkload(old)

	var probes, failures atomic.Int64
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		c := &http.Client{Timeout: time.Second}
		for {
			select {
			case <-stop:
				return
			case <-time.After(10 * time.Millisecond):
			}
			probes.Add(1)
			resp, err := c.Get(fmt.Sprintf("http://127.0.0.1:%d/ready", port))
			if err != nil || resp.StatusCode != 200 {
				failures.Add(1)
			}
			if err == nil {
				resp.Body.Close()
			}
		}
	}()
	v := h.upgradeWith("1.1.0 healthy", sp)
	r := h.waitResult(home.OutcomeCommitted, 15*time.Second)
	close(stop)
	<-done
	if r.Version != v {
		t.Fatalf("result.json = %+v", r)
	}
	pids := h.workloadPIDs()
	if len(pids) != 1 || pids[0] != pid {
		t.Errorf("workloads after the upgrade: %v, want the same pid %d", pids, pid)
	}
	if n := len(h.wfind("", "start")); n != 1 {
		t.Errorf("the workload started %d times, want once", n)
	}
	if failures.Load() != 0 {
		t.Errorf("%d of %d probes of the ready endpoint failed during the upgrade", failures.Load(), probes.Load())
	}
	t.Logf("%d probes during the upgrade, none failed", probes.Load())
	w := h.workloadState()
	if w.Version != old || w.State != home.WorkloadReady {
		t.Errorf("state/workloads.json = %+v, want still running from %s", w, old)
	}
}

// W4. A kill -9 of the supervisor and a start: exactly one instance of
// the workload runs afterwards.
func TestWorkloadKill9Supervisor(t *testing.T) {
	t.Parallel()
	h := newHome(t)
	port := freePort(t)
	// The workload ignores SIGTERM: the new supervisor must kill it.
	v := h.installWith("1.0.0 healthy", workloadSpec(port, "-ignore-term"))
	h.setActive(home.Active{Current: v})
	sv := h.start()
	h.waitReady(v, 1)
	h.waitWorkloadState(home.WorkloadReady, 10*time.Second)
	old := h.assertOneWorkload(v)
	sv.Process.Kill()
	sv.Wait()
	h.start()
	h.waitFor("a new workload ready", 20*time.Second, func() bool { return len(h.wfind(v, "ready")) >= 2 })
	h.waitWorkloadState(home.WorkloadReady, 5*time.Second)
	pid := h.assertOneWorkload(v)
	if pid == old {
		t.Errorf("the old workload (pid %d) still runs", old)
	}
	h.assertOneAgent(v)
}

// W6. The self-upgrade's exec in place hands the workload over: same
// pid, not restarted, and the new image follows it.
func TestWorkloadAdoptedBySelfUpgrade(t *testing.T) {
	t.Parallel()
	h := newHome(t)
	port := freePort(t)
	sp := workloadSpec(port)
	old := h.installWith("1.0.0 healthy", sp)
	h.setActive(home.Active{Current: old})
	sv := h.start("--watch", "500ms")
	h.waitReady(old, 1)
	h.waitWorkloadState(home.WorkloadReady, 10*time.Second)
	pid := h.assertOneWorkload(old)
	h.copy(supervisor["2.0.0"], h.StagedSupervisor("1.1.0"))
	h.upgradeWith("1.1.0 healthy", sp)
	h.waitFor("the new supervisor adopting the workload", 20*time.Second, func() bool {
		return strings.Contains(h.supervisorLog(), `"msg":"adopted the running workload"`)
	})
	if got := h.assertOneWorkload(old); got != pid || len(h.wfind("", "start")) != 1 {
		t.Errorf("workload pid %d, %d starts: want %d adopted, not restarted", got, len(h.wfind("", "start")), pid)
	}
	// The new image follows it: a crash is seen and restarted.
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	h.waitFor("the adopted workload restarted", 10*time.Second, func() bool { return len(h.wfind("", "ready")) >= 2 })
	// And stopped with the supervisor.
	if err := sv.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := sv.Wait(); err != nil {
		t.Errorf("supervisor exit: %v", err)
	}
	if pids := h.workloadPIDs(); len(pids) != 0 {
		t.Errorf("workloads left after the supervisor stopped: %v", pids)
	}
}
