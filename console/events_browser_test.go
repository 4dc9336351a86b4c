//go:build unix

package console_test

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// The Events page: the newest events with their names, links to the
// agent, a new event arriving live without a reload, the filter by event
// id (kept in the address, applied to live events too), and freezing the
// tail.
func TestBrowserEventsLiveAndFilter(t *testing.T) {
	t.Parallel()
	f := startFleet(t, fleetOptions{Hosts: 1})
	b := newBrowser(t, f.srv)
	b.signIn(f.adminToken())
	b.open("/events")
	b.waitFor("event rows", `document.querySelectorAll('[data-test=event-row]').length > 0`, 20*time.Second)
	b.evalInto(`window.__notReloaded = true`, nil)

	// The agent's enrollment (900), named from the catalogue, linking to
	// its agent page.
	sel := `[data-test=event-row][data-id="900"]`
	b.waitFor("event 900", fmt.Sprintf(`!!document.querySelector(%s)`, jsString(sel)), 10*time.Second)
	if s := b.text(sel + ` [data-test=event-id]`); !strings.Contains(s, "900 agent enrolled") {
		t.Errorf("event 900 shows %q, want its id and name", s)
	}
	var href string
	b.evalInto(fmt.Sprintf(`document.querySelector(%s).getAttribute('href')`, jsString(sel+` [data-test=event-agent] a`)), &href)
	if href != "#/agents/"+f.ids[0] {
		t.Errorf("agent link %q, want #/agents/%s", href, f.ids[0])
	}
	// The event carries the agent's id; the page shows its name.
	b.waitText(sel+` [data-test=event-agent] a`, "host-1", 10*time.Second)

	// A setting changed from the CLI shows on top, live.
	f.srv.OK("settings", "set", "hooks.timeout", "61s")
	first := `[data-test=event-row]:first-child`
	b.waitText(first+` [data-test=event-message]`, "hooks.timeout = 61s", 20*time.Second)
	if s := b.text(first + ` [data-test=event-fields]`); !strings.Contains(s, "key") || !strings.Contains(s, "61s") {
		t.Errorf("fields of the new event: %q", s)
	}
	b.evalInto(`window.scrollTo(0, 0)`, nil) // sticky headers stay where the page was scrolled
	b.shot("events")
	b.checkA11y("/events")

	// The filter by id: typed as a name from the catalogue, it narrows the
	// list to that event, says so in the address, and holds for live
	// events too.
	b.typeIn(`[data-test=events-event-input]`, "1003 setting changed")
	b.click(`[data-test=events-event-add]`)
	b.waitFor("only event 1003", `(() => { const r = [...document.querySelectorAll('[data-test=event-row]')];
		return r.length > 0 && r.every((x) => x.dataset.id === '1003'); })()`, 20*time.Second)
	if s := b.text(`[data-test=events-chip]`); !strings.Contains(s, "1003 setting changed") {
		t.Errorf("filter chip %q", s)
	}
	var hash string
	b.evalInto(`location.hash`, &hash)
	if !strings.Contains(hash, "id=1003") {
		t.Errorf("address %q does not keep the filter", hash)
	}
	f.token("viewer") // event 1004: filtered out
	f.srv.OK("settings", "set", "hooks.timeout", "62s")
	b.waitText(first+` [data-test=event-message]`, "hooks.timeout = 62s", 20*time.Second)
	if n := b.count(`[data-test=event-row]:not([data-id="1003"])`); n != 0 {
		t.Errorf("%d rows of other events under the filter", n)
	}

	// Frozen, the tail holds new events back and says how many.
	b.click(`[data-test=events-pause]`)
	b.waitText(`[data-test=events-state]`, "Frozen", 5*time.Second)
	f.srv.OK("settings", "set", "hooks.timeout", "63s")
	b.waitText(`[data-test=events-pending]`, "1 new event", 20*time.Second)
	if s := b.text(first + ` [data-test=event-message]`); strings.Contains(s, "63s") {
		t.Errorf("a frozen tail showed the new event")
	}
	b.click(`[data-test=events-pending]`)
	b.waitText(first+` [data-test=event-message]`, "hooks.timeout = 63s", 10*time.Second)

	var same bool
	b.evalInto(`window.__notReloaded === true`, &same)
	if !same {
		t.Error("the page was reloaded")
	}
	b.evalInto(`window.scrollTo(0, 0)`, nil) // sticky headers stay where the page was scrolled
	b.shot("events-filtered")

	// A burst of 300 events arrives live, in order; opened afresh the page
	// shows the newest 200 and pages back to the rest with Load older.
	b.click(`[data-test=events-clear]`)
	b.waitFor("the unfiltered list", `document.querySelectorAll('[data-test=events-chip]').length === 0 &&
		document.querySelectorAll('[data-test=event-row]:not([data-id="1003"])').length > 0`, 20*time.Second)
	csrf := b.csrf()
	b.evalWithin(fmt.Sprintf(`(async () => { for (let i = 100; i < 400; i++) {
		const r = await fetch('/v1/settings/hooks.timeout', {method: 'PUT', headers: {'X-CSRF-Token': %s, 'Content-Type': 'application/json'}, body: JSON.stringify({value: i + 's'})});
		if (!r.ok) throw new Error(await r.text()); } })()`, jsString(csrf)), nil, 2*time.Minute)
	b.waitText(first+` [data-test=event-message]`, "hooks.timeout = 399s", 30*time.Second)
	descending := `(() => { const s = [...document.querySelectorAll('[data-test=event-row]')].map((r) => Number(r.dataset.seq));
		return s.every((x, i) => i === 0 || s[i - 1] > x) ? s.length : -1; })()`
	var total int
	b.evalInto(descending, &total)
	if total < 300 {
		t.Fatalf("after the burst: %d rows in descending order (-1: out of order), want every event", total)
	}
	b.open("/fleet")
	b.open("/events")
	b.waitFor("the newest page", `document.querySelectorAll('[data-test=event-row]').length === 200`, 20*time.Second)
	b.click(`[data-test=events-older]`)
	b.waitFor("older events", fmt.Sprintf(`document.querySelectorAll('[data-test=event-row]').length === %d`, total), 20*time.Second)
	var n int
	if b.evalInto(descending, &n); n != total {
		t.Errorf("after Load older: %d rows in descending order (-1: out of order), want %d", n, total)
	}

	// A server restart: when the live feed is back, the events written
	// while it was away (1200 server started) are fetched, on top.
	var top int
	b.evalInto(`Number(document.querySelector('[data-test=event-row]').dataset.seq)`, &top)
	f.srv.Stop()
	b.waitText(`[data-test=live]`, "reconnecting", 30*time.Second)
	f.srv.Start()
	b.waitText(`[data-test=banner]`, "Reconnected", 60*time.Second)
	b.waitFor("event 1200 after the restart", fmt.Sprintf(`(() => { const r = document.querySelector('[data-test=event-row]');
		return r.dataset.id === '1200' && Number(r.dataset.seq) > %d; })()`, top), 20*time.Second)
	if b.evalInto(descending, &n); n <= total {
		t.Errorf("after the restart: %d rows in descending order (-1: out of order), want more than %d", n, total)
	}
}
