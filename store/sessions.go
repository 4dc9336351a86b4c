package store

import (
	"context"
	"time"
)

// Session is a console session joined with the API token it presents.
type Session struct {
	ID        int64
	CSRF      string
	Expires   time.Time
	TokenID   int64
	TokenName string
	Role      string    // the token's, as it is now
	Revoked   bool      // whether the token is revoked
	LastUsed  time.Time // the token's
}

// SessionByHash is the session whose cookie hashes to hash, with its
// token; sql.ErrNoRows when there is none (or its token is gone).
func (db *DB) SessionByHash(ctx context.Context, hash string) (Session, error) {
	var s Session
	var expires, used int64
	err := db.queryRow(ctx, `SELECT s.id, s.csrf, s.expires, t.id, t.name, t.role, t.revoked, t.last_used
		FROM sessions s JOIN tokens t ON t.id = s.token_id WHERE s.hash = ?`, hash).
		Scan(&s.ID, &s.CSRF, &expires, &s.TokenID, &s.TokenName, &s.Role, &s.Revoked, &used)
	if err != nil {
		return Session{}, err
	}
	s.Expires, s.LastUsed = FromNanos(expires), FromNanos(used)
	return s, nil
}

// InsertSession records a session of the token tokenID.
func (t *Tx) InsertSession(hash string, tokenID int64, csrf string, created, expires time.Time) error {
	_, err := t.exec(`INSERT INTO sessions (hash, token_id, csrf, created, expires) VALUES (?, ?, ?, ?, ?)`,
		hash, tokenID, csrf, Nanos(created), Nanos(expires))
	return err
}

// DeleteSession ends the session id.
func (t *Tx) DeleteSession(id int64) error {
	_, err := t.exec(`DELETE FROM sessions WHERE id = ?`, id)
	return err
}

// SweepSessions deletes up to limit each of the sessions expired at now,
// the sessions of revoked tokens and the sign-in codes expired at now.
func (t *Tx) SweepSessions(now time.Time, limit int) error {
	for _, q := range []struct {
		sql  string
		args []any
	}{
		{`DELETE FROM sessions WHERE id IN (SELECT id FROM sessions WHERE expires <= ? LIMIT ?)`, []any{Nanos(now), limit}},
		{`DELETE FROM sessions WHERE id IN (SELECT s.id FROM sessions s JOIN tokens t ON t.id = s.token_id WHERE t.revoked = 1 LIMIT ?)`, []any{limit}},
		{`DELETE FROM signin_codes WHERE id IN (SELECT id FROM signin_codes WHERE expires <= ? LIMIT ?)`, []any{Nanos(now), limit}},
	} {
		if _, err := t.exec(q.sql, q.args...); err != nil {
			return err
		}
	}
	return nil
}

// InsertSigninCode records a one-time sign-in code for the token tokenID.
func (t *Tx) InsertSigninCode(hash string, tokenID int64, created, expires time.Time) error {
	_, err := t.exec(`INSERT INTO signin_codes (hash, token_id, created, expires) VALUES (?, ?, ?, ?)`,
		hash, tokenID, Nanos(created), Nanos(expires))
	return err
}

// TakeSigninCode uses up the sign-in code whose secret hashes to hash:
// it is deleted, and its token and expiry returned (expired or not);
// sql.ErrNoRows when there is none.
func (t *Tx) TakeSigninCode(hash string) (tokenID int64, expires time.Time, err error) {
	var exp int64
	if err := t.queryRow(`DELETE FROM signin_codes WHERE hash = ? RETURNING token_id, expires`, hash).Scan(&tokenID, &exp); err != nil {
		return 0, time.Time{}, err
	}
	return tokenID, FromNanos(exp), nil
}

// SigninCodeKnown says whether a sign-in code's secret hashes to hash
// (expired or not).
func (db *DB) SigninCodeKnown(ctx context.Context, hash string) (bool, error) {
	return db.known(ctx, `SELECT COUNT(*) FROM signin_codes WHERE hash = ?`, hash)
}
