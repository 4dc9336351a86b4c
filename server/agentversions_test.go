package server

import (
	"testing"
	"time"

	"github.com/moltfleet/molt/protocol"
)

// TestAgentVersions follows one agent through an upgrade that commits
// and one that rolls back: GET /v1/agents/{id} says its previous version
// and the one on trial at each step, as the console's agent page shows
// them.
func TestAgentVersions(t *testing.T) {
	e := newEnv(t)
	e.importPack("1.0.0", "", "linux/amd64")
	e.importPack("2.0.0", "", "linux/amd64")
	e.importPack("3.0.0", "", "linux/amd64")
	a := e.newAgent("web-1", "1.0.0")
	show := func() protocol.Agent {
		t.Helper()
		var got protocol.Agent
		e.must("GET", "/v1/agents/"+a.id, protocol.RoleViewer, nil, &got)
		return got
	}
	check := func(step, previous, trial string, inFlight bool) {
		t.Helper()
		got := show()
		if got.PreviousVersion != previous || got.TrialVersion != trial || (got.Upgrade != nil) != inFlight {
			t.Errorf("%s: version %s, previous %q, trial %q, upgrade %+v; want previous %q, trial %q, in flight %v",
				step, got.Version, got.PreviousVersion, got.TrialVersion, got.Upgrade, previous, trial, inFlight)
		}
	}
	order := func(target string) protocol.Order {
		t.Helper()
		e.createRun(protocol.RunRequest{Selection: protocol.Selection{AgentIDs: []string{a.id}}, Target: target})
		e.schedule()
		o := upgradeOrder(a.checkin())
		if o == nil {
			t.Fatalf("no upgrade order to %s", target)
		}
		return *o
	}
	check("installed", "", "", false)

	o := order("2.0.0")
	a.report(protocol.ReportRequest{OrderID: o.ID, Phase: protocol.StateDownloading})
	a.st.Upgrade = &protocol.UpgradeProgress{OrderID: o.ID, Version: o.Version, Phase: protocol.StateDownloading, Done: 10, Total: 100}
	a.checkin()
	check("downloading", "", "", true)

	a.report(protocol.ReportRequest{OrderID: o.ID, Phase: protocol.StateStaged})
	a.report(protocol.ReportRequest{OrderID: o.ID, Phase: protocol.StateRestarting})
	a.st.Version = "2.0.0"
	a.st.Upgrade = &protocol.UpgradeProgress{OrderID: o.ID, Version: o.Version, Phase: protocol.StateWatching}
	a.checkin()
	check("on trial", "1.0.0", "2.0.0", true)

	a.st.Upgrade = nil
	a.st.LastResult = &protocol.TrialResult{Outcome: protocol.TrialCommitted, Version: "2.0.0", Previous: "1.0.0", OrderID: o.ID, At: e.clock.Now()}
	a.checkin()
	check("committed", "1.0.0", "", false)

	// A trial of 3.0.0 that fails: back on 2.0.0, no previous kept.
	e.clock.Add(time.Minute)
	o = order("3.0.0")
	a.report(protocol.ReportRequest{OrderID: o.ID, Phase: protocol.StateRestarting})
	a.st.Version = "3.0.0"
	a.checkin()
	check("on trial, the agent not saying", "2.0.0", "3.0.0", false)

	a.st.Version = "2.0.0"
	a.st.LastResult = &protocol.TrialResult{Outcome: protocol.TrialRolledBack, Version: "3.0.0", Previous: "2.0.0", OrderID: o.ID, Reason: "crashed", At: e.clock.Now()}
	a.checkin()
	check("rolled back", "", "", false)
	if got := show(); got.LastResult == nil || got.LastResult.Reason != "crashed" || got.Version != "2.0.0" {
		t.Errorf("rolled back: version %s, last result %+v", got.Version, got.LastResult)
	}
}
