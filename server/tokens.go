package server

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/moltfleet/molt/protocol"
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
		res, err := w.exec(`INSERT INTO tokens (name, role, hash, created) VALUES (?, ?, ?, ?)`, name, role, hashSecret(secret), nanos(w.now))
		if err != nil {
			return err
		}
		id, err := res.LastInsertId()
		if err != nil {
			return err
		}
		out = protocol.TokenCreated{Token: protocol.Token{ID: "t-" + strconv.FormatInt(id, 10), Name: name, Role: role, Created: w.now}, Secret: secret}
		return w.event(event{ID: protocol.EvTokenCreated, Msg: fmt.Sprintf("API token %s (%s) created", out.Token.ID, role), Fields: map[string]string{"role": role, "token": out.Token.ID}})
	})
	return out, err
}

func (s *Server) handleTokenList(w http.ResponseWriter, r *http.Request, _ caller) error {
	rows, err := s.st.Reader().QueryContext(r.Context(), `SELECT id, name, role, created, last_used, revoked FROM tokens ORDER BY id`)
	if err != nil {
		return err
	}
	defer rows.Close()
	out := protocol.Tokens{Tokens: []protocol.Token{}}
	for rows.Next() {
		var t protocol.Token
		var id, created, used int64
		if err := rows.Scan(&id, &t.Name, &t.Role, &created, &used, &t.Revoked); err != nil {
			return err
		}
		t.ID, t.Created, t.LastUsed = "t-"+strconv.FormatInt(id, 10), fromNanos(created), fromNanos(used)
		out.Tokens = append(out.Tokens, t)
	}
	if err := rows.Err(); err != nil {
		return err
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
	return s.revokeSecret(w, r, revocable{table: "tokens", prefix: "t-", noun: "token", event: protocol.EvTokenRevoked, what: "API token"})
}

// revocable names a table of secrets (API tokens, enrollment tokens) whose
// rows are revoked by id.
type revocable struct {
	table, prefix, noun string
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
		res, err := wr.exec(`UPDATE `+k.table+` SET revoked = 1 WHERE id = ?`, id)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
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
		res, err := w.exec(`INSERT INTO enroll_tokens (name, hash, created, expires, uses) VALUES (?, ?, ?, ?, ?)`, req.Name, hashSecret(secret), nanos(w.now), nanos(exp), req.Uses)
		if err != nil {
			return err
		}
		id, err := res.LastInsertId()
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
	rows, err := s.st.Reader().QueryContext(r.Context(), `SELECT id, name, created, expires, uses, used, revoked FROM enroll_tokens ORDER BY id`)
	if err != nil {
		return err
	}
	defer rows.Close()
	out := protocol.EnrollTokens{Tokens: []protocol.EnrollToken{}}
	for rows.Next() {
		var t protocol.EnrollToken
		var id, created, exp int64
		if err := rows.Scan(&id, &t.Name, &created, &exp, &t.Uses, &t.Used, &t.Revoked); err != nil {
			return err
		}
		t.ID, t.Created, t.Expires = "e-"+strconv.FormatInt(id, 10), fromNanos(created), fromNanos(exp)
		out.Tokens = append(out.Tokens, t)
	}
	if err := rows.Err(); err != nil {
		return err
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
	return s.revokeSecret(w, r, revocable{table: "enroll_tokens", prefix: "e-", noun: "enrollment token"})
}
