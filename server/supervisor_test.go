package server

import (
	"testing"
	"time"

	"github.com/moltfleet/molt/protocol"
)

// countEvents counts agent's events with id.
func (e *env) countEvents(id int, agent string) (n int, last protocol.Event) {
	for _, ev := range e.events() {
		if ev.ID == id && ev.AgentID == agent {
			n++
			last = ev
		}
	}
	return n, last
}

// TestSupervisorOutcomeAfterDeploymentEnded: a supervisor that upgrades
// itself after the agent's trial result already ended the deployment is
// still recorded (713, or 714 when it failed), once, across repeated
// check-ins and a server restart.
func TestSupervisorOutcomeAfterDeploymentEnded(t *testing.T) {
	for _, tc := range []struct {
		name   string
		sr     protocol.SupervisorResult
		event  int
		detail string
	}{
		{"upgraded", protocol.SupervisorResult{From: "1.0.0", To: "2.0.0", Upgraded: true}, protocol.EvSupervisorUpgraded, "supervisor 1.0.0 -> 2.0.0 upgraded"},
		{"failed", protocol.SupervisorResult{From: "1.0.0", To: "2.0.0", Reason: "new supervisor did not start"}, protocol.EvSupervisorFailed, "supervisor 1.0.0 -> 2.0.0 not upgraded: new supervisor did not start"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			e.importPack("1.0.0", "", "linux/amd64")
			e.importPack("2.0.0", "", "linux/amd64")
			a := e.newAgent("late", "1.0.0")
			run := e.createRun(protocol.RunRequest{Selection: protocol.Selection{All: true}, Target: "2.0.0"})
			e.schedule()
			o := upgradeOrder(a.checkin())
			if o == nil {
				t.Fatal("no upgrade order")
			}
			a.complete(*o) // committed, without the supervisor's part yet
			if d := e.deployment(o.ID).Deployment; d.State != protocol.StateSucceeded {
				t.Fatalf("deployment %s, want succeeded", d.State)
			}
			e.schedule()
			if r := e.run(run.ID); r.Status != protocol.RunEndedOK {
				t.Fatalf("run %s", r.Status)
			}
			if n, _ := e.countEvents(tc.event, a.id); n != 0 {
				t.Fatalf("%d supervisor events before the supervisor reported", n)
			}

			// Minutes later the supervisor has upgraded itself and added
			// its part to the result.
			e.clock.Add(5 * time.Minute)
			sr := tc.sr
			sr.At = e.clock.Now()
			lr := *a.st.LastResult
			lr.Supervisor = &sr
			a.st.LastResult = &lr
			a.checkin()
			a.checkin()
			n, ev := e.countEvents(tc.event, a.id)
			if n != 1 {
				t.Fatalf("%d events %d, want 1", n, tc.event)
			}
			if ev.DeploymentID != o.ID || ev.RunID != run.ID {
				t.Errorf("event names deployment %q run %q, want %s %s", ev.DeploymentID, ev.RunID, o.ID, run.ID)
			}
			found := false
			for _, s := range e.deployment(o.ID).Steps {
				if s.Name == "server: supervisor" && s.Detail == tc.detail {
					found = true
				}
			}
			if !found {
				t.Errorf("DEPLOY report lacks the supervisor step %q: %+v", tc.detail, e.deployment(o.ID).Steps)
			}

			// The server restarts; the agent, not knowing, sends the same
			// result again, and also after it dropped and re-read it.
			e.restart()
			a.checkin()
			a.st.LastResult = nil
			a.checkin()
			a.st.LastResult = &lr
			a.checkin()
			if n, _ := e.countEvents(tc.event, a.id); n != 1 {
				t.Fatalf("after restart and repeats: %d events %d, want 1", n, tc.event)
			}
		})
	}
}
