//go:build unix

package console_test

import (
	"encoding/json"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/moltfleet/molt/protocol"
)

// Sign-in, the session cookie, CSRF and sign-out, in a real browser
// against a real server.
func TestBrowserSignInCSRFSignOut(t *testing.T) {
	t.Parallel()
	f := startFleet(t, fleetOptions{Hosts: 1})
	b := newBrowser(t, f.srv)

	// / leads to the console, which asks for a token.
	b.gotoPath("/")
	b.waitFor("the sign-in form", `!!document.querySelector('[data-test=signin-token]')`, 20*time.Second)
	if got := b.text("h1"); got != "Sign in to molt" {
		t.Errorf("heading %q", got)
	}
	b.shot("signin")
	b.checkA11y("signin")

	// A wrong token is refused with the server's message, on the form.
	b.typeIn(`[data-test=signin-token]`, "molt_not-a-token")
	b.click(`[data-test=signin-submit]`)
	b.waitText(`[data-test=signin-error]`, "unknown or revoked", 10*time.Second)

	b.evalInto(`document.querySelector('[data-test=signin-token]').value = ''`, nil)
	b.typeIn(`[data-test=signin-token]`, f.token("operator"))
	b.click(`[data-test=signin-submit]`)
	b.waitText(`[data-test=who]`, "operator", 20*time.Second)
	b.waitText("main", "host-1", 20*time.Second)
	b.waitText(`[data-test=live]`, "live", 20*time.Second)
	b.shot("fleet")

	// The session cookie is HttpOnly: the page's script cannot read it.
	var cookies string
	b.evalInto(`document.cookie`, &cookies)
	if strings.Contains(cookies, "molt_session") {
		t.Errorf("document.cookie shows the session: %q", cookies)
	}

	// A request with the cookie but without the CSRF token is refused,
	// and so is one with a wrong token; the right one passes the check.
	for _, tc := range []struct {
		name    string
		headers map[string]string
	}{
		{"no token", nil},
		{"wrong token", map[string]string{"X-CSRF-Token": "forged"}},
	} {
		code, body := b.fetch("POST", "/v1/runs", protocol.RunRequest{Target: v2, Selection: protocol.Selection{All: true}}, tc.headers)
		if code != 403 || errCode(body) != protocol.CodeCSRF {
			t.Errorf("%s: POST /v1/runs answered %d %s; want 403 csrf", tc.name, code, body)
		}
	}
	if runs := f.srv.Runs(); len(runs) != 0 {
		t.Fatalf("a refused request made runs: %+v", runs)
	}
	csrf := b.csrf()
	code, body := b.fetch("POST", "/v1/runs", protocol.RunRequest{Target: v2, Selection: protocol.Selection{All: true}, DryRun: true},
		map[string]string{"X-CSRF-Token": csrf})
	if code != 200 {
		t.Errorf("dry run with the CSRF token: %d %s", code, body)
	}

	// Sign-out ends the session on the server, not only in the page.
	b.click(`[data-test=signout]`)
	b.waitFor("the sign-in form", `!!document.querySelector('[data-test=signin-token]')`, 10*time.Second)
	b.waitText(`[data-test=signin-error]`, "Signed out", 5*time.Second)
	if code, body := b.fetch("GET", "/v1/agents", nil, nil); code != 401 {
		t.Errorf("after sign-out GET /v1/agents answered %d %s; want 401", code, body)
	}
	if code, _ := b.fetch("POST", "/v1/runs", protocol.RunRequest{Target: v2, Selection: protocol.Selection{All: true}},
		map[string]string{"X-CSRF-Token": csrf}); code != 401 {
		t.Errorf("after sign-out a POST with the old CSRF token answered %d; want 401", code)
	}
}

// A viewer sees no action, and the server refuses one forged with the
// viewer's own session and CSRF token.
func TestBrowserViewerSeesNoActions(t *testing.T) {
	t.Parallel()
	f := startFleet(t, fleetOptions{Hosts: 1})
	b := newBrowser(t, f.srv)
	b.signIn(f.token("viewer"))
	b.waitText(`[data-test=who]`, "viewer", 10*time.Second)
	if n := b.count(`[data-test=nav-settings]`); n != 0 {
		t.Errorf("a viewer sees Settings in the navigation")
	}
	actions := regexp.MustCompile(`(?i)^(upgrade|revoke|pause|resume|cancel|promote|roll back|skip|retry|import|remove|quarantine|create|delete|save|reset)\b`)
	for _, page := range []string{"/fleet", "/agents/" + f.ids[0], "/runs", "/history", "/releases", "/events"} {
		b.open(page)
		time.Sleep(500 * time.Millisecond) // let the page's first fetches land
		var buttons []string               // sorting a column's header is not an action
		b.evalInto(`[...document.querySelectorAll('main button, dialog button')].filter(x => x.offsetParent !== null && !x.closest('thead')).map(x => x.innerText.trim())`, &buttons)
		for _, s := range buttons {
			if actions.MatchString(s) {
				t.Errorf("page %s shows a viewer the action %q", page, s)
			}
		}
		b.shot("viewer-" + strings.ReplaceAll(strings.Trim(page, "/"), "/", "-"))
		b.checkA11y(page)
	}
	csrf := b.csrf()
	for _, req := range []struct{ method, path string }{
		{"POST", "/v1/runs"},
		{"POST", "/v1/agents/" + f.ids[0] + "/revoke"},
		{"PUT", "/v1/settings/agents.poll-seconds"},
	} {
		var body any = protocol.RunRequest{Target: v2, Selection: protocol.Selection{All: true}}
		if req.method == "PUT" {
			body = protocol.SettingRequest{Value: "5"}
		} else if strings.HasSuffix(req.path, "revoke") {
			body = nil
		}
		code, out := b.fetch(req.method, req.path, body, map[string]string{"X-CSRF-Token": csrf})
		if code != 403 || errCode(out) != protocol.CodeForbidden {
			t.Errorf("viewer %s %s answered %d %s; want 403 forbidden", req.method, req.path, code, out)
		}
	}
	if a := f.srv.Agent(f.ids[0]); a.Revoked {
		t.Fatal("the forged revoke went through")
	}
}

// csrf is the session's CSRF token, as the console reads it.
func (b *browser) csrf() string {
	b.t.Helper()
	var s protocol.Session
	b.evalInto(`fetch('/v1/session').then(r => r.json())`, &s)
	if s.CSRF == "" {
		b.t.Fatalf("GET /v1/session: no csrf: %+v", s)
	}
	return s.CSRF
}

func errCode(body string) string {
	var e protocol.Error
	_ = json.Unmarshal([]byte(body), &e)
	return e.Code
}

// When the server restarts, the console says it lost the server, then
// that it is back, without a reload, and the session survives.
func TestBrowserServerRestart(t *testing.T) {
	t.Parallel()
	f := startFleet(t, fleetOptions{Hosts: 1})
	b := newBrowser(t, f.srv)
	b.signIn(f.token("operator"))
	b.waitText(`[data-test=live]`, "live", 20*time.Second)
	var marker bool
	b.evalInto(`window.__noReload = true`, &marker)

	f.srv.Stop()
	b.waitText(`[data-test=banner]`, "cannot be reached", 30*time.Second)
	b.waitText(`[data-test=live]`, "reconnecting", 5*time.Second)
	b.shot("server-away")
	f.srv.Start()
	b.waitText(`[data-test=banner]`, "Reconnected", 60*time.Second)
	b.waitText(`[data-test=live]`, "live", 5*time.Second)
	b.evalInto(`window.__noReload === true`, &marker)
	if !marker {
		t.Error("the page was reloaded")
	}
	b.open("/fleet")
	b.waitText("main", "host-1", 20*time.Second)
	if who := b.text(`[data-test=who]`); !strings.Contains(who, "operator") {
		t.Errorf("after the restart the shell shows %q", who)
	}
}
