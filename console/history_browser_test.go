//go:build unix

package console_test

import (
	"archive/zip"
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/moltfleet/molt/internal/e2etest"
	"github.com/moltfleet/molt/protocol"
)

// closedWindow is a maintenance window that is closed now and for the
// next hours: every day, for one hour, twelve hours from now (UTC).
func closedWindow() string {
	h := (time.Now().UTC().Hour() + 12) % 24
	return fmt.Sprintf("daily %02d:00-%02d:00", h, h+1)
}

// The Upgrade History lists the deployments of a finished run and a
// repair (marked REPAIR), live, links each to its DEPLOY report with every step the server recorded, filters on
// the server (kept in the address), and Skip Upgrade on a deployment that
// waits for its window makes it skipped, live.
func TestBrowserHistory(t *testing.T) {
	t.Parallel()
	f := startFleet(t, fleetOptions{Hosts: 2})
	done := f.srv.Upgrade("--agents", f.ids[0], "--target", v2, "--text", "first host")
	if r := f.srv.WaitRun(done.ID, 180*time.Second); r.Status != protocol.RunEndedOK {
		t.Fatalf("run %s: %s %v", done.ID, r.Status, r.Counts)
	}
	finished := f.srv.History("--run", done.ID)
	if len(finished) != 1 {
		t.Fatalf("run %s: %d deployments", done.ID, len(finished))
	}
	dep := finished[0]
	// host-1 is taken back to v1 by hand: the server repairs it to v2, a
	// REPAIR entry of no run.
	if r := f.hosts[0].AgentCLI("upgrade", "--pack", e2etest.Pack(t, e2etest.PackOptions{Version: v1}), "--wait"); r.Code != 0 {
		t.Fatalf("manual downgrade: %s", r)
	}
	var repair protocol.Deployment
	e2etest.Eventually(t, 120*time.Second, "a repair that succeeded", func() (bool, string) {
		for _, d := range f.srv.History("--agent", f.ids[0]) {
			if d.Kind == protocol.KindRepair {
				repair = d
			}
		}
		return repair.State == protocol.StateSucceeded, fmt.Sprintf("%+v", repair)
	})

	b := newBrowser(t, f.srv)
	b.signIn(f.token("operator"))
	b.open("/history")
	b.waitFor("the finished run's deployment and the repair", `document.querySelectorAll('[data-test=history-row]').length === 2`, 20*time.Second)
	repairRow := fmt.Sprintf(`[data-test=history-row][data-id=%q]`, repair.ID)
	if s := b.text(repairRow + ` [data-test=dep-repair]`); s != "REPAIR" {
		t.Errorf("the repair is marked %q, want REPAIR", s)
	}
	if s := b.text(repairRow + ` [data-test=dep-run]`); s != "" {
		t.Errorf("the repair links to run %q", s)
	}
	if n := b.count(`[data-test=dep-repair]`); n != 1 {
		t.Errorf("%d entries marked REPAIR, want 1", n)
	}
	b.evalInto(`window.__notReloaded = true`, nil)

	// A run whose deployment waits for its window: it shows up live.
	waiting := f.srv.Upgrade("--agents", f.ids[1], "--target", v2, "--window", closedWindow())
	var wait protocol.Deployment
	e2etest.Eventually(t, 60*time.Second, "a deployment waiting for its window", func() (bool, string) {
		ds := f.srv.History("--run", waiting.ID)
		if len(ds) == 1 {
			wait = ds[0]
		}
		return wait.State == protocol.StateWaitingForWindow, fmt.Sprintf("%+v", ds)
	})
	waitRow := fmt.Sprintf(`[data-test=history-row][data-id=%q]`, wait.ID)
	b.waitFor("the waiting deployment, live", fmt.Sprintf(`document.querySelector(%q)?.dataset.state === 'waiting_for_window'`, waitRow), 20*time.Second)
	b.waitText(`[data-test=page-info]`, "1–3 of 3", 10*time.Second)
	b.waitFor("the new run among the filter's runs", fmt.Sprintf(`[...document.querySelectorAll('[data-test=filter-run] option')].some(o => o.value === %q)`, waiting.ID), 20*time.Second)
	row := fmt.Sprintf(`[data-test=history-row][data-id=%q]`, dep.ID)
	if s := b.attr(row, "data-state"); s != protocol.StateSucceeded {
		t.Errorf("finished deployment's row: state %q", s)
	}
	for sel, want := range map[string]string{
		row + ` [data-test=dep-link]`:  "#/deployments/" + dep.ID,
		row + ` [data-test=dep-run]`:   "#/runs/" + done.ID,
		row + ` [data-test=dep-agent]`: "#/agents/" + f.ids[0],
	} {
		if got := b.attr(sel, "href"); got != want {
			t.Errorf("%s links to %q, want %q", sel, got, want)
		}
	}
	if s := b.text(row); !strings.Contains(s, v1+" → "+v2) {
		t.Errorf("row %q lacks %s → %s", s, v1, v2)
	}
	if n := b.count(row + ` [data-test=dep-skip]`); n != 0 {
		t.Error("a finished deployment offers Skip Upgrade")
	}
	if n := b.count(waitRow + ` [data-test=dep-skip]`); n != 1 {
		t.Error("a waiting deployment offers no Skip Upgrade")
	}
	b.shot("history")
	b.checkA11y("history")

	// A filter goes to the server and into the address.
	b.fill(`[data-test=filter-state]`, protocol.StateSucceeded)
	b.waitFor("two succeeded rows", `document.querySelectorAll('[data-test=history-row][data-state=succeeded]').length === 2 && location.hash.includes('state=succeeded')`, 20*time.Second)
	b.fill(`[data-test=filter-kind]`, protocol.KindRepair)
	b.waitFor("the repair alone", fmt.Sprintf(`document.querySelectorAll('[data-test=history-row]').length === 1 && !!document.querySelector(%q) && location.hash.includes('kind=repair')`, repairRow), 20*time.Second)
	b.open("/history?run=" + waiting.ID)
	b.waitFor("the run's deployment", fmt.Sprintf(`document.querySelectorAll('[data-test=history-row]').length === 1 && !!document.querySelector(%q)`, waitRow), 20*time.Second)
	b.waitText(`[data-test=history-run]`, waiting.ID, 10*time.Second)
	b.shot("history-run")
	// The time range: the last 24 hours hold all three, a range that ended
	// an hour ago none.
	b.open("/history")
	b.fill(`[data-test=filter-time]`, "24h")
	b.waitFor("the last 24 hours", `document.querySelectorAll('[data-test=history-row]').length === 3 && location.hash.includes('since=24h')`, 20*time.Second)
	b.open("/history?since=2h")
	b.waitFor("a duration from the address", `document.querySelector('[data-test=filter-time]').value === '2h' && document.querySelectorAll('[data-test=history-row]').length === 3`, 20*time.Second)
	b.fill(`[data-test=filter-time]`, "custom")
	b.fill(`[data-test=filter-until]`, time.Now().Add(-time.Hour).Format("2006-01-02T15:04"))
	b.click(`[data-test=filter-apply]`)
	b.waitFor("a range before the runs", `document.querySelectorAll('[data-test=history-row]').length === 0 && location.hash.includes('until=')`, 20*time.Second)
	// Paging on the server, kept in the address.
	b.open("/history?limit=1")
	b.waitText(`[data-test=page-info]`, "1–1 of 3", 20*time.Second)
	b.waitFor("the newest first", fmt.Sprintf(`!!document.querySelector(%q)`, waitRow), 10*time.Second)
	b.click(`[data-test=page-next]`)
	b.waitText(`[data-test=page-info]`, "2–2 of 3", 20*time.Second)
	b.waitFor("the second page", fmt.Sprintf(`!!document.querySelector(%q) && location.hash.includes('offset=1')`, repairRow), 10*time.Second)
	b.open("/history?state=failed")
	b.waitText(`[data-test=history-table]`, "No deployment matches these filters.", 20*time.Second)

	// The DEPLOY report: every step, in order, with its time.
	rep := f.srv.DeployReport(dep.ID)
	b.open("/history")
	b.waitFor("the rows", `document.querySelectorAll('[data-test=history-row]').length === 3`, 20*time.Second)
	b.click(row + ` [data-test=dep-link]`)
	b.waitFor("the DEPLOY report", fmt.Sprintf(`document.querySelectorAll('[data-test=step]').length === %d`, len(rep.Steps)), 20*time.Second)
	var names []string
	b.evalInto(`[...document.querySelectorAll('[data-test=step]')].map(r => r.dataset.name)`, &names)
	var want []string
	for _, s := range rep.Steps {
		want = append(want, s.Name)
	}
	if fmt.Sprint(names) != fmt.Sprint(want) {
		t.Errorf("steps %q, want %q", names, want)
	}
	if n := b.count(`[data-test=step-time]`); n != len(rep.Steps) {
		t.Errorf("%d step times for %d steps", n, len(rep.Steps))
	}
	if s := b.text(`[data-test=dep-versions]`); s != v1+" → "+v2 {
		t.Errorf("versions %q", s)
	}
	b.waitText(`[data-test=deployment] [data-test=dep-state]`, "succeeded", 10*time.Second)
	if n := b.count(`[data-test=dep-actions]`); n != 0 {
		t.Error("a succeeded deployment offers actions")
	}
	b.shot("deployment")
	b.checkA11y("deployment")

	// A viewer sees the history and no action; the server refuses a
	// forged skip anyway.
	v := newBrowser(t, f.srv)
	v.signIn(f.token("viewer"))
	v.open("/history")
	v.waitFor("the rows", `document.querySelectorAll('[data-test=history-row]').length === 3`, 20*time.Second)
	for _, sel := range []string{"dep-skip", "dep-retry", "dep-cancel"} {
		if n := v.count(`[data-test=` + sel + `]`); n != 0 {
			t.Errorf("a viewer sees %s", sel)
		}
	}
	if code, body := v.fetch("POST", "/v1/deployments/"+wait.ID+"/skip", nil, map[string]string{"X-CSRF-Token": v.csrf()}); code != 403 {
		t.Errorf("a viewer's skip: %d %s, want 403", code, body)
	}

	// The viewer keeps the waiting deployment's page open: it follows the
	// skip below, live.
	v.open("/deployments/" + wait.ID)
	v.waitText(`[data-test=deployment] [data-test=dep-state]`, "waiting for window", 20*time.Second)
	if n := v.count(`[data-test=dep-actions]`); n != 0 {
		t.Error("a viewer sees the deployment's actions")
	}

	// Skip Upgrade on the waiting one: it becomes skipped without a reload.
	b.open("/history")
	b.waitFor("the waiting row", fmt.Sprintf(`!!document.querySelector(%q)`, waitRow+` [data-test=dep-skip]`), 20*time.Second)
	b.click(waitRow + ` [data-test=dep-skip]`)
	b.waitText(`dialog`, "Skip the upgrade", 10*time.Second)
	b.click(`[data-test=confirm-ok]`)
	b.waitFor("the deployment skipped", fmt.Sprintf(`document.querySelector(%q)?.dataset.state === 'skipped'`, waitRow), 20*time.Second)
	if n := b.count(waitRow + ` [data-test=dep-skip]`); n != 0 {
		t.Error("a skipped deployment still offers Skip Upgrade")
	}
	var still bool
	b.evalInto(`window.__notReloaded === true`, &still)
	if !still {
		t.Error("the page was reloaded")
	}
	v.waitText(`[data-test=deployment] [data-test=dep-state]`, "skipped", 20*time.Second)
	v.waitText(`[data-test=steps]`, "skipped by operator", 10*time.Second)
	if ds := f.srv.History("--run", waiting.ID); len(ds) != 1 || ds[0].State != protocol.StateSkipped {
		t.Errorf("server: %+v", ds)
	}
	b.open("/deployments/" + wait.ID)
	b.waitText(`[data-test=dep-reason]`, "skipped by operator", 20*time.Second)
	b.shot("deployment-skipped")

	// The server's refusal is shown as it is: skipping it again.
	code, body := b.fetch("POST", "/v1/deployments/"+wait.ID+"/skip", nil, map[string]string{"X-CSRF-Token": b.csrf()})
	if code != 409 || !strings.Contains(body, "only a deployment the agent has not started") {
		t.Errorf("skip again: %d %s", code, body)
	}
}

// Releases: an admin imports a pack by upload and sees it listed with its
// platforms; a tampered pack is refused with the server's message as it
// is; an operator's quarantine with a reason is shown and lifted; a
// release is removed after a confirmation.
func TestBrowserReleases(t *testing.T) {
	t.Parallel()
	f := startFleet(t, fleetOptions{Hosts: 1, Releases: []e2etest.PackOptions{{Version: v1}}})
	good := e2etest.Pack(t, e2etest.PackOptions{Version: v2})
	tampered := tamperPack(t, e2etest.Pack(t, e2etest.PackOptions{Version: bad, AgentMode: "crash-at-start"}))
	cli := f.srv.Molt("release", "import", tampered)
	if cli.Code == 0 {
		t.Fatalf("the tampered pack was imported:\n%s", cli)
	}

	b := newBrowser(t, f.srv)
	b.signIn(f.adminToken())
	b.open("/releases")
	b.waitFor("the release list", fmt.Sprintf(`!!document.querySelector('[data-test=release-row][data-version=%q]')`, v1), 20*time.Second)
	if n := b.count(`[data-test=release-row]`); n != 1 {
		t.Fatalf("%d releases listed, want 1", n)
	}

	// The upload: progress, then the release, listed live.
	b.upload(`[data-test=release-file]`, good)
	b.click(`[data-test=release-upload]`)
	b.waitFor("the import's answer", `!!document.querySelector('[data-test=release-result]')`, 60*time.Second)
	if o := b.attr(`[data-test=release-result]`, "data-outcome"); o != "imported" {
		t.Fatalf("import: %s %q", o, b.text(`[data-test=release-result]`))
	}
	if s := b.text(`[data-test=release-progress-text]`); !strings.Contains(s, "sent") {
		t.Errorf("progress %q", s)
	}
	b.shot("releases-imported")
	newRow := fmt.Sprintf(`[data-test=release-row][data-version=%q]`, v2)
	b.waitFor("the imported release", fmt.Sprintf(`!!document.querySelector(%q)`, newRow), 20*time.Second)
	platform := strings.ReplaceAll(e2etest.PlatformDir(), "_", "/")
	if s := b.text(newRow + ` [data-test=release-platforms]`); s != platform {
		t.Errorf("platforms %q, want %s", s, platform)
	}

	// A tampered pack: refused, with the server's message as it is.
	b.upload(`[data-test=release-file]`, tampered)
	b.click(`[data-test=release-upload]`)
	b.waitFor("the refusal", `document.querySelector('[data-test=release-result]')?.dataset.outcome === 'rejected'`, 120*time.Second)
	msg := b.text(`[data-test=release-result]`)
	reason := strings.TrimPrefix(msg, "Refused: ")
	if !strings.HasPrefix(msg, "Refused: ") || !strings.Contains(reason, "bad signature") || !strings.Contains(cli.Stderr, reason) {
		t.Errorf("refusal %q, want the server's message, as the CLI printed it:\n%s", msg, cli.Stderr)
	}
	if n := b.count(`[data-test=release-row]`); n != 2 {
		t.Errorf("%d releases after the refusal, want 2", n)
	}
	b.shot("releases-rejected")

	// Quarantine for a platform with a reason, then lift it.
	b.click(newRow + ` [data-test=release-quarantine]`)
	b.waitFor("the quarantine dialog", `!!document.querySelector('[data-test=quarantine-form]')`, 10*time.Second)
	b.typeIn(`[data-test=quarantine-reason]`, "crashes at start here")
	b.click(`[data-test=quarantine-submit]`)
	entry := fmt.Sprintf(`%s [data-test=quarantine-entry][data-platform=%q]`, newRow, platform)
	b.waitText(entry, "crashes at start here", 20*time.Second)
	b.shot("releases")
	b.checkA11y("releases")
	b.click(entry + ` [data-test=release-unquarantine]`)
	b.waitFor("the quarantine lifted", fmt.Sprintf(`!document.querySelector(%q)`, entry), 20*time.Second)

	// Remove, after a confirmation.
	b.click(newRow + ` [data-test=release-remove]`)
	b.waitText(`dialog`, "Remove release "+v2, 10*time.Second)
	b.click(`[data-test=confirm-ok]`)
	b.waitFor("the release removed", fmt.Sprintf(`!document.querySelector(%q)`, newRow), 20*time.Second)

	// A viewer sees the list and no action.
	v := newBrowser(t, f.srv)
	v.signIn(f.token("viewer"))
	v.open("/releases")
	v.waitFor("the list", `document.querySelectorAll('[data-test=release-row]').length === 1`, 20*time.Second)
	for _, sel := range []string{"release-import", "release-quarantine", "release-remove", "release-unquarantine"} {
		if n := v.count(`[data-test=` + sel + `]`); n != 0 {
			t.Errorf("a viewer sees %s", sel)
		}
	}
}

// tamperPack copies a pack zip with one byte of its signed manifest
// changed, so its signature no longer matches.
func tamperPack(t *testing.T, src string) string {
	t.Helper()
	zr, err := zip.OpenReader(src)
	if err != nil {
		t.Fatal(err)
	}
	defer zr.Close()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	changed := false
	for _, f := range zr.File {
		rc, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
		if f.Name == "manifest.json" {
			b = bytes.Replace(b, []byte(`"`+bad+`"`), []byte(`"`+bad+`-x"`), 1)
			changed = true
		}
		w, err := zw.CreateHeader(&zip.FileHeader{Name: f.Name, Method: f.Method, Modified: f.Modified})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(b); err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	if !changed {
		t.Fatal("the pack has no manifest.json")
	}
	out := filepath.Join(t.TempDir(), "tampered.zip")
	if err := os.WriteFile(out, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return out
}

// attr is an element's attribute ("" when it or the element is missing).
func (b *browser) attr(sel, name string) string {
	b.t.Helper()
	var s string
	b.evalInto(fmt.Sprintf(`document.querySelector(%s)?.getAttribute(%s) ?? ''`, jsString(sel), jsString(name)), &s)
	return s
}

// upload chooses file in a file input, as a user picking it does.
func (b *browser) upload(sel, file string) {
	b.t.Helper()
	b.do("choose "+file, 20*time.Second, chromedp.SetUploadFiles(chromedp.CSS(sel), []string{file}, chromedp.NodeVisible))
}
