package server

import (
	"strings"
	"testing"

	"github.com/moltfleet/molt/protocol"
)

func onWindows(r *protocol.EnrollRequest) { r.Platform, r.OSFamily = "windows/amd64", "windows" }

// activateAll turns upgrade on activation on for linux and windows agents.
func activateAll(e *env) {
	for _, fam := range []string{"linux", "windows"} {
		e.must("PUT", "/v1/settings/activation-upgrade."+fam, protocol.RoleAdmin, protocol.SettingRequest{Value: "true"}, nil)
	}
}

// rollBackActivation hands a its activation deployment and plays its
// rollback; canary marks the deployment as a canary of its run first.
func rollBackActivation(t *testing.T, e *env, a *simAgent, canary bool) {
	t.Helper()
	e.schedule()
	o := upgradeOrder(a.checkin())
	if o == nil {
		t.Fatalf("agent %s got no upgrade order", a.st.Name)
	}
	if canary {
		e.s.mu.Lock()
		e.s.open[a.id].Canary = true
		e.s.mu.Unlock()
	}
	a.st.LastResult = &protocol.TrialResult{Outcome: protocol.TrialRolledBack, Version: o.Version, Previous: a.st.Version, OrderID: o.ID, Reason: "not ready within 60s", At: e.clock.Now()}
	a.checkin()
}

// activationSkip is the reason of agent id's event 277 ("" without one).
func activationSkip(e *env, id string) string {
	for _, ev := range e.events() {
		if ev.ID == protocol.EvActivationUpgradeSkipped && ev.AgentID == id {
			return ev.Fields["reason"]
		}
	}
	return ""
}

func (e *env) quarantined(version, platform string) (string, bool) {
	e.s.mu.Lock()
	defer e.s.mu.Unlock()
	return e.s.quarantined(version, platform)
}

func (e *env) release(version string) protocol.Release {
	e.t.Helper()
	var rel protocol.Release
	e.must("GET", "/v1/releases/"+version, protocol.RoleViewer, nil, &rel)
	return rel
}

// TestQuarantineAutomatic: rollbacks of a release on a platform's agents
// quarantine it there, in the transaction that records the rollback, and
// upgrade on activation passes it over on that platform only.
func TestQuarantineAutomatic(t *testing.T) {
	for _, tc := range []struct {
		name      string
		after     string // releases.quarantine-after; "" the default
		rollbacks int
		canary    bool
		want      bool
	}{
		{name: "two rollbacks on linux/amd64", rollbacks: 2, want: true},
		{name: "one rollback is not enough", rollbacks: 1},
		{name: "one canary rollback", rollbacks: 1, canary: true, want: true},
		{name: "three with quarantine-after 3", after: "3", rollbacks: 3, want: true},
		{name: "0 turns it off", after: "0", rollbacks: 3},
		{name: "0 turns it off for canaries too", after: "0", rollbacks: 1, canary: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			e.importPack("2.0.0", "", "linux/amd64", "windows/amd64")
			activateAll(e)
			if tc.after != "" {
				e.must("PUT", "/v1/settings/releases.quarantine-after", protocol.RoleAdmin, protocol.SettingRequest{Value: tc.after}, nil)
			}
			for i := 0; i < tc.rollbacks; i++ {
				rollBackActivation(t, e, e.newAgent("rb"+string(rune('a'+i)), "1.0.0"), tc.canary)
			}
			reason, got := e.quarantined("2.0.0", "linux/amd64")
			if got != tc.want {
				t.Fatalf("quarantined for linux/amd64: %v (%q), want %v", got, reason, tc.want)
			}
			if _, win := e.quarantined("2.0.0", "windows/amd64"); win {
				t.Fatal("quarantined for windows/amd64: no agent of it rolled back")
			}
			if got != e.hasEvent(protocol.EvQuarantined, "") {
				t.Errorf("event 1007 recorded: %v, want %v", !got, got)
			}
			rel := e.release("2.0.0")
			if got != (len(rel.Quarantined) == 1 && rel.Quarantined[0].Platform == "linux/amd64" && rel.Quarantined[0].Automatic) {
				t.Errorf("GET /v1/releases/2.0.0 quarantined = %+v", rel.Quarantined)
			}

			next := e.newAgent("next", "1.0.0")
			skip := activationSkip(e, next.id)
			e.schedule()
			o := upgradeOrder(next.checkin())
			if tc.want {
				if o != nil || !strings.Contains(skip, "release 2.0.0 is quarantined for linux/amd64") {
					t.Errorf("next linux agent: order %+v, event 277 reason %q", o, skip)
				}
			} else if o == nil || skip != "" {
				t.Errorf("next linux agent: no upgrade on activation (277 %q)", skip)
			}
			win := e.newAgent("win", "1.0.0", onWindows)
			e.schedule()
			if o := upgradeOrder(win.checkin()); o == nil || o.Version != "2.0.0" {
				t.Errorf("windows agent: order %+v, want an upgrade to 2.0.0", o)
			}

			// A restart keeps the quarantine: it is in the database.
			e.restart()
			if _, after := e.quarantined("2.0.0", "linux/amd64"); after != tc.want {
				t.Errorf("after a restart: quarantined %v, want %v", after, tc.want)
			}
		})
	}
}

// TestQuarantineActivationTarget: "latest" resolves to the newest release
// not quarantined; a quarantined pin gives no target; passing over a
// quarantined release never downgrades an agent.
func TestQuarantineActivationTarget(t *testing.T) {
	for _, tc := range []struct {
		name     string
		pin      string
		version  string
		want     string // the activation's target, "" for none
		skipped  string // in event 277's reason, "" for no event
		statusOK bool   // the agent shows up_to_date afterwards
	}{
		{name: "latest picks the newest not quarantined", version: "1.0.0", want: "1.5.0"},
		{name: "no downgrade from the quarantined release", version: "2.0.0", skipped: "release 2.0.0 is quarantined for linux/amd64: bad build", statusOK: true},
		{name: "already at the newest not quarantined", version: "1.5.0", statusOK: true},
		{name: "a quarantined pin gives nothing", pin: "2.0.0", version: "1.0.0", skipped: "release 2.0.0 is quarantined for linux/amd64: bad build", statusOK: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			e.importPack("1.5.0", "", "linux/amd64")
			e.importPack("2.0.0", "", "linux/amd64")
			activateAll(e)
			if tc.pin != "" {
				e.must("PUT", "/v1/settings/version.linux/amd64", protocol.RoleAdmin, protocol.SettingRequest{Value: tc.pin}, nil)
			}
			e.must("POST", "/v1/releases/2.0.0/quarantine", protocol.RoleOperator, protocol.QuarantineRequest{Reason: "bad build"}, nil)
			a := e.newAgent("a", tc.version)
			e.schedule()
			o := upgradeOrder(a.checkin())
			switch {
			case tc.want == "" && o != nil:
				t.Errorf("order to %s, want none", o.Version)
			case tc.want != "" && (o == nil || o.Version != tc.want):
				t.Errorf("order %+v, want one to %s", o, tc.want)
			}
			if got := activationSkip(e, a.id); got != tc.skipped {
				t.Errorf("event 277 reason %q, want %q", got, tc.skipped)
			}
			var ag protocol.Agent
			e.must("GET", "/v1/agents/"+a.id, protocol.RoleViewer, nil, &ag)
			if tc.statusOK && ag.UpgradeStatus != protocol.UpgradeUpToDate {
				t.Errorf("upgrade status %s (target %s), want up_to_date", ag.UpgradeStatus, ag.TargetVersion)
			}
		})
	}
}

// TestQuarantineUpgradeStatus: agents are not recommended a quarantined
// release, in the agent list and in /metrics, and are again once it is
// lifted.
func TestQuarantineUpgradeStatus(t *testing.T) {
	e := newEnv(t)
	e.importPack("2.0.0", "", "linux/amd64")
	a := e.newAgent("a", "1.0.0")
	status := func() (string, string) {
		t.Helper()
		var ag protocol.Agent
		e.must("GET", "/v1/agents/"+a.id, protocol.RoleViewer, nil, &ag)
		return ag.UpgradeStatus, ag.TargetVersion
	}
	if st, target := status(); st != protocol.UpgradeRecommended || target != "2.0.0" {
		t.Fatalf("before: %s to %s", st, target)
	}
	e.must("POST", "/v1/releases/2.0.0/quarantine", protocol.RoleOperator, protocol.QuarantineRequest{}, nil)
	if st, target := status(); st != protocol.UpgradeUpToDate || target != "" {
		t.Errorf("quarantined: %s to %q, want up_to_date", st, target)
	}
	if m := e.metricsText(); strings.Contains(m, `upgrade_status="upgrade_recommended"`) || !strings.Contains(m, `upgrade_status="up_to_date"`) ||
		!strings.Contains(m, "molt_release_quarantined{version=\"2.0.0\",platform=\"linux/amd64\",automatic=\"false\"} 1\n") {
		t.Errorf("/metrics recommends a quarantined release or does not show its quarantine:\n%s", m)
	}
	e.must("POST", "/v1/releases/2.0.0/unquarantine", protocol.RoleOperator, protocol.QuarantineRequest{}, nil)
	if st, target := status(); st != protocol.UpgradeRecommended || target != "2.0.0" {
		t.Errorf("unquarantined: %s to %s", st, target)
	}
	if m := e.metricsText(); strings.Contains(m, "molt_release_quarantined{") {
		t.Errorf("/metrics shows a lifted quarantine:\n%s", m)
	}
}

// TestQuarantineByHand: an operator quarantines and lifts a release per
// platform (or all of them), with events; the answers say what is
// wrong.
func TestQuarantineByHand(t *testing.T) {
	e := newEnv(t)
	e.importPack("2.0.0", "", "linux/amd64", "windows/amd64")
	activateAll(e)
	count := func(id int) int {
		n := 0
		for _, ev := range e.events() {
			if ev.ID == id {
				n++
			}
		}
		return n
	}
	var rel protocol.Release
	e.must("POST", "/v1/releases/2.0.0/quarantine", protocol.RoleOperator, protocol.QuarantineRequest{Platforms: []string{"windows/amd64"}, Reason: "crashes on Server 2016"}, &rel)
	if len(rel.Quarantined) != 1 || rel.Quarantined[0] != (protocol.Quarantine{Platform: "windows/amd64", Reason: "crashes on Server 2016", At: e.clock.Now()}) {
		t.Fatalf("answer: %+v", rel.Quarantined)
	}
	e.must("POST", "/v1/releases/2.0.0/quarantine", protocol.RoleOperator, protocol.QuarantineRequest{}, &rel)
	if len(rel.Quarantined) != 2 || rel.Quarantined[0].Platform != "linux/amd64" || rel.Quarantined[0].Reason != "quarantined by an operator" ||
		rel.Quarantined[1].Reason != "crashes on Server 2016" {
		t.Fatalf("all platforms: %+v", rel.Quarantined)
	}
	if n := count(protocol.EvQuarantined); n != 2 {
		t.Errorf("%d events 1007, want 2 (one per platform, none for one already quarantined)", n)
	}
	var rels protocol.Releases
	e.must("GET", "/v1/releases", protocol.RoleViewer, nil, &rels)
	if len(rels.Releases) != 1 || len(rels.Releases[0].Quarantined) != 2 {
		t.Errorf("GET /v1/releases: %+v", rels.Releases)
	}

	e.restart()
	if _, ok := e.quarantined("2.0.0", "windows/amd64"); !ok {
		t.Fatal("quarantine lost in a restart")
	}
	e.must("POST", "/v1/releases/2.0.0/unquarantine", protocol.RoleOperator, protocol.QuarantineRequest{Platforms: []string{"linux/amd64"}}, &rel)
	if len(rel.Quarantined) != 1 || rel.Quarantined[0].Platform != "windows/amd64" {
		t.Fatalf("after unquarantine of linux/amd64: %+v", rel.Quarantined)
	}
	if n := count(protocol.EvUnquarantined); n != 1 {
		t.Errorf("%d events 1008, want 1", n)
	}

	for _, tc := range []struct {
		name, role, path string
		body             any
		code             int
		msg              string
	}{
		{"unknown version", protocol.RoleOperator, "/v1/releases/9.9.9/quarantine", protocol.QuarantineRequest{}, 404, "release 9.9.9 is not imported"},
		{"unknown platform", protocol.RoleOperator, "/v1/releases/2.0.0/unquarantine", protocol.QuarantineRequest{Platforms: []string{"darwin/arm64"}}, 404,
			`release 2.0.0 has no pack for platform "darwin/arm64" (its platforms: linux/amd64, windows/amd64)`},
		{"viewer", protocol.RoleViewer, "/v1/releases/2.0.0/quarantine", protocol.QuarantineRequest{}, 403, ""},
		{"control character in the reason", protocol.RoleOperator, "/v1/releases/2.0.0/quarantine", protocol.QuarantineRequest{Reason: "bad\x1b[2J"}, 400, "reason contains the control character"},
		{"unknown field", protocol.RoleOperator, "/v1/releases/2.0.0/quarantine", []byte(`{"platform":"linux/amd64"}`), 400, "platform"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, pe := e.do("POST", tc.path, e.tokens[tc.role], tc.body, nil)
			if code != tc.code || !strings.Contains(pe.Error, tc.msg) {
				t.Errorf("%d %q, want %d %q", code, pe.Error, tc.code, tc.msg)
			}
		})
	}

	// Lifted, the release counts rollbacks afresh: the one before the lift
	// does not count towards releases.quarantine-after.
	e.must("POST", "/v1/releases/2.0.0/quarantine", protocol.RoleOperator, protocol.QuarantineRequest{Platforms: []string{"linux/amd64"}}, nil)
	e.must("POST", "/v1/releases/2.0.0/unquarantine", protocol.RoleOperator, protocol.QuarantineRequest{}, nil)
	e.clock.Add(1)
	rollBackActivation(t, e, e.newAgent("rb1", "1.0.0"), false)
	if _, ok := e.quarantined("2.0.0", "linux/amd64"); ok {
		t.Fatal("quarantined again by one rollback")
	}
	e.must("POST", "/v1/releases/2.0.0/quarantine", protocol.RoleOperator, protocol.QuarantineRequest{Platforms: []string{"linux/amd64"}}, nil)
	e.must("POST", "/v1/releases/2.0.0/unquarantine", protocol.RoleOperator, protocol.QuarantineRequest{}, nil)
	e.clock.Add(1)
	rollBackActivation(t, e, e.newAgent("rb2", "1.0.0"), false)
	if _, ok := e.quarantined("2.0.0", "linux/amd64"); ok {
		t.Fatal("a rollback before the lift counted")
	}
	rollBackActivation(t, e, e.newAgent("rb3", "1.0.0"), false)
	if _, ok := e.quarantined("2.0.0", "linux/amd64"); !ok {
		t.Fatal("two rollbacks since the lift did not quarantine")
	}
}

// TestQuarantineRunCanary: the rollback of a run's canary quarantines its
// target for the canary's platform, while two other agents wait for the
// next wave.
func TestQuarantineRunCanary(t *testing.T) {
	e := newEnv(t)
	e.importPack("2.0.0", "", "linux/amd64")
	agents := map[string]*simAgent{}
	for _, n := range []string{"a", "b", "c"} {
		agents[n] = e.newAgent(n, "1.0.0")
	}
	e.createRun(protocol.RunRequest{Selection: protocol.Selection{All: true}, Target: "2.0.0", MaxConcurrent: 10, RunControls: protocol.RunControls{Canary: 1}})
	e.schedule()
	var canary *simAgent
	var o *protocol.Order
	for _, a := range agents {
		if got := upgradeOrder(a.checkin()); got != nil {
			if canary != nil {
				t.Fatal("more than one agent started with one canary")
			}
			canary, o = a, got
		}
	}
	if canary == nil {
		t.Fatal("no canary started")
	}
	canary.st.LastResult = &protocol.TrialResult{Outcome: protocol.TrialRolledBack, Version: "2.0.0", Previous: "1.0.0", OrderID: o.ID, Reason: "crashed", At: e.clock.Now()}
	canary.checkin()
	reason, ok := e.quarantined("2.0.0", "linux/amd64")
	if !ok || !strings.Contains(reason, "rolled back on a canary of run r-") {
		t.Fatalf("after the canary's rollback: quarantined %v %q", ok, reason)
	}
}
