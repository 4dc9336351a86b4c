//go:build unix

package console_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/moltfleet/molt/internal/e2etest"
	"github.com/moltfleet/molt/protocol"
	"github.com/moltfleet/molt/workload/spec"
)

// sleeperWorkload is a workload that runs until stopped: the hosts of the
// fleet tests carry it, so that the pages have workloads to show.
func sleeperWorkload(t *testing.T) e2etest.Workload {
	t.Helper()
	return e2etest.Workload{
		Spec: spec.Spec{
			Name:    "sleeper",
			Command: "sleeper.sh",
			Ready:   spec.Ready{Probe: spec.Probe{Running: spec.Duration(time.Second)}, Within: spec.Duration(30 * time.Second)},
			Stop:    spec.Stop{Grace: spec.Duration(2 * time.Second)},
			Restart: spec.Restart{BackoffMin: spec.Duration(200 * time.Millisecond), BackoffMax: spec.Duration(time.Second)},
		},
		Files: map[string]string{"sleeper.sh": e2etest.WriteScript(t, "sleeper.sh", "exec sleep 3600\n")},
	}
}

// workloadFleet is three supervised hosts at v1 carrying the sleeper
// workload, labelled ring=early (host-1) and ring=main, with v1 and v2
// imported; it waits until every host's workload is ready.
func workloadFleet(t *testing.T) *fleet {
	t.Helper()
	ws := []e2etest.Workload{sleeperWorkload(t)}
	f := startFleet(t, fleetOptions{
		Hosts:    3,
		Releases: []e2etest.PackOptions{{Version: v1, Workloads: ws}, {Version: v2, Workloads: ws}},
		Host: func(o *e2etest.HostOptions) {
			o.Pack = e2etest.Pack(t, e2etest.PackOptions{Version: v1, Workloads: ws})
			o.Labels = map[string]string{"ring": "main"}
			if o.Name == "host-1" {
				o.Labels["ring"] = "early"
			}
		},
	})
	e2etest.Eventually(t, 60*time.Second, "every host's workload ready", func() (bool, string) {
		n := 0
		for _, a := range f.srv.Agents() {
			if len(a.Workloads) == 1 && a.Workloads[0].State == protocol.WorkloadReady {
				n++
			}
		}
		return n == len(f.hosts), fmt.Sprintf("%d of %d", n, len(f.hosts))
	})
	return f
}

// attrOf is an attribute of the element sel finds ("" when none).
func attrOf(b *browser, sel, name string) string {
	b.t.Helper()
	var s string
	b.evalInto(fmt.Sprintf(`document.querySelector(%s)?.getAttribute(%s) ?? ''`, jsString(sel), jsString(name)), &s)
	return s
}

// rowsOf is the agent ids of the table's rows, in order.
func rowsOf(b *browser) []string {
	var ids []string
	b.evalInto(`[...document.querySelectorAll('[data-test=agent-row]')].map(r => r.dataset.id)`, &ids)
	return ids
}

// The Fleet page shows the harness's agents with their versions and
// workloads, filters on the server (kept in the address), sorts by
// version, follows an upgrade live without a reload, selects rows for
// the upgrade dialog; the Agent page shows the upgraded agent's versions
// (current, previous), its last trial, its workloads, its history and
// events.
func TestBrowserFleetAndAgent(t *testing.T) {
	t.Parallel()
	f := workloadFleet(t)
	b := newBrowser(t, f.srv)
	b.signIn(f.token("operator"))
	b.open("/fleet")
	b.waitFor("three agents", `document.querySelectorAll('[data-test=agent-row]').length === 3`, 20*time.Second)
	b.evalInto(`window.__notReloaded = true`, nil)
	if got, want := rowsOf(b), f.ids; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("rows %v, want %v (by name)", got, want)
	}
	var versions []string
	b.evalInto(`[...document.querySelectorAll('[data-test=agent-row] [data-test=agent-version]')].map(e => e.innerText)`, &versions)
	if fmt.Sprint(versions) != fmt.Sprint([]string{v1, v1, v1}) {
		t.Errorf("versions %v, want %s on every agent", versions, v1)
	}
	if s := b.text(`[data-test=agent-row] [data-test=agent-workloads]`); s != "1 ok" {
		t.Errorf("workloads' health %q, want \"1 ok\"", s)
	}
	bar := fmt.Sprintf(`[data-test=fleet-chart-bar][data-version=%q]`, v1)
	b.waitFor("the chart's "+v1+" bar of 3 agents", fmt.Sprintf(`document.querySelector(%s)?.dataset.agents === '3'`, jsString(bar)), 10*time.Second)
	if s := b.text(`[data-test=page-info]`); s != "1–3 of 3" {
		t.Errorf("page info %q", s)
	}

	// A label filter narrows the table on the server and stays in the
	// address; so does the text search.
	b.fill(`[data-test=filter-label]`, "ring=early")
	b.waitFor("the ring=early agent only", `document.querySelectorAll('[data-test=agent-row]').length === 1`, 10*time.Second)
	if got := rowsOf(b); len(got) != 1 || got[0] != f.ids[0] {
		t.Errorf("ring=early shows %v, want %s", got, f.ids[0])
	}
	if h := b.text(`[data-test=page-info]`); h != "1–1 of 1" {
		t.Errorf("page info %q under the filter", h)
	}
	var hash string
	b.evalInto(`location.hash`, &hash)
	if !strings.Contains(hash, "label=ring%3Dearly") {
		t.Errorf("the filter is not in the address: %s", hash)
	}
	b.fill(`[data-test=filter-label]`, "")
	b.waitFor("every agent again", `document.querySelectorAll('[data-test=agent-row]').length === 3`, 10*time.Second)
	b.typeIn(`[data-test=filter-search]`, "host-2")
	b.waitFor("host-2 only", `document.querySelectorAll('[data-test=agent-row]').length === 1`, 10*time.Second)
	if got := rowsOf(b); len(got) != 1 || got[0] != f.ids[1] {
		t.Errorf("search host-2 shows %v", got)
	}
	b.click(`[data-test=filter-clear]`)
	b.waitFor("every agent again", `document.querySelectorAll('[data-test=agent-row]').length === 3`, 10*time.Second)
	// A status chip sets the filter, a second click lifts it.
	b.click(`[data-test=chip-status-offline]`)
	b.waitText(`[data-test=fleet-table]`, "No agent matches these filters.", 10*time.Second)
	b.click(`[data-test=chip-status-offline]`)
	b.waitFor("every agent again", `document.querySelectorAll('[data-test=agent-row]').length === 3`, 10*time.Second)

	// host-1 is upgraded from the CLI: the table follows, live.
	run := f.srv.Upgrade("--agents", f.ids[0], "--target", v2, "--text", "fleet page")
	b.waitFor("host-1 at "+v2+" in the table", fmt.Sprintf(
		`document.querySelector('[data-test=agent-row][data-id=%q] [data-test=agent-version]')?.innerText === %q`, f.ids[0], v2), 180*time.Second)
	if r := f.srv.WaitRun(run.ID, 120*time.Second); r.Status != protocol.RunEndedOK {
		t.Fatalf("run %s: %s %v", run.ID, r.Status, r.Counts)
	}
	var kept bool
	b.evalInto(`window.__notReloaded === true`, &kept)
	if !kept {
		t.Error("the page was reloaded to show the upgrade")
	}
	b.waitFor("the chart's "+v2+" bar", fmt.Sprintf(`document.querySelector('[data-test=fleet-chart-bar][data-version=%q]')?.dataset.agents === '1'`, v2), 20*time.Second)

	// Sorting by version, on the server: ascending puts host-1 (v2) last,
	// descending first.
	b.click(`[data-test=fleet-table] th[aria-sort] button.sort[data-key=version]`)
	b.waitFor("sorted by version", `location.hash.includes('sort=version')`, 10*time.Second)
	b.waitFor("host-1 last", fmt.Sprintf(`[...document.querySelectorAll('[data-test=agent-row]')].pop()?.dataset.id === %q`, f.ids[0]), 10*time.Second)
	b.click(`[data-test=fleet-table] th[aria-sort] button.sort[data-key=version]`)
	b.waitFor("host-1 first", fmt.Sprintf(`document.querySelector('[data-test=agent-row]')?.dataset.id === %q`, f.ids[0]), 10*time.Second)
	if s := attrOf(b, `[data-test=fleet-table] th[aria-sort=descending] button.sort`, "data-key"); s != "version" {
		t.Errorf("the descending column is %q", s)
	}
	b.shot("fleet")
	b.checkA11y("fleet")

	// Selection: one row, then the page; the upgrade dialog opens for it.
	var disabled bool
	b.evalInto(`document.querySelector('[data-test=fleet-upgrade]').disabled`, &disabled)
	if !disabled {
		t.Error("Upgrade… is enabled with nothing selected")
	}
	selection := func(n string) string {
		return fmt.Sprintf(`(document.querySelector('[data-test=fleet-selection]')?.innerText ?? '').includes(%q)`, n)
	}
	b.clickUntil(fmt.Sprintf(`[data-test=fleet-select][data-id=%q]`, f.ids[1]), "one selected", selection("1 agent selected"))
	b.clickUntil(`[data-test=fleet-select-page]`, "the page selected", selection("3 agents selected"))
	b.click(`[data-test=fleet-upgrade]`)
	b.waitFor("the upgrade dialog", `!!document.querySelector('[data-test=upgrade-dialog]')`, 10*time.Second)
	b.click(`[data-test=upgrade-cancel]`)
	b.waitFor("the dialog closed", `!document.querySelector('[data-test=upgrade-dialog]')`, 10*time.Second)

	// The agent page of host-1.
	b.click(fmt.Sprintf(`[data-test=agent-row][data-id=%q] [data-test=agent-link]`, f.ids[0]))
	b.waitFor("the agent page", `!!document.querySelector('[data-test=agent-versions]')`, 20*time.Second)
	for sel, want := range map[string]string{
		`[data-test=agent-name]`:           "host-1",
		`[data-test=agent-id]`:             f.ids[0],
		`[data-test=agent-current]`:        v2,
		`[data-test=agent-previous]`:       v1,
		`[data-test=agent-trial]`:          "no trial",
		`[data-test=agent-result-outcome]`: "committed",
		`[data-test=agent-status]`:         "online",
	} {
		if s := b.text(sel); s != want {
			t.Errorf("%s shows %q, want %q", sel, s, want)
		}
	}
	wl := `[data-test=agent-workload][data-name=sleeper]`
	b.waitText(wl, "ready", 30*time.Second)
	// The workload's version is what the agent says (a workload the new
	// release left unchanged keeps running, at its version).
	if ws := f.srv.Agent(f.ids[0]).Workloads; len(ws) != 1 || !strings.Contains(b.text(wl), ws[0].Version) {
		t.Errorf("workload row %q, the agent says %+v", b.text(wl), ws)
	}
	deps := f.srv.History("--agent", f.ids[0])
	if len(deps) != 1 {
		t.Fatalf("history of %s: %+v", f.ids[0], deps)
	}
	row := fmt.Sprintf(`[data-test=agent-deployment][data-id=%q]`, deps[0].ID)
	b.waitText(row, "succeeded", 10*time.Second)
	if got := attrOf(b, row+` a`, "href"); got != "#/deployments/"+deps[0].ID {
		t.Errorf("the deployment links to %q", got)
	}
	if n := b.count(`[data-test=agent-event]`); n == 0 {
		t.Error("no events about the agent")
	}
	if n := b.count(`[data-test=agent-revoke]`); n != 0 {
		t.Error("an operator is offered Revoke")
	}
	if n := b.count(`[data-test=agent-upgrade]`); n != 1 {
		t.Error("an operator is not offered Upgrade…")
	}
	b.shot("agent")
	b.checkA11y("agent")
}

// An admin revokes an agent from its page after a confirmation that says
// what happens, then allows its host again.
func TestBrowserAgentRevoke(t *testing.T) {
	t.Parallel()
	f := startFleet(t, fleetOptions{Hosts: 1})
	b := newBrowser(t, f.srv)
	b.signIn(f.adminToken())
	b.open("/agents/" + f.ids[0])
	b.waitFor("the agent page", `!!document.querySelector('[data-test=agent-revoke]')`, 20*time.Second)
	b.waitFor("its events", `document.querySelectorAll('[data-test=agent-event]').length > 0`, 20*time.Second)
	b.click(`[data-test=agent-revoke]`)
	b.waitText(`dialog`, "refuses its host (its machine fingerprint) at enrollment until an admin allows it again", 10*time.Second)
	b.click(`[data-test=confirm-ok]`)
	b.waitText(`[data-test=agent-status]`, "revoked", 10*time.Second)
	if a := f.srv.Agent(f.ids[0]); a.Status != protocol.AgentRevoked || !a.HostRefused {
		t.Fatalf("after Revoke: status %s, host refused %v", a.Status, a.HostRefused)
	}
	// The event of the revocation arrives through the live feed.
	b.waitText(`[data-test=agent-events]`, fmt.Sprint(protocol.EvAgentRevoked), 10*time.Second)
	b.shot("agent-revoked")
	b.click(`[data-test=agent-allow]`)
	b.click(`[data-test=confirm-ok]`)
	b.waitFor("no host refused", `!document.querySelector('[data-test=agent-allow]')`, 10*time.Second)
	if a := f.srv.Agent(f.ids[0]); a.HostRefused {
		t.Error("after Allow host again: the host is still refused")
	}
}

// The Fleet page over 120 agents (enrolled over the API, never checking
// in): pages of 50 from the server, a chart bar per version that sets the
// filter, and "select all N matching" handing the dialog the filter.
func TestBrowserFleetPaging(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("browser test: runs real binaries and Chromium (skipped with -short)")
	}
	chromium(t)
	srv := e2etest.StartServer(t, e2etest.ServerOptions{Version: v2})
	enrollSimulated(t, srv, 120)
	b := newBrowser(t, srv)
	b.signIn((&fleet{t: t, srv: srv}).adminToken())
	b.open("/fleet")
	b.waitFor("the first page", `document.querySelectorAll('[data-test=agent-row]').length === 50`, 20*time.Second)
	if s := b.text(`[data-test=page-info]`); s != "1–50 of 120" {
		t.Errorf("page info %q", s)
	}
	// The chart comes after the table (the table does not wait for it).
	b.waitFor("the chart's four platforms", `document.querySelectorAll('[data-test=fleet-chart-platform]').length === 4`, 10*time.Second)
	b.shot("fleet-120")
	b.checkA11y("fleet-120")
	b.click(`[data-test=page-next]`)
	b.waitText(`[data-test=page-info]`, "51–100 of 120", 10*time.Second)
	b.click(`[data-test=page-next]`)
	b.waitText(`[data-test=page-info]`, "101–120 of 120", 10*time.Second)
	if n := b.count(`[data-test=agent-row]`); n != 20 {
		t.Errorf("%d rows on the last page, want 20", n)
	}
	var hash string
	b.evalInto(`location.hash`, &hash)
	if !strings.Contains(hash, "offset=100") {
		t.Errorf("the page is not in the address: %s", hash)
	}

	// A bar of the chart filters by its platform and version.
	bar := `[data-test=fleet-chart-bar][data-platform="windows/amd64"][data-version="1.2.0"]`
	want := attrOf(b, bar, "data-agents")
	b.click(bar)
	b.waitText(`[data-test=page-info]`, "of "+want, 10*time.Second)
	if s := b.text(`[data-test=page-info]`); s != "1–"+want+" of "+want {
		t.Errorf("page info %q after the bar, want all %s on one page", s, want)
	}
	b.evalInto(`location.hash`, &hash)
	if !strings.Contains(hash, "platform=windows%2Famd64") || !strings.Contains(hash, "version=1.2.0") || strings.Contains(hash, "offset") {
		t.Errorf("address after the bar: %s", hash)
	}
	b.click(`[data-test=filter-clear]`)
	b.waitText(`[data-test=page-info]`, "1–50 of 120", 10*time.Second)

	// Select the page, then every agent matching: the dialog gets the
	// filter and its count.
	b.fill(`[data-test=filter-label]`, "ring=early")
	b.waitText(`[data-test=page-info]`, "of 40", 10*time.Second)
	b.waitFor("the counts of the filter", `document.querySelector('[data-test=chip-status-offline]')?.dataset.count === '40'`, 10*time.Second)
	b.click(`[data-test=fleet-select-page]`)
	b.waitText(`[data-test=fleet-selection]`, "40 agents selected", 5*time.Second)
	b.fill(`[data-test=filter-label]`, "")
	b.waitText(`[data-test=page-info]`, "1–50 of 120", 10*time.Second)
	b.click(`[data-test=fleet-select-page]`)
	b.waitFor("select all", `!!document.querySelector('[data-test=fleet-select-all]')`, 5*time.Second)
	b.click(`[data-test=fleet-select-all]`)
	b.waitText(`[data-test=fleet-selection]`, "All 120 agents matching the filter are selected.", 5*time.Second)
	b.click(`[data-test=fleet-upgrade]`)
	b.waitText(`[data-test=upgrade-summary]`, "120", 10*time.Second)
	b.shot("fleet-upgrade-all")
}

// A trial whose workload fails at start rolls back: the agent page says
// so with the reason, names the workload and where its logs and the
// agent's are on the host, and its history marks the deployment
// rolled_back with the same reason.
func TestBrowserAgentRolledBack(t *testing.T) {
	t.Parallel()
	ok := []e2etest.Workload{sleeperWorkload(t)}
	broken := sleeperWorkload(t)
	broken.Files = map[string]string{"sleeper.sh": e2etest.WriteScript(t, "sleeper.sh", "echo 'sleeper: cannot open its data' >&2\nexit 3\n")}
	f := startFleet(t, fleetOptions{
		Hosts:    1,
		Releases: []e2etest.PackOptions{{Version: v1, Workloads: ok}, {Version: v2, Workloads: []e2etest.Workload{broken}}},
		Host: func(o *e2etest.HostOptions) {
			o.Pack = e2etest.Pack(t, e2etest.PackOptions{Version: v1, Workloads: ok})
		},
	})
	run := f.srv.Upgrade("--agents", f.ids[0], "--target", v2)
	if r := f.srv.WaitRun(run.ID, 180*time.Second); r.Status != protocol.RunEndedNotOK {
		t.Fatalf("run %s: %s %v, want %s", run.ID, r.Status, r.Counts, protocol.RunEndedNotOK)
	}
	var a protocol.Agent
	e2etest.Eventually(t, 60*time.Second, "the rollback reported", func() (bool, string) {
		a = f.srv.Agent(f.ids[0])
		return a.LastResult != nil && a.LastResult.Outcome == protocol.TrialRolledBack && a.Version == v1, fmt.Sprintf("%s %+v", a.Version, a.LastResult)
	})
	r := a.LastResult
	if r.Workload != "sleeper" || r.WorkloadLogs == "" || r.Reason == "" {
		t.Fatalf("last result %+v: want the workload sleeper, its logs and a reason", r)
	}

	b := newBrowser(t, f.srv)
	b.signIn(f.token("viewer"))
	b.open("/agents/" + f.ids[0])
	b.waitFor("the agent page", `!!document.querySelector('[data-test=agent-last-result]')`, 20*time.Second)
	for sel, want := range map[string]string{
		`[data-test=agent-result-outcome]`:       "rolled back",
		`[data-test=agent-result-reason]`:        r.Reason,
		`[data-test=agent-result-workload]`:      "sleeper",
		`[data-test=agent-result-workload-logs]`: r.WorkloadLogs,
		`[data-test=agent-result-logs]`:          r.Logs,
		`[data-test=agent-current]`:              v1,
		`[data-test=agent-trial]`:                "no trial",
	} {
		if s := b.text(sel); s != want {
			t.Errorf("%s shows %q, want %q", sel, s, want)
		}
	}
	if s := b.text(`[data-test=agent-last-result]`); !strings.Contains(s, v2+" failed and was rolled back to "+v1) {
		t.Errorf("last trial %q", s)
	}
	deps := f.srv.History("--agent", f.ids[0])
	if len(deps) != 1 || deps[0].State != protocol.StateRolledBack {
		t.Fatalf("history: %+v", deps)
	}
	row := fmt.Sprintf(`[data-test=agent-deployment][data-id=%q]`, deps[0].ID)
	b.waitText(row, "rolled back", 10*time.Second)
	if s := b.text(row); !strings.Contains(s, deps[0].Reason) {
		t.Errorf("history row %q lacks the reason %q", s, deps[0].Reason)
	}
	// A viewer is offered no action.
	if n := b.count(`[data-test=agent-upgrade], [data-test=agent-revoke], [data-test=agent-allow]`); n != 0 {
		t.Errorf("a viewer is offered %d actions", n)
	}
	b.shot("agent-rolled-back")
}
