//go:build unix

package scenarios

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
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

// Scenario 2: a batch run over 12 supervised agents with --max-concurrent
// 3: the events never show more than 3 deployments in progress at once,
// and every agent ends upgraded (706 each).
func TestScenario02Batch(t *testing.T) {
	needReal(t)
	f := newFleet(t, nil, e2etest.PackOptions{Version: v2})
	srv := f.srv
	ids := map[string]string{}
	var hosts []*e2etest.Host
	for i := range 12 {
		hosts = append(hosts, f.host(fmt.Sprintf("batch-%02d", i), v1))
	}
	for _, h := range hosts {
		ids[h.WaitEnrolled(60*time.Second)] = h.Name
	}
	e2etest.Eventually(t, 60*time.Second, "12 agents online", func() (bool, string) {
		n := 0
		for _, a := range srv.Agents() {
			if a.Status == protocol.AgentOnline {
				n++
			}
		}
		return n == 12, fmt.Sprint(n)
	})
	code, run := f.upgradeWait("--target", v2, "--all", "--max-concurrent", "3", "--text", "batch of 12")
	if code != 0 || run.Status != protocol.RunEndedOK || run.Total != 12 || run.Counts[protocol.StateSucceeded] != 12 {
		t.Fatalf("molt upgrade --wait: exit %d, run %+v", code, run)
	}
	evs := srv.Events()
	spans := e2etest.Spans(evs, func(e protocol.Event) bool { return e.RunID == run.ID })
	if len(spans) != 12 {
		t.Fatalf("%d deployments requested in the events, want 12: %+v", len(spans), spans)
	}
	most := e2etest.MaxOverlap(spans)
	t.Logf("at most %d deployments in progress at once (from the events' times)", most)
	if most > 3 {
		t.Errorf("%d deployments in progress at once with --max-concurrent 3: %+v", most, spans)
	}
	if most < 2 {
		t.Errorf("the run never had 2 deployments in progress at once (%d): the limit was not used", most)
	}
	upgraded := map[string]int{}
	for _, e := range e2etest.OfRun(evs, run.ID) {
		if e.ID == protocol.EvUpgraded {
			upgraded[e.AgentID]++
		}
	}
	for id, name := range ids {
		if upgraded[id] != 1 {
			t.Errorf("%s (%s): %d events 706, want 1", name, id, upgraded[id])
		}
	}
	for _, a := range srv.Agents() {
		if a.Version != v2 || a.UpgradeStatus != protocol.UpgradeUpToDate {
			t.Errorf("agent %s: %s %s", a.Name, a.Version, a.UpgradeStatus)
		}
	}
}

// Scenario 3: an agent offline at the start of a run is upgraded when it
// comes back, and an agent that was enrolled but never connected is
// upgraded on its first connection; both wait as waiting_for_host
// meanwhile, with the reason.
func TestScenario03OfflineAndNeverConnected(t *testing.T) {
	needReal(t)
	f := newFleet(t, nil, e2etest.PackOptions{Version: v2})
	srv := f.srv
	away := f.host("away", v1)
	awayID := away.WaitEnrolled(30 * time.Second)
	f.waitAgent(awayID, v1, true)
	away.Stop()
	e2etest.Eventually(t, 30*time.Second, "away shown offline", func() (bool, string) {
		a := srv.Agent(awayID)
		return a.Status == protocol.AgentOffline, a.Status
	})
	fresh := srv.NewHost(e2etest.HostOptions{Name: "fresh", Version: v1, Supervised: true})
	freshID := fresh.PreEnroll(f.tok)
	if a := srv.Agent(freshID); a.Status != protocol.AgentOffline || !a.LastSeen.IsZero() {
		t.Errorf("the never connected agent: %s, last seen %s", a.Status, a.LastSeen)
	}

	run := srv.Upgrade("--target", v2, "--all", "--text", "while away")
	reasons := map[string]string{}
	e2etest.Eventually(t, 30*time.Second, "both deployments waiting for their host", func() (bool, string) {
		rep := srv.RunReport(run.ID)
		for _, d := range rep.Deployments {
			if d.State == protocol.StateWaitingForHost {
				reasons[d.AgentID] = d.Reason
			}
		}
		return len(reasons) == 2, fmt.Sprintf("%+v", rep.Deployments)
	})
	if !strings.Contains(reasons[awayID], "offline") || reasons[freshID] != "never connected" {
		t.Errorf("waiting reasons: away %q, fresh %q", reasons[awayID], reasons[freshID])
	}

	away.Start()
	f.waitAgent(awayID, v2, true)
	if st := deploymentOf(t, srv, run.ID, freshID).State; st != protocol.StateWaitingForHost {
		t.Errorf("fresh, still not started, is %s", st)
	}
	fresh.Start()
	if got := fresh.WaitEnrolled(5 * time.Second); got != freshID {
		t.Fatalf("fresh enrolled again as %s instead of using its identity %s", got, freshID)
	}
	f.waitAgent(freshID, v2, true)
	end := srv.WaitRun(run.ID, 60*time.Second)
	if end.Status != protocol.RunEndedOK || end.Counts[protocol.StateSucceeded] != 2 {
		t.Fatalf("run: %+v", end)
	}
	for _, id := range []string{awayID, freshID} {
		ids := e2etest.IDs(e2etest.OfAgent(srv.Events(), id))
		if !slices.Contains(ids, protocol.EvDeploymentWaiting) || !slices.Contains(ids, protocol.EvUpgraded) {
			t.Errorf("events of %s: %v, want 715 and 706", id, ids)
		}
	}
}

// deploymentOf is the run's deployment of one agent.
func deploymentOf(t *testing.T, srv *e2etest.Server, runID, agentID string) protocol.Deployment {
	t.Helper()
	for _, d := range srv.RunReport(runID).Deployments {
		if d.AgentID == agentID {
			return d
		}
	}
	t.Fatalf("run %s has no deployment of %s", runID, agentID)
	return protocol.Deployment{}
}

// Scenario 4: a busy agent (molt-agent hold) waits as waiting_for_host and
// is upgraded once the hold ends.
func TestScenario04Busy(t *testing.T) {
	needReal(t)
	f := newFleet(t, nil, e2etest.PackOptions{Version: v2})
	srv := f.srv
	h := f.host("busy", v1)
	id := h.WaitEnrolled(30 * time.Second)
	f.waitAgent(id, v1, true)
	if r := h.AgentCLI("hold", "--reason", "nightly backup", "--for", "10m"); r.Code != 0 {
		t.Fatalf("%s", r)
	}
	e2etest.Eventually(t, 30*time.Second, "the server shows the agent busy", func() (bool, string) {
		a := srv.Agent(id)
		return a.Busy, fmt.Sprintf("busy %v holds %v", a.Busy, a.Holds)
	})
	run := srv.Upgrade("--target", v2, "--agents", id, "--text", "busy host")
	e2etest.Eventually(t, 30*time.Second, "the deployment waits for its host", func() (bool, string) {
		d := deploymentOf(t, srv, run.ID, id)
		return d.State == protocol.StateWaitingForHost, d.State + " " + d.Reason
	})
	// It keeps waiting while the hold lasts.
	time.Sleep(6 * time.Second)
	d := deploymentOf(t, srv, run.ID, id)
	if d.State != protocol.StateWaitingForHost || (!strings.Contains(d.Reason, "busy") && !strings.Contains(d.Reason, "held")) {
		t.Fatalf("during the hold: %s %q", d.State, d.Reason)
	}
	if h.Current() != v1 || srv.Agent(id).Version != v1 {
		t.Fatalf("upgraded during the hold")
	}
	if r := h.AgentCLI("release", "--all"); r.Code != 0 {
		t.Fatalf("%s", r)
	}
	f.waitAgent(id, v2, true)
	if end := srv.WaitRun(run.ID, 60*time.Second); end.Status != protocol.RunEndedOK {
		t.Fatalf("run: %+v", end)
	}
}

// Scenario 5: a waiting deployment skipped by an operator (molt
// deployments skip) is not carried out, and the agent is not repaired
// later, even though it then runs another version than its last
// successful target.
func TestScenario05Skip(t *testing.T) {
	needReal(t)
	f := newFleet(t, nil, e2etest.PackOptions{Version: v1}, e2etest.PackOptions{Version: v2})
	srv := f.srv
	h := f.host("skipped", v1)
	id := h.WaitEnrolled(30 * time.Second)
	f.waitAgent(id, v1, true)
	if code, run := f.upgradeWait("--target", v2, "--agents", id); code != 0 {
		t.Fatalf("first run: exit %d %+v", code, run)
	}
	f.waitAgent(id, v2, true) // its last successful target is now v2

	h.Stop()
	e2etest.Eventually(t, 30*time.Second, "shown offline", func() (bool, string) {
		a := srv.Agent(id)
		return a.Status == protocol.AgentOffline, a.Status
	})
	run := srv.Upgrade("--target", v1, "--agents", id, "--text", "revert, skipped")
	var d protocol.Deployment
	e2etest.Eventually(t, 30*time.Second, "waiting for its host", func() (bool, string) {
		d = deploymentOf(t, srv, run.ID, id)
		return d.State == protocol.StateWaitingForHost, d.State
	})
	var skipped protocol.Deployment
	srv.JSON(&skipped, "deployments", "skip", d.ID)
	if skipped.State != protocol.StateSkipped {
		t.Fatalf("molt deployments skip: %+v", skipped)
	}
	if r := srv.Molt("deployments", "skip", d.ID); r.Code == 0 {
		t.Errorf("skipping a skipped deployment again succeeded: %s", r)
	}
	end := srv.WaitRun(run.ID, 30*time.Second)
	if end.Counts[protocol.StateSkipped] != 1 {
		t.Errorf("run after the skip: %+v", end)
	}

	// By hand, while the service is stopped, the host goes back to v1; then
	// it comes back with v1, not its last successful target v2.
	if r := h.AgentCLI("upgrade", "--pack", e2etest.Pack(t, e2etest.PackOptions{Version: v1})); r.Code != 0 {
		t.Fatalf("%s", r)
	}
	h.Start()
	f.waitAgent(id, v1, true)
	time.Sleep(8 * time.Second) // several check-ins
	a := srv.Agent(id)
	if a.Version != v1 || h.Current() != v1 {
		t.Errorf("after the skip: the server says %s, active.json %s; want %s", a.Version, h.Current(), v1)
	}
	for _, dep := range srv.History("--agent", id) {
		if dep.Kind == protocol.KindRepair || (dep.RunID == run.ID && dep.State != protocol.StateSkipped) {
			t.Errorf("deployment after the skip: %+v", dep)
		}
	}
	ids := e2etest.IDs(e2etest.OfAgent(srv.Events(), id))
	if !slices.Contains(ids, protocol.EvSkippedByOperator) || slices.Contains(ids, protocol.EvRepairScheduled) {
		t.Errorf("events: %v, want 710 and no 709", ids)
	}
}

// Scenario 6: an agent downgraded by hand (molt-agent upgrade --pack to
// the old version) after a successful run comes back and is repaired to
// the run's target: a REPAIR entry in the history.
func TestScenario06Repair(t *testing.T) {
	needReal(t)
	f := newFleet(t, nil, e2etest.PackOptions{Version: v2})
	srv := f.srv
	h := f.host("repaired", v1)
	id := h.WaitEnrolled(30 * time.Second)
	f.waitAgent(id, v1, true)
	if code, run := f.upgradeWait("--target", v2, "--agents", id); code != 0 {
		t.Fatalf("run: exit %d %+v", code, run)
	}
	f.waitAgent(id, v2, true)

	r := h.AgentCLI("upgrade", "--pack", e2etest.Pack(t, e2etest.PackOptions{Version: v1}), "--wait")
	if r.Code != 0 {
		t.Fatalf("manual downgrade: %s", r)
	}
	var repair protocol.Deployment
	e2etest.Eventually(t, 60*time.Second, "a repair deployment", func() (bool, string) {
		for _, d := range srv.History("--agent", id) {
			if d.Kind == protocol.KindRepair {
				repair = d
				return true, ""
			}
		}
		return false, "none"
	})
	if repair.From != v1 || repair.Target != v2 {
		t.Errorf("repair: %+v", repair)
	}
	f.waitAgent(id, v2, true)
	e2etest.Eventually(t, 30*time.Second, "the repair succeeded", func() (bool, string) {
		d := srv.DeployReport(repair.ID).Deployment
		return d.State == protocol.StateSucceeded, d.State
	})
	text := srv.OK("history", "--agent", id).Stdout
	entry := false
	for _, line := range strings.Split(text, "\n") {
		f := strings.Fields(line)
		entry = entry || (len(f) > 0 && f[0] == repair.ID && slices.Contains(f, protocol.KindRepair) && slices.Contains(f, protocol.StateSucceeded))
	}
	if !entry {
		t.Errorf("molt history shows no succeeded repair entry %s:\n%s", repair.ID, text)
	}
	ids := e2etest.IDs(e2etest.OfAgent(srv.Events(), id))
	i := slices.Index(ids, protocol.EvRepairScheduled)
	if i < 0 || !slices.Contains(ids[i:], protocol.EvUpgraded) {
		t.Errorf("events: %v, want 709 then 706", ids)
	}
}

// Scenario 7: a run to the previous version is a revert; it succeeds and
// the supervisors follow (bin/molt-supervisor is the old version again).
func TestScenario07Revert(t *testing.T) {
	needReal(t)
	f := newFleet(t, nil, e2etest.PackOptions{Version: v1}, e2etest.PackOptions{Version: v2})
	srv := f.srv
	hosts := []*e2etest.Host{f.host("rev-a", v1), f.host("rev-b", v1)}
	for _, h := range hosts {
		f.waitAgent(h.WaitEnrolled(30*time.Second), v1, true)
	}
	if code, run := f.upgradeWait("--target", v2, "--all"); code != 0 {
		t.Fatalf("run to %s: exit %d %+v", v2, code, run)
	}
	for _, h := range hosts {
		f.waitAgent(h.ID(), v2, true)
		if v := h.SupervisorVersion(); v != v2 {
			t.Fatalf("%s: supervisor %s after the upgrade", h.Name, v)
		}
	}
	plan := srv.Molt("upgrade", "--target", v1, "--all")
	if !strings.Contains(plan.Stdout+plan.Stderr, "revert") {
		t.Errorf("the plan of a run to a lower version does not say revert:\n%s", plan)
	}
	code, run := f.upgradeWait("--target", v1, "--all", "--text", "revert")
	if code != 0 || run.Status != protocol.RunEndedOK || run.Counts[protocol.StateSucceeded] != 2 {
		t.Fatalf("revert run: exit %d %+v", code, run)
	}
	for _, d := range srv.RunReport(run.ID).Deployments {
		if !d.Revert || d.From != v2 || d.Target != v1 {
			t.Errorf("revert deployment: %+v", d)
		}
	}
	for _, h := range hosts {
		f.waitAgent(h.ID(), v1, true)
		e2etest.Eventually(t, 30*time.Second, h.Name+"'s supervisor back at "+v1, func() (bool, string) {
			v := h.SupervisorVersion()
			return v == v1, v
		})
		if act := h.Active(); act.Current != v1 || act.Previous != v2 {
			t.Errorf("%s active.json: %+v", h.Name, act)
		}
	}
}

// Scenario 8: after each successful upgrade only the current and the
// previous versions stay on each host (versions/), and the cleanup is
// reported (712).
func TestScenario08Cleanup(t *testing.T) {
	needReal(t)
	f := newFleet(t, nil, e2etest.PackOptions{Version: v2}, e2etest.PackOptions{Version: v3})
	srv := f.srv
	hosts := []*e2etest.Host{f.host("clean-a", v1), f.host("clean-b", v1)}
	for _, h := range hosts {
		f.waitAgent(h.WaitEnrolled(30*time.Second), v1, true)
	}
	for _, step := range []struct{ target, previous, gone string }{{v2, v1, ""}, {v3, v2, v1}} {
		if code, run := f.upgradeWait("--target", step.target, "--all"); code != 0 {
			t.Fatalf("run to %s: exit %d %+v", step.target, code, run)
		}
		want := []string{step.previous, step.target}
		for _, h := range hosts {
			f.waitAgent(h.ID(), step.target, true)
			e2etest.Eventually(t, 30*time.Second, h.Name+" keeps only "+strings.Join(want, ", "), func() (bool, string) {
				got := h.Versions()
				return slices.Equal(got, want), strings.Join(got, ", ")
			})
		}
	}
	for _, h := range hosts {
		n := 0
		for _, e := range e2etest.OfAgent(srv.Events(), h.ID()) {
			if e.ID == protocol.EvCleanupDone {
				n++
			}
		}
		if n != 2 {
			t.Errorf("%s: %d cleanup_done events, want 2", h.Name, n)
		}
	}
}

// Scenario 9: the hooks run with the right environment for every
// deployment (succeeded and skipped alike) and once for the run.
func TestScenario09Hooks(t *testing.T) {
	needReal(t)
	f := newFleet(t, nil, e2etest.PackOptions{Version: v2})
	srv := f.srv
	out := filepath.Join(srv.Dir, "hook-out")
	if err := os.MkdirAll(out, 0o755); err != nil {
		t.Fatal(err)
	}
	depHook := writeScript(t, srv.Dir, "on-deployment-end.sh",
		`env | grep '^MOLT_' | sort > "`+out+`/dep-$MOLT_DEPLOYMENT_ID.tmp" && mv "`+out+`/dep-$MOLT_DEPLOYMENT_ID.tmp" "`+out+`/dep-$MOLT_DEPLOYMENT_ID.env"`)
	runHook := writeScript(t, srv.Dir, "on-run-end.sh",
		`env | grep '^MOLT_' | sort > "`+out+`/run-$$.tmp" && mv "`+out+`/run-$$.tmp" "`+out+`/run-$$.env"`)
	srv.OK("settings", "set", "hooks.on-deployment-end", depHook)
	srv.OK("settings", "set", "hooks.on-run-end", runHook)

	hosts := []*e2etest.Host{f.host("hook-a", v1), f.host("hook-b", v1)}
	for _, h := range hosts {
		f.waitAgent(h.WaitEnrolled(30*time.Second), v1, true)
	}
	never := srv.NewHost(e2etest.HostOptions{Name: "hook-never", Version: v1, Supervised: true})
	neverID := never.PreEnroll(f.tok)

	text := "hooks: wave 1"
	run := srv.Upgrade("--target", v2, "--all", "--text", text)
	var neverDep protocol.Deployment
	e2etest.Eventually(t, 30*time.Second, "the never connected agent waits", func() (bool, string) {
		neverDep = deploymentOf(t, srv, run.ID, neverID)
		return neverDep.State == protocol.StateWaitingForHost, neverDep.State
	})
	srv.OK("deployments", "skip", neverDep.ID)
	end := srv.WaitRun(run.ID, 90*time.Second)
	if end.Status != protocol.RunEndedOK {
		t.Fatalf("run: %+v", end)
	}

	deps := srv.RunReport(run.ID).Deployments
	e2etest.Eventually(t, 30*time.Second, "the hooks ran", func() (bool, string) {
		files, _ := filepath.Glob(filepath.Join(out, "*.env"))
		return len(files) == len(deps)+1, strings.Join(files, " ")
	})
	time.Sleep(2 * time.Second) // a second run-end hook would show up by now
	for _, d := range deps {
		env := readEnv(t, filepath.Join(out, "dep-"+d.ID+".env"))
		want := map[string]string{
			"MOLT_RUN_ID": run.ID, "MOLT_RUN_TEXT": text, "MOLT_AGENT": d.AgentID, "MOLT_AGENT_NAME": d.AgentName,
			"MOLT_DEPLOYMENT_ID": d.ID, "MOLT_DEPLOYMENT_STATUS": d.State, "MOLT_DEPLOYMENT_KIND": protocol.KindUpgrade,
			"MOLT_TARGET_VERSION": v2, "MOLT_WAVE": "0", "MOLT_WAVE_NAME": "all", "MOLT_CANARY": "false",
		}
		for k, v := range want {
			if env[k] != v {
				t.Errorf("on-deployment-end of %s (%s): %s=%q, want %q", d.ID, d.State, k, env[k], v)
			}
		}
	}
	if n := len(deps); n != 3 {
		t.Errorf("%d deployments, want 3", n)
	}
	runs, _ := filepath.Glob(filepath.Join(out, "run-*.env"))
	if len(runs) != 1 {
		t.Fatalf("on-run-end ran %d times, want once", len(runs))
	}
	env := readEnv(t, runs[0])
	for k, v := range map[string]string{"MOLT_RUN_ID": run.ID, "MOLT_RUN_TEXT": text, "MOLT_RUN_STATUS": protocol.HookEndedOK} {
		if env[k] != v {
			t.Errorf("on-run-end: %s=%q, want %q", k, env[k], v)
		}
	}
	if _, ok := env["MOLT_DEPLOYMENT_ID"]; ok {
		t.Errorf("on-run-end has a deployment id: %v", env)
	}
	ran := 0
	for _, e := range srv.Events() {
		switch e.ID {
		case protocol.EvHookRan:
			ran++
		case protocol.EvHookFailed:
			t.Errorf("hook failed: %+v", e)
		}
	}
	if ran != 4 {
		t.Errorf("%d hook_ran events, want 4 (3 deployments and the run)", ran)
	}
}

func writeScript(t *testing.T, dir, name, body string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte("#!/bin/sh\n"+body+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

// readEnv reads NAME=value lines.
func readEnv(t *testing.T, path string) map[string]string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("hook output: %v", err)
	}
	env := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok {
			env[k] = v
		}
	}
	return env
}

// Scenario 10: with scope supervised an unsupervised agent is left out and
// shown as such; with scope all it is upgraded: it switches and exits 11
// (nothing restarts it), its deployment stays open until it is started
// again, then it runs the new version.
func TestScenario10Scope(t *testing.T) {
	needReal(t)
	f := newFleet(t, nil, e2etest.PackOptions{Version: v2})
	srv := f.srv
	sup := f.host("scope-sup", v1)
	un := f.host("scope-unsup", v1, func(o *e2etest.HostOptions) { o.Supervised = false })
	supID, unID := sup.WaitEnrolled(30*time.Second), un.WaitEnrolled(30*time.Second)
	f.waitAgent(supID, v1, true)
	f.waitAgent(unID, v1, false)
	if a := srv.Agent(unID); a.Supervised || a.UpgradeStatus != protocol.UpgradeManualRequired {
		t.Errorf("the unsupervised agent: supervised %v, %s", a.Supervised, a.UpgradeStatus)
	}

	plan := srv.Molt("upgrade", "--target", v2, "--all")
	if !strings.Contains(plan.Stdout, "scope-unsup") || !strings.Contains(plan.Stdout, "not supervised") {
		t.Errorf("the plan does not show the unsupervised agent left out:\n%s", plan)
	}
	code, run := f.upgradeWait("--target", v2, "--all", "--text", "scope supervised")
	if code != 0 || run.Scope != protocol.ScopeSupervised || run.Total != 1 {
		t.Fatalf("run with scope supervised: exit %d %+v", code, run)
	}
	excluded := false
	for _, x := range run.Excluded {
		excluded = excluded || (x.AgentID == unID && strings.Contains(x.Reason, "not supervised"))
	}
	if !excluded {
		t.Errorf("run.excluded does not name the unsupervised agent: %+v", run.Excluded)
	}
	if text := srv.OK("runs", "show", run.ID).Stdout; !strings.Contains(text, "scope-unsup") || !strings.Contains(text, "not supervised") {
		t.Errorf("molt runs show does not show the exclusion:\n%s", text)
	}
	if v := srv.Agent(unID).Version; v != v1 || un.Current() != v1 {
		t.Fatalf("the unsupervised agent was upgraded by a supervised-scope run: %s", v)
	}

	run2 := srv.Upgrade("--target", v2, "--all", "--scope", "all", "--text", "scope all")
	if run2.Total != 1 {
		t.Fatalf("run with scope all: %+v", run2)
	}
	if c := un.WaitExit(60 * time.Second); c != 11 {
		t.Fatalf("the unsupervised agent exited %d after its switch, want 11", c)
	}
	if act := un.Active(); act.Current != v2 {
		t.Fatalf("active.json after the switch: %+v", act)
	}
	time.Sleep(3 * time.Second)
	d := deploymentOf(t, srv, run2.ID, unID)
	if protocol.Terminal(d.State) {
		t.Fatalf("the deployment ended while the agent is stopped: %+v", d)
	}
	un.Start()
	f.waitAgent(unID, v2, false)
	end := srv.WaitRun(run2.ID, 60*time.Second)
	d = deploymentOf(t, srv, run2.ID, unID)
	t.Logf("scope all: run %s, the unsupervised agent's deployment %s %q", end.Status, d.State, d.Reason)
	if end.Status != protocol.RunEndedOK || d.State != protocol.StateSucceeded {
		t.Errorf("scope all: run %+v, deployment %+v", end, d)
	}
}

// Scenario 11: agents of one cluster are never upgraded at the same time,
// whatever the run's concurrency.
func TestScenario11Cluster(t *testing.T) {
	needReal(t)
	f := newFleet(t, nil, e2etest.PackOptions{Version: v2})
	srv := f.srv
	var hosts []*e2etest.Host
	for _, n := range []string{"db-1", "db-2", "db-3"} {
		hosts = append(hosts, f.host(n, v1, func(o *e2etest.HostOptions) { o.Cluster = "db-east" }))
	}
	for _, h := range hosts {
		f.waitAgent(h.WaitEnrolled(30*time.Second), v1, true)
	}
	code, run := f.upgradeWait("--target", v2, "--all", "--max-concurrent", "10", "--text", "cluster")
	if code != 0 || run.Counts[protocol.StateSucceeded] != 3 {
		t.Fatalf("run: exit %d %+v", code, run)
	}
	evs := srv.Events()
	spans := e2etest.Spans(evs, func(e protocol.Event) bool { return e.RunID == run.ID })
	if len(spans) != 3 {
		t.Fatalf("%d deployments in the events, want 3", len(spans))
	}
	if most := e2etest.MaxOverlap(spans); most != 1 {
		t.Errorf("%d agents of cluster db-east upgraded at once: %+v", most, spans)
	}
	waited := false
	for _, e := range e2etest.OfRun(evs, run.ID) {
		waited = waited || (e.ID == protocol.EvDeploymentWaiting && strings.Contains(e.Message+e.Fields["reason"], "cluster"))
	}
	if !waited {
		t.Errorf("no deployment waited for its cluster (event 715 with the reason)")
	}
}

// Scenario 12: a release whose agent crashes at start is rolled back by
// the supervisor: the server shows rolled_back with the agent's reason,
// the host runs the old version again, and the failed version's logs are
// on the host.
func TestScenario12RolledBack(t *testing.T) {
	needReal(t)
	f := newFleet(t, nil, e2etest.PackOptions{Version: v2}, e2etest.PackOptions{Version: bad, AgentMode: "crash-at-start"})
	srv := f.srv
	h := f.host("rollback", v1)
	id := h.WaitEnrolled(30 * time.Second)
	f.waitAgent(id, v1, true)
	code, run := f.upgradeWait("--target", bad, "--agents", id, "--text", "a bad release")
	if code != 3 || run.Status != protocol.RunEndedNotOK || run.Counts[protocol.StateRolledBack] != 1 {
		t.Fatalf("run to the bad release: exit %d (want 3) %+v", code, run)
	}
	d := deploymentOf(t, srv, run.ID, id)
	if d.State != protocol.StateRolledBack || d.Reason == "" {
		t.Fatalf("deployment: %+v", d)
	}
	t.Logf("rolled back: %s", d.Reason)
	a := srv.Agent(id)
	if a.Version != v1 || a.LastResult == nil || a.LastResult.Outcome != protocol.TrialRolledBack || a.LastResult.Version != bad {
		t.Fatalf("agent after the rollback: %s %+v", a.Version, a.LastResult)
	}
	if text := srv.OK("runs", "report", run.ID).Stdout; !strings.Contains(text, "rolled_back") {
		t.Errorf("molt runs report:\n%s", text)
	}
	ids := e2etest.IDs(e2etest.OfAgent(srv.Events(), id))
	if !slices.Contains(ids, protocol.EvRolledBack) || slices.Contains(ids, protocol.EvUpgraded) {
		t.Errorf("events: %v, want 708 and no 706", ids)
	}

	// On the host: the old version runs, the result names the failed
	// version's log, which is there with the crash in it.
	res, ok := h.Result()
	if !ok || res.Outcome != "rolled_back" || res.Version != bad || res.Previous != v1 || res.Reason == "" {
		t.Fatalf("result.json: %+v", res)
	}
	if act := h.Active(); act.Current != v1 || act.Trial != nil {
		t.Errorf("active.json: %+v", act)
	}
	if res.Logs == "" {
		t.Fatalf("result.json names no logs")
	}
	logs, err := os.ReadFile(res.Logs)
	if err != nil || !strings.Contains(string(logs), "testagent "+bad+" starting") {
		t.Errorf("the failed version's log %s: %v\n%s", res.Logs, err, logs)
	}
	if !strings.Contains(a.LastResult.Logs, filepath.Base(res.Logs)) {
		t.Errorf("the server shows logs %q, the host has %s", a.LastResult.Logs, res.Logs)
	}
	e2etest.Eventually(t, 30*time.Second, "the agent runs "+v1, func() (bool, string) {
		var st struct {
			Agent struct {
				Version string `json:"version"`
				Running bool   `json:"running"`
			} `json:"agent"`
		}
		r := h.AgentCLI("status", "--json")
		_ = json.Unmarshal([]byte(r.Stdout), &st)
		return st.Agent.Running && st.Agent.Version == v1, r.Stdout
	})
}
