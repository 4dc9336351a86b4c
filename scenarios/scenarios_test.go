//go:build unix

package scenarios

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/moltfleet/molt/internal/e2etest"
	"github.com/moltfleet/molt/protocol"
)

// Scenario 1: an agent from an old golden image enrolls and is upgraded
// on activation without anyone asking (264 then 706); with activation
// upgrade off for its OS family, or for an agent without a supervisor, the
// skip is recorded with its reason (277) and the agent stays where it was.
func TestScenario01Activation(t *testing.T) {
	needReal(t)
	f := newFleet(t, map[string]string{"activation-upgrade." + family: "true"}, e2etest.PackOptions{Version: v2})
	srv := f.srv

	golden := f.host("golden", v1)
	id := golden.WaitEnrolled(30 * time.Second)
	a := f.waitAgent(id, v2, true)
	if a.UpgradeStatus != protocol.UpgradeUpToDate {
		t.Errorf("after the activation upgrade: %s", a.UpgradeStatus)
	}
	evs := e2etest.OfAgent(srv.Events(), id)
	ids := e2etest.IDs(evs)
	i264, i706 := slices.Index(ids, protocol.EvUpgradeRequested), slices.Index(ids, protocol.EvUpgraded)
	if i264 < 0 || i706 < i264 || slices.Index(ids, protocol.EvAgentEnrolled) > i264 {
		t.Fatalf("events of the golden image agent: want 900, 264, ..., 706 in order; got %v", ids)
	}
	if k := evs[i264].Fields["kind"]; k != protocol.KindActivation {
		t.Errorf("264 kind %q, want activation", k)
	}
	hist := srv.History("--agent", id)
	if len(hist) != 1 || hist[0].Kind != protocol.KindActivation || hist[0].State != protocol.StateSucceeded || hist[0].From != v1 || hist[0].Target != v2 {
		t.Fatalf("history of the golden image agent: %+v", hist)
	}
	if act := golden.Active(); act.Current != v2 || act.Previous != v1 || act.Trial != nil {
		t.Errorf("active.json: %+v", act)
	}

	// The same image with a supervisor, while activation upgrade is off for
	// its OS family; and one without a supervisor while it is on.
	srv.OK("settings", "set", "activation-upgrade."+family, "false")
	off := f.host("family-off", v1)
	offID := off.WaitEnrolled(30 * time.Second)
	srv.OK("settings", "set", "activation-upgrade."+family, "true")
	un := f.host("unsupervised", v1, func(o *e2etest.HostOptions) { o.Supervised = false })
	unID := un.WaitEnrolled(30 * time.Second)
	for _, c := range []struct {
		id, reason string
	}{
		{offID, "upgrade on activation is off for " + family + " agents"},
		{unID, "not supervised"},
	} {
		var skip protocol.Event
		e2etest.Eventually(t, 30*time.Second, "event 277 for "+c.id, func() (bool, string) {
			evs := e2etest.OfAgent(srv.Events(), c.id)
			for _, e := range evs {
				if e.ID == protocol.EvActivationUpgradeSkipped {
					skip = e
					return true, ""
				}
			}
			return false, fmt.Sprint(e2etest.IDs(evs))
		})
		if !strings.Contains(skip.Fields["reason"], c.reason) || skip.Fields["from"] != v1 || skip.Fields["to"] != v2 {
			t.Errorf("277 of %s: %+v, want reason %q from %s to %s", c.id, skip, c.reason, v1, v2)
		}
		if !strings.Contains(srv.OK("events", "--since", "all").Stdout, c.reason) {
			t.Errorf("molt events does not show the reason %q", c.reason)
		}
	}
	// Several check-ins later neither was upgraded.
	time.Sleep(5 * time.Second)
	for _, id := range []string{offID, unID} {
		ag := srv.Agent(id)
		if ag.Version != v1 || len(srv.History("--agent", id)) != 0 {
			t.Errorf("agent %s after a skipped activation: version %s, history %+v", id, ag.Version, srv.History("--agent", id))
		}
		for _, e := range e2etest.OfAgent(srv.Events(), id) {
			if e.ID == protocol.EvUpgradeRequested {
				t.Errorf("agent %s: an upgrade was requested after its activation was skipped: %+v", id, e)
			}
		}
	}
	if ag := srv.Agent(unID); ag.UpgradeStatus != protocol.UpgradeManualRequired || ag.Supervised {
		t.Errorf("the unsupervised agent: %s supervised=%v, want manual_upgrade_required", ag.UpgradeStatus, ag.Supervised)
	}
	if ag := srv.Agent(offID); ag.UpgradeStatus != protocol.UpgradeRecommended {
		t.Errorf("the agent enrolled while activation was off: %s, want upgrade_recommended", ag.UpgradeStatus)
	}
}
