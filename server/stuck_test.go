package server

import (
	"strings"
	"testing"
	"time"

	"github.com/moltfleet/molt/protocol"
)

// stuckEnv is a run of the given agents on 1.0.0 to 2.0.0 with
// max-concurrent limit and deployments.stuck-after 10m.
func stuckEnv(t *testing.T, limit int, names ...string) (*env, []*simAgent, protocol.Run) {
	t.Helper()
	e := newEnv(t)
	e.importPack("1.0.0", "", "linux/amd64")
	e.importPack("2.0.0", "", "linux/amd64")
	e.must("PUT", "/v1/settings/deployments.stuck-after", protocol.RoleAdmin, protocol.SettingRequest{Value: "10m"}, nil)
	var agents []*simAgent
	for _, n := range names {
		agents = append(agents, e.newAgent(n, "1.0.0"))
	}
	run := e.createRun(protocol.RunRequest{Selection: protocol.Selection{All: true}, Target: "2.0.0", MaxConcurrent: limit})
	return e, agents, run
}

// depOf is agent a's deployment in run.
func depOf(e *env, run string, a *simAgent) protocol.Deployment {
	e.t.Helper()
	var ds protocol.Deployments
	e.must("GET", "/v1/deployments?run="+run+"&agent="+a.id, protocol.RoleViewer, nil, &ds)
	if len(ds.Deployments) == 0 {
		e.t.Fatalf("agent %s has no deployment in %s", a.id, run)
	}
	return ds.Deployments[0] // the newest
}

// toState hands a's order over and plays it up to state.
func toState(t *testing.T, e *env, a *simAgent, state string) protocol.Order {
	t.Helper()
	e.schedule()
	o := upgradeOrder(a.checkin())
	if o == nil {
		t.Fatal("no upgrade order")
	}
	at := e.clock.Now()
	for i, ph := range []string{protocol.StateDownloading, protocol.StateStaged, protocol.StateRestarting} {
		if protocol.PhaseRank(ph) > protocol.PhaseRank(state) {
			break
		}
		a.report(protocol.ReportRequest{OrderID: o.ID, Phase: ph, Steps: []protocol.Step{{At: at.Add(time.Duration(i) * time.Millisecond), Name: ph}}})
	}
	if state == protocol.StateWatching {
		a.st.Version = o.Version // the new version runs, in its trial
		a.checkin()
	}
	return *o
}

func stuckEvent(e *env, dep string) *protocol.Event {
	for _, ev := range e.events() {
		if ev.ID == protocol.EvDeploymentStuck && ev.DeploymentID == dep {
			return &ev
		}
	}
	return nil
}

func TestStuckAfterNoProgress(t *testing.T) {
	for _, tc := range []struct {
		state      string
		notYet, by time.Duration
	}{
		{protocol.StateRequested, 9 * time.Minute, 11 * time.Minute},
		{protocol.StateDownloading, 9 * time.Minute, 11 * time.Minute},
		{protocol.StateStaged, 9 * time.Minute, 11 * time.Minute},
		{protocol.StateRestarting, 9 * time.Minute, 11 * time.Minute},
		// The trial's bound (watch, restarts, stop) and a margin, past
		// stuck-after.
		{protocol.StateWatching, 23 * time.Minute, 24 * time.Minute},
	} {
		t.Run(tc.state, func(t *testing.T) {
			e, ag, run := stuckEnv(t, 1, "h1")
			toState(t, e, ag[0], tc.state)
			d := depOf(e, run.ID, ag[0])
			if d.State != tc.state {
				t.Fatalf("state %s, want %s", d.State, tc.state)
			}
			e.clock.Add(tc.notYet)
			e.schedule()
			if d := depOf(e, run.ID, ag[0]); d.State != tc.state {
				t.Fatalf("after %s: %s, want still %s", tc.notYet, d.State, tc.state)
			}
			e.clock.Add(tc.by - tc.notYet)
			e.schedule()
			d = depOf(e, run.ID, ag[0])
			if d.State != protocol.StateStuck || !strings.Contains(d.Reason, "in "+tc.state) {
				t.Fatalf("after %s: %s %q, want stuck in %s", tc.by, d.State, d.Reason, tc.state)
			}
			ev := stuckEvent(e, d.ID)
			if ev == nil {
				t.Fatal("no event 722")
			}
			if ev.Fields["state"] != tc.state || ev.Fields["after"] != tc.by.String() || ev.Fields["last_heard"] == "" {
				t.Errorf("event 722 fields %v", ev.Fields)
			}
			if r := e.run(run.ID); r.Status != protocol.RunRunning || r.Counts[protocol.StateStuck] != 1 {
				t.Errorf("run %s counts %v: a stuck deployment keeps its run running", r.Status, r.Counts)
			}
			// It stays stuck until deployments.timeout (2h from its last
			// progress) fails it.
			e.clock.Add(time.Hour)
			e.schedule()
			if d := depOf(e, run.ID, ag[0]); d.State != protocol.StateStuck {
				t.Fatalf("an hour later: %s, want stuck", d.State)
			}
			e.clock.Add(time.Hour)
			e.schedule()
			if d := depOf(e, run.ID, ag[0]); d.State != protocol.StateFailed || !strings.Contains(d.Reason, "deployments.timeout") {
				t.Fatalf("past deployments.timeout: %s %q, want failed", d.State, d.Reason)
			}
			if r := e.run(run.ID); r.Status != protocol.RunEndedNotOK {
				t.Errorf("run %s, want ended_not_ok", r.Status)
			}
		})
	}
}

func TestStuckLastHeardNamesTheLastStep(t *testing.T) {
	e, ag, run := stuckEnv(t, 1, "h1")
	toState(t, e, ag[0], protocol.StateStaged)
	e.clock.Add(11 * time.Minute)
	e.schedule()
	ev := stuckEvent(e, depOf(e, run.ID, ag[0]).ID)
	// The agent's step of the stage, at its own time, is the last heard.
	if ev == nil || ev.Fields["last_heard"] != "staged at "+e.clock.Now().Add(-11*time.Minute).UTC().Format(time.RFC3339) {
		t.Fatalf("event 722 %+v", ev)
	}
}

func TestStuckTimeoutOff(t *testing.T) {
	e, ag, run := stuckEnv(t, 1, "h1")
	e.must("PUT", "/v1/settings/deployments.timeout", protocol.RoleAdmin, protocol.SettingRequest{Value: "off"}, nil)
	toState(t, e, ag[0], protocol.StateDownloading)
	e.clock.Add(72 * time.Hour)
	e.schedule()
	if d := depOf(e, run.ID, ag[0]); d.State != protocol.StateStuck {
		t.Fatalf("3 days later with deployments.timeout off: %s, want stuck", d.State)
	}
	if code, _ := e.do("PUT", "/v1/settings/deployments.timeout", e.tokens[protocol.RoleAdmin], protocol.SettingRequest{Value: "0"}, nil); code != 400 {
		t.Errorf("deployments.timeout 0: %d, want 400", code)
	}
}

func TestStuckMovesOnWithProgress(t *testing.T) {
	for _, tc := range []struct {
		name string
		from string
		hear func(a *simAgent, o protocol.Order)
		want string
	}{
		{"report in the same phase", protocol.StateDownloading, func(a *simAgent, o protocol.Order) {
			a.report(protocol.ReportRequest{OrderID: o.ID, Phase: protocol.StateDownloading, Done: 10, Total: 100})
		}, protocol.StateDownloading},
		{"report of a later phase", protocol.StateDownloading, func(a *simAgent, o protocol.Order) {
			a.report(protocol.ReportRequest{OrderID: o.ID, Phase: protocol.StateRestarting})
		}, protocol.StateRestarting},
		{"check-in on the new version", protocol.StateRestarting, func(a *simAgent, o protocol.Order) {
			a.st.Version = o.Version
			a.checkin()
		}, protocol.StateWatching},
		{"check-in with the trial committed", protocol.StateWatching, func(a *simAgent, o protocol.Order) {
			a.st.LastResult = &protocol.TrialResult{Outcome: protocol.TrialCommitted, Version: o.Version, Previous: "1.0.0", OrderID: o.ID, At: a.e.clock.Now()}
			a.checkin()
		}, protocol.StateSucceeded},
		{"check-in in the phase it stuck in", protocol.StateDownloading, func(a *simAgent, o protocol.Order) {
			a.st.Upgrade = &protocol.UpgradeProgress{OrderID: o.ID, Version: o.Version, Phase: protocol.StateDownloading}
			a.checkin()
		}, protocol.StateStuck},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, ag, run := stuckEnv(t, 1, "h1")
			o := toState(t, e, ag[0], tc.from)
			e.clock.Add(time.Hour)
			e.schedule()
			if d := depOf(e, run.ID, ag[0]); d.State != protocol.StateStuck {
				t.Fatalf("%s, want stuck", d.State)
			}
			if upgradeOrder(ag[0].checkin()) == nil {
				t.Fatal("a stuck deployment's agent lost its order")
			}
			tc.hear(ag[0], o)
			e.schedule()
			if d := depOf(e, run.ID, ag[0]); d.State != tc.want {
				t.Fatalf("%s, want %s", d.State, tc.want)
			}
		})
	}
}

func TestStuckFreesItsSlot(t *testing.T) {
	e, ag, run := stuckEnv(t, 1, "h1", "h2")
	e.schedule()
	first, second := ag[0], ag[1]
	if upgradeOrder(first.checkin()) == nil {
		first, second = second, first
	}
	if upgradeOrder(second.checkin()) != nil {
		t.Fatal("max-concurrent 1 started two")
	}
	e.clock.Add(11 * time.Minute)
	second.checkin() // online
	e.schedule()
	if d := depOf(e, run.ID, first); d.State != protocol.StateStuck {
		t.Fatalf("first %s, want stuck", d.State)
	}
	o := upgradeOrder(second.checkin())
	if o == nil {
		t.Fatal("the stuck deployment still holds the run's only slot")
	}
	second.complete(*o)
	e.schedule()
	if r := e.run(run.ID); r.Status != protocol.RunRunning || r.Counts[protocol.StateSucceeded] != 1 || r.Counts[protocol.StateStuck] != 1 {
		t.Fatalf("run %s %v: it waits for the stuck one", r.Status, r.Counts)
	}
}

func TestStuckCountsAsFailure(t *testing.T) {
	e := newEnv(t)
	e.importPack("1.0.0", "", "linux/amd64")
	e.importPack("2.0.0", "", "linux/amd64")
	e.must("PUT", "/v1/settings/deployments.stuck-after", protocol.RoleAdmin, protocol.SettingRequest{Value: "10m"}, nil)
	a, b := e.newAgent("h1", "1.0.0"), e.newAgent("h2", "1.0.0")
	run := e.createRun(protocol.RunRequest{Selection: protocol.Selection{All: true}, Target: "2.0.0", MaxConcurrent: 1, FailureThreshold: 1})
	e.schedule()
	if upgradeOrder(a.checkin()) == nil && upgradeOrder(b.checkin()) == nil {
		t.Fatal("nothing started")
	}
	e.clock.Add(11 * time.Minute)
	e.schedule()
	if r := e.run(run.ID); r.Status != protocol.RunPaused {
		t.Fatalf("run %s %v, want paused by the failure threshold", r.Status, r.Counts)
	}
}

func TestRetry(t *testing.T) {
	e, ag, run := stuckEnv(t, 1, "h1")
	a := ag[0]
	toState(t, e, a, protocol.StateStaged)
	e.clock.Add(11 * time.Minute)
	e.schedule()
	old := depOf(e, run.ID, a)
	var nd protocol.Deployment
	e.must("POST", "/v1/deployments/"+old.ID+"/retry", protocol.RoleOperator, nil, &nd)
	if nd.ID == old.ID || nd.State != protocol.StatePending || nd.RunID != run.ID || nd.Target != "2.0.0" || nd.AgentID != a.id {
		t.Fatalf("retry: %+v", nd)
	}
	if d := e.deployment(old.ID).Deployment; d.State != protocol.StateCancelled || d.Reason != "retried as "+nd.ID {
		t.Fatalf("old: %s %q", d.State, d.Reason)
	}
	if !e.hasEvent(protocol.EvDeploymentRetried, a.id) {
		t.Error("no event 723")
	}
	a.checkin()
	e.schedule()
	o := upgradeOrder(a.checkin())
	if o == nil || o.ID != nd.ID {
		t.Fatalf("order %+v, want %s", o, nd.ID)
	}
	a.complete(*o)
	e.schedule()
	if d := e.deployment(nd.ID).Deployment; d.State != protocol.StateSucceeded {
		t.Fatalf("retry %s", d.State)
	}
	if r := e.run(run.ID); r.Status != protocol.RunEndedOK {
		t.Fatalf("run %s %v: every agent upgraded, the retried one does not count", r.Status, r.Counts)
	}
}

func TestRetryFailed(t *testing.T) {
	e, ag, run := stuckEnv(t, 1, "h1")
	a := ag[0]
	o := toState(t, e, a, protocol.StateDownloading)
	a.report(protocol.ReportRequest{OrderID: o.ID, End: &protocol.End{Outcome: protocol.EndFailed, Reason: "download: disk full"}})
	e.schedule()
	if r := e.run(run.ID); r.Status != protocol.RunEndedNotOK {
		t.Fatalf("run %s", r.Status)
	}
	// Its run ended: nothing to retry into.
	code, pe := e.do("POST", "/v1/deployments/"+o.ID+"/retry", e.tokens[protocol.RoleOperator], nil, nil)
	if code != 409 || !strings.Contains(pe.Error, "has ended") {
		t.Fatalf("retry in an ended run: %d %s", code, pe.Error)
	}
}

func TestRetryFailedInRunningRun(t *testing.T) {
	e, ag, run := stuckEnv(t, 1, "h1", "h2")
	e.schedule()
	a := ag[0]
	o := upgradeOrder(a.checkin())
	if o == nil {
		a = ag[1]
		o = upgradeOrder(a.checkin())
	}
	a.report(protocol.ReportRequest{OrderID: o.ID, End: &protocol.End{Outcome: protocol.EndFailed, Reason: "download: disk full"}})
	var nd protocol.Deployment
	e.must("POST", "/v1/deployments/"+o.ID+"/retry", protocol.RoleOperator, nil, &nd)
	if d := e.deployment(o.ID).Deployment; d.State != protocol.StateFailed {
		t.Fatalf("the failed one is %s, want still failed", d.State)
	}
	if nd.State != protocol.StatePending || nd.Wave != 0 {
		t.Fatalf("retry %+v", nd)
	}
	if d := depOf(e, run.ID, a); d.ID != nd.ID {
		t.Fatalf("newest of the agent %s, want %s", d.ID, nd.ID)
	}
}

func TestRetryRefused(t *testing.T) {
	e, ag, run := stuckEnv(t, 1, "h1")
	a := ag[0]
	o := toState(t, e, a, protocol.StateDownloading)
	for _, tc := range []struct{ name, id, want string }{
		{"in progress", o.ID, "is downloading: only a stuck or failed deployment can be retried"},
		{"unknown", "d-999", "no deployment"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, pe := e.do("POST", "/v1/deployments/"+tc.id+"/retry", e.tokens[protocol.RoleOperator], nil, nil)
			if (code != 409 && code != 404) || !strings.Contains(pe.Error, tc.want) {
				t.Fatalf("%d %s", code, pe.Error)
			}
		})
	}
	a.complete(o)
	e.schedule()
	code, pe := e.do("POST", "/v1/deployments/"+o.ID+"/retry", e.tokens[protocol.RoleOperator], nil, nil)
	if code != 409 || !strings.Contains(pe.Error, "is succeeded: only a stuck or failed deployment can be retried") {
		t.Fatalf("retry of a succeeded one: %d %s", code, pe.Error)
	}
	if code, _ := e.do("POST", "/v1/deployments/"+o.ID+"/retry", e.tokens[protocol.RoleViewer], nil, nil); code != 403 {
		t.Errorf("viewer: %d, want 403", code)
	}
	_ = run
}

func TestCancelStuck(t *testing.T) {
	e, ag, run := stuckEnv(t, 1, "h1")
	a := ag[0]
	o := toState(t, e, a, protocol.StateRequested)
	code, pe := e.do("POST", "/v1/deployments/"+o.ID+"/cancel", e.tokens[protocol.RoleOperator], nil, nil)
	if code != 409 || !strings.Contains(pe.Error, "only a stuck deployment can be cancelled") {
		t.Fatalf("cancel in progress: %d %s", code, pe.Error)
	}
	e.clock.Add(11 * time.Minute)
	e.schedule()
	var d protocol.Deployment
	e.must("POST", "/v1/deployments/"+o.ID+"/cancel", protocol.RoleOperator, nil, &d)
	if d.State != protocol.StateCancelled {
		t.Fatalf("cancel: %s", d.State)
	}
	e.schedule()
	if r := e.run(run.ID); r.Status != protocol.RunEndedNotOK {
		t.Fatalf("run %s, want ended_not_ok", r.Status)
	}
	if upgradeOrder(a.checkin()) != nil {
		t.Fatal("a cancelled deployment is still ordered")
	}
	if resp := a.report(protocol.ReportRequest{OrderID: o.ID, Phase: protocol.StateDownloading}); !resp.Cancelled {
		t.Fatalf("a report on the cancelled one: %+v", resp)
	}
}

func TestStuckSurvivesRestart(t *testing.T) {
	e, ag, run := stuckEnv(t, 1, "h1")
	a := ag[0]
	o := toState(t, e, a, protocol.StateStaged)
	e.clock.Add(11 * time.Minute)
	e.schedule()
	e.restart()
	e.schedule()
	d := depOf(e, run.ID, a)
	if d.State != protocol.StateStuck {
		t.Fatalf("after a restart: %s, want stuck", d.State)
	}
	if r := e.run(run.ID); r.Counts[protocol.StateStuck] != 1 {
		t.Fatalf("counts after a restart %v", r.Counts)
	}
	// Its last progress survives too: deployments.timeout counts from it.
	e.clock.Add(2*time.Hour - 11*time.Minute + time.Second)
	e.schedule()
	if d := depOf(e, run.ID, a); d.State != protocol.StateFailed {
		t.Fatalf("2h after its last progress: %s, want failed", d.State)
	}
	_ = o
}
