package server

import (
	"context"
	"crypto/subtle"
	"database/sql"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/moltfleet/molt/protocol"
	"github.com/moltfleet/molt/store"
)

// Console sessions (docs/api.md, "Console sessions"). A browser exchanges
// an API token, or a one-time sign-in code made from one, for a session
// whose secret only its HttpOnly cookie carries. The session is a way to
// present its token: it has the token's role as it is now, and revoking
// the token ends it. A cookie is an ambient credential, sent with requests
// other sites make the browser send, so every cookie request that changes
// something must also carry the session's CSRF value, which only a page of
// this server can read (GET /v1/session), and come from this server's
// origin when the browser names one. Bearer tokens are not ambient and are
// not asked for either.
const (
	// sessionBody bounds POST /v1/session: a token or a code, no more.
	sessionBody = 4 << 10
	// maxSessionSecret bounds a cookie value or code looked up: secrets
	// are a prefix and 43 characters; anything longer is not one.
	maxSessionSecret = 100
	// signinFailDelay is how long a refused sign-in waits before it is
	// answered. Secrets have 256 random bits, so guessing is hopeless
	// anyway; the wait also makes each guess cost a client a third of a
	// second and keeps a refusal from answering faster than a success.
	signinFailDelay = 300 * time.Millisecond
	// sweepBatch bounds the ended sessions and dead codes deleted by one
	// sign-in or link: each adds one row and may remove this many.
	sweepBatch = 100
	// maxSessionLifetime bounds the sessions.lifetime setting: expiry is
	// absolute, and a month without signing in again defeats it.
	maxSessionLifetime = 720 * time.Hour
)

// sessionRec is a session row joined with its token.
type sessionRec struct {
	id        int64
	tokenID   int64
	tokenName string
	role      string
	csrf      string
	expires   time.Time
	lastUsed  time.Time // the token's
}

func (r sessionRec) view() protocol.Session {
	return protocol.Session{Role: r.role, TokenID: tokenID(r.tokenID), TokenName: r.tokenName, CSRF: r.csrf, Expires: r.expires}
}

func tokenID(id int64) string { return "t-" + strconv.FormatInt(id, 10) }

func errSessionEnded() error {
	return errf(http.StatusUnauthorized, protocol.CodeUnauthorized, "the session has ended: sign in again")
}

func checkSessionLifetime(value string) error {
	d, err := time.ParseDuration(value)
	if err != nil || d < time.Minute || d > maxSessionLifetime {
		return badRequest("sessions.lifetime: %q is not a duration from 1m to %s, like 12h", value, maxSessionLifetime)
	}
	return nil
}

// hasSessionCookie tells whether the request carries a session cookie,
// valid or not.
func hasSessionCookie(r *http.Request) bool {
	_, err := r.Cookie(protocol.SessionCookie)
	return err == nil
}

// authSession authenticates a request by its session cookie (authToken
// sends it here when there is no Authorization header).
func (s *Server) authSession(r *http.Request, need string) (caller, error) {
	rec, err := s.session(r, need)
	if err != nil {
		return caller{}, err
	}
	return caller{Role: rec.role, TokenID: rec.tokenID}, nil
}

// session finds the request's live session and checks what a cookie
// request must show: the CSRF value and this server's origin on anything
// but GET and HEAD, then the role.
func (s *Server) session(r *http.Request, need string) (sessionRec, error) {
	ck, err := r.Cookie(protocol.SessionCookie)
	if err != nil {
		return sessionRec{}, errf(http.StatusUnauthorized, protocol.CodeUnauthorized, "no console session: sign in (POST /v1/session)")
	}
	if ck.Value == "" || len(ck.Value) > maxSessionSecret {
		return sessionRec{}, errSessionEnded()
	}
	row, err := s.st.SessionByHash(r.Context(), hashSecret(ck.Value))
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return sessionRec{}, errSessionEnded()
	case err != nil:
		return sessionRec{}, fmt.Errorf("session: %w", err)
	}
	rec := sessionRec{id: row.ID, tokenID: row.TokenID, tokenName: row.TokenName, role: row.Role, csrf: row.CSRF, expires: row.Expires, lastUsed: row.LastUsed}
	now := s.clock.Now()
	if row.Revoked || !now.Before(rec.expires) {
		return sessionRec{}, errSessionEnded()
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		got := r.Header.Get(protocol.HeaderCSRF)
		if got == "" || subtle.ConstantTimeCompare([]byte(got), []byte(rec.csrf)) != 1 {
			return sessionRec{}, errf(http.StatusForbidden, protocol.CodeCSRF, "this request needs the session's CSRF value in the %s header (GET /v1/session has it)", protocol.HeaderCSRF)
		}
		if err := s.checkOrigin(r); err != nil {
			return sessionRec{}, err
		}
	}
	if protocol.RoleRank(rec.role) < protocol.RoleRank(need) {
		return sessionRec{}, errf(http.StatusForbidden, protocol.CodeForbidden, "this needs the %s role; the session's token has %s", need, rec.role)
	}
	// As for bearer tokens, last_used is written at most once a minute.
	if now.Sub(rec.lastUsed) > time.Minute {
		_ = s.st.Update(r.Context(), func(tx *store.Tx) error {
			return tx.SetTokenLastUsed(rec.tokenID, now)
		})
	}
	return rec, nil
}

// checkOrigin refuses a request whose Origin header names another site
// than this server (https://HOST, or the origin of --public-url). Browsers
// send Origin with the requests that matter here; programs need not.
func (s *Server) checkOrigin(r *http.Request) error {
	origin := r.Header.Get("Origin")
	if origin == "" || origin == "https://"+r.Host {
		return nil
	}
	if s.opt.PublicURL != "" {
		if u, err := url.Parse(s.opt.PublicURL); err == nil && origin == u.Scheme+"://"+u.Host {
			return nil
		}
	}
	if len(origin) > 100 {
		origin = origin[:100] + "..."
	}
	return errf(http.StatusForbidden, protocol.CodeCSRF, "the request comes from %q, not from this server (https://%s)", origin, r.Host)
}

// handleSessionCreate signs in: a token or a one-time code is exchanged
// for a session and its cookie.
func (s *Server) handleSessionCreate(w http.ResponseWriter, r *http.Request, _ caller) error {
	if err := s.checkOrigin(r); err != nil {
		return err
	}
	req, err := decodeJSON[protocol.SessionRequest](r.Body)
	if err != nil {
		return err
	}
	if (req.Token == "") == (req.Code == "") {
		return badRequest("give one of token (an API token, molt_...) and code (from a sign-in link: molt console link)")
	}
	if req.Token != "" {
		return s.signIn(w, r, req.Token, "token")
	}
	return s.signIn(w, r, req.Code, "link")
}

// signIn opens a session for the token named by secret ("token") or by a
// one-time code ("link"), which is used up whatever the outcome.
func (s *Server) signIn(w http.ResponseWriter, r *http.Request, secret, with string) error {
	refused := "the API token is unknown or revoked"
	if with == "link" {
		refused = "the sign-in link is unknown, used or expired: ask for a new one (molt console link)"
	}
	if len(secret) > maxSessionSecret {
		return s.refuseSignIn(r.Context(), refused)
	}
	known := s.st.TokenKnown
	if with == "link" {
		known = s.st.SigninCodeKnown
	}
	// A secret nobody made is refused without taking the server's lock.
	found, err := known(r.Context(), hashSecret(secret))
	if err != nil {
		return fmt.Errorf("sign in: %w", err)
	}
	if !found {
		return s.refuseSignIn(r.Context(), refused)
	}
	cookie := newSecret("molts_")
	var out protocol.Session
	ok := false
	s.mu.Lock()
	ttl := s.durationSetting("sessions.lifetime")
	err = s.change(r.Context(), func(wr *writer) error {
		if err := sweepSessions(wr); err != nil {
			return err
		}
		var tok int64
		switch with {
		case "link":
			id, exp, err := wr.tx.TakeSigninCode(hashSecret(secret))
			if errors.Is(err, sql.ErrNoRows) {
				return nil // used by a sign-in at the same time
			}
			if err != nil {
				return err
			}
			tok = id
			if !wr.now.Before(exp) {
				return nil
			}
		default:
			t, err := wr.tx.TokenByHash(hashSecret(secret))
			if errors.Is(err, sql.ErrNoRows) {
				return nil
			}
			if err != nil {
				return err
			}
			tok = t.ID
		}
		t, err := wr.tx.Token(tok)
		if err != nil {
			if errors.Is(err, sql.ErrNoRows) {
				return nil
			}
			return err
		}
		name, role := t.Name, t.Role
		if t.Revoked {
			return nil
		}
		out = protocol.Session{Role: role, TokenID: tokenID(tok), TokenName: name, CSRF: newSecret(""), Expires: wr.now.Add(ttl)}
		if err := wr.tx.InsertSession(hashSecret(cookie), tok, out.CSRF, wr.now, out.Expires); err != nil {
			return err
		}
		ok = true
		return wr.event(event{ID: protocol.EvSignedIn, Msg: fmt.Sprintf("API token %s (%s) signed in to the console with a %s", out.TokenID, role, with),
			Fields: map[string]string{"token": out.TokenID, "token_name": name, "role": role, "with": with}})
	})
	s.mu.Unlock()
	if err != nil {
		return err
	}
	if !ok {
		return s.refuseSignIn(r.Context(), refused)
	}
	http.SetCookie(w, &http.Cookie{Name: protocol.SessionCookie, Value: cookie, Path: "/", MaxAge: int(ttl / time.Second),
		HttpOnly: true, Secure: true, SameSite: http.SameSiteStrictMode})
	writeJSON(w, http.StatusCreated, out)
	return nil
}

// refuseSignIn answers a refused sign-in after signinFailDelay.
func (s *Server) refuseSignIn(ctx context.Context, msg string) error {
	t := time.NewTimer(signinFailDelay)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	case <-s.closing:
	}
	return errf(http.StatusUnauthorized, protocol.CodeUnauthorized, "%s", msg)
}

// sweepSessions deletes a bounded number of ended sessions (expired, or
// of a revoked token) and expired codes; used codes are deleted when used.
func sweepSessions(wr *writer) error {
	return wr.tx.SweepSessions(wr.now, sweepBatch)
}

func (s *Server) handleSessionShow(w http.ResponseWriter, r *http.Request, _ caller) error {
	rec, err := s.session(r, protocol.RoleViewer)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, rec.view())
	return nil
}

// handleSessionDelete signs out: the session is deleted and its cookie
// cleared. An ended session's cookie is cleared too.
func (s *Server) handleSessionDelete(w http.ResponseWriter, r *http.Request, _ caller) error {
	rec, err := s.session(r, protocol.RoleViewer)
	var ae *apiError
	if errors.As(err, &ae) && ae.Status == http.StatusUnauthorized {
		clearSessionCookie(w)
	}
	if err != nil {
		return err
	}
	s.mu.Lock()
	err = s.change(r.Context(), func(wr *writer) error {
		if err := wr.tx.DeleteSession(rec.id); err != nil {
			return err
		}
		return wr.event(event{ID: protocol.EvSignedOut, Msg: fmt.Sprintf("API token %s signed out of the console", tokenID(rec.tokenID)),
			Fields: map[string]string{"token": tokenID(rec.tokenID), "token_name": rec.tokenName}})
	})
	s.mu.Unlock()
	if err != nil {
		return err
	}
	clearSessionCookie(w)
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func clearSessionCookie(w http.ResponseWriter) {
	http.SetCookie(w, &http.Cookie{Name: protocol.SessionCookie, Value: "", Path: "/", MaxAge: -1,
		HttpOnly: true, Secure: true, SameSite: http.SameSiteStrictMode})
}

// handleSigninLinkCreate makes a one-time code that signs in as the
// caller's token, and the console URL that carries it (in the fragment,
// which browsers send to no server and keep out of Referer).
func (s *Server) handleSigninLinkCreate(w http.ResponseWriter, r *http.Request, c caller) error {
	code := newSecret("moltc_")
	var out protocol.SigninLink
	s.mu.Lock()
	err := s.change(r.Context(), func(wr *writer) error {
		if err := sweepSessions(wr); err != nil {
			return err
		}
		out = protocol.SigninLink{Code: code, URL: s.baseURL(r) + "/console/#signin=" + code, Expires: wr.now.Add(protocol.SigninCodeTTL)}
		return wr.tx.InsertSigninCode(hashSecret(code), c.TokenID, wr.now, out.Expires)
	})
	s.mu.Unlock()
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, out)
	return nil
}
