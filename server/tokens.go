package server

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/moltfleet/molt/protocol"
	"github.com/moltfleet/molt/store"
)

// CreateToken makes an API token and returns its secret (shown once).
func (s *Server) CreateToken(ctx context.Context, role, name string) (protocol.TokenCreated, error) {
	return s.createToken(ctx, role, name, newSecret("molt_"))
}

func (s *Server) createToken(ctx context.Context, role, name, secret string) (protocol.TokenCreated, error) {
	if protocol.RoleRank(role) == 0 {
		return protocol.TokenCreated{}, badRequest("role %q is not viewer, operator or admin", role)
	}
	if err := checkString("name", name, false); err != nil {
		return protocol.TokenCreated{}, err
	}
	var out protocol.TokenCreated
	s.mu.Lock()
	defer s.mu.Unlock()
	err := s.change(ctx, func(w *writer) error {
		id, err := w.tx.InsertToken(name, role, hashSecret(secret), w.now)
		if err != nil {
			return err
		}
		out = protocol.TokenCreated{Token: protocol.Token{ID: "t-" + strconv.FormatInt(id, 10), Name: name, Role: role, Created: w.now}, Secret: secret}
		return w.event(event{ID: protocol.EvTokenCreated, Msg: fmt.Sprintf("API token %s (%s) created", out.Token.ID, role), Fields: map[string]string{"role": role, "token": out.Token.ID}})
	})
	return out, err
}

func (s *Server) handleTokenList(w http.ResponseWriter, r *http.Request, _ caller) error {
	toks, err := s.st.Tokens(r.Context())
	if err != nil {
		return err
	}
	out := protocol.Tokens{Tokens: []protocol.Token{}}
	for _, t := range toks {
		out.Tokens = append(out.Tokens, protocol.Token{ID: tokenID(t.ID), Name: t.Name, Role: t.Role, Created: t.Created, LastUsed: t.LastUsed, Revoked: t.Revoked})
	}
	writeJSON(w, 200, out)
	return nil
}

func (s *Server) handleTokenCreate(w http.ResponseWriter, r *http.Request, _ caller) error {
	req, err := decodeJSON[protocol.TokenRequest](r.Body)
	if err != nil {
		return err
	}
	out, err := s.CreateToken(r.Context(), req.Role, req.Name)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, out)
	return nil
}

func (s *Server) handleTokenRevoke(w http.ResponseWriter, r *http.Request, _ caller) error {
	return s.revokeSecret(w, r, revocable{revoke: (*store.Tx).RevokeToken, prefix: "t-", noun: "token", event: protocol.EvTokenRevoked, what: "API token"})
}

// revocable names a table of secrets (API tokens, enrollment tokens) whose
// rows are revoked by id.
type revocable struct {
	// revoke revokes a row by id and says whether there was one.
	revoke       func(*store.Tx, int64) (bool, error)
	prefix, noun string
	// event, when not zero, is recorded with the revocation.
	event int
	what  string
}

// revokeSecret marks the row named by the request's {id} revoked and
// answers 204, or 404 naming the id's form.
func (s *Server) revokeSecret(w http.ResponseWriter, r *http.Request, k revocable) error {
	id, ok := parseID(r.PathValue("id"), k.prefix)
	if !ok {
		return notFound("no %s %q (ids look like %s3)", k.noun, r.PathValue("id"), k.prefix)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	err := s.change(r.Context(), func(wr *writer) error {
		found, err := k.revoke(wr.tx, id)
		if err != nil {
			return err
		}
		if !found {
			return notFound("no %s %s%d", k.noun, k.prefix, id)
		}
		if k.event == 0 {
			return nil
		}
		return wr.event(event{ID: k.event, Msg: fmt.Sprintf("%s %s%d revoked", k.what, k.prefix, id)})
	})
	if err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// CreateEnrollToken makes an enrollment token and returns its secret.
func (s *Server) CreateEnrollToken(ctx context.Context, req protocol.EnrollTokenRequest) (protocol.EnrollTokenCreated, error) {
	if req.ExpiresIn == 0 {
		req.ExpiresIn = 86400
	}
	if req.Uses == 0 {
		req.Uses = 1
	}
	if req.ExpiresIn < 1 || req.ExpiresIn > 366*86400 {
		return protocol.EnrollTokenCreated{}, badRequest("expires_in: %d is not from 1 s to 366 days", req.ExpiresIn)
	}
	if req.Uses < 1 || req.Uses > 1000000 {
		return protocol.EnrollTokenCreated{}, badRequest("uses: %d is not from 1 to 1000000", req.Uses)
	}
	if err := checkString("name", req.Name, false); err != nil {
		return protocol.EnrollTokenCreated{}, err
	}
	secret := newSecret("molte_")
	var out protocol.EnrollTokenCreated
	s.mu.Lock()
	defer s.mu.Unlock()
	err := s.change(ctx, func(w *writer) error {
		exp := w.now.Add(time.Duration(req.ExpiresIn) * time.Second)
		id, err := w.tx.InsertEnrollToken(req.Name, hashSecret(secret), w.now, exp, req.Uses)
		if err != nil {
			return err
		}
		out = protocol.EnrollTokenCreated{Token: protocol.EnrollToken{ID: "e-" + strconv.FormatInt(id, 10), Name: req.Name, Created: w.now, Expires: exp, Uses: req.Uses}, Secret: secret}
		return w.event(event{ID: protocol.EvEnrollTokenMade, Msg: fmt.Sprintf("enrollment token %s created (%d uses, expires %s)", out.Token.ID, req.Uses, exp.Format(time.RFC3339)),
			Fields: map[string]string{"uses": strconv.Itoa(req.Uses), "expires": exp.Format(time.RFC3339)}})
	})
	return out, err
}

func (s *Server) handleEnrollTokenList(w http.ResponseWriter, r *http.Request, _ caller) error {
	toks, err := s.st.EnrollTokens(r.Context())
	if err != nil {
		return err
	}
	out := protocol.EnrollTokens{Tokens: []protocol.EnrollToken{}}
	for _, t := range toks {
		out.Tokens = append(out.Tokens, protocol.EnrollToken{ID: "e-" + strconv.FormatInt(t.ID, 10), Name: t.Name, Created: t.Created, Expires: t.Expires,
			Uses: t.Uses, Used: t.Used, Revoked: t.Revoked})
	}
	writeJSON(w, 200, out)
	return nil
}

func (s *Server) handleEnrollTokenCreate(w http.ResponseWriter, r *http.Request, _ caller) error {
	req, err := decodeJSON[protocol.EnrollTokenRequest](r.Body)
	if err != nil {
		return err
	}
	out, err := s.CreateEnrollToken(r.Context(), req)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, out)
	return nil
}

func (s *Server) handleEnrollTokenRevoke(w http.ResponseWriter, r *http.Request, _ caller) error {
	return s.revokeSecret(w, r, revocable{revoke: (*store.Tx).RevokeEnrollToken, prefix: "e-", noun: "enrollment token"})
}
