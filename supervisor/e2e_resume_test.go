//go:build linux

package supervisor_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/moltfleet/molt/home"
)

// committedHome is a home as a kill -9 between the commit and the swap
// leaves it: 1.1.0 committed (no trial, result.json without the
// supervisor's outcome), carrying staged as its molt-supervisor, and
// bin/molt-supervisor still 1.0.0.
func committedHome(t *testing.T, staged string) (*testHome, string) {
	t.Helper()
	h := newHome(t)
	h.install("1.0.0 healthy")
	v := h.install("1.1.0 healthy")
	h.copy(staged, h.StagedSupervisor(v))
	h.setActive(home.Active{Current: v, Previous: "1.0.0"})
	r := home.Result{Outcome: home.OutcomeCommitted, Version: v, Previous: "1.0.0", Order: "order-1", At: time.Now()}
	if err := h.WriteResult(r); err != nil {
		t.Fatal(err)
	}
	return h, v
}

// A self-upgrade killed before its swap is carried out by the restarted
// supervisor: in place, with the agent it started adopted, over a
// leftover half-written .new file.
func TestSelfUpgradeResumed(t *testing.T) {
	t.Parallel()
	h, v := committedHome(t, supervisor["2.0.0"])
	// What a replacement killed mid-write leaves: garbage, and not
	// executable (a rewrite in place would keep that mode).
	leftover := filepath.Join(filepath.Dir(h.SupervisorBinary()), ".molt-supervisor.new")
	if err := os.WriteFile(leftover, []byte("half a program"), 0o644); err != nil {
		t.Fatal(err)
	}
	sv := h.start()
	h.waitFor("the new supervisor adopting the agent", 20*time.Second, func() bool {
		return strings.Contains(h.supervisorLog(), `"msg":"adopted the running agent"`)
	})
	if !strings.Contains(h.supervisorLog(), `"msg":"a self-upgrade was not finished; resuming it","from":"1.0.0","to":"2.0.0"`) {
		t.Error("no log line of the resumed self-upgrade")
	}
	if got := runVersion(t, h.SupervisorBinary()); got != "2.0.0" {
		t.Errorf("bin/molt-supervisor version = %s, want 2.0.0", got)
	}
	if got := runVersion(t, h.SupervisorBinary()+".old"); got != "1.0.0" {
		t.Errorf("bin/molt-supervisor.old version = %s, want 1.0.0", got)
	}
	if _, err := os.Stat(leftover); !os.IsNotExist(err) {
		t.Errorf("%s left behind: %v", leftover, err)
	}
	if exe, err := os.Readlink("/proc/" + itoa(sv.Process.Pid) + "/exe"); err != nil || exe != h.SupervisorBinary() {
		t.Errorf("supervisor pid %d runs %q (%v), want the new %s", sv.Process.Pid, exe, err, h.SupervisorBinary())
	}
	if !strings.Contains(h.supervisorLog(), `"msg":"supervisor running","version":"2.0.0"`) {
		t.Error("no log line of supervisor 2.0.0 running")
	}
	ready := h.waitReady(v, 1)
	if pid := h.assertOneAgent(v); pid != ready.pid || len(h.find(v, "start")) != 1 {
		t.Errorf("agent pid %d, starts %d: want the agent the old image started (pid %d) adopted, not restarted",
			pid, len(h.find(v, "start")), ready.pid)
	}
	r, _ := h.result()
	if s := r.Supervisor; s == nil || !s.Upgraded || s.From != "1.0.0" || s.To != "2.0.0" {
		t.Errorf("result.json supervisor = %+v, want upgraded 1.0.0 -> 2.0.0", s)
	}
	if r.Outcome != home.OutcomeCommitted || r.Version != v || r.Order != "order-1" {
		t.Errorf("result.json = %+v: the commit must stand", r)
	}
	if sv.ProcessState != nil {
		t.Error("supervisor exited")
	}
}

// A staged supervisor refused for its selftest (after the commit, or at a
// start) is not checked again when the supervisor starts again.
func TestSelfUpgradeRefusedNotRetried(t *testing.T) {
	t.Parallel()
	// A program that says it is supervisor 3.0.0 but fails selftest.
	bad := agents["3.0.0 healthy"]
	checks := func(h *testHome) int {
		return strings.Count(h.supervisorLog(), `"msg":"checking the staged supervisor"`)
	}
	for _, when := range []string{"after-commit", "at-start"} {
		t.Run(when, func(t *testing.T) {
			t.Parallel()
			var h *testHome
			var sv *exec.Cmd
			if when == "after-commit" {
				h, sv, _, _, _ = upgradeWithSupervisor(t, bad)
			} else {
				h, _ = committedHome(t, bad)
				sv = h.start()
				h.waitFor("the refusal in result.json", 20*time.Second, func() bool {
					r, _ := h.result()
					return r.Supervisor != nil
				})
			}
			r, _ := h.result()
			if s := r.Supervisor; s.Upgraded || s.To != "3.0.0" || !strings.Contains(s.Reason, "selftest failed") {
				t.Fatalf("result.json supervisor = %+v, want refused for its selftest", s)
			}
			if n := checks(h); n != 1 {
				t.Fatalf("%d checks of the staged supervisor, want 1", n)
			}
			// Killed (as by a crash) and started again by the service.
			if err := sv.Process.Kill(); err != nil {
				t.Fatal(err)
			}
			_ = sv.Wait()
			h.start()
			h.waitFor("the second start's decision", 20*time.Second, func() bool {
				return strings.Contains(h.supervisorLog(), "the staged supervisor was refused before; not checked again")
			})
			h.waitReady("1.1.0", 2)
			if n := checks(h); n != 1 {
				t.Errorf("%d checks of the staged supervisor, want 1: the refused one was tried again", n)
			}
			if got := runVersion(t, h.SupervisorBinary()); got != "1.0.0" {
				t.Errorf("bin/molt-supervisor version = %s, want 1.0.0 kept", got)
			}
			r2, _ := h.result()
			if s := r2.Supervisor; s == nil || !s.At.Equal(r.Supervisor.At) {
				t.Errorf("result.json supervisor = %+v, want the first refusal unchanged", s)
			}
		})
	}
}
