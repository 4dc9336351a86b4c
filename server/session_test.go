package server

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/moltfleet/molt/protocol"
	"github.com/moltfleet/molt/store"
)

// sreq is one request as a browser with a session sends it: the cookie,
// and when not empty the CSRF header and Origin. bearer, when not empty,
// is sent too.
type sreq struct {
	method, path     string
	cookie           string
	csrf, origin     string
	bearer           string
	body             any
	wantStatus       int
	wantCode         string
	wantErrSubstring string
}

type sresp struct {
	status  int
	err     protocol.Error
	body    []byte
	cookies []*http.Cookie
}

func (e *env) session(t testing.TB, q sreq) sresp {
	t.Helper()
	var rd io.Reader
	if q.body != nil {
		b, _ := json.Marshal(q.body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(q.method, e.hs.URL+q.path, rd)
	if q.cookie != "" {
		req.AddCookie(&http.Cookie{Name: protocol.SessionCookie, Value: q.cookie})
	}
	if q.csrf != "" {
		req.Header.Set(protocol.HeaderCSRF, q.csrf)
	}
	if q.origin != "" {
		req.Header.Set("Origin", q.origin)
	}
	if q.bearer != "" {
		req.Header.Set("Authorization", "Bearer "+q.bearer)
	}
	resp, err := e.hs.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out := sresp{status: resp.StatusCode, cookies: resp.Cookies()}
	out.body, _ = io.ReadAll(resp.Body)
	if resp.StatusCode >= 300 {
		if err := json.Unmarshal(out.body, &out.err); err != nil {
			t.Fatalf("%s %s: %d with a body that is not the JSON error shape: %q", q.method, q.path, resp.StatusCode, out.body)
		}
	}
	if q.wantStatus != 0 && (out.status != q.wantStatus || out.err.Code != q.wantCode || !strings.Contains(out.err.Error, q.wantErrSubstring)) {
		t.Fatalf("%s %s: %d %q (%s), want %d %q (%s)", q.method, q.path, out.status, out.err.Error, out.err.Code, q.wantStatus, q.wantErrSubstring, q.wantCode)
	}
	return out
}

// signIn signs in with req and returns the session and its cookie's value.
func (e *env) signIn(req protocol.SessionRequest) (protocol.Session, string) {
	e.t.Helper()
	r := e.session(e.t, sreq{method: "POST", path: "/v1/session", body: req, wantStatus: http.StatusCreated})
	var s protocol.Session
	if err := json.Unmarshal(r.body, &s); err != nil {
		e.t.Fatal(err)
	}
	for _, c := range r.cookies {
		if c.Name == protocol.SessionCookie {
			return s, c.Value
		}
	}
	e.t.Fatalf("sign-in set no %s cookie", protocol.SessionCookie)
	return s, ""
}

func (e *env) origin() string {
	u, _ := url.Parse(e.hs.URL)
	return "https://" + u.Host
}

func TestSessionSignIn(t *testing.T) {
	e := newEnv(t)
	r := e.session(t, sreq{method: "POST", path: "/v1/session", body: protocol.SessionRequest{Token: e.tokens[protocol.RoleOperator]}, wantStatus: http.StatusCreated})
	var s protocol.Session
	if err := json.Unmarshal(r.body, &s); err != nil {
		t.Fatal(err)
	}
	if s.Role != protocol.RoleOperator || s.TokenName != "operator" || s.TokenID == "" || len(s.CSRF) < 32 || !s.Expires.Equal(e.clock.Now().Add(12*time.Hour)) {
		t.Errorf("session %+v", s)
	}
	if len(r.cookies) != 1 {
		t.Fatalf("cookies %v", r.cookies)
	}
	c := r.cookies[0]
	if c.Name != "molt_session" || c.Value == "" || strings.Contains(string(r.body), c.Value) || c.Path != "/" || !c.HttpOnly || !c.Secure ||
		c.SameSite != http.SameSiteStrictMode || c.MaxAge != 12*3600 {
		t.Errorf("cookie %+v (raw %q)", c, c.Raw)
	}
	if _, err := e.s.st.SessionByHash(context.Background(), hashSecret(c.Value)); err != nil {
		t.Errorf("the session's hash is not stored (%v)", err)
	}
	if _, err := e.s.st.SessionByHash(context.Background(), c.Value); !errors.Is(err, sql.ErrNoRows) {
		t.Errorf("the session's secret is stored as it is (%v)", err)
	}
	found := false
	for _, ev := range e.events() {
		if ev.ID == protocol.EvSignedIn && ev.Fields["token"] == s.TokenID && ev.Fields["token_name"] == "operator" && ev.Fields["with"] == "token" {
			found = true
		}
	}
	if !found {
		t.Errorf("no console_signed_in event for %s", s.TokenID)
	}

	for _, tc := range []struct {
		name string
		q    sreq
	}{
		{"unknown token", sreq{body: protocol.SessionRequest{Token: "molt_not-a-token"}, wantStatus: 401, wantCode: protocol.CodeUnauthorized, wantErrSubstring: "unknown or revoked"}},
		{"overlong token", sreq{body: protocol.SessionRequest{Token: "molt_" + strings.Repeat("x", 500)}, wantStatus: 401, wantCode: protocol.CodeUnauthorized}},
		{"unknown code", sreq{body: protocol.SessionRequest{Code: "moltc_nothing"}, wantStatus: 401, wantCode: protocol.CodeUnauthorized, wantErrSubstring: "molt console link"}},
		{"both", sreq{body: protocol.SessionRequest{Token: e.tokens[protocol.RoleAdmin], Code: "x"}, wantStatus: 400, wantCode: protocol.CodeBadRequest, wantErrSubstring: "give one of token"}},
		{"neither", sreq{body: protocol.SessionRequest{}, wantStatus: 400, wantCode: protocol.CodeBadRequest, wantErrSubstring: "give one of token"}},
		{"another origin", sreq{origin: "https://evil.example", body: protocol.SessionRequest{Token: e.tokens[protocol.RoleAdmin]}, wantStatus: 403, wantCode: protocol.CodeCSRF, wantErrSubstring: "evil.example"}},
		{"body too large", sreq{body: map[string]string{"token": strings.Repeat("x", sessionBody)}, wantStatus: 413, wantCode: protocol.CodeTooLarge}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.q.method, tc.q.path = "POST", "/v1/session"
			start := time.Now()
			r := e.session(t, tc.q)
			if tc.q.wantStatus == 401 && time.Since(start) < signinFailDelay {
				t.Errorf("refused after %s, want at least %s", time.Since(start), signinFailDelay)
			}
			if len(r.cookies) != 0 {
				t.Errorf("a refused sign-in set cookies %v", r.cookies)
			}
		})
	}
}

func TestSessionCookieAuth(t *testing.T) {
	e := newEnv(t)
	admin, cookie := e.signIn(protocol.SessionRequest{Token: e.tokens[protocol.RoleAdmin]})
	viewer, vcookie := e.signIn(protocol.SessionRequest{Token: e.tokens[protocol.RoleViewer]})

	r := e.session(t, sreq{method: "GET", path: "/v1/session", cookie: cookie, wantStatus: 200})
	var got protocol.Session
	if err := json.Unmarshal(r.body, &got); err != nil || got != admin {
		t.Errorf("GET /v1/session: %+v (%v), want %+v", got, err, admin)
	}
	run := protocol.RunRequest{Selection: protocol.Selection{All: true}, Target: "9.9.9"}
	for _, tc := range []struct {
		name string
		q    sreq
	}{
		{"GET with the cookie only", sreq{method: "GET", path: "/v1/agents", cookie: cookie, wantStatus: 200}},
		{"HEAD needs no CSRF", sreq{method: "HEAD", path: "/v1/agents", cookie: vcookie, wantStatus: 200}},
		{"admin route as admin session", sreq{method: "GET", path: "/v1/tokens", cookie: cookie, wantStatus: 200}},
		{"admin route as viewer session", sreq{method: "GET", path: "/v1/tokens", cookie: vcookie, wantStatus: 403, wantCode: protocol.CodeForbidden, wantErrSubstring: "needs the admin role"}},
		{"POST without CSRF", sreq{method: "POST", path: "/v1/runs", cookie: cookie, body: run, wantStatus: 403, wantCode: protocol.CodeCSRF, wantErrSubstring: "X-CSRF-Token"}},
		{"POST with a wrong CSRF", sreq{method: "POST", path: "/v1/runs", cookie: cookie, csrf: admin.CSRF + "x", body: run, wantStatus: 403, wantCode: protocol.CodeCSRF}},
		{"POST with another session's CSRF", sreq{method: "POST", path: "/v1/runs", cookie: cookie, csrf: viewer.CSRF, body: run, wantStatus: 403, wantCode: protocol.CodeCSRF}},
		{"POST from another origin", sreq{method: "POST", path: "/v1/runs", cookie: cookie, csrf: admin.CSRF, origin: "https://evil.example", body: run, wantStatus: 403, wantCode: protocol.CodeCSRF, wantErrSubstring: "not from this server"}},
		{"POST from http on the same host", sreq{method: "POST", path: "/v1/runs", cookie: cookie, csrf: admin.CSRF, origin: strings.Replace(e.origin(), "https", "http", 1), body: run, wantStatus: 403, wantCode: protocol.CodeCSRF}},
		{"viewer session POST /v1/runs", sreq{method: "POST", path: "/v1/runs", cookie: vcookie, csrf: viewer.CSRF, body: run, wantStatus: 403, wantCode: protocol.CodeForbidden, wantErrSubstring: "needs the operator role"}},
		// Past authentication: the run is refused for its target.
		{"POST with CSRF and this origin", sreq{method: "POST", path: "/v1/runs", cookie: cookie, csrf: admin.CSRF, origin: e.origin(), body: run, wantStatus: 409, wantCode: protocol.CodeConflict}},
		{"DELETE without CSRF", sreq{method: "DELETE", path: "/v1/settings/hooks.timeout", cookie: cookie, wantStatus: 403, wantCode: protocol.CodeCSRF}},
		{"PUT with CSRF", sreq{method: "PUT", path: "/v1/settings/hooks.timeout", cookie: cookie, csrf: admin.CSRF, body: protocol.SettingRequest{Value: "90s"}, wantStatus: 200}},
		{"unknown cookie", sreq{method: "GET", path: "/v1/agents", cookie: "molts_forged", wantStatus: 401, wantCode: protocol.CodeUnauthorized, wantErrSubstring: "the session has ended: sign in again"}},
		{"overlong cookie", sreq{method: "GET", path: "/v1/agents", cookie: strings.Repeat("x", 5000), wantStatus: 401, wantCode: protocol.CodeUnauthorized, wantErrSubstring: "the session has ended"}},
		{"GET /v1/session without a cookie", sreq{method: "GET", path: "/v1/session", wantStatus: 401, wantCode: protocol.CodeUnauthorized, wantErrSubstring: "no console session"}},
		// Bearer requests are as before: no CSRF, and the header wins
		// over a cookie.
		{"bearer POST without CSRF", sreq{method: "POST", path: "/v1/tokens", bearer: e.tokens[protocol.RoleAdmin], origin: "https://evil.example", body: protocol.TokenRequest{Role: protocol.RoleViewer}, wantStatus: 201}},
		{"bearer wins over a forged cookie", sreq{method: "GET", path: "/v1/tokens", bearer: e.tokens[protocol.RoleAdmin], cookie: "molts_forged", wantStatus: 200}},
		{"bearer wins over an admin cookie", sreq{method: "GET", path: "/v1/tokens", bearer: e.tokens[protocol.RoleViewer], cookie: cookie, wantStatus: 403, wantCode: protocol.CodeForbidden}},
	} {
		t.Run(tc.name, func(t *testing.T) { e.session(t, tc.q) })
	}
	if e.s.setting(t.Context(), "hooks.timeout") != "90s" {
		t.Errorf("the PUT with CSRF did not change hooks.timeout")
	}
}

func TestSessionEnds(t *testing.T) {
	e := newEnv(t)
	t.Run("sign-out", func(t *testing.T) {
		s, cookie := e.signIn(protocol.SessionRequest{Token: e.tokens[protocol.RoleOperator]})
		e.session(t, sreq{method: "DELETE", path: "/v1/session", cookie: cookie, wantStatus: 403, wantCode: protocol.CodeCSRF})
		r := e.session(t, sreq{method: "DELETE", path: "/v1/session", cookie: cookie, csrf: s.CSRF, origin: e.origin(), wantStatus: 204})
		if len(r.cookies) != 1 || r.cookies[0].Name != protocol.SessionCookie || r.cookies[0].Value != "" || r.cookies[0].MaxAge >= 0 {
			t.Errorf("sign-out's cookies %v, want %s cleared", r.cookies, protocol.SessionCookie)
		}
		e.session(t, sreq{method: "GET", path: "/v1/agents", cookie: cookie, wantStatus: 401, wantCode: protocol.CodeUnauthorized, wantErrSubstring: "the session has ended: sign in again"})
		e.session(t, sreq{method: "GET", path: "/v1/session", cookie: cookie, wantStatus: 401, wantCode: protocol.CodeUnauthorized})
		r = e.session(t, sreq{method: "DELETE", path: "/v1/session", cookie: cookie, csrf: s.CSRF, wantStatus: 401, wantCode: protocol.CodeUnauthorized})
		if len(r.cookies) != 1 || r.cookies[0].MaxAge >= 0 {
			t.Errorf("signing out of an ended session does not clear its cookie: %v", r.cookies)
		}
		found := false
		for _, ev := range e.events() {
			if ev.ID == protocol.EvSignedOut && ev.Fields["token"] == s.TokenID && ev.Fields["token_name"] == "operator" {
				found = true
			}
		}
		if !found {
			t.Errorf("no console_signed_out event for %s", s.TokenID)
		}
	})
	t.Run("token revoked", func(t *testing.T) {
		var tc protocol.TokenCreated
		e.must("POST", "/v1/tokens", protocol.RoleAdmin, protocol.TokenRequest{Role: protocol.RoleAdmin, Name: "brief"}, &tc)
		_, cookie := e.signIn(protocol.SessionRequest{Token: tc.Secret})
		e.session(t, sreq{method: "GET", path: "/v1/agents", cookie: cookie, wantStatus: 200})
		e.must("DELETE", "/v1/tokens/"+tc.Token.ID, protocol.RoleAdmin, nil, nil)
		e.session(t, sreq{method: "GET", path: "/v1/agents", cookie: cookie, wantStatus: 401, wantCode: protocol.CodeUnauthorized, wantErrSubstring: "the session has ended"})
		e.session(t, sreq{method: "POST", path: "/v1/session", body: protocol.SessionRequest{Token: tc.Secret}, wantStatus: 401, wantCode: protocol.CodeUnauthorized})
	})
	t.Run("role follows the token", func(t *testing.T) {
		var tc protocol.TokenCreated
		e.must("POST", "/v1/tokens", protocol.RoleAdmin, protocol.TokenRequest{Role: protocol.RoleAdmin}, &tc)
		_, cookie := e.signIn(protocol.SessionRequest{Token: tc.Secret})
		if _, err := e.s.st.(*store.DB).Writer().Exec(`UPDATE tokens SET role = 'viewer' WHERE hash = ?`, hashSecret(tc.Secret)); err != nil {
			t.Fatal(err)
		}
		e.session(t, sreq{method: "GET", path: "/v1/tokens", cookie: cookie, wantStatus: 403, wantCode: protocol.CodeForbidden})
	})
	t.Run("expiry", func(t *testing.T) {
		_, cookie := e.signIn(protocol.SessionRequest{Token: e.tokens[protocol.RoleViewer]})
		e.clock.Add(12*time.Hour - time.Second)
		e.session(t, sreq{method: "GET", path: "/v1/agents", cookie: cookie, wantStatus: 200})
		e.clock.Add(time.Second)
		e.session(t, sreq{method: "GET", path: "/v1/agents", cookie: cookie, wantStatus: 401, wantCode: protocol.CodeUnauthorized, wantErrSubstring: "the session has ended"})
	})
	t.Run("lifetime setting", func(t *testing.T) {
		for _, bad := range []string{"0s", "30s", "721h", "soon"} {
			if code, pe := e.do("PUT", "/v1/settings/sessions.lifetime", e.tokens[protocol.RoleAdmin], protocol.SettingRequest{Value: bad}, nil); code != 400 || !strings.Contains(pe.Error, "sessions.lifetime") {
				t.Errorf("sessions.lifetime=%s: %d %+v", bad, code, pe)
			}
		}
		e.must("PUT", "/v1/settings/sessions.lifetime", protocol.RoleAdmin, protocol.SettingRequest{Value: "1h"}, nil)
		r := e.session(t, sreq{method: "POST", path: "/v1/session", body: protocol.SessionRequest{Token: e.tokens[protocol.RoleViewer]}, wantStatus: 201})
		if len(r.cookies) != 1 || r.cookies[0].MaxAge != 3600 {
			t.Fatalf("cookies %v, want Max-Age 3600", r.cookies)
		}
		cookie := r.cookies[0].Value
		e.clock.Add(59 * time.Minute)
		e.session(t, sreq{method: "GET", path: "/v1/session", cookie: cookie, wantStatus: 200})
		e.clock.Add(time.Minute)
		e.session(t, sreq{method: "GET", path: "/v1/session", cookie: cookie, wantStatus: 401, wantCode: protocol.CodeUnauthorized})
	})
	t.Run("ended sessions are swept", func(t *testing.T) {
		e.signIn(protocol.SessionRequest{Token: e.tokens[protocol.RoleViewer]})
		var ended int
		if err := e.s.st.(*store.DB).Reader().QueryRow(`SELECT COUNT(*) FROM sessions s JOIN tokens t ON t.id = s.token_id WHERE s.expires <= ? OR t.revoked = 1`, nanos(e.clock.Now())).Scan(&ended); err != nil || ended != 0 {
			t.Errorf("%d ended sessions left after a sign-in (%v)", ended, err)
		}
	})
}

func TestSigninLinks(t *testing.T) {
	e := newEnv(t)
	var link protocol.SigninLink
	e.must("POST", "/v1/signin-links", protocol.RoleAdmin, nil, &link)
	if !strings.HasPrefix(link.URL, "https://") || !strings.HasSuffix(link.URL, "/console/#signin="+link.Code) || !link.Expires.Equal(e.clock.Now().Add(10*time.Minute)) {
		t.Errorf("link %+v", link)
	}
	if code, pe := e.do("POST", "/v1/signin-links", e.tokens[protocol.RoleOperator], nil, nil); code != 403 || pe.Code != protocol.CodeForbidden {
		t.Errorf("an operator made a link: %d %+v", code, pe)
	}
	s, cookie := e.signIn(protocol.SessionRequest{Code: link.Code})
	if s.Role != protocol.RoleAdmin || s.TokenName != "admin" {
		t.Errorf("a link made by the admin token signs in as %+v", s)
	}
	e.session(t, sreq{method: "GET", path: "/v1/tokens", cookie: cookie, wantStatus: 200})
	e.session(t, sreq{method: "POST", path: "/v1/session", body: protocol.SessionRequest{Code: link.Code}, wantStatus: 401, wantCode: protocol.CodeUnauthorized, wantErrSubstring: "used or expired"})

	// A link made by a session signs in as the session's token.
	r := e.session(t, sreq{method: "POST", path: "/v1/signin-links", cookie: cookie, csrf: s.CSRF, wantStatus: 201})
	var link2 protocol.SigninLink
	if err := json.Unmarshal(r.body, &link2); err != nil {
		t.Fatal(err)
	}
	if s2, _ := e.signIn(protocol.SessionRequest{Code: link2.Code}); s2.TokenID != s.TokenID {
		t.Errorf("a session's link signs in as %s, want %s", s2.TokenID, s.TokenID)
	}

	var late protocol.SigninLink
	e.must("POST", "/v1/signin-links", protocol.RoleAdmin, nil, &late)
	e.clock.Add(10 * time.Minute)
	e.session(t, sreq{method: "POST", path: "/v1/session", body: protocol.SessionRequest{Code: late.Code}, wantStatus: 401, wantCode: protocol.CodeUnauthorized})
	var n int
	if err := e.s.st.(*store.DB).Reader().QueryRow(`SELECT COUNT(*) FROM signin_codes`).Scan(&n); err != nil || n != 0 {
		t.Errorf("%d codes left after their use and expiry (%v)", n, err)
	}
	for _, ev := range e.events() {
		if strings.Contains(ev.Message+mustJSON(ev.Fields), link.Code) {
			t.Errorf("event %d shows a sign-in code: %s", ev.ID, ev.Message)
		}
	}
}
