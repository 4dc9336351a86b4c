//go:build unix

package console_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/moltfleet/molt/protocol"
)

// The Settings page: a version policy pinned and saved, a bad value
// refused with the server's message as it is, an API token created with
// its secret shown once and revoked, and a one-time sign-in link.
func TestBrowserSettingsPolicyAndTokens(t *testing.T) {
	t.Parallel()
	f := startFleet(t, fleetOptions{Hosts: 1})
	platform := f.srv.Agent(f.ids[0]).Platform
	b := newBrowser(t, f.srv)
	b.signIn(f.adminToken())
	b.open("/settings")
	row := fmt.Sprintf(`[data-test=version-row][data-platform=%s]`, jsString(platform))
	b.waitFor("the policy row of "+platform, fmt.Sprintf(`!!document.querySelector(%s)`, jsString(row)), 20*time.Second)
	b.waitText(row+` [data-test=setting-value]`, "latest", 5*time.Second)
	// The server explains each setting, with its default.
	poll := `[data-test=setting-row][data-key="agents.poll-seconds"]`
	if s := b.text(poll); !strings.Contains(s, "long-poll interval") || !strings.Contains(b.text(poll+` [data-test=setting-default]`), "60") {
		t.Errorf("agents.poll-seconds row %q: no description or default", s)
	}

	// Pin the platform to v1.
	b.fill(row+` [data-test=version-policy]`, "pinned")
	b.fill(row+` [data-test=version-pin]`, v1)
	b.click(row + ` [data-test=version-save]`)
	b.waitText(row+` [data-test=setting-value]`, v1, 10*time.Second)
	var s protocol.Setting
	f.srv.JSON(&s, "settings", "get", "version."+platform)
	if s.Value != v1 {
		t.Errorf("the server has version.%s = %q, want %s", platform, s.Value, v1)
	}

	// A version not imported: the server's message, as it is, in the row.
	b.fill(row+` [data-test=version-pin]`, "9.9.9")
	b.click(row + ` [data-test=version-save]`)
	b.waitFor("the error", fmt.Sprintf(`!!document.querySelector(%s)`, jsString(row+` [data-test=error]`)), 10*time.Second)
	code, body := b.fetch("PUT", "/v1/settings/version."+platform, protocol.SettingRequest{Value: "9.9.9"}, map[string]string{"X-CSRF-Token": b.csrf()})
	if code < 400 {
		t.Fatalf("PUT 9.9.9 answered %d", code)
	}
	if got, want := b.text(row+` [data-test=error]`), errMessage(body); got != want {
		t.Errorf("shown %q, the server said %q", got, want)
	}
	if s := b.text(row + ` [data-test=setting-value]`); !strings.Contains(s, v1) {
		t.Errorf("after a refused change the row shows %q", s)
	}
	b.fill(poll+` [data-test=setting-input]`, "abc")
	b.click(poll + ` [data-test=setting-save]`)
	b.waitText(poll+` [data-test=error]`, `agents.poll-seconds: "abc" is not a whole number from 1 to 600`, 10*time.Second)

	// Any key: set where it is listed; an unknown one refused as the
	// server says.
	b.typeIn(`[data-test=any-key]`, "hooks.timeout")
	b.typeIn(`[data-test=any-value]`, "75s")
	b.click(`[data-test=any-save]`)
	b.waitText(`[data-test=setting-row][data-key="hooks.timeout"] [data-test=setting-value]`, "75s", 10*time.Second)
	b.fill(`[data-test=any-key]`, "no.such")
	b.click(`[data-test=any-save]`)
	b.waitText(`[data-test=any-error]`, `unknown setting "no.such"`, 10*time.Second)

	// A token: its secret shown once, with a warning, and it works.
	b.typeIn(`[data-test=token-name]`, "ci-pipeline")
	b.fill(`[data-test=token-role]`, "operator")
	b.click(`[data-test=token-create]`)
	b.waitFor("the secret", `(document.querySelector('[data-test=token-secret]')?.value ?? '').startsWith('molt_')`, 10*time.Second)
	var secret string
	b.evalInto(`document.querySelector('[data-test=token-secret]').value`, &secret)
	if s := b.text(`.settings-once`); !strings.Contains(s, "shown only this once") {
		t.Errorf("no warning with the secret: %q", s)
	}
	if code, _ := b.fetch("GET", "/v1/server", nil, map[string]string{"Authorization": "Bearer " + secret}); code != 200 {
		t.Errorf("the new token's secret answered %d", code)
	}
	b.evalInto(`window.scrollTo(0, 0)`, nil) // sticky headers stay where the page was scrolled
	b.shot("settings")
	b.checkA11y("/settings")

	// Not shown again.
	b.open("/fleet")
	b.open("/settings")
	b.waitFor("the tokens", `[...document.querySelectorAll('[data-test=token-row]')].some((r) => r.innerText.includes('ci-pipeline'))`, 20*time.Second)
	if n := b.count(`[data-test=token-secret]`); n != 0 {
		t.Errorf("the secret is shown again after a reload")
	}

	// Revoked after a confirmation, it no longer works.
	b.evalInto(`[...document.querySelectorAll('[data-test=token-row]')].find((r) => r.innerText.includes('ci-pipeline')).querySelector('[data-test=token-revoke]').click()`, nil)
	b.click(`[data-test=confirm-ok]`)
	b.waitFor("the token revoked", `[...document.querySelectorAll('[data-test=token-row]')].some((r) => r.innerText.includes('ci-pipeline') && r.innerText.includes('revoked'))`, 10*time.Second)
	if code, _ := b.fetch("GET", "/v1/server", nil, map[string]string{"Authorization": "Bearer " + secret}); code != 401 {
		t.Errorf("the revoked token's secret answered %d, want 401", code)
	}

	// A one-time sign-in link.
	b.click(`[data-test=signin-link-make]`)
	b.waitFor("the link", `(document.querySelector('[data-test=signin-link-url]')?.value ?? '').includes('/console/#signin=')`, 10*time.Second)
	b.evalInto(`window.scrollTo(0, 0)`, nil)
	b.shot("settings-tokens")
}

// errMessage is the message of an API error body.
func errMessage(body string) string {
	var e protocol.Error
	_ = json.Unmarshal([]byte(body), &e)
	return e.Error
}
