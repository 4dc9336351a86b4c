package server

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/moltfleet/molt/protocol"
)

// rolloutWorld is a run over simulated agents driven pass by pass with the
// fake clock.
type rolloutWorld struct {
	t      *testing.T
	e      *env
	agents []*simAgent
	run    protocol.Run
	// dead agents never check in again once the run exists; fail makes an
	// agent's upgrade fail instead of completing.
	dead, fail map[int]bool
	// hold leaves an agent's order unfinished (in progress) until cleared.
	hold map[int]bool
	done map[int]bool
}

func newRolloutWorld(t *testing.T, n int, mod func(i int, r *protocol.EnrollRequest), req protocol.RunRequest) *rolloutWorld {
	t.Helper()
	e := newEnv(t)
	e.importPack("2.0.0", "", "linux/amd64", "windows/amd64")
	w := &rolloutWorld{t: t, e: e, dead: map[int]bool{}, fail: map[int]bool{}, hold: map[int]bool{}, done: map[int]bool{}}
	for i := 0; i < n; i++ {
		w.agents = append(w.agents, e.newAgent(fmt.Sprintf("h%02d", i), "1.0.0", func(r *protocol.EnrollRequest) {
			if mod != nil {
				mod(i, r)
			}
		}))
	}
	if req.Target == "" {
		req.Target = "2.0.0"
	}
	req.Selection = protocol.Selection{All: true}
	w.run = e.createRun(req)
	return w
}

// pass is one round: the live agents check in, the scheduler runs, the
// agents check in again and carry out the orders they got (complete,
// fail, or hold). It returns the agents that got an order in this pass.
func (w *rolloutWorld) pass() []int {
	w.t.Helper()
	var got []int
	for i, a := range w.agents {
		if !w.dead[i] {
			a.checkin()
		}
	}
	w.e.schedule()
	for i, a := range w.agents {
		if w.dead[i] || w.done[i] {
			continue
		}
		o := upgradeOrder(a.checkin())
		if o == nil {
			continue
		}
		got = append(got, i)
		switch {
		case w.hold[i]:
			a.report(protocol.ReportRequest{OrderID: o.ID, Phase: protocol.StateDownloading})
		case w.fail[i]:
			a.report(protocol.ReportRequest{OrderID: o.ID, End: &protocol.End{Outcome: protocol.EndFailed, Reason: "disk full"}})
			w.done[i] = true
		default:
			a.complete(*o)
			w.done[i] = true
		}
	}
	return got
}

func (w *rolloutWorld) get() protocol.Run { return w.e.run(w.run.ID) }

// order lists the agents in the run's order (their deployments' ids),
// with each one's wave.
func (w *rolloutWorld) order() (agents, waves []int) {
	w.t.Helper()
	ds := w.deps()
	for i := range ds {
		agents = append(agents, i)
	}
	slices.SortFunc(agents, func(a, b int) int {
		return strings.Compare(fmt.Sprintf("%09s", ds[a].ID), fmt.Sprintf("%09s", ds[b].ID))
	})
	for _, i := range agents {
		waves = append(waves, ds[i].Wave)
	}
	return agents, waves
}

// deps maps agent index to its deployment in the run.
func (w *rolloutWorld) deps() map[int]protocol.Deployment {
	w.t.Helper()
	var ds protocol.Deployments
	w.e.must("GET", "/v1/deployments?run="+w.run.ID+"&limit=1000", protocol.RoleViewer, nil, &ds)
	out := map[int]protocol.Deployment{}
	for _, d := range ds.Deployments {
		for i, a := range w.agents {
			if a.id == d.AgentID {
				out[i] = d
			}
		}
	}
	return out
}

func TestRolloutCanariesThenWaves(t *testing.T) {
	// Two OS families; the one windows host must be a canary.
	w := newRolloutWorld(t, 10, func(i int, r *protocol.EnrollRequest) {
		if i == 7 {
			r.Platform, r.OSFamily = "windows/amd64", "windows"
		}
	}, protocol.RunRequest{MaxConcurrent: 100, RunControls: protocol.RunControls{Canary: 1, CanarySoakSeconds: 600, Waves: []string{"50%", "100%"}}})
	r := w.get()
	if len(r.WaveList) != 3 || r.WaveList[0].Name != "canary" || r.WaveList[0].Agents != 2 {
		t.Fatalf("waves: %+v", r.WaveList)
	}
	got := w.pass()
	if len(got) != 2 || !slices.Contains(got, 7) {
		t.Fatalf("first pass started %v, want the two canaries, the windows host among them", got)
	}
	for i, d := range w.deps() {
		if d.Canary != slices.Contains(got, i) || (d.Canary && d.Wave != 0) {
			t.Errorf("agent %d: canary %v wave %d", i, d.Canary, d.Wave)
		}
	}
	// Done, but soaking: nothing more starts.
	if got := w.pass(); len(got) != 0 {
		t.Fatalf("started %v during the canaries' soak", got)
	}
	if r := w.get(); r.WaveList[0].State != "done" || r.NextWave.IsZero() {
		t.Errorf("after the canaries: wave 0 %s, next wave at %v", r.WaveList[0].State, r.NextWave)
	}
	w.e.clock.Add(9 * time.Minute)
	if got := w.pass(); len(got) != 0 {
		t.Fatalf("started %v before the soak ended", got)
	}
	w.e.clock.Add(2 * time.Minute)
	got = w.pass()
	if len(got) != 3 { // 50% of 10 is 5, 2 of them canaries
		t.Fatalf("wave 1 started %v, want 3 agents", got)
	}
	w.e.clock.Add(time.Second)
	w.pass() // wave 1 done: wave 2 opens at once (no wave wait)
	w.pass()
	if r := w.get(); r.Status != protocol.RunEndedOK || r.Counts[protocol.StateSucceeded] != 10 {
		t.Fatalf("run %s %v", r.Status, r.Counts)
	}
	for _, id := range []int{protocol.EvWaveStarted, protocol.EvWaveDone} {
		if !w.e.hasEvent(id, "") {
			t.Errorf("no event %d", id)
		}
	}
}

func TestRolloutCanaryFailureHalts(t *testing.T) {
	w := newRolloutWorld(t, 6, nil, protocol.RunRequest{MaxConcurrent: 10, RunControls: protocol.RunControls{Canary: 1}})
	for i := range w.agents {
		w.fail[i] = true // whichever is the canary fails
	}
	got := w.pass()
	if len(got) != 1 {
		t.Fatalf("started %v, want one canary", got)
	}
	w.pass()
	r := w.get()
	if r.Status != protocol.RunPaused || !strings.HasPrefix(r.Reason, "halted: ") || !strings.Contains(r.Reason, "canar") {
		t.Fatalf("after a failed canary: %s %q", r.Status, r.Reason)
	}
	if !w.e.hasEvent(protocol.EvRunHalted, "") {
		t.Error("no run_halted event")
	}
	if got := w.pass(); len(got) != 0 {
		t.Errorf("a halted run started %v", got)
	}
	// Halted is remembered across a restart.
	w.e.restart()
	if got := w.pass(); len(got) != 0 {
		t.Errorf("after a restart a halted run started %v", got)
	}
	// Resuming accepts the failure: the rest goes on.
	w.e.must("POST", "/v1/runs/"+w.run.ID+"/resume", protocol.RoleOperator, nil, nil)
	w.fail = map[int]bool{}
	w.e.clock.Add(6 * time.Minute) // the canary soak
	w.pass()
	w.pass()
	if r := w.get(); r.Counts[protocol.StateSucceeded] != 5 {
		t.Fatalf("after resume: %s %v", r.Status, r.Counts)
	}
}

func TestRolloutWaveApprovalAndDeadHost(t *testing.T) {
	w := newRolloutWorld(t, 20, nil, protocol.RunRequest{MaxConcurrent: 100, RunControls: protocol.RunControls{Waves: []string{"50%", "100%"}, WaveApprove: true}})
	agents, waves := w.order()
	if waves[0] != 0 || waves[19] != 1 {
		t.Fatalf("waves in the run's order: %v", waves)
	}
	w.dead[agents[3]] = true        // in wave 0 (the first half), never comes back
	w.e.clock.Add(10 * time.Minute) // it went offline before its turn
	if got := w.pass(); len(got) != 9 {
		t.Fatalf("wave 0 started %v, want its 9 live agents", got)
	}
	w.pass()
	r := w.get()
	if r.WaveList[0].State != "approval" {
		t.Fatalf("wave 0 with 9 of 10 succeeded (90%%): %s, want approval", r.WaveList[0].State)
	}
	if !w.e.hasEvent(protocol.EvWaveApproval, "") {
		t.Error("no wave_waiting_for_approval event")
	}
	w.e.clock.Add(24 * time.Hour)
	if got := w.pass(); len(got) != 0 {
		t.Fatalf("started %v without promotion", got)
	}
	w.e.must("POST", "/v1/runs/"+w.run.ID+"/promote", protocol.RoleOperator, nil, nil)
	if code, _ := w.e.do("POST", "/v1/runs/"+w.run.ID+"/promote", w.e.tokens[protocol.RoleOperator], nil, nil); code != 409 {
		t.Errorf("a second promotion: %d, want 409", code)
	}
	if got := w.pass(); len(got) != 10 {
		t.Fatalf("wave 1 started %v, want 10", got)
	}
	if !w.e.hasEvent(protocol.EvRunPromoted, "") {
		t.Error("no run_promoted event")
	}
}

func TestRolloutLimits(t *testing.T) {
	t.Run("max concurrent percent", func(t *testing.T) {
		w := newRolloutWorld(t, 20, nil, protocol.RunRequest{RunControls: protocol.RunControls{MaxConcurrentPercent: 10}})
		for i := range w.agents {
			w.hold[i] = true
		}
		w.pass()
		if n := inProgress(w.get()); n != 2 {
			t.Fatalf("%d in progress, want 10%% of 20", n)
		}
	})
	t.Run("failure rate after min sample", func(t *testing.T) {
		w := newRolloutWorld(t, 10, nil, protocol.RunRequest{MaxConcurrent: 2, RunControls: protocol.RunControls{MaxFailuresPercent: 50, MinSample: 4}})
		agents, _ := w.order()
		w.fail[agents[0]], w.fail[agents[1]] = true, true // the first two end failed: 100 %, but fewer than 4 ended
		w.pass()
		if r := w.get(); r.Status != protocol.RunRunning {
			t.Fatalf("halted before the sample: %s %q", r.Status, r.Reason)
		}
		w.pass() // two more end (succeeded): 2 of 4 failed = 50 %
		w.pass()
		if r := w.get(); r.Status != protocol.RunPaused || !strings.Contains(r.Reason, "failure rate 50%") {
			t.Fatalf("after 2 of 4 failed: %s %q", r.Status, r.Reason)
		}
	})
	t.Run("rate with ramp", func(t *testing.T) {
		w := newRolloutWorld(t, 12, nil, protocol.RunRequest{MaxConcurrent: 100, RunControls: protocol.RunControls{RatePerMinute: 2, Ramp: 2}})
		var starts []int
		for m := 0; m < 3; m++ {
			n := len(w.pass())
			n += len(w.pass())
			starts = append(starts, n)
			w.e.clock.Add(time.Minute)
		}
		if fmt.Sprint(starts) != "[2 4 6]" {
			t.Fatalf("starts per minute %v, want [2 4 6] (2, doubling, until none are left)", starts)
		}
	})
}

func TestRolloutTime(t *testing.T) {
	t.Run("scheduled start and spread", func(t *testing.T) {
		at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC).Add(time.Hour) // the env's clock, an hour on
		w := newRolloutWorld(t, 4, nil, protocol.RunRequest{MaxConcurrent: 10, RunControls: protocol.RunControls{StartAt: at.Add(time.Minute), SpreadSeconds: 3600}})
		if !w.e.hasEvent(protocol.EvRunScheduled, "") {
			t.Error("no run_scheduled event")
		}
		if got := w.pass(); len(got) != 0 {
			t.Fatalf("started %v before start_at", got)
		}
		w.e.clock.Add(time.Hour + time.Minute)
		if got := w.pass(); len(got) != 1 {
			t.Fatalf("at start_at: started %v, want the first of the spread", got)
		}
		w.e.clock.Add(16 * time.Minute)
		if got := w.pass(); len(got) != 1 {
			t.Fatalf("a quarter of the spread later: started %v, want one more", got)
		}
		w.e.clock.Add(45 * time.Minute)
		if got := w.pass(); len(got) != 2 {
			t.Fatalf("after the spread: started %v, want the last two", got)
		}
	})
	t.Run("window closes mid-deployment", func(t *testing.T) {
		// The env's clock starts on Friday 2026-01-02 03:04:05 UTC.
		w := newRolloutWorld(t, 3, nil, protocol.RunRequest{MaxConcurrent: 1, RunControls: protocol.RunControls{Window: "daily 03:00-03:30 UTC"}})
		w.hold[0], w.hold[1], w.hold[2] = true, true, true
		got := w.pass()
		if len(got) != 1 {
			t.Fatalf("inside the window: started %v", got)
		}
		first := got[0]
		w.e.clock.Add(30 * time.Minute) // 03:34: closed
		delete(w.hold, first)
		w.pass() // the running one finishes: never half upgraded
		ds := w.deps()
		if ds[first].State != protocol.StateSucceeded {
			t.Fatalf("the deployment running when the window closed: %s", ds[first].State)
		}
		waiting := 0
		for i, d := range ds {
			if i != first {
				if d.State != protocol.StateWaitingForWindow || !strings.Contains(d.Reason, "opens 2026-01-03T03:00:00Z") {
					t.Errorf("agent %d outside the window: %s %q", i, d.State, d.Reason)
				}
				waiting++
			}
		}
		if waiting != 2 || !w.e.hasEvent(protocol.EvWaitingForWindow, "") {
			t.Errorf("%d waiting for the window; event: %v", waiting, w.e.hasEvent(protocol.EvWaitingForWindow, ""))
		}
		w.e.clock.Add(23*time.Hour + 30*time.Minute) // 03:04 the next day: inside
		w.hold = map[int]bool{}
		if got := w.pass(); len(got) != 1 {
			t.Fatalf("the window opened again: started %v, want one (max concurrent 1)", got)
		}
	})
}

// TestRunLeavesOutQuarantined: a run leaves out the agents whose target
// is quarantined for their platform, unless forced.
func TestRunLeavesOutQuarantined(t *testing.T) {
	e := newEnv(t)
	e.importPack("2.0.0", "", "linux/amd64", "windows/amd64")
	e.newAgent("lin", "1.0.0")
	e.newAgent("win", "1.0.0", func(r *protocol.EnrollRequest) { r.Platform, r.OSFamily = "windows/amd64", "windows" })
	e.must("POST", "/v1/releases/2.0.0/quarantine", protocol.RoleOperator, protocol.QuarantineRequest{Platforms: []string{"windows/amd64"}, Reason: "crashes on start"}, nil)
	var plan protocol.Run
	e.must("POST", "/v1/runs", protocol.RoleOperator, protocol.RunRequest{Target: "2.0.0", Selection: protocol.Selection{All: true}, DryRun: true}, &plan)
	if plan.Total != 1 || len(plan.Excluded) != 1 || !strings.Contains(plan.Excluded[0].Reason, "quarantined for windows/amd64 (crashes on start)") {
		t.Fatalf("plan: total %d, excluded %+v", plan.Total, plan.Excluded)
	}
	e.must("POST", "/v1/runs", protocol.RoleOperator, protocol.RunRequest{Target: "2.0.0", Selection: protocol.Selection{All: true}, DryRun: true, Force: true}, &plan)
	if plan.Total != 2 {
		t.Fatalf("forced plan: total %d, excluded %+v", plan.Total, plan.Excluded)
	}
}

// TestDefaultWindowByLabel: a window.KEY=VALUE setting keeps the agents
// with that label to their window in every run; the others start.
func TestDefaultWindowByLabel(t *testing.T) {
	w := newRolloutWorld(t, 4, func(i int, r *protocol.EnrollRequest) {
		if i%2 == 0 {
			r.Labels = map[string]string{"env": "prod"}
		}
	}, protocol.RunRequest{MaxConcurrent: 10, DryRun: true})
	e := w.e
	if code, pe := e.do("PUT", "/v1/settings/window.env=prod", e.tokens[protocol.RoleAdmin], protocol.SettingRequest{Value: "Mon-Fry 01:00-05:00"}, nil); code != 400 || !strings.Contains(pe.Error, "Fry") {
		t.Fatalf("a bad window: %d %q", code, pe.Error)
	}
	// The env's clock is 03:04 UTC: the prod window opens at 22:00.
	e.must("PUT", "/v1/settings/window.env=prod", protocol.RoleAdmin, protocol.SettingRequest{Value: "daily 22:00-23:00 UTC"}, nil)
	w.run = e.createRun(protocol.RunRequest{Target: "2.0.0", Selection: protocol.Selection{All: true}, MaxConcurrent: 10})
	got := w.pass()
	for _, i := range got {
		if i%2 == 0 {
			t.Errorf("prod agent %d started outside its window", i)
		}
	}
	if len(got) != 2 {
		t.Fatalf("started %v, want the two agents without the label", got)
	}
	for i, d := range w.deps() {
		if i%2 == 0 && (d.State != protocol.StateWaitingForWindow || !strings.Contains(d.Reason, "env=prod") || !strings.Contains(d.Reason, "opens 2026-01-02T22:00:00Z")) {
			t.Errorf("prod agent %d: %s %q", i, d.State, d.Reason)
		}
	}
	e.clock.Add(19 * time.Hour) // 22:04
	if got := w.pass(); len(got) != 2 {
		t.Fatalf("inside the window: started %v, want the two prod agents", got)
	}
	// Reset: no window.
	e.must("DELETE", "/v1/settings/window.env=prod", protocol.RoleAdmin, nil, nil)
}

// TestRolloutScaleDown: a host that scales away (revoked) while its wave
// waits for it is not waited for: its deployment is cancelled and the
// wave is done without it, even when the wave wants all of its agents.
func TestRolloutScaleDown(t *testing.T) {
	w := newRolloutWorld(t, 8, nil, protocol.RunRequest{MaxConcurrent: 10, RunControls: protocol.RunControls{Waves: []string{"50%", "100%"}, WaveDonePercent: 100}})
	agents, _ := w.order()
	gone := agents[1] // in wave 0
	w.dead[gone] = true
	w.e.clock.Add(10 * time.Minute) // offline before its turn
	if got := w.pass(); len(got) != 3 {
		t.Fatalf("wave 0 started %v, want its 3 live agents", got)
	}
	w.pass()
	if r := w.get(); r.WaveList[0].State != "open" {
		t.Fatalf("wave 0 with a host missing and done share 100%%: %s", r.WaveList[0].State)
	}
	w.e.must("POST", "/v1/agents/"+w.agents[gone].id+"/revoke", protocol.RoleAdmin, nil, nil)
	if got := w.pass(); len(got) != 4 {
		t.Fatalf("after the host scaled away wave 1 started %v, want 4", got)
	}
	w.pass()
	if r := w.get(); r.Counts[protocol.StateSucceeded] != 7 || r.Counts[protocol.StateCancelled] != 1 {
		t.Fatalf("run %s %v", r.Status, r.Counts)
	}
}
