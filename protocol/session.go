package protocol

import "time"

// Console sessions (docs/api.md, "Console sessions"): a browser exchanges
// an API token, or a one-time sign-in code made from one, for a session
// cookie. The session acts with its token's role, ends when the token is
// revoked, and every request it makes that changes something carries the
// session's CSRF value in HeaderCSRF.
const (
	// SessionCookie is the cookie that carries a session's secret.
	SessionCookie = "molt_session"
	// HeaderCSRF carries Session.CSRF on a cookie request other than GET
	// or HEAD.
	HeaderCSRF = "X-CSRF-Token"
	// SigninCodeTTL is how long a sign-in code may be used (once).
	SigninCodeTTL = 10 * time.Minute
)

// SessionRequest is POST /v1/session: exactly one of Token (an API token's
// secret) and Code (a one-time sign-in code).
type SessionRequest struct {
	Token string `json:"token,omitempty"`
	Code  string `json:"code,omitempty"`
}

// Session describes the caller's console session (never its secret, which
// only the cookie carries).
type Session struct {
	// Role is the role of the session's token now.
	Role      string `json:"role"`
	TokenID   string `json:"token_id"`
	TokenName string `json:"token_name,omitempty"`
	// CSRF must be sent in HeaderCSRF with every request other than GET
	// and HEAD that the session makes.
	CSRF string `json:"csrf"`
	// Expires is when the session ends, however active it is.
	Expires time.Time `json:"expires"`
}

// SigninLink answers POST /v1/signin-links: a one-time code that signs in
// to the console as the token that made it, and the console URL that
// carries it.
type SigninLink struct {
	Code    string    `json:"code"`
	URL     string    `json:"url"`
	Expires time.Time `json:"expires"`
}
