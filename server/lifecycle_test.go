package server

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/moltfleet/molt/protocol"
	"github.com/moltfleet/molt/server/lifecycle"
)

// serverStates is deployment dep's states as the server moved it, from
// its DEPLOY report ("server: <state>" steps), starting at pending.
func serverStates(e *env, dep string) []string {
	e.t.Helper()
	states := []string{protocol.StatePending}
	for _, st := range e.deployment(dep).Steps {
		if s, ok := strings.CutPrefix(st.Name, "server: "); ok && slices.Contains(protocol.DeploymentStates, s) {
			states = append(states, s)
		}
	}
	return states
}

// legalStep reports whether some event of lifecycle.Deployment moves a
// deployment from from to to.
func legalStep(from, to string) bool {
	for _, tr := range lifecycle.Deployment {
		if tr.To == to && slices.Contains(tr.From, from) {
			return true
		}
	}
	return false
}

// TestLifecycleWalk drives deployments through the server's code paths
// (scheduler, check-ins, reports, the stuck sweep, operators' actions,
// revocation, a run's cancel) and checks that every state each went
// through follows from the one before by lifecycle's table, and that the
// walk covered what it should.
func TestLifecycleWalk(t *testing.T) {
	e, ag, run := stuckEnv(t, 10, "ok", "rollback", "unstuck", "cancel", "retry", "revoke")
	offline := e.enrollOnly("offline", "1.0.0")
	// offline is not in run (created before it enrolled): a second run
	// takes it, and is cancelled with it waiting for its host.
	run2 := e.createRun(protocol.RunRequest{Selection: protocol.Selection{AgentIDs: []string{offline.id}}, Target: "2.0.0"})
	e.schedule()
	byName := map[string]*simAgent{}
	orders := map[string]protocol.Order{}
	for _, a := range ag {
		byName[a.st.Name] = a
		o := upgradeOrder(a.checkin())
		if o == nil {
			t.Fatalf("%s: no order", a.st.Name)
		}
		orders[a.st.Name] = *o
	}
	byName["ok"].complete(orders["ok"])

	rb := byName["rollback"]
	rb.report(protocol.ReportRequest{OrderID: orders["rollback"].ID, Phase: protocol.StateDownloading})
	rb.st.LastResult = &protocol.TrialResult{Outcome: protocol.TrialRolledBack, Version: "2.0.0", Previous: "1.0.0", OrderID: orders["rollback"].ID, Reason: "crashed", At: e.clock.Now()}
	rb.checkin()

	for _, n := range []string{"unstuck", "cancel", "retry"} {
		byName[n].report(protocol.ReportRequest{OrderID: orders[n].ID, Phase: protocol.StateDownloading})
	}
	e.clock.Add(11 * time.Minute)
	e.schedule() // unstuck, cancel, retry and revoke are stuck
	un := byName["unstuck"]
	un.report(protocol.ReportRequest{OrderID: orders["unstuck"].ID, Phase: protocol.StateStaged})
	un.report(protocol.ReportRequest{OrderID: orders["unstuck"].ID, End: &protocol.End{Outcome: protocol.EndFailed, Reason: "disk full"}})
	e.must("POST", "/v1/deployments/"+orders["cancel"].ID+"/cancel", protocol.RoleOperator, nil, nil)
	var retried protocol.Deployment
	e.must("POST", "/v1/deployments/"+orders["retry"].ID+"/retry", protocol.RoleOperator, nil, &retried)
	e.must("POST", "/v1/agents/"+byName["revoke"].id+"/revoke", protocol.RoleAdmin, nil, nil)
	e.schedule()
	e.must("POST", "/v1/runs/"+run2.ID+"/cancel", protocol.RoleOperator, nil, nil)
	e.schedule()

	seen := map[[2]string]bool{}
	deps := []string{retried.ID, depOf(e, run2.ID, offline).ID}
	for _, o := range orders {
		deps = append(deps, o.ID)
	}
	for _, dep := range deps {
		states := serverStates(e, dep)
		for i := 1; i < len(states); i++ {
			if !legalStep(states[i-1], states[i]) {
				t.Errorf("%s went %v: %s -> %s is not in lifecycle.Deployment", dep, states, states[i-1], states[i])
			}
			seen[[2]string{states[i-1], states[i]}] = true
		}
	}
	for _, want := range [][2]string{
		{protocol.StatePending, protocol.StateRequested},
		{protocol.StateRequested, protocol.StateDownloading},
		{protocol.StateRestarting, protocol.StateSucceeded},
		{protocol.StateDownloading, protocol.StateRolledBack},
		{protocol.StateDownloading, protocol.StateStuck},
		{protocol.StateStuck, protocol.StateStaged},
		{protocol.StateStaged, protocol.StateFailed},
		{protocol.StateStuck, protocol.StateCancelled},
		{protocol.StateRequested, protocol.StateStuck},
		{protocol.StatePending, protocol.StateWaitingForHost},
		{protocol.StateWaitingForHost, protocol.StateCancelled},
	} {
		if !seen[want] {
			t.Errorf("the walk never went %s -> %s (went %v)", want[0], want[1], seen)
		}
	}
	if got := e.run(run2.ID).Status; got != protocol.RunCancelled {
		t.Errorf("run %s is %s, want cancelled", run2.ID, got)
	}
	if got := e.run(run.ID).Status; got != protocol.RunRunning {
		t.Errorf("run %s is %s, want running (its retry is pending)", run.ID, got)
	}
}

// TestSetStateRefusesIllegal: an event the deployment's state does not
// allow is an error, and nothing of it is written or mirrored.
func TestSetStateRefusesIllegal(t *testing.T) {
	e, _, run := stuckEnv(t, 1, "h1")
	e.s.mu.Lock()
	var d *depRec
	for _, o := range e.s.open {
		d = o
	}
	before := d.State
	err := e.s.change(context.Background(), func(w *writer) error {
		return w.setState(d, lifecycle.Succeed, "a pending deployment cannot succeed")
	})
	after := d.State
	counts := e.s.runs[d.RunID].Counts[protocol.StateSucceeded]
	e.s.mu.Unlock()
	if !errors.Is(err, lifecycle.ErrIllegal) {
		t.Fatalf("setState(pending, succeed) = %v, want ErrIllegal", err)
	}
	if after != before || counts != 0 {
		t.Errorf("state %s (was %s), %d succeeded in memory: the refused transition was mirrored", after, before, counts)
	}
	if got := e.run(run.ID).Counts[protocol.StateSucceeded]; got != 0 {
		t.Errorf("run counts %d succeeded: the refused transition was written", got)
	}
	for _, st := range e.deployment(depID(d.ID)).Steps {
		if st.Name == "server: "+protocol.StateSucceeded {
			t.Errorf("step %q written for a refused transition", st.Name)
		}
	}
	// A second event in the same change starts where the first left.
	e.s.mu.Lock()
	err = e.s.change(context.Background(), func(w *writer) error {
		if err := w.setState(d, lifecycle.Skip, "skipped"); err != nil {
			return err
		}
		return w.setState(d, lifecycle.Start, "started after its skip")
	})
	e.s.mu.Unlock()
	if !errors.Is(err, lifecycle.ErrIllegal) {
		t.Fatalf("skip then start in one change = %v, want ErrIllegal", err)
	}
}

// TestOperatorActionsWithoutHTTP: what the handlers do is a Server
// method a caller without HTTP can use, with the same refusals.
func TestOperatorActionsWithoutHTTP(t *testing.T) {
	e, ag, run := stuckEnv(t, 1, "h1", "h2")
	ctx := context.Background()
	id, _ := parseID(run.ID, "r-")
	r, err := e.s.RunEvent(ctx, id, lifecycle.RunPause, "t-9")
	if err != nil || r.Status != protocol.RunPaused {
		t.Fatalf("pause: %s, %v", r.Status, err)
	}
	var ae *apiError
	if _, err := e.s.RunEvent(ctx, id, lifecycle.RunPause, "t-9"); !errors.As(err, &ae) || ae.Status != 409 {
		t.Fatalf("pause a paused run: %v, want a conflict", err)
	}
	if _, err := e.s.RunEvent(ctx, id, lifecycle.RunHalt, "t-9"); !errors.Is(err, lifecycle.ErrIllegal) {
		t.Fatalf("halt is no operator's event: %v, want ErrIllegal", err)
	}
	if r, err := e.s.RunEvent(ctx, id, lifecycle.RunResume, "t-9"); err != nil || r.Status != protocol.RunRunning {
		t.Fatalf("resume: %s, %v", r.Status, err)
	}
	d, err := e.s.SkipDeployment(ctx, depOf(e, run.ID, ag[1]).ID, "t-9")
	if err != nil || d.State != protocol.StateSkipped || d.Reason != "skipped by operator t-9" {
		t.Fatalf("skip: %s %q, %v", d.State, d.Reason, err)
	}
	if _, err := e.s.CancelDeployment(ctx, d.ID, "t-9"); !errors.As(err, &ae) || ae.Status != 409 {
		t.Fatalf("cancel a skipped deployment: %v, want a conflict", err)
	}
	if _, err := e.s.PromoteRun(ctx, id, "t-9"); !errors.As(err, &ae) || ae.Status != 409 {
		t.Fatalf("promote a run without waves: %v, want a conflict", err)
	}
	if r, err := e.s.RunEvent(ctx, id, lifecycle.RunCancel, "t-9"); err != nil || r.Status != protocol.RunCancelled {
		t.Fatalf("cancel: %s, %v", r.Status, err)
	}
}
