//go:build linux

package supervisor_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/moltfleet/molt/home"
	supervisorpkg "github.com/moltfleet/molt/supervisor"
)

// 1. Crash restarts back off: the delays double, and a run longer than
// the stable period resets them.
func TestCrashBackoff(t *testing.T) {
	t.Parallel()
	h := newHome(t)
	v := h.install("1.0.0 runs=0s,0s,0s,1500ms,0s")
	h.setActive(home.Active{Current: v})
	h.start("--backoff-min", "500ms", "--backoff-max", "10s", "--stable-after", "1s")
	// Runs 0-2 crash at once, run 3 lasts 1.5 s (stable), run 4 crashes
	// at once, run 5 stays up.
	h.waitReady(v, 6)
	starts, crashes := h.find(v, "start"), h.find(v, "crash-3")
	if len(crashes) < 5 {
		t.Fatalf("%d crashes recorded, want 5", len(crashes))
	}
	// Each delay must be at least its backoff and, to tell the steps
	// apart on a loaded machine, less than the next doubling.
	const min = 500 * time.Millisecond
	want := []time.Duration{min, 2 * min, 4 * min, min, 2 * min}
	gap := make([]time.Duration, 5)
	for i := range gap {
		gap[i] = starts[i+1].at.Sub(crashes[i].at)
	}
	t.Logf("delays between a crash and the next start: %v", gap)
	for i, w := range want {
		if gap[i] < w-10*time.Millisecond || gap[i] >= 2*w {
			t.Errorf("delay %d = %s, want %s (up to %s)", i, gap[i], w, 2*w)
		}
	}
	h.assertOneAgent(v)
}

// 2. Exit 11 with a staged version: the trial runs, then commits.
func TestTrialCommit(t *testing.T) {
	t.Parallel()
	h := newHome(t)
	old := h.install("1.0.0 healthy")
	h.setActive(home.Active{Current: old})
	h.start("--watch", "1s")
	h.waitReady(old, 1)
	v := h.upgrade("1.1.0 healthy")
	r := h.waitResult(home.OutcomeCommitted, 15*time.Second)
	if r.Version != v || r.Previous != old || r.Order != "order-1" {
		t.Errorf("result.json = %+v, want committed %s after %s for order-1", r, v, old)
	}
	a := h.active()
	if a.Current != v || a.Previous != old || a.Trial != nil {
		t.Errorf("active.json = %+v, want current %s, previous %s, no trial", a, v, old)
	}
	ready := h.waitReady(v, 1)
	if exits := h.find(old, "exit-11"); len(exits) != 1 || ready.at.Before(exits[0].at) {
		t.Errorf("the new version did not start after the old one exited 11: %v", h.events())
	}
	if d := r.At.Sub(ready.at); d < 900*time.Millisecond {
		t.Errorf("committed %s after ready, before the 1s watch window ended", d)
	}
	if b, err := os.ReadFile(r.Logs); err != nil || !strings.Contains(string(b), "testagent 1.1.0 starting") {
		t.Errorf("result.json logs %q: %v, %q", r.Logs, err, b)
	}
	if pid := h.assertOneAgent(v); pid != ready.pid {
		t.Errorf("running agent pid %d, want the one that said ready (%d)", pid, ready.pid)
	}
	if !strings.Contains(h.supervisorLog(), `"agent_version":"1.1.0","stream":"stdout","line":"testagent 1.1.0 starting`) {
		t.Error("the agent's output is not in the supervisor's log with its version")
	}
}

// 3. Each kind of bad version is rolled back: the previous version runs
// again and result.json says why.
func TestRollback(t *testing.T) {
	t.Parallel()
	tests := []struct {
		build, reason string
	}{
		{"1.1.0 crash-at-start", "crashed (exit status 3)"},
		{"1.1.0 never-ready", "did not say ready within 1s"},
		{"1.1.0 crash-after=300ms", "failed 2 times within the 4s watch window, more than the crash budget of 1"},
		{"1.1.0 exit0", "exited 0 without being asked to stop"},
	}
	for _, tt := range tests {
		t.Run(strings.Fields(tt.build)[1], func(t *testing.T) {
			t.Parallel()
			h := newHome(t)
			old := h.install("1.0.0 healthy")
			h.setActive(home.Active{Current: old})
			h.start("--watch", "4s", "--ready-timeout", "1s", "--crash-budget", "1", "--backoff-min", "100ms")
			h.waitReady(old, 1)
			v := h.upgrade(tt.build)
			r := h.waitResult(home.OutcomeRolledBack, 15*time.Second)
			if r.Version != v || r.Previous != old || !strings.Contains(r.Reason, tt.reason) {
				t.Errorf("result.json = %+v, want rolled_back of %s with reason containing %q", r, v, tt.reason)
			}
			if r.Logs != filepath.Join(h.LogsDir(), "agent-1.1.0.log") {
				t.Errorf("logs = %q", r.Logs)
			} else if b, err := os.ReadFile(r.Logs); err != nil || !strings.Contains(string(b), "testagent 1.1.0 starting") {
				t.Errorf("the failed version's log %s: %v %q", r.Logs, err, b)
			}
			// result.json is written first, then active.json.
			h.waitFor("active.json back on "+old, 5*time.Second, func() bool {
				a := h.active()
				return a.Current == old && a.Trial == nil
			})
			back := h.waitReady(old, 2)
			if back.at.Before(r.At) {
				t.Errorf("the previous version was not started after the rollback")
			}
			h.assertOneAgent(old)
		})
	}
}

// 4. The supervisor killed -9 mid-trial and started again goes on with
// the same trial: the window keeps its start, failures keep their count.
func TestKill9MidTrial(t *testing.T) {
	t.Parallel()
	t.Run("window", func(t *testing.T) {
		t.Parallel()
		h := newHome(t)
		old := h.install("1.0.0 healthy")
		h.setActive(home.Active{Current: old})
		sv := h.start("--watch", "4s")
		h.waitReady(old, 1)
		v := h.upgrade("1.1.0 healthy")
		h.waitReady(v, 1)
		var started time.Time
		h.waitFor("the trial's start in active.json", 5*time.Second, func() bool {
			a := h.active()
			if a.Trial != nil {
				started = a.Trial.Started
			}
			return !started.IsZero()
		})
		time.Sleep(time.Until(started.Add(1500 * time.Millisecond)))
		sv.Process.Kill()
		sv.Wait()
		h.start("--watch", "4s")
		h.waitReady(v, 2)
		if a := h.active(); a.Trial != nil && !a.Trial.Started.Equal(started) {
			t.Errorf("the restarted supervisor moved the window's start from %s to %s", started, a.Trial.Started)
		}
		r := h.waitResult(home.OutcomeCommitted, 15*time.Second)
		if d := r.At.Sub(started); d < 4*time.Second || d > 5200*time.Millisecond {
			t.Errorf("committed %s after the trial started, want the original 4s window (a new window would end after 5.5s)", d)
		}
		if r.Version != v {
			t.Errorf("result.json = %+v", r)
		}
		h.assertOneAgent(v)
	})
	t.Run("failures", func(t *testing.T) {
		t.Parallel()
		h := newHome(t)
		old := h.install("1.0.0 healthy")
		h.setActive(home.Active{Current: old})
		args := []string{"--watch", "20s", "--crash-budget", "1", "--backoff-min", "2s"}
		sv := h.start(args...)
		h.waitReady(old, 1)
		v := h.upgrade("1.1.0 crash-after=1s")
		h.waitFor("one failure counted", 15*time.Second, func() bool {
			a := h.active()
			return a.Trial != nil && a.Trial.Crashes == 1
		})
		sv.Process.Kill()
		sv.Wait()
		h.start(args...)
		r := h.waitResult(home.OutcomeRolledBack, 15*time.Second)
		if r.Version != v || !strings.Contains(r.Reason, "failed 2 times") {
			t.Errorf("result.json = %+v, want rolled back after the second failure", r)
		}
		h.waitReady(old, 2)
		h.assertOneAgent(old)
	})
}

// 5. Self-upgrade: the committed version's supervisor replaces bin/ and
// runs in the same process; the agent is not restarted. Afterwards the
// adopted agent is the new image's like its own: stopped over the adopted
// channel, or waited for and restarted when it crashes.
func TestSelfUpgrade(t *testing.T) {
	t.Parallel()
	for _, after := range []string{"stop", "crash"} {
		t.Run(after, func(t *testing.T) {
			t.Parallel()
			h, sv, ready := selfUpgraded(t)
			v := ready.version
			if after == "crash" {
				if err := syscall.Kill(ready.pid, syscall.SIGKILL); err != nil {
					t.Fatal(err)
				}
				again := h.waitReady(v, 2)
				if !strings.Contains(h.supervisorLog(), fmt.Sprintf(`"msg":"agent exited","agent_version":"1.1.0","pid":%d,"code":-1,"status":"signal: killed"`, ready.pid)) {
					t.Error("the new supervisor did not see the adopted agent's exit")
				}
				ready = again
			}
			if err := sv.Process.Signal(syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
			if err := sv.Wait(); err != nil {
				t.Errorf("supervisor exit: %v", err)
			}
			if stops := h.find(v, "stop"); len(stops) != 1 || stops[0].pid != ready.pid {
				t.Errorf("agent %d did not get stop over the channel: %v", ready.pid, h.events())
			}
			if pids := h.agentPIDs(); len(pids) != 0 {
				t.Errorf("agents left after stop: %v", pids)
			}
		})
	}
}

// selfUpgraded runs an upgrade whose version carries supervisor 2.0.0 and
// checks the self-upgrade; it returns the supervisor and the adopted
// agent's ready event.
func selfUpgraded(t *testing.T) (*testHome, *exec.Cmd, event) {
	h, sv, v, ready, r := upgradeWithSupervisor(t, supervisor["2.0.0"])
	if s := r.Supervisor; !s.Upgraded || s.From != "1.0.0" || s.To != "2.0.0" {
		t.Fatalf("result.json supervisor = %+v, want upgraded 1.0.0 -> 2.0.0", s)
	}
	h.waitFor("the new supervisor adopting the agent", 10*time.Second, func() bool {
		return strings.Contains(h.supervisorLog(), `"msg":"adopted the running agent"`)
	})
	if got := runVersion(t, h.SupervisorBinary()); got != "2.0.0" {
		t.Errorf("bin/molt-supervisor version = %s, want 2.0.0", got)
	}
	if got := runVersion(t, h.SupervisorBinary()+".old"); got != "1.0.0" {
		t.Errorf("bin/molt-supervisor.old version = %s, want 1.0.0", got)
	}
	if exe, err := os.Readlink("/proc/" + itoa(sv.Process.Pid) + "/exe"); err != nil || exe != h.SupervisorBinary() {
		t.Errorf("supervisor pid %d runs %q (%v), want the new %s", sv.Process.Pid, exe, err, h.SupervisorBinary())
	}
	if !strings.Contains(h.supervisorLog(), `"msg":"supervisor running","version":"2.0.0"`) {
		t.Error("no log line of supervisor 2.0.0 running")
	}
	if pid := h.assertOneAgent(v); pid != ready.pid || len(h.find(v, "start")) != 1 {
		t.Errorf("agent pid %d, starts %d: want the same agent (pid %d) adopted, not restarted", pid, len(h.find(v, "start")), ready.pid)
	}
	return h, sv, ready
}

// upgradeWithSupervisor runs 1.0.0 under supervisor 1.0.0 and upgrades it
// to 1.1.0, whose version carries staged as its supervisor; it returns
// once result.json records what became of the supervisor's self-upgrade,
// with the running supervisor, the new version, its agent's ready event
// and result.json.
func upgradeWithSupervisor(t *testing.T, staged string) (*testHome, *exec.Cmd, string, event, home.Result) {
	t.Helper()
	h := newHome(t)
	old := h.install("1.0.0 healthy")
	h.setActive(home.Active{Current: old})
	sv := h.start("--watch", "500ms")
	h.waitReady(old, 1)
	h.copy(staged, h.StagedSupervisor("1.1.0"))
	v := h.upgrade("1.1.0 healthy")
	ready := h.waitReady(v, 1)
	h.waitFor("the supervisor's self-upgrade in result.json", 20*time.Second, func() bool {
		r, _ := h.result()
		return r.Supervisor != nil
	})
	r, _ := h.result()
	return h, sv, v, ready, r
}

// 5b. A staged supervisor that fails its selftest is not installed.
func TestSelfUpgradeRefused(t *testing.T) {
	t.Parallel()
	// A program that says it is supervisor 3.0.0 but fails selftest.
	h, sv, v, ready, r := upgradeWithSupervisor(t, agents["3.0.0 healthy"])
	if s := r.Supervisor; s.Upgraded || s.To != "3.0.0" || !strings.Contains(s.Reason, "selftest failed") || !strings.Contains(s.Reason, "test double") {
		t.Errorf("result.json supervisor = %+v, want refused for its selftest", s)
	}
	if r.Outcome != home.OutcomeCommitted {
		t.Errorf("outcome %q: the agent's commit must stand", r.Outcome)
	}
	if got := runVersion(t, h.SupervisorBinary()); got != "1.0.0" {
		t.Errorf("bin/molt-supervisor version = %s, want 1.0.0 kept", got)
	}
	if !strings.Contains(h.supervisorLog(), "staged supervisor refused") {
		t.Error("the refusal is not in the log")
	}
	if pid := h.assertOneAgent(v); pid != ready.pid {
		t.Errorf("agent restarted (pid %d, was %d)", pid, ready.pid)
	}
	if sv.ProcessState != nil {
		t.Error("supervisor exited")
	}
}

// 6. A stop of the supervisor stops the agent first: over the channel,
// or, for an agent that ignores it, by a kill after the grace period.
func TestGracefulStop(t *testing.T) {
	t.Parallel()
	tests := []struct {
		build    string
		min, max time.Duration
		event    string
	}{
		{"1.0.0 healthy", 0, 3 * time.Second, "stop"},
		{"1.0.0 ignore-stop", 2 * time.Second, 6 * time.Second, "stop-ignored"},
	}
	for _, tt := range tests {
		t.Run(strings.Fields(tt.build)[1], func(t *testing.T) {
			t.Parallel()
			h := newHome(t)
			v := h.install(tt.build)
			h.setActive(home.Active{Current: v})
			sv := h.start("--stop-grace", "2s")
			ready := h.waitReady(v, 1)
			t0 := time.Now()
			if err := sv.Process.Signal(syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
			err := sv.Wait()
			took := time.Since(t0)
			if err != nil {
				t.Errorf("supervisor exit: %v", err)
			}
			if took < tt.min || took > tt.max {
				t.Errorf("stop took %s, want between %s and %s", took, tt.min, tt.max)
			}
			if e := h.find(v, tt.event); len(e) != 1 || e[0].pid != ready.pid {
				t.Errorf("agent events: %v, want one %q", h.events(), tt.event)
			}
			if pids := h.agentPIDs(); len(pids) != 0 {
				t.Errorf("agents left after stop: %v", pids)
			}
			if tt.event == "stop-ignored" && !strings.Contains(h.supervisorLog(), "killing it") {
				t.Error("no kill in the supervisor's log")
			}
		})
	}
}

// 7. The supervisor killed -9 and started again: exactly one agent runs,
// also when the old agent ignores the closed channel.
func TestKill9ExactlyOneAgent(t *testing.T) {
	t.Parallel()
	for _, build := range []string{"1.0.0 healthy", "1.0.0 ignore-stop"} {
		t.Run(strings.Fields(build)[1], func(t *testing.T) {
			t.Parallel()
			h := newHome(t)
			v := h.install(build)
			h.setActive(home.Active{Current: v})
			sv := h.start("--stop-grace", "1s")
			first := h.waitReady(v, 1)
			// The record follows the start within microseconds; only a
			// kill in that moment could miss it (docs/supervisor.md).
			h.waitFor("state/agent.json", 5*time.Second, func() bool {
				b, err := os.ReadFile(filepath.Join(h.StateDir(), "agent.json"))
				return err == nil && strings.Contains(string(b), fmt.Sprintf(`"pid":%d,`, first.pid))
			})
			sv.Process.Kill()
			sv.Wait()
			h.start("--stop-grace", "1s")
			second := h.waitReady(v, 2)
			if second.pid == first.pid {
				t.Fatal("no new agent")
			}
			time.Sleep(300 * time.Millisecond)
			if pid := h.assertOneAgent(v); pid != second.pid {
				t.Errorf("running agent %d, want %d", pid, second.pid)
			}
			if _, err := os.Stat("/proc/" + itoa(first.pid)); err == nil {
				if st, _ := os.ReadFile("/proc/" + itoa(first.pid) + "/stat"); !strings.Contains(string(st), ") Z") {
					t.Errorf("old agent %d still runs", first.pid)
				}
			}
		})
	}
}

func itoa(i int) string { return strconv.Itoa(i) }

// A second supervisor on the same home refuses to run instead of taking
// the first one's agent for a leftover. Running (what molt-supervisor
// status asks) tells the first one by its lock.
func TestOneSupervisorPerHome(t *testing.T) {
	t.Parallel()
	h := newHome(t)
	v := h.install("1.0.0 healthy")
	h.setActive(home.Active{Current: v})
	if pid, ok, err := supervisorpkg.Running(h.Home); ok || err != nil {
		t.Errorf("before any start: Running = %d, %v, %v", pid, ok, err)
	}
	sup := h.start()
	first := h.waitReady(v, 1)
	if pid, ok, err := supervisorpkg.Running(h.Home); !ok || err != nil || pid != sup.Process.Pid {
		t.Errorf("Running = %d, %v, %v; want the supervisor's pid %d", pid, ok, err, sup.Process.Pid)
	}
	out, err := exec.Command(h.SupervisorBinary(), "run", "--home", h.Dir).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "another supervisor runs this home") {
		t.Errorf("second supervisor: %v, %q; want a refusal", err, out)
	}
	if pid := h.assertOneAgent(v); pid != first.pid {
		t.Errorf("agent %d replaced by %d", first.pid, pid)
	}
}

// molt-supervisor selftest says ok, or names each problem and exits 1.
func TestSelftestCommand(t *testing.T) {
	t.Parallel()
	h := newHome(t)
	v := h.install("1.0.0 healthy")
	h.setActive(home.Active{Current: v})
	out, err := exec.Command(h.SupervisorBinary(), "selftest", "--home", h.Dir).CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "selftest: ok" {
		t.Errorf("selftest of a good home: %v, %q", err, out)
	}
	if err := os.Remove(h.ValidPath(v)); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(h.ConfigPath(), []byte("server: ftp://x\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err = exec.Command(h.SupervisorBinary(), "selftest", "--home", h.Dir).CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Errorf("selftest of a bad home: %v, want exit 1", err)
	}
	for _, want := range []string{"selftest: versions/1.0.0: no .valid marker", "selftest: " + h.ConfigPath() + ": server:"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("selftest output %q lacks %q", out, want)
		}
	}
	out, _ = exec.Command(h.SupervisorBinary(), "selftest", "--json", "--home", h.Dir).Output()
	var res struct {
		OK       bool
		Problems []string
	}
	if err := json.Unmarshal(out, &res); err != nil || res.OK || len(res.Problems) != 2 {
		t.Errorf("selftest --json: %q (%v), want ok false with 2 problems", out, err)
	}
}
