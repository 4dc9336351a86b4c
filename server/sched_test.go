package server

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/moltfleet/molt/protocol"
)

// inProgress counts a run's deployments that count toward max-concurrent.
func inProgress(r protocol.Run) int {
	n := 0
	for st, c := range r.Counts {
		if protocol.InProgress(st) {
			n += c
		}
	}
	return n
}

func TestRunFlowAndMaxConcurrent(t *testing.T) {
	e := newEnv(t)
	e.importPack("1.0.0", "", "linux/amd64")
	e.importPack("2.0.0", "", "linux/amd64")
	var agents []*simAgent
	for i := 0; i < 7; i++ {
		agents = append(agents, e.newAgent(fmt.Sprintf("h%d", i), "1.0.0"))
	}
	run := e.createRun(protocol.RunRequest{Text: "to 2", Selection: protocol.Selection{All: true}, Target: "latest", MaxConcurrent: 3})
	if run.Total != 7 || len(run.Plan) != 1 || run.Plan[0].Target != "2.0.0" || run.Plan[0].Agents != 7 {
		t.Fatalf("plan: %+v", run)
	}
	maxSeen := 0
	for round := 0; round < 10; round++ {
		e.schedule()
		r := e.run(run.ID)
		if n := inProgress(r); n > maxSeen {
			maxSeen = n
		}
		if r.Status == protocol.RunEndedOK {
			break
		}
		for _, a := range agents {
			if o := upgradeOrder(a.checkin()); o != nil {
				if o.Version != "2.0.0" || !strings.HasSuffix(o.PackURL, "/v1/packs/2.0.0") {
					t.Fatalf("order %+v", o)
				}
				a.complete(*o)
			}
		}
	}
	r := e.run(run.ID)
	if r.Status != protocol.RunEndedOK || r.Counts[protocol.StateSucceeded] != 7 {
		t.Fatalf("run did not end OK: %+v", r)
	}
	if maxSeen != 3 {
		t.Fatalf("at most %d in progress, want exactly the limit 3", maxSeen)
	}
	// The DEPLOY report holds agent and server steps.
	var hist protocol.Deployments
	e.must("GET", "/v1/deployments?run="+run.ID, protocol.RoleViewer, nil, &hist)
	rep := e.deployment(hist.Deployments[0].ID)
	names := map[string]bool{}
	for _, s := range rep.Steps {
		names[s.Name] = true
	}
	for _, want := range []string{"download", "stage", "exit", "server: requested", "server: succeeded"} {
		if !names[want] {
			t.Errorf("DEPLOY report lacks step %q: %+v", want, rep.Steps)
		}
	}
	// A cleanup follows every success, and ends when reported.
	a := agents[0]
	orders := a.checkin()
	var cl *protocol.Order
	for i := range orders {
		if orders[i].Kind == protocol.OrderCleanup {
			cl = &orders[i]
		}
	}
	if cl == nil || strings.Join(cl.Keep, ",") != "2.0.0,1.0.0" {
		t.Fatalf("no cleanup order keeping current and previous: %+v", orders)
	}
	a.report(protocol.ReportRequest{OrderID: cl.ID, End: &protocol.End{Outcome: protocol.EndSucceeded}})
	if len(a.checkin()) != 0 {
		t.Fatal("cleanup still ordered after it was reported")
	}
	for _, id := range []int{protocol.EvRunStarted, protocol.EvUpgradeRequested, protocol.EvUpgraded, protocol.EvCleanupRequested, protocol.EvCleanupDone, protocol.EvRunEnded} {
		if !e.hasEvent(id, "") {
			t.Errorf("no event %d %s", id, protocol.EventName(id))
		}
	}
}

// TestSchedulerRules drives one rule per case through the real store with
// the fake clock.
func TestSchedulerRules(t *testing.T) {
	type world struct {
		e      *env
		agents map[string]*simAgent
		run    protocol.Run
	}
	state := func(w *world, name string) protocol.Deployment {
		w.e.t.Helper()
		var ds protocol.Deployments
		w.e.must("GET", "/v1/deployments?agent="+w.agents[name].id, protocol.RoleViewer, nil, &ds)
		if len(ds.Deployments) == 0 {
			w.e.t.Fatalf("%s has no deployment", name)
		}
		return ds.Deployments[0]
	}
	cases := []struct {
		name   string
		agents map[string]func(*protocol.EnrollRequest)
		req    protocol.RunRequest
		check  func(t *testing.T, w *world)
	}{
		{
			name:   "offline agent waits and is upgraded when it comes",
			agents: map[string]func(*protocol.EnrollRequest){"a": nil},
			req:    protocol.RunRequest{Selection: protocol.Selection{All: true}, Target: "2.0.0"},
			check: func(t *testing.T, w *world) {
				w.e.clock.Add(10 * time.Minute) // not seen for 10 min: offline
				w.e.schedule()
				if d := state(w, "a"); d.State != protocol.StateWaitingForHost || !strings.HasPrefix(d.Reason, "offline") {
					t.Fatalf("offline agent: %s %q", d.State, d.Reason)
				}
				if !w.e.hasEvent(protocol.EvDeploymentWaiting, w.agents["a"].id) {
					t.Error("no waiting_for_host event")
				}
				w.agents["a"].checkin()
				w.e.schedule()
				if o := upgradeOrder(w.agents["a"].checkin()); o == nil {
					t.Fatal("agent that came back got no order")
				}
			},
		},
		{
			name:   "a never-connected agent waits and is upgraded on its first check-in",
			agents: map[string]func(*protocol.EnrollRequest){"present": nil},
			req:    protocol.RunRequest{Selection: protocol.Selection{All: true}, Target: "2.0.0"},
			check: func(t *testing.T, w *world) {
				late := w.e.enrollOnly("late", "1.0.0")
				run := w.e.createRun(protocol.RunRequest{Selection: protocol.Selection{AgentIDs: []string{late.id}}, Target: "2.0.0"})
				w.e.schedule()
				var ds protocol.Deployments
				w.e.must("GET", "/v1/deployments?run="+run.ID, protocol.RoleViewer, nil, &ds)
				if d := ds.Deployments[0]; d.State != protocol.StateWaitingForHost || d.Reason != "never connected" {
					t.Fatalf("never-connected agent: %s %q", d.State, d.Reason)
				}
				late.checkin()
				w.e.schedule()
				if o := upgradeOrder(late.checkin()); o == nil {
					t.Fatal("no order on the first check-ins")
				}
			},
		},
		{
			name:   "busy and held agents wait until idle",
			agents: map[string]func(*protocol.EnrollRequest){"busy": nil, "held": nil},
			req:    protocol.RunRequest{Selection: protocol.Selection{All: true}, Target: "2.0.0"},
			check: func(t *testing.T, w *world) {
				w.agents["busy"].st.Busy = true
				w.agents["held"].st.Holds = []string{"maintenance window"}
				w.agents["busy"].checkin()
				w.agents["held"].checkin()
				w.e.schedule()
				if d := state(w, "busy"); d.State != protocol.StateWaitingForHost || d.Reason != "busy" {
					t.Fatalf("busy: %s %q", d.State, d.Reason)
				}
				if d := state(w, "held"); d.State != protocol.StateWaitingForHost || d.Reason != "held: maintenance window" {
					t.Fatalf("held: %s %q", d.State, d.Reason)
				}
				w.agents["busy"].st.Busy = false
				w.agents["busy"].checkin()
				w.e.schedule()
				if d := state(w, "busy"); d.State != protocol.StateRequested {
					t.Fatalf("idle agent not requested: %s", d.State)
				}
				if d := state(w, "held"); d.State != protocol.StateWaitingForHost {
					t.Fatalf("held agent started: %s", d.State)
				}
			},
		},
		{
			name: "one agent of a cluster at a time",
			agents: map[string]func(*protocol.EnrollRequest){
				"c1": func(r *protocol.EnrollRequest) { r.Cluster = "db" },
				"c2": func(r *protocol.EnrollRequest) { r.Cluster = "db" },
				"c3": func(r *protocol.EnrollRequest) { r.Cluster = "db" },
				"x":  nil,
			},
			req: protocol.RunRequest{Selection: protocol.Selection{All: true}, Target: "2.0.0", MaxConcurrent: 10},
			check: func(t *testing.T, w *world) {
				for round := 0; round < 3; round++ {
					w.e.schedule()
					started := 0
					for _, n := range []string{"c1", "c2", "c3"} {
						if protocol.InProgress(state(w, n).State) {
							started++
						}
					}
					if started != 1 {
						t.Fatalf("round %d: %d agents of cluster db in progress, want 1", round, started)
					}
					for _, n := range []string{"c1", "c2", "c3", "x"} {
						if o := upgradeOrder(w.agents[n].checkin()); o != nil {
							w.agents[n].complete(*o)
						}
					}
				}
				w.e.schedule()
				if r := w.e.run(w.run.ID); r.Status != protocol.RunEndedOK {
					t.Fatalf("run %s", r.Status)
				}
			},
		},
		{
			name: "scope supervised leaves unsupervised agents out, visibly",
			agents: map[string]func(*protocol.EnrollRequest){
				"sup":   nil,
				"unsup": func(r *protocol.EnrollRequest) { r.Supervised = false },
			},
			req: protocol.RunRequest{Selection: protocol.Selection{All: true}, Target: "2.0.0"},
			check: func(t *testing.T, w *world) {
				if w.run.Total != 1 || len(w.run.Excluded) != 1 || w.run.Excluded[0].AgentName != "unsup" || !strings.Contains(w.run.Excluded[0].Reason, "not supervised") {
					t.Fatalf("exclusions: %+v", w.run.Excluded)
				}
				if got := w.e.run(w.run.ID).Excluded; len(got) != 1 {
					t.Fatalf("exclusion not stored: %+v", got)
				}
				// Agents below the minimum for automatic upgrades are left out too.
				w.e.must("PUT", "/v1/settings/agents.min-auto-upgrade-version", protocol.RoleAdmin, protocol.SettingRequest{Value: "1.5.0"}, nil)
				var dry protocol.Run
				w.e.must("POST", "/v1/runs", protocol.RoleOperator, protocol.RunRequest{Selection: protocol.Selection{All: true}, Target: "2.0.0", Scope: protocol.ScopeAll, DryRun: true}, &dry)
				if len(dry.Excluded) != 2 || !strings.Contains(dry.Excluded[0].Reason+dry.Excluded[1].Reason, "manual upgrade required") {
					t.Fatalf("too-old agents not excluded: %+v", dry.Excluded)
				}
			},
		},
		{
			name:   "pauses when failures reach the threshold",
			agents: map[string]func(*protocol.EnrollRequest){"f1": nil, "f2": nil, "f3": nil},
			req:    protocol.RunRequest{Selection: protocol.Selection{All: true}, Target: "2.0.0", MaxConcurrent: 1, FailureThreshold: 1},
			check: func(t *testing.T, w *world) {
				w.e.schedule()
				for _, n := range []string{"f1", "f2", "f3"} {
					if o := upgradeOrder(w.agents[n].checkin()); o != nil {
						w.agents[n].report(protocol.ReportRequest{OrderID: o.ID, End: &protocol.End{Outcome: protocol.EndFailed, Reason: "disk full"}})
					}
				}
				w.e.schedule()
				r := w.e.run(w.run.ID)
				if r.Status != protocol.RunPaused || r.Counts[protocol.StateFailed] != 1 || inProgress(r) != 0 {
					t.Fatalf("run after one failure: %+v", r)
				}
				if !w.e.hasEvent(protocol.EvRunPaused, "") || !w.e.hasEvent(protocol.EvUpgradeFailed, "") {
					t.Error("no run_paused or upgrade_failed event")
				}
				w.e.must("POST", "/v1/runs/"+w.run.ID+"/resume", protocol.RoleOperator, nil, nil)
				w.e.schedule()
				if r := w.e.run(w.run.ID); r.Status != protocol.RunRunning || inProgress(r) != 1 {
					t.Fatalf("resumed run: %+v", r)
				}
			},
		},
		{
			name:   "a rolled-back deployment is reported with the agent's reason",
			agents: map[string]func(*protocol.EnrollRequest){"rb": nil},
			req:    protocol.RunRequest{Selection: protocol.Selection{All: true}, Target: "2.0.0"},
			check: func(t *testing.T, w *world) {
				w.e.schedule()
				a := w.agents["rb"]
				o := upgradeOrder(a.checkin())
				a.report(protocol.ReportRequest{OrderID: o.ID, Phase: protocol.StateRestarting})
				a.st.LastResult = &protocol.TrialResult{Outcome: protocol.TrialRolledBack, Version: "2.0.0", Previous: "1.0.0", OrderID: o.ID, Reason: "not ready within 60s", At: w.e.clock.Now()}
				a.checkin()
				d := state(w, "rb")
				if d.State != protocol.StateRolledBack || d.Reason != "not ready within 60s" {
					t.Fatalf("%s %q", d.State, d.Reason)
				}
				w.e.schedule()
				if r := w.e.run(w.run.ID); r.Status != protocol.RunEndedNotOK {
					t.Fatalf("run %s", r.Status)
				}
				if !w.e.hasEvent(protocol.EvRolledBack, a.id) {
					t.Error("no rolled_back event")
				}
			},
		},
		{
			name:   "watching ends succeeded on a committed trial only",
			agents: map[string]func(*protocol.EnrollRequest){"w": nil},
			req:    protocol.RunRequest{Selection: protocol.Selection{All: true}, Target: "2.0.0"},
			check: func(t *testing.T, w *world) {
				w.e.schedule()
				a := w.agents["w"]
				o := upgradeOrder(a.checkin())
				a.report(protocol.ReportRequest{OrderID: o.ID, Phase: protocol.StateRestarting})
				a.st.Version = "2.0.0" // running in trial, not committed yet
				a.checkin()
				if d := state(w, "w"); d.State != protocol.StateWatching {
					t.Fatalf("in trial: %s", d.State)
				}
				a.st.LastResult = &protocol.TrialResult{Outcome: protocol.TrialCommitted, Version: "2.0.0", OrderID: o.ID, At: w.e.clock.Now(),
					Supervisor: &protocol.SupervisorResult{From: "1.0.0", To: "2.0.0", Upgraded: true}}
				a.checkin()
				if d := state(w, "w"); d.State != protocol.StateSucceeded {
					t.Fatalf("committed: %s", d.State)
				}
				if !w.e.hasEvent(protocol.EvSupervisorUpgraded, a.id) {
					t.Error("no supervisor_upgraded event")
				}
			},
		},
		{
			name:   "repair when the agent comes back with another version, not after a skip",
			agents: map[string]func(*protocol.EnrollRequest){"r": nil},
			req:    protocol.RunRequest{Selection: protocol.Selection{All: true}, Target: "2.0.0"},
			check: func(t *testing.T, w *world) {
				w.e.schedule()
				a := w.agents["r"]
				a.complete(*upgradeOrder(a.checkin()))
				a.st.Version, a.st.LastResult = "1.0.0", nil // reinstalled from an old image
				a.checkin()
				d := state(w, "r")
				if d.Kind != protocol.KindRepair || d.Target != "2.0.0" {
					t.Fatalf("no repair: %+v", d)
				}
				if !w.e.hasEvent(protocol.EvRepairScheduled, a.id) {
					t.Error("no repair_scheduled event")
				}
				// Skipping the repair stops further repairs.
				a.st.Busy = true
				a.checkin()
				w.e.schedule()
				w.e.must("POST", "/v1/deployments/"+d.ID+"/skip", protocol.RoleOperator, nil, nil)
				a.st.Busy = false
				a.checkin()
				if d2 := state(w, "r"); d2.ID != d.ID || d2.State != protocol.StateSkipped {
					t.Fatalf("after skip: %+v", d2)
				}
			},
		},
		{
			name:   "skip only before the agent started",
			agents: map[string]func(*protocol.EnrollRequest){"s": nil},
			req:    protocol.RunRequest{Selection: protocol.Selection{All: true}, Target: "2.0.0"},
			check: func(t *testing.T, w *world) {
				w.e.schedule()
				a := w.agents["s"]
				o := upgradeOrder(a.checkin())
				a.report(protocol.ReportRequest{OrderID: o.ID, Phase: protocol.StateDownloading})
				code, pe := w.e.do("POST", "/v1/deployments/"+o.ID+"/skip", w.e.tokens[protocol.RoleOperator], nil, nil)
				if code != 409 || pe.Code != protocol.CodeConflict {
					t.Fatalf("skip of a started deployment: %d %+v", code, pe)
				}
			},
		},
		{
			name: "a revert respects the agent's floor",
			agents: map[string]func(*protocol.EnrollRequest){
				"low":  func(r *protocol.EnrollRequest) { r.Version = "2.0.0" },
				"high": func(r *protocol.EnrollRequest) { r.Version = "3.0.0" },
			},
			req: protocol.RunRequest{Selection: protocol.Selection{All: true}, Target: "1.0.0"},
			check: func(t *testing.T, w *world) {
				// 3.0.0's pack has floor 2.0.0: the agent running it may not go to 1.0.0.
				if w.run.Total != 1 || len(w.run.Excluded) != 1 || w.run.Excluded[0].AgentName != "high" || !strings.Contains(w.run.Excluded[0].Reason, "floor 2.0.0") {
					t.Fatalf("run %+v", w.run)
				}
				if w.run.Plan[0].Revert != 1 {
					t.Fatalf("revert not counted: %+v", w.run.Plan)
				}
				w.e.schedule()
				if o := upgradeOrder(w.agents["low"].checkin()); o == nil || !o.Revert {
					t.Fatalf("revert order: %+v", o)
				}
			},
		},
		{
			name:   "revoking an agent cancels its open deployment so the run can end",
			agents: map[string]func(*protocol.EnrollRequest){"gone": nil},
			req:    protocol.RunRequest{Selection: protocol.Selection{All: true}, Target: "2.0.0"},
			check: func(t *testing.T, w *world) {
				w.e.schedule()
				w.e.must("POST", "/v1/agents/"+w.agents["gone"].id+"/revoke", protocol.RoleAdmin, nil, nil)
				w.e.schedule()
				if d := state(w, "gone"); d.State != protocol.StateCancelled || d.Reason != "agent revoked" {
					t.Fatalf("%s %q", d.State, d.Reason)
				}
				if r := w.e.run(w.run.ID); r.Status != protocol.RunEndedNotOK {
					t.Fatalf("run %s", r.Status)
				}
			},
		},
		{
			name:   "cancel ends deployments not started",
			agents: map[string]func(*protocol.EnrollRequest){"k1": nil, "k2": nil},
			req:    protocol.RunRequest{Selection: protocol.Selection{All: true}, Target: "2.0.0", MaxConcurrent: 1},
			check: func(t *testing.T, w *world) {
				w.e.schedule()
				var started *simAgent
				var o *protocol.Order
				for _, n := range []string{"k1", "k2"} {
					if oo := upgradeOrder(w.agents[n].checkin()); oo != nil {
						started, o = w.agents[n], oo
					}
				}
				started.report(protocol.ReportRequest{OrderID: o.ID, Phase: protocol.StateDownloading})
				w.e.must("POST", "/v1/runs/"+w.run.ID+"/cancel", protocol.RoleOperator, nil, nil)
				r := w.e.run(w.run.ID)
				if r.Counts[protocol.StateCancelled] != 1 || r.Counts[protocol.StateDownloading] != 1 {
					t.Fatalf("after cancel: %+v", r.Counts)
				}
				started.complete(*o)
				w.e.schedule()
				if r := w.e.run(w.run.ID); r.Status != protocol.RunCancelled || r.Ended.IsZero() {
					t.Fatalf("cancelled run did not end: %+v", r)
				}
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			e.importPack("1.0.0", "", "linux/amd64")
			e.importPack("2.0.0", "", "linux/amd64")
			e.importPack("3.0.0", "2.0.0", "linux/amd64")
			w := &world{e: e, agents: map[string]*simAgent{}}
			for name, mod := range tc.agents {
				mods := []func(*protocol.EnrollRequest){}
				if mod != nil {
					mods = append(mods, mod)
				}
				w.agents[name] = e.newAgent(name, "1.0.0", mods...)
			}
			w.run = e.createRun(tc.req)
			tc.check(t, w)
		})
	}
}
