package server

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/moltfleet/molt/protocol"
)

// drive plays run id to its end: each pass schedules, every agent with an
// order carries it out (or rolls back, if in fail), and time moves on so
// soaks and scheduled starts pass.
func drive(t *testing.T, e *env, id string, agents []*simAgent, fail map[*simAgent]bool) protocol.Run {
	t.Helper()
	for range 60 {
		e.schedule()
		for _, a := range agents {
			o := upgradeOrder(a.checkin())
			if o == nil {
				continue
			}
			if fail[a] {
				a.st.LastResult = &protocol.TrialResult{Outcome: protocol.TrialRolledBack, Version: o.Version, Previous: a.st.Version, OrderID: o.ID, Reason: "crashed", At: e.clock.Now()}
				a.checkin()
				continue
			}
			a.complete(*o)
		}
		e.schedule()
		if r := e.run(id); r.Status != protocol.RunRunning && r.Status != protocol.RunPaused {
			return r
		}
		e.clock.Add(10 * time.Minute)
	}
	r := e.run(id)
	t.Fatalf("run %s did not end: %s %v", id, r.Status, r.Counts)
	return r
}

// rolledOut is four agents on 1.0.0 after run r-1 to 2.0.0 (with the
// controls of req, if given) moved them: all, or but w4 whose upgrade
// rolled back if failLast.
func rolledOut(t *testing.T, req protocol.RunRequest, failLast bool) (*env, []*simAgent) {
	t.Helper()
	e := newEnv(t)
	e.importPack("1.0.0", "", "linux/amd64")
	e.importPack("2.0.0", "", "linux/amd64")
	var agents []*simAgent
	for i := 1; i <= 4; i++ {
		agents = append(agents, e.newAgent(fmt.Sprintf("w%d", i), "1.0.0"))
	}
	req.Target, req.Selection = "2.0.0", protocol.Selection{All: true}
	r := e.createRun(req)
	if r.ID != "r-1" {
		t.Fatalf("first run is %s", r.ID)
	}
	drive(t, e, r.ID, agents, map[*simAgent]bool{agents[3]: failLast})
	for i, a := range agents {
		want := "2.0.0"
		if i == 3 && failLast {
			want = "1.0.0"
		}
		if a.st.Version != want {
			t.Fatalf("after r-1 %s runs %s, want %s", a.st.Name, a.st.Version, want)
		}
	}
	return e, agents
}

func (e *env) rollback(id string, req any) (protocol.Run, int, protocol.Error) {
	e.t.Helper()
	var r protocol.Run
	code, pe := e.do("POST", "/v1/runs/"+id+"/rollback", e.tokens[protocol.RoleOperator], req, &r)
	return r, code, pe
}

func excludedBy(r protocol.Run) map[string]string {
	m := map[string]string{}
	for _, x := range r.Excluded {
		m[x.AgentName] = x.Reason
	}
	return m
}

func TestRollbackMovesBackWhatTheRunMoved(t *testing.T) {
	e, agents := rolledOut(t, protocol.RunRequest{}, true)
	r, code, pe := e.rollback("r-1", nil)
	if code != 201 {
		t.Fatalf("rollback: %d %s", code, pe.Error)
	}
	if r.ID != "r-2" || r.Target != protocol.RollbackTarget || r.Text != "rollback of r-1" || r.Total != 3 || len(r.Excluded) != 0 {
		t.Fatalf("rollback run: %+v", r)
	}
	if diff := cmp.Diff([]protocol.PlanLine{{Platform: "linux/amd64", Agents: 3, Target: "1.0.0", Revert: 3}}, r.Plan); diff != "" {
		t.Errorf("plan (-want +got):\n%s", diff)
	}
	var ev *protocol.Event
	for _, x := range e.events() {
		if x.ID == protocol.EvRunRollback {
			ev = &x
		}
	}
	if ev == nil || ev.RunID != "r-2" || ev.Fields["of"] != "r-1" || ev.Fields["agents"] != "3" {
		t.Fatalf("event 811: %+v", ev)
	}
	end := drive(t, e, "r-2", agents, nil)
	if end.Status != protocol.RunEndedOK || end.Counts[protocol.StateSucceeded] != 3 {
		t.Fatalf("rollback run ended %s %v", end.Status, end.Counts)
	}
	for _, a := range agents {
		if a.st.Version != "1.0.0" {
			t.Errorf("%s runs %s after the rollback, want 1.0.0", a.st.Name, a.st.Version)
		}
	}
	var deps protocol.Deployments
	e.must("GET", "/v1/deployments?run=r-2", protocol.RoleViewer, nil, &deps)
	for _, d := range deps.Deployments {
		if d.RunID == "r-2" && (d.From != "2.0.0" || d.Target != "1.0.0" || !d.Revert || d.AgentName == "w4") {
			t.Errorf("deployment %s of %s: %s -> %s revert %v", d.ID, d.AgentName, d.From, d.Target, d.Revert)
		}
	}
}

func TestRollbackLeavesOut(t *testing.T) {
	tests := []struct {
		name  string
		setup func(t *testing.T, e *env, agents []*simAgent)
		// want: agent name -> part of the reason it is left out.
		want map[string]string
		// fails: the request is refused with all of these, none being left.
		fails []string
	}{
		{
			name: "an agent moved again since",
			setup: func(t *testing.T, e *env, agents []*simAgent) {
				e.importPack("3.0.0", "", "linux/amd64")
				r := e.createRun(protocol.RunRequest{Target: "3.0.0", Selection: protocol.Selection{AgentIDs: []string{agents[0].id}}})
				drive(t, e, r.ID, agents, nil)
			},
			want: map[string]string{"w1": "moved since r-1: runs 3.0.0, not 2.0.0"},
		},
		{
			name: "an agent whose floor is above the version it came from",
			setup: func(t *testing.T, e *env, agents []*simAgent) {
				agents[1].st.Floor = "1.5.0"
				agents[1].checkin()
			},
			want: map[string]string{"w2": "below floor: target 1.0.0 is below the floor 1.5.0"},
		},
		{
			name: "the release they came from removed",
			setup: func(t *testing.T, e *env, agents []*simAgent) {
				e.must("DELETE", "/v1/releases/1.0.0", protocol.RoleAdmin, nil, nil)
			},
			want: map[string]string{
				"w1": "release 1.0.0 it came from is no longer imported",
				"w2": "release 1.0.0 it came from is no longer imported",
				"w3": "release 1.0.0 it came from is no longer imported",
			},
			fails: []string{"nothing to roll back: none of the 3 agents run r-1 moved can go back (", "w1: release 1.0.0 it came from is no longer imported", "w3: release"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, agents := rolledOut(t, protocol.RunRequest{}, true)
			tt.setup(t, e, agents)
			plan, code, pe := e.rollback("r-1", protocol.RollbackRequest{DryRun: true})
			if code != 200 {
				t.Fatalf("dry run: %d %s", code, pe.Error)
			}
			got := excludedBy(plan)
			if len(got) != len(tt.want) {
				t.Errorf("left out %v, want %v", got, tt.want)
			}
			for name, reason := range tt.want {
				if !strings.Contains(got[name], reason) {
					t.Errorf("%s left out for %q, want %q", name, got[name], reason)
				}
			}
			if plan.Total != 3-len(tt.want) {
				t.Errorf("dry run takes %d agents, want %d", plan.Total, 3-len(tt.want))
			}
			r, code, pe := e.rollback("r-1", protocol.RollbackRequest{})
			if tt.fails != nil {
				for _, f := range tt.fails {
					if code != 409 || !strings.Contains(pe.Error, f) {
						t.Errorf("rollback: %d %q, want 409 with %q", code, pe.Error, f)
					}
				}
				return
			}
			if code != 201 || r.Total != 3-len(tt.want) || len(r.Excluded) != len(tt.want) {
				t.Fatalf("rollback: %d %s, %d agents, %v left out", code, pe.Error, r.Total, r.Excluded)
			}
		})
	}
}

func TestRollbackKeepsTheRunsControls(t *testing.T) {
	controls := protocol.RunControls{Canary: 1, CanarySoakSeconds: 60, Waves: []string{"50%", "100%"}, WaveWaitSeconds: 120, RatePerMinute: 30}
	e, _ := rolledOut(t, protocol.RunRequest{MaxConcurrent: 3, FailureThreshold: 5, RunControls: func() protocol.RunControls {
		c := controls
		c.StartAt = time.Date(2026, 1, 2, 4, 0, 0, 0, time.UTC) // an hour after the env's clock
		return c
	}()}, false)
	t.Run("kept", func(t *testing.T) {
		r, code, pe := e.rollback("r-1", protocol.RollbackRequest{DryRun: true})
		if code != 200 {
			t.Fatalf("dry run: %d %s", code, pe.Error)
		}
		// The start has passed: the rollback starts now.
		if diff := cmp.Diff(controls, r.RunControls); diff != "" {
			t.Errorf("controls (-want +got):\n%s", diff)
		}
		if r.MaxConcurrent != 3 || r.FailureThreshold != 5 {
			t.Errorf("limits: max concurrent %d, failure threshold %d", r.MaxConcurrent, r.FailureThreshold)
		}
		var names []string
		for _, w := range r.WaveList {
			names = append(names, w.Name)
		}
		if len(names) < 2 || names[0] != "canary" {
			t.Errorf("waves %v, want the canary first", names)
		}
	})
	t.Run("overridden", func(t *testing.T) {
		r, code, pe := e.rollback("r-1", protocol.RollbackRequest{Text: "back to 1.0.0", Rollout: &protocol.RolloutSettings{MaxConcurrent: 7}})
		if code != 201 {
			t.Fatalf("rollback: %d %s", code, pe.Error)
		}
		if r.Text != "back to 1.0.0" || r.MaxConcurrent != 7 || r.FailureThreshold != 0 || r.Canary != 0 || len(r.Waves) != 0 || len(r.WaveList) != 1 {
			t.Errorf("overridden run: %+v", r)
		}
	})
	t.Run("bad override", func(t *testing.T) {
		_, code, pe := e.rollback("r-1", protocol.RollbackRequest{Rollout: &protocol.RolloutSettings{RunControls: protocol.RunControls{Canary: -1}}})
		if code != 400 || !strings.Contains(pe.Error, "canary -1") {
			t.Errorf("rollback: %d %q, want 400 naming canary", code, pe.Error)
		}
	})
}

func TestRollbackRefused(t *testing.T) {
	e := newEnv(t)
	e.importPack("1.0.0", "", "linux/amd64")
	e.importPack("2.0.0", "", "linux/amd64")
	e.newAgent("w1", "1.0.0")
	e.createRun(protocol.RunRequest{Target: "2.0.0", Selection: protocol.Selection{All: true}})
	tests := []struct {
		name, path, role string
		body             any
		code             int
		msg              string
	}{
		{"a running run", "/v1/runs/r-1/rollback", protocol.RoleOperator, nil, 409, "run r-1 is running: pause or cancel it first"},
		{"by a viewer", "/v1/runs/r-1/rollback", protocol.RoleViewer, nil, 403, ""},
		{"an unknown run", "/v1/runs/r-9/rollback", protocol.RoleOperator, nil, 404, "no run r-9"},
		{"an unknown field", "/v1/runs/r-1/rollback", protocol.RoleOperator, map[string]any{"target": "1.0.0"}, 400, "target"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, pe := e.do("POST", tt.path, e.tokens[tt.role], tt.body, nil)
			if code != tt.code || !strings.Contains(pe.Error, tt.msg) {
				t.Errorf("%d %q, want %d %q", code, pe.Error, tt.code, tt.msg)
			}
		})
	}
	t.Run("paused, having moved nothing", func(t *testing.T) {
		e.must("POST", "/v1/runs/r-1/pause", protocol.RoleOperator, nil, nil)
		_, code, pe := e.rollback("r-1", nil)
		if code != 409 || !strings.Contains(pe.Error, "run r-1 moved no agent") {
			t.Errorf("%d %q, want 409 moved no agent", code, pe.Error)
		}
	})
}
