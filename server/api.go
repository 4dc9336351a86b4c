package server

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/moltfleet/molt/console"
	"github.com/moltfleet/molt/protocol"
	"github.com/moltfleet/molt/store"
)

// apiError is an error a handler returns to answer with status and code.
type apiError struct {
	Status int
	Code   string
	Msg    string
}

func (e *apiError) Error() string { return e.Msg }

func errf(status int, code, format string, args ...any) error {
	return &apiError{Status: status, Code: code, Msg: fmt.Sprintf(format, args...)}
}

func badRequest(format string, args ...any) error {
	return errf(http.StatusBadRequest, protocol.CodeBadRequest, format, args...)
}

func notFound(format string, args ...any) error {
	return errf(http.StatusNotFound, protocol.CodeNotFound, format, args...)
}

func conflict(format string, args ...any) error {
	return errf(http.StatusConflict, protocol.CodeConflict, format, args...)
}

// caller is who made a request.
type caller struct {
	Role    string // token role; "" for agents
	TokenID int64
	Agent   *agentRec
}

// handlerFunc answers a request or returns an error that is rendered once,
// as JSON, by serve.
type handlerFunc func(w http.ResponseWriter, r *http.Request, c caller) error

type authKind int

const (
	authNone authKind = iota
	authToken
	authAgent
	authAgentOrToken
	authMetrics
)

type route struct {
	pattern string
	auth    authKind
	role    string
	limit   int64
	h       handlerFunc
}

func (s *Server) routeTable() []route {
	const body = protocol.MaxBodySize
	return []route{
		{"GET /healthz", authNone, "", 0, s.handleHealth},
		{"GET /metrics", authMetrics, protocol.RoleViewer, 0, s.handleMetrics},
		{"POST /v1/agent/enroll", authNone, "", body, s.handleEnroll},
		{"POST /v1/agent/checkin", authAgent, "", body, s.handleCheckin},
		{"POST /v1/agent/report", authAgent, "", body, s.handleReport},
		{"GET /v1/packs/{version}/{path...}", authAgentOrToken, protocol.RoleViewer, 0, s.handlePack},
		{"GET /v1/server", authToken, protocol.RoleViewer, 0, s.handleServerInfo},
		{"GET /v1/tokens", authToken, protocol.RoleAdmin, 0, s.handleTokenList},
		{"POST /v1/tokens", authToken, protocol.RoleAdmin, body, s.handleTokenCreate},
		{"DELETE /v1/tokens/{id}", authToken, protocol.RoleAdmin, 0, s.handleTokenRevoke},
		{"GET /v1/enroll-tokens", authToken, protocol.RoleAdmin, 0, s.handleEnrollTokenList},
		{"POST /v1/enroll-tokens", authToken, protocol.RoleAdmin, body, s.handleEnrollTokenCreate},
		{"DELETE /v1/enroll-tokens/{id}", authToken, protocol.RoleAdmin, 0, s.handleEnrollTokenRevoke},
		{"GET /v1/agents", authToken, protocol.RoleViewer, 0, s.handleAgentList},
		{"GET /v1/agents/summary", authToken, protocol.RoleViewer, 0, s.handleAgentSummary},
		{"GET /v1/agents/{id}", authToken, protocol.RoleViewer, 0, s.handleAgentShow},
		{"POST /v1/agents/{id}/revoke", authToken, protocol.RoleAdmin, 0, s.handleAgentRevoke},
		{"POST /v1/agents/{id}/allow", authToken, protocol.RoleAdmin, 0, s.handleAgentAllow},
		{"GET /v1/releases", authToken, protocol.RoleViewer, 0, s.handleReleaseList},
		{"POST /v1/releases", authToken, protocol.RoleAdmin, protocol.MaxPackSize, s.handleReleaseImport},
		{"GET /v1/releases/{version}", authToken, protocol.RoleViewer, 0, s.handleReleaseShow},
		{"DELETE /v1/releases/{version}", authToken, protocol.RoleAdmin, 0, s.handleReleaseRemove},
		{"POST /v1/releases/{version}/quarantine", authToken, protocol.RoleOperator, body, s.handleQuarantine},
		{"POST /v1/releases/{version}/unquarantine", authToken, protocol.RoleOperator, body, s.handleUnquarantine},
		{"GET /v1/settings", authToken, protocol.RoleViewer, 0, s.handleSettingsList},
		{"GET /v1/settings/{key...}", authToken, protocol.RoleViewer, 0, s.handleSettingGet},
		{"PUT /v1/settings/{key...}", authToken, protocol.RoleAdmin, body, s.handleSettingSet},
		{"DELETE /v1/settings/{key...}", authToken, protocol.RoleAdmin, 0, s.handleSettingReset},
		{"POST /v1/runs", authToken, protocol.RoleOperator, body, s.handleRunCreate},
		{"GET /v1/runs", authToken, protocol.RoleViewer, 0, s.handleRunList},
		{"GET /v1/runs/{id}", authToken, protocol.RoleViewer, 0, s.handleRunShow},
		{"GET /v1/runs/{id}/report", authToken, protocol.RoleViewer, 0, s.handleRunReport},
		{"POST /v1/runs/{id}/pause", authToken, protocol.RoleOperator, 0, s.handleRunPause},
		{"POST /v1/runs/{id}/resume", authToken, protocol.RoleOperator, 0, s.handleRunResume},
		{"POST /v1/runs/{id}/promote", authToken, protocol.RoleOperator, 0, s.handleRunPromote},
		{"POST /v1/runs/{id}/cancel", authToken, protocol.RoleOperator, 0, s.handleRunCancel},
		{"POST /v1/runs/{id}/rollback", authToken, protocol.RoleOperator, body, s.handleRunRollback},
		{"GET /v1/deployments", authToken, protocol.RoleViewer, 0, s.handleDeploymentList},
		{"GET /v1/deployments/{id}", authToken, protocol.RoleViewer, 0, s.handleDeploymentShow},
		{"POST /v1/deployments/{id}/skip", authToken, protocol.RoleOperator, 0, s.handleDeploymentSkip},
		{"POST /v1/deployments/{id}/retry", authToken, protocol.RoleOperator, 0, s.handleDeploymentRetry},
		{"POST /v1/deployments/{id}/cancel", authToken, protocol.RoleOperator, 0, s.handleDeploymentCancel},
		{"GET /v1/events", authToken, protocol.RoleViewer, 0, s.handleEvents},
		{"GET /v1/events/stream", authToken, protocol.RoleViewer, 0, s.handleEventStream},
		{"GET /v1/events/catalogue", authToken, protocol.RoleViewer, 0, s.handleEventCatalogue},
		{"POST /v1/session", authNone, "", sessionBody, s.handleSessionCreate},
		{"GET /v1/session", authNone, "", 0, s.handleSessionShow},
		{"DELETE /v1/session", authNone, "", 0, s.handleSessionDelete},
		{"POST /v1/signin-links", authToken, protocol.RoleAdmin, 0, s.handleSigninLinkCreate},
	}
}

func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	for _, rt := range s.routeTable() {
		mux.Handle(rt.pattern, s.serve(rt))
	}
	// The console's files are public (they hold no data); everything they
	// show comes from the routes above, with their roles.
	mux.Handle("GET "+console.Prefix+"{file...}", console.Handler())
	mux.Handle("GET /{$}", http.RedirectHandler(console.Prefix, http.StatusFound))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, pattern := mux.Handler(r); pattern == "" {
			s.writeError(w, r, s.unrouted(mux, r))
			return
		}
		mux.ServeHTTP(w, r)
	})
}

// unrouted tells a wrong method (405) from an unknown path (404), so both
// answer in JSON rather than ServeMux's plain text.
func (s *Server) unrouted(mux *http.ServeMux, r *http.Request) error {
	for _, m := range []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodDelete} {
		if m == r.Method {
			continue
		}
		r2 := r.Clone(r.Context())
		r2.Method = m
		if _, p := mux.Handler(r2); p != "" {
			return errf(http.StatusMethodNotAllowed, protocol.CodeMethodNotAllowed, "%s is not allowed on %s", r.Method, r.URL.Path)
		}
	}
	return notFound("no such endpoint: %s %s", r.Method, r.URL.Path)
}

func (s *Server) serve(rt route) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w, status: 200}
		err := s.serveRoute(rt, sw, r)
		if err != nil {
			s.writeError(sw, r, err)
		}
		s.met.observeRequest(rt.pattern, sw.status, time.Since(start)-sw.held)
	})
}

func (s *Server) serveRoute(rt route, w http.ResponseWriter, r *http.Request) error {
	select {
	case <-s.closing:
		return errf(http.StatusServiceUnavailable, protocol.CodeUnavailable, "the server is shutting down; retry shortly")
	default:
	}
	if rt.limit > 0 {
		r.Body = http.MaxBytesReader(w, r.Body, rt.limit)
	}
	var c caller
	var err error
	switch rt.auth {
	case authToken:
		c, err = s.authToken(r, rt.role)
	case authAgent:
		c, err = s.authAgent(r)
	case authAgentOrToken:
		if c, err = s.authAgent(r); err != nil {
			c, err = s.authToken(r, rt.role)
		}
	case authMetrics:
		if s.setting(r.Context(), "metrics.public") != "true" {
			c, err = s.authToken(r, rt.role)
		}
	}
	if err != nil {
		return err
	}
	return rt.h(w, r, c)
}

func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	var ae *apiError
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &ae):
	case errors.As(err, &mbe):
		ae = &apiError{http.StatusRequestEntityTooLarge, protocol.CodeTooLarge, fmt.Sprintf("request body is larger than %d bytes", mbe.Limit)}
	case errors.Is(err, context.Canceled):
		return // the client went away
	default:
		s.log.Error("request failed", zap.String("method", r.Method), zap.String("path", r.URL.Path), zap.Error(err))
		ae = &apiError{http.StatusInternalServerError, protocol.CodeInternal, "internal error (the server log has the details)"}
	}
	if ae.Status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="molt"`)
	}
	writeJSON(w, ae.Status, protocol.Error{Error: ae.Msg, Code: ae.Code})
}

type statusWriter struct {
	http.ResponseWriter
	status int
	held   time.Duration // long-poll wait, left out of latency metrics
}

func (w *statusWriter) WriteHeader(code int) {
	w.status = code
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status, b = http.StatusInternalServerError, []byte(`{"error":"internal error","code":"internal"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

// decodeJSON reads one JSON object of type T from r, refusing unknown
// fields and trailing data: an operator's typo is an error, not a default.
func decodeJSON[T any](r io.Reader) (T, error) { return decodeBody[T](r, true) }

// decodeAgentJSON is decodeJSON for the agent protocol, which accepts
// fields it does not know: agents are upgraded after their server, and a
// newer agent may send what an older server has not heard of. The fields
// this server knows are still checked.
func decodeAgentJSON[T any](r io.Reader) (T, error) { return decodeBody[T](r, false) }

func decodeBody[T any](r io.Reader, strict bool) (T, error) {
	var v T
	dec := json.NewDecoder(r)
	if strict {
		dec.DisallowUnknownFields()
	}
	if err := dec.Decode(&v); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return v, err
		}
		if errors.Is(err, io.EOF) {
			return v, badRequest("empty request body: a JSON object is expected")
		}
		return v, badRequest("request body: %v", jsonMessage(err))
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return v, badRequest("request body: trailing data after the JSON object")
	}
	return v, nil
}

func jsonMessage(err error) string {
	return strings.TrimPrefix(err.Error(), "json: ")
}

func jsonUnmarshal(s string, v any) error {
	if s == "" {
		return nil
	}
	return json.Unmarshal([]byte(s), v)
}

// ----- secrets -----

// newSecret returns prefix + 32 random bytes (base64url).
func newSecret(prefix string) string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand does not fail on supported platforms
	}
	return prefix + base64.RawURLEncoding.EncodeToString(b)
}

func hashSecret(secret string) string {
	h := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(h[:])
}

func newAgentID() string {
	b := make([]byte, 8)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return "a-" + hex.EncodeToString(b)
}

func bearer(r *http.Request) (string, bool) {
	h := r.Header.Get(protocol.HeaderAuthorization)
	tok, ok := strings.CutPrefix(h, "Bearer ")
	tok = strings.TrimSpace(tok)
	if !ok || tok == "" || len(tok) > 200 {
		return "", false
	}
	return tok, true
}

func (s *Server) authToken(r *http.Request, need string) (caller, error) {
	if r.Header.Get(protocol.HeaderAuthorization) == "" && hasSessionCookie(r) {
		return s.authSession(r, need)
	}
	tok, ok := bearer(r)
	if !ok {
		return caller{}, errf(http.StatusUnauthorized, protocol.CodeUnauthorized, "an API token is required: Authorization: Bearer TOKEN")
	}
	t, err := s.st.TokenByHash(r.Context(), hashSecret(tok))
	if err != nil || t.Revoked {
		return caller{}, errf(http.StatusUnauthorized, protocol.CodeUnauthorized, "the API token is unknown or revoked")
	}
	c := caller{TokenID: t.ID, Role: t.Role}
	if protocol.RoleRank(c.Role) < protocol.RoleRank(need) {
		return caller{}, errf(http.StatusForbidden, protocol.CodeForbidden, "this needs the %s role; the token has %s", need, c.Role)
	}
	// last_used is informational; writing it at most once a minute keeps
	// reads from turning into fsyncs.
	if now := s.clock.Now(); now.Sub(t.LastUsed) > time.Minute {
		_ = s.st.Update(r.Context(), func(tx *store.Tx) error {
			return tx.SetTokenLastUsed(c.TokenID, now)
		})
	}
	return c, nil
}

func (s *Server) authAgent(r *http.Request) (caller, error) {
	tok, ok := bearer(r)
	if !ok || !strings.HasPrefix(tok, "molta_") {
		return caller{}, errf(http.StatusUnauthorized, protocol.CodeUnauthorized, "an agent credential is required: Authorization: Bearer CREDENTIAL")
	}
	h := hashSecret(tok)
	s.mu.Lock()
	defer s.mu.Unlock()
	id, ok := s.byCred[h]
	if !ok {
		return caller{}, errf(http.StatusUnauthorized, protocol.CodeUnauthorized, "the agent credential is unknown: enroll again")
	}
	a := s.agents[id]
	if a.Revoked {
		return caller{}, errf(http.StatusUnauthorized, protocol.CodeAgentRevoked, "agent %s was revoked: enroll again", id)
	}
	return caller{Agent: a}, nil
}

func (s *Server) handleHealth(w http.ResponseWriter, r *http.Request, _ caller) error {
	w.Header().Set("Content-Type", "text/plain")
	_, err := io.WriteString(w, "ok\n")
	return err
}

func (s *Server) handleServerInfo(w http.ResponseWriter, r *http.Request, c caller) error {
	writeJSON(w, 200, protocol.ServerInfo{Version: s.opt.Version, ProtocolVersion: protocol.Version, Time: s.clock.Now(), Role: c.Role})
	return nil
}
