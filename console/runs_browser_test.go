//go:build unix

package console_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/moltfleet/molt/internal/e2etest"
	"github.com/moltfleet/molt/protocol"
)

// An operator starts a run from the Upgrade dialog: the preview shows the
// plan and the agent left out with the server's reason, the confirmation
// starts it, and the run page follows it live (a wave waiting for
// approval, Promote, ended_ok) without a reload.
func TestBrowserUpgradeDialogRunLive(t *testing.T) {
	t.Parallel()
	f := startFleet(t, fleetOptions{Hosts: 3, Host: func(o *e2etest.HostOptions) {
		if o.Name == "host-3" {
			o.Supervised = false // left out under scope supervised
		}
	}})
	b := newBrowser(t, f.srv)
	b.signIn(f.token("operator"))
	b.open("/runs")
	b.waitText(`[data-test=runs-table]`, "No run yet", 10*time.Second)
	b.evalInto(`window.__notReloaded = true`, nil)

	b.click(`[data-test=runs-new]`)
	b.waitFor("the dialog's platforms", `document.querySelectorAll('[data-test=upgrade-platform-row]').length === 1`, 20*time.Second)
	if s := b.text(`[data-test=upgrade-summary]`); !strings.Contains(s, "Every active agent") || !strings.Contains(s, "3 agents now") {
		t.Errorf("selection summary %q", s)
	}
	var versions []string
	b.evalInto(`[...document.querySelector('[data-test=upgrade-target]').options].map(o => o.value)`, &versions)
	if want := []string{"latest", v2, v1}; fmt.Sprint(versions) != fmt.Sprint(want) {
		t.Errorf("target versions %v, want %v (latest, then newest first)", versions, want)
	}
	b.shot("upgrade-dialog")
	b.checkA11y("upgrade dialog")
	b.fill(`[data-test=upgrade-target]`, v2)
	b.typeIn(`[data-test=upgrade-text]`, "from the console")
	b.click(`[data-test=upgrade-rollout] summary`)
	b.typeIn(`[data-test=upgrade-waves]`, "50%,100%")
	b.click(`[data-test=upgrade-wave-approve]`)

	b.click(`[data-test=upgrade-preview]`)
	b.waitFor("the plan", `!!document.querySelector('[data-test=upgrade-plan-row]')`, 20*time.Second)
	if s := b.text(`[data-test=upgrade-headline]`); !strings.Contains(s, "Upgrade run: 2 agents, at most 10 at once") {
		t.Errorf("headline %q", s)
	}
	if s := b.text(`[data-test=upgrade-plan-row]`); !strings.Contains(s, v2) || !strings.Contains(s, "2") {
		t.Errorf("plan row %q", s)
	}
	// The left-out agent and its reason, as the server gave them.
	code, body := b.fetch("POST", "/v1/runs", protocol.RunRequest{Target: v2, Selection: protocol.Selection{Filter: &protocol.AgentFilter{}}, DryRun: true},
		map[string]string{"X-CSRF-Token": b.csrf()})
	var dry protocol.Run
	if err := json.Unmarshal([]byte(body), &dry); code != 200 || err != nil || len(dry.Excluded) != 1 {
		t.Fatalf("dry run: %d %s", code, body)
	}
	if n := b.count(`[data-test=upgrade-excluded-row]`); n != 1 {
		t.Fatalf("%d left-out rows, want 1", n)
	}
	if s := b.text(`[data-test=upgrade-excluded-row]`); !strings.Contains(s, f.ids[2]) || !strings.Contains(s, dry.Excluded[0].Reason) {
		t.Errorf("left-out row %q, want %s and %q", s, f.ids[2], dry.Excluded[0].Reason)
	}
	b.evalInto(`document.querySelector('dialog').scrollTop = 1e6`, nil)
	b.shot("upgrade-preview")
	b.checkA11y("upgrade preview")

	b.click(`[data-test=upgrade-start]`)
	b.waitText(`dialog:last-of-type`, "Start upgrading 2 agents?", 20*time.Second)
	b.click(`[data-test=confirm-ok]`)
	b.waitFor("the run page", `location.hash.startsWith('#/runs/r-') && !!document.querySelector('[data-test=run-title]')`, 20*time.Second)
	if n := b.count(`dialog`); n != 0 {
		t.Errorf("%d dialogs left open", n)
	}
	runs := f.srv.Runs()
	if len(runs) != 1 || runs[0].Text != "from the console" || runs[0].Selection.Filter == nil || !runs[0].WaveApprove || len(runs[0].Waves) != 2 {
		t.Fatalf("runs: %+v", runs)
	}
	id := runs[0].ID

	// The first wave ends and waits for approval; Promote opens the next.
	b.waitFor("wave 0 done, waiting for approval", `document.querySelector('[data-test=wave-row][data-wave="0"] [data-test=wave-state]')?.innerText === 'approval'`, 180*time.Second)
	b.shotTop("run-approval")
	b.checkA11y("run")
	b.click(`[data-test=run-promote]`)
	b.waitFor("the run ended ok", `document.querySelector('[data-test=run-status]')?.innerText === 'ended ok'`, 180*time.Second)
	b.waitFor("both deployments succeeded", `document.querySelectorAll('[data-test=dep-row][data-state=succeeded]').length === 2`, 10*time.Second)
	b.waitText(`[data-test=run-ended]`, "2 of 2 deployments ended", 10*time.Second)
	b.waitFor("the report's stage times", `!!document.querySelector('[data-test=report-stage-row][data-stage=total]')`, 20*time.Second)
	var still bool
	b.evalInto(`window.__notReloaded === true`, &still)
	if !still {
		t.Errorf("the page was reloaded")
	}
	for _, name := range []string{"pause", "resume", "cancel", "promote"} {
		if n := b.count(`[data-test=run-` + name + `]`); n != 0 {
			t.Errorf("an ended run shows %s", name)
		}
	}
	if n := b.count(`[data-test=run-rollback]`); n != 1 {
		t.Errorf("an ended run shows no Roll back")
	}
	b.shotTop("run")

	// Roll it back: the preview, the confirmation, the new run to its end.
	b.click(`[data-test=run-rollback]`)
	b.waitText(`[data-test=rollback-plan]`, v1, 20*time.Second)
	if s := b.text(`[data-test=rollback-plan] tbody`); !strings.Contains(s, "2") || !strings.Contains(s, "2 revert") {
		t.Errorf("rollback plan %q", s)
	}
	b.shot("rollback-preview")
	b.checkA11y("rollback dialog")
	b.click(`[data-test=rollback-start]`)
	b.waitText(`dialog:last-of-type`, "Start a run moving 2 agents back?", 10*time.Second)
	b.click(`[data-test=confirm-ok]`)
	b.waitFor("the rollback's page", `location.hash === '#/runs/r-2' && document.querySelector('[data-test=run-title]')?.innerText.startsWith('Run r-2')`, 20*time.Second)
	// It keeps the run's controls: its first wave waits for approval too.
	b.waitFor("the rollback's wave 0 done", `document.querySelector('[data-test=wave-row][data-wave="0"] [data-test=wave-state]')?.innerText === 'approval'`, 180*time.Second)
	b.click(`[data-test=run-promote]`)
	b.waitFor("the rollback ended ok", `document.querySelector('[data-test=run-status]')?.innerText === 'ended ok'`, 180*time.Second)
	for _, a := range f.srv.Agents() {
		if a.Supervised && a.Version != v1 {
			t.Errorf("agent %s runs %s after the rollback", a.Name, a.Version)
		}
	}

	b.open("/runs")
	b.waitFor("the runs in the list", fmt.Sprintf(`document.querySelector('[data-test=run-row][data-run=%q]')?.dataset.status === 'ended_ok' && document.querySelector('[data-test=run-row][data-run="r-2"]')?.dataset.status === 'ended_ok'`, id), 10*time.Second)
	b.shotTop("runs")
	b.checkA11y("runs")
	b.fill(`[data-test=runs-status]`, "running")
	b.waitText(`[data-test=runs-table]`, "No run in this status", 10*time.Second)
	b.waitFor("the filter in the address", `location.hash === '#/runs?status=running'`, 5*time.Second)
}

// A run to a release whose agent crashes at start ends not OK: the
// deployment row shows rolled_back with the agent's reason, and a
// rollback of it is refused with the server's own message.
func TestBrowserRunRolledBack(t *testing.T) {
	t.Parallel()
	f := startFleet(t, fleetOptions{Hosts: 1, Releases: []e2etest.PackOptions{{Version: v1}, {Version: v2}, {Version: bad, AgentMode: "crash-at-start"}}})
	b := newBrowser(t, f.srv)
	b.signIn(f.token("operator"))
	b.open("/runs")
	// The dialog as the fleet opens it, for the selected agents.
	b.evalInto(fmt.Sprintf(`import('/console/upgrade.js').then(m => { m.openUpgrade({agentIDs: [%q], count: 1}); return true; })`, f.ids[0]), nil)
	b.waitFor("the dialog's platforms", `!!document.querySelector('[data-test=upgrade-platform-row] select')`, 20*time.Second)
	if s := b.text(`[data-test=upgrade-summary]`); !strings.Contains(s, "1 selected agent") || !strings.Contains(s, f.ids[0]) {
		t.Errorf("selection summary %q", s)
	}
	b.fill(`[data-test=upgrade-platform-row] select`, bad)
	b.click(`[data-test=upgrade-start]`)
	b.waitText(`dialog:last-of-type`, "Start upgrading 1 agent?", 20*time.Second)
	if s := b.text(`[data-test=upgrade-plan-row]`); !strings.Contains(s, bad) {
		t.Errorf("plan row %q, want %s", s, bad)
	}
	b.click(`[data-test=confirm-ok]`)
	b.waitFor("the run page", `!!document.querySelector('[data-test=run-title]')`, 20*time.Second)
	b.waitFor("the run ended not ok", `document.querySelector('[data-test=run-status]')?.innerText === 'ended not ok'`, 180*time.Second)
	b.waitFor("the deployment rolled back", `!!document.querySelector('[data-test=dep-row][data-state=rolled_back]')`, 10*time.Second)

	runs := f.srv.Runs()
	if len(runs) != 1 {
		t.Fatalf("runs: %+v", runs)
	}
	rep := f.srv.RunReport(runs[0].ID)
	if len(rep.Deployments) != 1 || rep.Deployments[0].State != protocol.StateRolledBack || rep.Deployments[0].Reason == "" {
		t.Fatalf("deployments: %+v", rep.Deployments)
	}
	if s := b.text(`[data-test=dep-row][data-state=rolled_back] [data-test=dep-reason]`); !strings.Contains(s, rep.Deployments[0].Reason) {
		t.Errorf("deployment reason %q, want %q", s, rep.Deployments[0].Reason)
	}
	b.waitText(`[data-test=report-failures]`, "rolled back", 20*time.Second)
	b.shotTop("run-rolled-back")
	b.checkA11y("run rolled back")

	// Nothing moved, so nothing can go back: the server's message as is.
	code, body := b.fetch("POST", "/v1/runs/"+runs[0].ID+"/rollback", protocol.RollbackRequest{DryRun: true}, map[string]string{"X-CSRF-Token": b.csrf()})
	if code != 409 {
		t.Fatalf("rollback dry run: %d %s", code, body)
	}
	var apiErr protocol.Error
	_ = json.Unmarshal([]byte(body), &apiErr)
	b.click(`[data-test=run-rollback]`)
	b.waitText(`[data-test=rollback-dialog] [data-test=error]`, apiErr.Error, 20*time.Second)
	b.shotTop("rollback-refused")
	b.click(`[data-test=rollback-dialog] footer button`)

	// The dialog's own readings of durations, limits and filters.
	var got []string
	b.evalInto(`import('/console/upgrade.js').then((m) => {
		const tryD = (s) => { try { return String(m.parseDuration('Soak', s)); } catch (e) { return e.message; } };
		return [tryD(''), tryD('90s'), tryD('5m'), tryD('1h30m'), tryD('2d'), tryD('5'), tryD('5m x'),
			m.filterText({}), m.filterText({platform: 'linux/amd64', labels: {role: 'db', env: 'prod'}, inactive: true})];
	})`, &got)
	want := []string{"0", "90", "300", "5400", "172800", `Soak: "5" is not a duration like 90s, 5m or 1h30m`, `Soak: "5m x" is not a duration like 90s, 5m or 1h30m`,
		"every active agent", "platform=linux/amd64 label=env=prod label=role=db inactive=1"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("upgrade.js readings:\n got %q\nwant %q", got, want)
	}

	// Quarantined for the platform: marked in the target lists, left out
	// of the plan with the server's reason unless forced; a bad window is
	// refused with the server's message as it is.
	code, body = b.fetch("POST", "/v1/releases/"+bad+"/quarantine", protocol.QuarantineRequest{Reason: "crashes at start"}, map[string]string{"X-CSRF-Token": b.csrf()})
	if code != 200 {
		t.Fatalf("quarantine: %d %s", code, body)
	}
	b.evalInto(fmt.Sprintf(`import('/console/upgrade.js').then(m => { m.openUpgrade({agentIDs: [%q]}); return true; })`, f.ids[0]), nil)
	b.waitFor("the dialog's platforms", `!!document.querySelector('[data-test=upgrade-platform-row] select')`, 20*time.Second)
	var opts []string
	b.evalInto(`[...document.querySelector('[data-test=upgrade-platform-row] select').options].map(o => o.text)`, &opts)
	if want := []string{"the run target", "latest (" + bad + ", quarantined)", bad + " — quarantined: crashes at start", v2, v1}; fmt.Sprint(opts) != fmt.Sprint(want) {
		t.Errorf("platform targets %q, want %q", opts, want)
	}
	b.fill(`[data-test=upgrade-platform-row] select`, bad)
	b.click(`[data-test=upgrade-rollout] summary`)
	b.typeIn(`[data-test=upgrade-window]`, "whenever")
	code, body = b.fetch("POST", "/v1/runs", protocol.RunRequest{Target: bad, Selection: protocol.Selection{AgentIDs: f.ids}, MaxConcurrent: 10,
		RunControls: protocol.RunControls{Window: "whenever"}, DryRun: true}, map[string]string{"X-CSRF-Token": b.csrf()})
	var winErr protocol.Error
	if err := json.Unmarshal([]byte(body), &winErr); code != 400 || err != nil || winErr.Error == "" {
		t.Fatalf("a bad window: %d %s", code, body)
	}
	b.click(`[data-test=upgrade-preview]`)
	b.waitFor("the server's error", fmt.Sprintf(`document.querySelector('[data-test=upgrade-result] [data-test=error]')?.innerText === %s`, jsString(winErr.Error)), 20*time.Second)
	b.fill(`[data-test=upgrade-window]`, "")
	b.click(`[data-test=upgrade-preview]`)
	b.waitText(`[data-test=upgrade-headline]`, "no agent to upgrade", 20*time.Second)
	if s := b.text(`[data-test=upgrade-excluded-row]`); !strings.Contains(s, "quarantine") {
		t.Errorf("left out %q, want the quarantine", s)
	}
	b.evalInto(`window.scrollTo(0, 0)`, nil)
	b.evalInto(`document.querySelector('dialog').scrollTop = 1e6`, nil)
	b.shot("upgrade-quarantined")
	b.click(`[data-test=upgrade-force]`)
	b.click(`[data-test=upgrade-preview]`)
	b.waitText(`[data-test=upgrade-plan-row]`, bad, 20*time.Second)
	b.click(`[data-test=upgrade-cancel]`)
	if n := len(f.srv.Runs()); n != 1 {
		t.Errorf("%d runs after previews, want 1", n)
	}
}

// Pause, resume, skip and cancel on a run whose deployments wait for its
// start time; a viewer sees the same run without any of them.
func TestBrowserRunPauseSkipCancel(t *testing.T) {
	t.Parallel()
	f := startFleet(t, fleetOptions{Hosts: 2})
	b := newBrowser(t, f.srv)
	b.signIn(f.token("operator"))

	// The run comes from the dialog with its rollout controls set: every
	// one reaches the server as the CLI's flags would send it.
	b.open("/runs")
	b.click(`[data-test=runs-new]`)
	b.waitFor("the dialog's platforms", `!!document.querySelector('[data-test=upgrade-platform-row]')`, 20*time.Second)
	b.fill(`[data-test=upgrade-target]`, v2)
	b.typeIn(`[data-test=upgrade-text]`, "tonight")
	b.fill(`[data-test=upgrade-max-concurrent]`, "50%")
	b.fill(`[data-test=upgrade-max-failures]`, "1")
	b.click(`[data-test=upgrade-rollout] summary`)
	for sel, v := range map[string]string{"canary": "1", "canary-soak": "2m", "rate": "30", "ramp": "2x", "window": "Mon-Fri 01:00-05:00 Europe/Berlin",
		"spread": "1h30m", "health-soak": "10m", "health-min-agents": "3", "health-percent": "20"} {
		b.fill(`[data-test=upgrade-`+sel+`]`, v)
	}
	var startAt string // an hour from now, as the page's clock and zone say it
	b.evalInto(`(() => { const d = new Date(Date.now() + 3600e3); const p = (n) => String(n).padStart(2, '0');
		return d.getFullYear() + '-' + p(d.getMonth() + 1) + '-' + p(d.getDate()) + 'T' + p(d.getHours()) + ':' + p(d.getMinutes()); })()`, &startAt)
	b.fill(`[data-test=upgrade-start-at]`, startAt)
	b.click(`[data-test=upgrade-start]`)
	b.click(`[data-test=confirm-ok]`)
	b.waitFor("the run page", `!!document.querySelector('[data-test=run-title]')`, 20*time.Second)
	runs := f.srv.Runs()
	if len(runs) != 1 {
		t.Fatalf("runs: %+v", runs)
	}
	run := runs[0]
	c := run.RunControls
	if run.Text != "tonight" || run.FailureThreshold != 1 || c.MaxConcurrentPercent != 50 || c.Canary != 1 || c.CanarySoakSeconds != 120 ||
		c.RatePerMinute != 30 || c.Ramp != 2 || c.Window != "Mon-Fri 01:00-05:00 Europe/Berlin" || c.SpreadSeconds != 5400 ||
		c.HealthSoakSeconds != 600 || c.HealthMinAgents != 3 || c.HealthPercent != 20 || c.NoHealthHalt {
		t.Errorf("the run's settings: %+v", run)
	}
	if d := time.Until(c.StartAt); d < 58*time.Minute || d > 61*time.Minute {
		t.Errorf("start_at %s is not an hour from now", c.StartAt)
	}
	for _, want := range []string{"Canaries", "1, soak 2m", "Rate", "30 a minute, ×2 every minute", "Window", "Spread", "1h30m", "Health halt", "soak 10m, 3 agents, 20%", "Failure threshold", "50% of the run's agents"} {
		if s := b.text(`[data-test=run-settings]`); !strings.Contains(s, want) {
			t.Errorf("run settings %q lack %q", s, want)
		}
	}
	b.waitFor("the waves", `document.querySelectorAll('[data-test=wave-row]').length === 2`, 10*time.Second)
	b.waitText(`[data-test=run-start-at]`, "Nothing starts before 20", 5*time.Second)
	b.waitFor("the deployments", `document.querySelectorAll('[data-test=dep-row]').length === 2`, 20*time.Second)
	b.waitText(`[data-test=run-settings]`, "Start at", 5*time.Second)

	b.click(`[data-test=run-pause]`)
	b.waitFor("paused", `document.querySelector('[data-test=run-status]')?.innerText === 'paused' && !!document.querySelector('[data-test=run-resume]') && !document.querySelector('[data-test=run-pause]')`, 10*time.Second)
	if r := runOf(t, f, run.ID); r.Status != protocol.RunPaused {
		t.Fatalf("after Pause the server has %s", r.Status)
	}
	b.click(`[data-test=run-resume]`)
	b.waitFor("running", `document.querySelector('[data-test=run-status]')?.innerText === 'running' && !!document.querySelector('[data-test=run-pause]')`, 10*time.Second)

	// Skip the first waiting deployment (after the confirmation).
	var dep string
	b.evalInto(`document.querySelector('[data-test=dep-row]').dataset.dep`, &dep)
	b.click(fmt.Sprintf(`[data-test=dep-row][data-dep=%q] [data-test=dep-skip]`, dep))
	b.click(`[data-test=confirm-ok]`)
	b.waitFor("the deployment skipped", fmt.Sprintf(`document.querySelector('[data-test=dep-row][data-dep=%q]')?.dataset.state === 'skipped'`, dep), 10*time.Second)
	b.waitFor("one Skip left", `document.querySelectorAll('[data-test=dep-skip]').length === 1`, 10*time.Second)
	b.shotTop("run-running")
	b.checkA11y("run with actions")

	// The deployments filtered by state, kept in the address.
	b.fill(`[data-test=run-dep-state]`, "skipped")
	b.waitFor("only the skipped one", fmt.Sprintf(`document.querySelectorAll('[data-test=dep-row]').length === 1 && !!document.querySelector('[data-test=dep-row][data-dep=%q]')`, dep), 10*time.Second)
	b.waitFor("the filter in the address", `location.hash.endsWith('?state=skipped')`, 5*time.Second)
	b.fill(`[data-test=run-dep-state]`, "")
	b.waitFor("both again", `document.querySelectorAll('[data-test=dep-row]').length === 2`, 10*time.Second)

	// A viewer's list follows the run live.
	v := newBrowser(t, f.srv)
	v.signIn(f.token("viewer"))
	v.open("/runs")
	v.waitFor("the run in the list", fmt.Sprintf(`document.querySelector('[data-test=run-row][data-run=%q]')?.dataset.status === 'running'`, run.ID), 10*time.Second)
	if n := v.count(`[data-test=runs-new]`); n != 0 {
		t.Errorf("a viewer sees New upgrade run")
	}

	// Cancel asks first; Cancel in the question changes nothing.
	b.click(`[data-test=run-cancel]`)
	b.click(`[data-test=confirm-cancel]`)
	if r := runOf(t, f, run.ID); r.Status != protocol.RunRunning {
		t.Fatalf("after declining, the run is %s", r.Status)
	}
	b.click(`[data-test=run-cancel]`)
	b.click(`[data-test=confirm-ok]`)
	b.waitFor("cancelled", `document.querySelector('[data-test=run-status]')?.innerText === 'cancelled'`, 10*time.Second)
	b.waitFor("no action but Roll back", `!document.querySelector('[data-test=run-pause], [data-test=run-resume], [data-test=run-cancel], [data-test=dep-skip]') && !!document.querySelector('[data-test=run-rollback]')`, 10*time.Second)
	r := runOf(t, f, run.ID)
	if r.Status != protocol.RunCancelled || r.Counts[protocol.StateSkipped] != 1 || r.Counts[protocol.StateCancelled] != 1 {
		t.Fatalf("run after cancel: %s %v", r.Status, r.Counts)
	}

	v.waitFor("the list showing the cancel", fmt.Sprintf(`document.querySelector('[data-test=run-row][data-run=%q]')?.dataset.status === 'cancelled'`, run.ID), 10*time.Second)

	// A viewer: the run, its deployments, no action.
	v.open("/runs/" + run.ID)
	v.waitFor("the deployments", `document.querySelectorAll('[data-test=dep-row]').length === 2`, 20*time.Second)
	if n := v.count(`[data-test=run-actions] button, [data-test=dep-skip]`); n != 0 {
		t.Errorf("a viewer sees %d actions on the run page", n)
	}
}

func runOf(t *testing.T, f *fleet, id string) protocol.Run {
	t.Helper()
	var r protocol.Run
	f.srv.JSON(&r, "runs", "show", id)
	return r
}

// shotTop saves a screenshot scrolled to the top, where the page's sticky
// header belongs (a full-page screenshot draws it at the scroll position).
func (b *browser) shotTop(name string) {
	b.t.Helper()
	b.evalInto(`window.scrollTo(0, 0)`, nil)
	b.shot(name)
}
