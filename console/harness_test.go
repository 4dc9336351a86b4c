//go:build unix

package console_test

// The browser-test harness: a real `molt serve` with real supervised agents
// (internal/e2etest) and headless Chromium driven through the DevTools
// protocol (chromedp). Every test gets its own server, and its own
// browser context in the package's one Chromium.
//
//	f := startFleet(t, fleetOptions{Hosts: 2})   // server; releases imported; hosts at v1 supervised, online
//	f.srv, f.hosts, f.ids                        // the e2etest server, its hosts, their agent ids
//	f.token("viewer")                            // a new API token's secret (any role)
//	f.adminToken()                               // the server's admin token
//	b := newBrowser(t, f.srv)                    // a tab; an uncaught page exception fails the test
//	b.signIn(token)                              // the sign-in form, until the shell shows
//	b.open("/runs/r-1")                          // #/runs/r-1; waits until the page rendered
//	b.waitFor("run ended", `document.querySelector('[data-test=run-status]')?.innerText === 'ended ok'`, 90*time.Second)
//	b.waitText(sel, "substring", d)              // an element's text contains it
//	b.click(sel); b.fill(sel, v); b.typeIn(sel, v); b.text(sel); b.count(sel)
//	b.eval(js) -> any (JSON), evalInto(js, &v)   // JS in the page; promises are awaited
//	b.fetch("POST", "/v1/runs", body, headers)   // fetch from the page (its cookie): status, body
//	b.shot("fleet")                              // PNG: $MOLT_ARTIFACTS/console/<Test>-fleet.png
//	b.checkA11y("fleet")                         // labels, names, one h1, th scope, AA contrast (a11y_test.go)
//
// Selectors are CSS; the pages give what tests need `data-test` names
// (listed at the top of each page module). Screenshots go to MOLT_ARTIFACTS
// (default: the user's cache directory, molt-artifacts/console), never to
// TMPDIR: CI checks that tests leave nothing there.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/moltfleet/molt/internal/e2etest"
	"github.com/moltfleet/molt/protocol"
)

// The versions of the browser tests: hosts start at v1, v2 is the release
// to upgrade to, bad a release whose agent crashes at start (rolled back).
const (
	v1  = "1.0.0"
	v2  = "1.1.0"
	bad = "1.9.0"
)

func TestMain(m *testing.M) {
	code := e2etest.Main(m)
	stopChromium()
	os.Exit(code)
}

type fleetOptions struct {
	Hosts    int                        // supervised hosts at v1 (default 2)
	Releases []e2etest.PackOptions      // imported (default: v1 and v2)
	Settings map[string]string          // server settings (e2etest's defaults otherwise)
	Host     func(*e2etest.HostOptions) // changes each host's options
}

type fleet struct {
	t     *testing.T
	srv   *e2etest.Server
	hosts []*e2etest.Host
	ids   []string
}

// startFleet starts a server and its hosts and waits until every host is
// online at v1. Browser tests are slow: they skip under -short.
func startFleet(t *testing.T, o fleetOptions) *fleet {
	t.Helper()
	if testing.Short() {
		t.Skip("browser test: runs real binaries and Chromium (skipped with -short)")
	}
	chromium(t)
	if o.Hosts == 0 {
		o.Hosts = 2
	}
	if o.Releases == nil {
		o.Releases = []e2etest.PackOptions{{Version: v1}, {Version: v2}}
	}
	srv := e2etest.StartServer(t, e2etest.ServerOptions{Version: v2, Settings: o.Settings})
	for _, r := range o.Releases {
		srv.Import(e2etest.Pack(t, r))
	}
	f := &fleet{t: t, srv: srv}
	tok := srv.EnrollToken(o.Hosts + 5)
	for i := range o.Hosts {
		ho := e2etest.HostOptions{Name: fmt.Sprintf("host-%d", i+1), Version: v1, Supervised: true, EnrollToken: tok}
		if o.Host != nil {
			o.Host(&ho)
		}
		h := srv.NewHost(ho)
		h.Start()
		f.hosts = append(f.hosts, h)
	}
	for _, h := range f.hosts {
		f.ids = append(f.ids, h.WaitEnrolled(60*time.Second))
	}
	e2etest.Eventually(t, 90*time.Second, "every host online at "+v1, func() (bool, string) {
		n := 0
		for _, a := range srv.Agents() {
			if a.Version == v1 && a.Status == protocol.AgentOnline {
				n++
			}
		}
		return n == len(f.hosts), fmt.Sprintf("%d of %d", n, len(f.hosts))
	})
	return f
}

// token makes a new API token with role and returns its secret.
func (f *fleet) token(role string) string {
	f.t.Helper()
	var tc protocol.TokenCreated
	f.srv.JSON(&tc, "token", "create", "--role", role, "--name", "console-"+role)
	if tc.Secret == "" {
		f.t.Fatalf("token create: no secret: %+v", tc)
	}
	return tc.Secret
}

func (f *fleet) adminToken() string {
	f.t.Helper()
	b, err := os.ReadFile(f.srv.TokenFile())
	if err != nil {
		f.t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

type browser struct {
	t    *testing.T
	ctx  context.Context
	base string

	mu         sync.Mutex
	exceptions []string
}

// newBrowser opens a tab on the server's console in a new browser
// context of the package's Chromium (chromium_test.go): a profile of its
// own, so two browsers of a test are two users' sessions.
func newBrowser(t *testing.T, srv *e2etest.Server) *browser {
	t.Helper()
	ctx, cancel := chromedp.NewContext(sharedChromium(t), chromedp.WithNewBrowserContext())
	t.Cleanup(cancel)
	b := &browser{t: t, ctx: ctx, base: srv.URL()}
	if err := chromedp.Do(ctx, chromedp.Navigate("about:blank")); err != nil {
		t.Fatalf("open a tab: %v", err)
	}
	msgs := chromedp.Console(ctx)
	go func() {
		for m, err := range msgs {
			if err != nil {
				return
			}
			if m.IsException() {
				b.mu.Lock()
				b.exceptions = append(b.exceptions, m.String())
				b.mu.Unlock()
			}
			if m.IsException() || m.Type == chromedp.ConsoleError {
				t.Logf("browser console: %s", m.String())
			}
		}
	}()
	t.Cleanup(func() {
		b.mu.Lock()
		defer b.mu.Unlock()
		for _, e := range b.exceptions {
			t.Errorf("uncaught exception in the page: %s", e)
		}
	})
	return b
}

// do runs actions with a deadline, failing the test (with a screenshot)
// when they fail.
func (b *browser) do(what string, d time.Duration, actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, d)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		b.fail(what, err)
	}
}

func (b *browser) fail(what string, err error) {
	b.t.Helper()
	b.shot("failed")
	raw, _ := b.tryEval(`document.body.innerText.slice(0, 3000)`)
	var txt string
	_ = json.Unmarshal(raw, &txt)
	b.t.Fatalf("%s: %v\npage text:\n%s", what, err, txt)
}

// goto loads a URL of the server (path from /).
func (b *browser) gotoPath(path string) {
	b.t.Helper()
	b.do("load "+path, 30*time.Second, chromedp.Navigate(b.base+path))
}

// signIn signs in with token through the form and waits for the shell.
func (b *browser) signIn(token string) {
	b.t.Helper()
	b.gotoPath("/console/")
	b.waitFor("the sign-in form", `!!document.querySelector('[data-test=signin-token]')`, 20*time.Second)
	b.typeIn(`[data-test=signin-token]`, token)
	b.click(`[data-test=signin-submit]`)
	b.waitFor("the signed-in shell", `document.getElementById('top') && !document.getElementById('top').hidden`, 20*time.Second)
}

// open goes to a console route ("/fleet", "/runs/r-1") and waits until
// the page replaced the loading text.
func (b *browser) open(route string) {
	b.t.Helper()
	b.evalInto(fmt.Sprintf(`location.hash = %s`, jsString("#"+route)), nil)
	b.waitFor("page "+route, `document.querySelector('main') && !document.querySelector('main').innerText.startsWith('Loading')`, 20*time.Second)
}

// click clicks the element sel finds. A live update that replaces the
// element between its query and the click (before any mouse event is
// sent) fails the click with "Could not find node"; a person would click
// the new one, so the click is tried again, at most three times.
func (b *browser) click(sel string) {
	b.t.Helper()
	for try := 1; ; try++ {
		ctx, cancel := context.WithTimeout(b.ctx, 20*time.Second)
		err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(sel), chromedp.NodeVisible))
		cancel()
		if err == nil {
			return
		}
		if try == 3 || !strings.Contains(err.Error(), "Could not find node with given id") {
			b.fail("click "+sel, err)
		}
	}
}

// clickUntil clicks sel until cond (JS) holds, at most three times: a
// live update that redraws the element between the mouse's press and its
// release loses the click, as it would a person's, who clicks again.
func (b *browser) clickUntil(sel, what, cond string) {
	b.t.Helper()
	for try := 1; ; try++ {
		b.click(sel)
		deadline := time.Now().Add(3 * time.Second)
		for time.Now().Before(deadline) {
			var ok bool
			b.evalInto("!!("+cond+")", &ok)
			if ok {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
		if try == 3 {
			b.fail("click "+sel+" until "+what, fmt.Errorf("three clicks did not make it so"))
		}
	}
}

// typeIn types v into the element as a user would (key events).
func (b *browser) typeIn(sel, v string) {
	b.t.Helper()
	b.do("type into "+sel, 20*time.Second, chromedp.Focus(chromedp.CSS(sel), chromedp.NodeVisible), chromedp.SendKeys(chromedp.CSS(sel), v))
}

// fill sets a control's value and fires input and change, as choosing in
// a select or pasting does.
func (b *browser) fill(sel, v string) {
	b.t.Helper()
	b.waitFor(sel, fmt.Sprintf(`!!document.querySelector(%s)`, jsString(sel)), 20*time.Second)
	b.evalInto(fmt.Sprintf(`(() => { const el = document.querySelector(%s); el.value = %s;
		el.dispatchEvent(new Event('input', {bubbles: true})); el.dispatchEvent(new Event('change', {bubbles: true})); })()`,
		jsString(sel), jsString(v)), nil)
}

// text is an element's visible text ("" when there is none).
func (b *browser) text(sel string) string {
	b.t.Helper()
	var s string
	b.evalInto(fmt.Sprintf(`document.querySelector(%s)?.innerText ?? ''`, jsString(sel)), &s)
	return s
}

func (b *browser) count(sel string) int {
	b.t.Helper()
	var n int
	b.evalInto(fmt.Sprintf(`document.querySelectorAll(%s).length`, jsString(sel)), &n)
	return n
}

// waitFor polls a JS predicate every 100 ms until it is truthy. A poll
// cut short by a navigation (its JS context destroyed) starts again.
func (b *browser) waitFor(what, predicate string, d time.Duration) {
	b.t.Helper()
	deadline := time.Now().Add(d)
	for {
		left := time.Until(deadline)
		ctx, cancel := context.WithTimeout(b.ctx, left+5*time.Second)
		_, err := chromedp.Run(ctx, chromedp.Poll[chromedp.Void](predicate,
			chromedp.WithPollingInterval(100*time.Millisecond), chromedp.WithPollingTimeout(left)))
		cancel()
		if err == nil {
			return
		}
		if !navigated(err) || time.Now().After(deadline) {
			b.fail("waiting for "+what, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// navigated tells an error of a page that went away under a script (a
// navigation or a reload) from a real failure.
func navigated(err error) bool {
	s := err.Error()
	return strings.Contains(s, "Cannot find context") || strings.Contains(s, "Execution context was destroyed") ||
		strings.Contains(s, "Inspected target navigated")
}

// waitText waits until the element's text contains want.
func (b *browser) waitText(sel, want string, d time.Duration) {
	b.t.Helper()
	b.waitFor(fmt.Sprintf("%s to show %q", sel, want),
		fmt.Sprintf(`(document.querySelector(%s)?.innerText ?? '').includes(%s)`, jsString(sel), jsString(want)), d)
}

// evalInto evaluates JS in the page (awaiting a promise) and decodes the
// result into v (nil: ignore it).
func (b *browser) evalInto(js string, v any) {
	b.t.Helper()
	b.evalWithin(js, v, 30*time.Second)
}

// evalWithin is evalInto for a script that may run longer than 30 s on a
// busy machine (a burst of requests), bounded by d.
func (b *browser) evalWithin(js string, v any, d time.Duration) {
	b.t.Helper()
	raw, err := b.tryEvalWithin(js, d)
	if err != nil {
		b.fail("eval "+firstLine(js), err)
	}
	if v != nil {
		if err := json.Unmarshal(raw, v); err != nil {
			b.t.Fatalf("eval %s: result %s: %v", firstLine(js), raw, err)
		}
	}
}

func (b *browser) tryEval(js string) ([]byte, error) {
	return b.tryEvalWithin(js, 30*time.Second)
}

func (b *browser) tryEvalWithin(js string, d time.Duration) ([]byte, error) {
	ctx, cancel := context.WithTimeout(b.ctx, d)
	defer cancel()
	raw, err := chromedp.Run(ctx, chromedp.Evaluate[[]byte](js, chromedp.EvalAwaitPromise))
	if errors.Is(err, chromedp.ErrJSUndefined) {
		return []byte("null"), nil
	}
	return raw, err
}

// fetch makes a request from the page, with its cookie, as a forged or
// scripted request would; headers are added as given (no CSRF header
// unless one is given).
func (b *browser) fetch(method, path string, body any, headers map[string]string) (int, string) {
	b.t.Helper()
	var bodyJS = "undefined"
	if body != nil {
		j, err := json.Marshal(body)
		if err != nil {
			b.t.Fatal(err)
		}
		bodyJS = jsString(string(j))
	}
	if headers == nil {
		headers = map[string]string{}
	}
	h, _ := json.Marshal(headers)
	var out struct {
		Status int    `json:"status"`
		Body   string `json:"body"`
	}
	b.evalInto(fmt.Sprintf(`(async () => { const r = await fetch(%s, {method: %s, headers: %s, body: %s, credentials: 'same-origin'});
		return {status: r.status, body: await r.text()}; })()`, jsString(path), jsString(method), h, bodyJS), &out)
	return out.Status, out.Body
}

// shot saves a screenshot of the whole page as a test artifact.
func (b *browser) shot(name string) string {
	b.t.Helper()
	dir := artifacts(b.t)
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	// chromedp.FullScreenshot(100) (the whole page, PNG) with the
	// encoding optimized for speed: the same image in a larger file, for
	// less of Chromium's CPU.
	r, err := chromedp.Call(ctx, page.CaptureScreenshot, page.CaptureScreenshotParams{
		Format: page.CaptureScreenshotFormatPng, CaptureBeyondViewport: ptr(true), FromSurface: ptr(true), OptimizeForSpeed: ptr(true)})
	if err != nil {
		b.t.Logf("screenshot %s: %v", name, err)
		return ""
	}
	p := filepath.Join(dir, safeName(b.t.Name())+"-"+name+".png")
	if err := os.WriteFile(p, r.Data, 0o644); err != nil {
		b.t.Logf("screenshot %s: %v", name, err)
		return ""
	}
	b.t.Logf("screenshot: %s", p)
	return p
}

func ptr[T any](v T) *T { return &v }

func artifacts(t *testing.T) string {
	dir := os.Getenv("MOLT_ARTIFACTS")
	if dir == "" {
		c, err := os.UserCacheDir()
		if err != nil {
			t.Fatalf("no place for screenshots: set MOLT_ARTIFACTS (%v)", err)
		}
		dir = filepath.Join(c, "molt-artifacts")
	}
	dir = filepath.Join(dir, "console")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

var unsafe = regexp.MustCompile(`[^A-Za-z0-9_.-]+`)

func safeName(s string) string { return unsafe.ReplaceAllString(s, "_") }

func jsString(s string) string {
	j, _ := json.Marshal(s)
	return string(j)
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	return s
}
