package store

import (
	"context"
	"time"
)

// EnrollToken is an enrollment token's row; its secret is kept only as
// a hash.
type EnrollToken struct {
	ID      int64
	Name    string
	Created time.Time
	Expires time.Time
	Uses    int // how many enrollments it allows
	Used    int // how many it made
	Revoked bool
}

const enrollTokenCols = `id, name, created, expires, uses, used, revoked`

func scanEnrollToken(sc interface{ Scan(...any) error }) (EnrollToken, error) {
	var t EnrollToken
	var created, expires int64
	if err := sc.Scan(&t.ID, &t.Name, &created, &expires, &t.Uses, &t.Used, &t.Revoked); err != nil {
		return EnrollToken{}, err
	}
	t.Created, t.Expires = FromNanos(created), FromNanos(expires)
	return t, nil
}

// InsertEnrollToken records a new enrollment token and returns its id.
func (t *Tx) InsertEnrollToken(name, hash string, created, expires time.Time, uses int) (int64, error) {
	var id int64
	err := t.queryRow(`INSERT INTO enroll_tokens (name, hash, created, expires, uses) VALUES (?, ?, ?, ?, ?) RETURNING id`,
		name, hash, Nanos(created), Nanos(expires), uses).Scan(&id)
	return id, err
}

// EnrollTokens lists every enrollment token, oldest first.
func (db *DB) EnrollTokens(ctx context.Context) ([]EnrollToken, error) {
	rows, err := db.query(ctx, `SELECT `+enrollTokenCols+` FROM enroll_tokens ORDER BY id`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []EnrollToken
	for rows.Next() {
		tok, err := scanEnrollToken(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, tok)
	}
	return out, rows.Err()
}

// EnrollTokenByHash is the enrollment token whose secret hashes to hash,
// read through the writer's connection (enrollment counts its uses
// there); sql.ErrNoRows when there is none.
func (db *DB) EnrollTokenByHash(ctx context.Context, hash string) (EnrollToken, error) {
	return scanEnrollToken(db.wqueryRow(ctx, `SELECT `+enrollTokenCols+` FROM enroll_tokens WHERE hash = ?`, hash))
}

// UseEnrollToken counts one enrollment made with the token id.
func (t *Tx) UseEnrollToken(id int64) error {
	_, err := t.exec(`UPDATE enroll_tokens SET used = used + 1 WHERE id = ?`, id)
	return err
}

// RevokeEnrollToken revokes the enrollment token id and says whether
// there was one.
func (t *Tx) RevokeEnrollToken(id int64) (bool, error) {
	n, err := affected(t.exec(`UPDATE enroll_tokens SET revoked = 1 WHERE id = ?`, id))
	return n > 0, err
}
