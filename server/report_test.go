package server

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/moltfleet/molt/protocol"
)

// orderFor starts a run of a to 2.0.0 and returns its upgrade order.
func orderFor(t *testing.T, e *env, a *simAgent) protocol.Order {
	t.Helper()
	e.createRun(protocol.RunRequest{Selection: protocol.Selection{AgentIDs: []string{a.id}}, Target: "2.0.0"})
	e.schedule()
	o := upgradeOrder(a.checkin())
	if o == nil {
		t.Fatal("no upgrade order")
	}
	return *o
}

func stepsOf(t *testing.T, e *env, dep string) []protocol.Step {
	t.Helper()
	return e.deployment(dep).Steps
}

// TestReportOnEndedDeployment: a deployment's report is closed when it
// ends. The retry of the final report (its answer lost) still succeeds;
// a report with new steps is refused and records nothing; a cancelled
// deployment answers "cancelled" so the agent drops the order.
func TestReportOnEndedDeployment(t *testing.T) {
	e := newEnv(t)
	e.importPack("2.0.0", "", "linux/amd64")
	a := e.newAgent("a", "1.0.0")
	o := orderFor(t, e, a)
	at := e.clock.Now()
	final := protocol.ReportRequest{OrderID: o.ID, Steps: []protocol.Step{{At: at, Name: "download", Detail: "refused"}},
		End: &protocol.End{Outcome: protocol.EndFailed, Reason: "download refused"}}
	if got := a.report(final); got.State != protocol.StateFailed {
		t.Fatalf("final report: %+v", got)
	}
	n := len(stepsOf(t, e, o.ID))

	t.Run("retried final report", func(t *testing.T) {
		if got := a.report(final); got.State != protocol.StateFailed || got.Cancelled {
			t.Fatalf("retry: %+v", got)
		}
	})
	t.Run("new steps refused", func(t *testing.T) {
		for i := range 3 {
			late := protocol.ReportRequest{OrderID: o.ID, Steps: []protocol.Step{{At: at.Add(time.Duration(i+1) * time.Second), Name: "spam", Detail: "more"}}}
			code, pe := e.do("POST", "/v1/agent/report", a.cred, late, nil)
			if code != 409 || pe.Code != protocol.CodeConflict || !strings.Contains(pe.Error, "ended (failed)") {
				t.Fatalf("late report: %d %+v", code, pe)
			}
		}
		if m := len(stepsOf(t, e, o.ID)); m != n {
			t.Fatalf("steps after late reports: %d, want %d", m, n)
		}
	})

	t.Run("cancelled", func(t *testing.T) {
		// A cancelled run ends the deployment under an agent still
		// working on it.
		c := e.newAgent("c", "1.0.0")
		oc := orderFor(t, e, c)
		dep := e.deployment(oc.ID).Deployment
		e.must("POST", "/v1/runs/"+dep.RunID+"/cancel", protocol.RoleOperator, nil, nil)
		if st := e.deployment(oc.ID).Deployment.State; st != protocol.StateCancelled {
			t.Skipf("a run cancel leaves an in-progress deployment %s", st)
		}
		before := len(stepsOf(t, e, oc.ID))
		got := c.report(protocol.ReportRequest{OrderID: oc.ID, Phase: protocol.StateStaged, Steps: []protocol.Step{{At: e.clock.Now().Add(time.Hour), Name: "stage"}}})
		if !got.Cancelled || got.State != protocol.StateCancelled {
			t.Fatalf("report on a cancelled deployment: %+v", got)
		}
		if after := len(stepsOf(t, e, oc.ID)); after != before {
			t.Fatalf("steps recorded on a cancelled deployment: %d -> %d", before, after)
		}
	})
}

// TestDeploymentStepsBounded: an agent sending distinct steps report
// after report cannot grow a deployment past MaxDeploymentSteps; its end
// still counts.
func TestDeploymentStepsBounded(t *testing.T) {
	e := newEnv(t)
	e.importPack("2.0.0", "", "linux/amd64")
	a := e.newAgent("a", "1.0.0")
	o := orderFor(t, e, a)
	at := e.clock.Now()
	k := 0
	for range 2*protocol.MaxDeploymentSteps/protocol.MaxReportSteps + 1 {
		steps := make([]protocol.Step, protocol.MaxReportSteps)
		for i := range steps {
			k++
			steps[i] = protocol.Step{At: at.Add(time.Duration(k) * time.Millisecond), Name: "download", Detail: fmt.Sprint(k)}
		}
		a.report(protocol.ReportRequest{OrderID: o.ID, Phase: protocol.StateDownloading, Steps: steps})
	}
	got := a.report(protocol.ReportRequest{OrderID: o.ID, Steps: []protocol.Step{{At: at.Add(time.Hour), Name: "verify"}},
		End: &protocol.End{Outcome: protocol.EndFailed, Reason: "signature"}})
	if got.State != protocol.StateFailed {
		t.Fatalf("the end past the bound: %+v", got)
	}
	steps := stepsOf(t, e, o.ID)
	dropped := 0
	for _, s := range steps {
		if s.Name == stepsDropped {
			dropped++
		}
	}
	if len(steps) > protocol.MaxDeploymentSteps || dropped != 1 {
		t.Fatalf("%d steps (bound %d), %d %q steps", len(steps), protocol.MaxDeploymentSteps, dropped, stepsDropped)
	}
}
