package store

import (
	"context"

	"time"
)

// Token is an API token's row; its secret is kept only as a hash.
type Token struct {
	ID       int64
	Name     string
	Role     string
	Created  time.Time
	LastUsed time.Time // zero until first used
	Revoked  bool
}

const tokenCols = `id, name, role, created, last_used, revoked`

func scanToken(sc interface{ Scan(...any) error }) (Token, error) {
	var t Token
	var created, used int64
	if err := sc.Scan(&t.ID, &t.Name, &t.Role, &created, &used, &t.Revoked); err != nil {
		return Token{}, err
	}
	t.Created, t.LastUsed = FromNanos(created), FromNanos(used)
	return t, nil
}

// InsertToken records a new API token and returns its id.
func (t *Tx) InsertToken(name, role, hash string, created time.Time) (int64, error) {
	var id int64
	err := t.queryRow(`INSERT INTO tokens (name, role, hash, created) VALUES (?, ?, ?, ?) RETURNING id`, name, role, hash, Nanos(created)).Scan(&id)
	return id, err
}

// Tokens lists every API token, revoked ones too, oldest first.
func (db *DB) Tokens(ctx context.Context) ([]Token, error) {
	rows, err := db.query(ctx, `SELECT `+tokenCols+` FROM tokens ORDER BY id`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Token
	for rows.Next() {
		tok, err := scanToken(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, tok)
	}
	return out, rows.Err()
}

// TokenByHash is the API token whose secret hashes to hash, revoked or
// not; sql.ErrNoRows when there is none.
func (db *DB) TokenByHash(ctx context.Context, hash string) (Token, error) {
	return scanToken(db.queryRow(ctx, `SELECT `+tokenCols+` FROM tokens WHERE hash = ?`, hash))
}

// TokenByHash is DB.TokenByHash inside the transaction.
func (t *Tx) TokenByHash(hash string) (Token, error) {
	return scanToken(t.queryRow(`SELECT `+tokenCols+` FROM tokens WHERE hash = ?`, hash))
}

// Token is the API token id; sql.ErrNoRows when there is none.
func (t *Tx) Token(id int64) (Token, error) {
	return scanToken(t.queryRow(`SELECT `+tokenCols+` FROM tokens WHERE id = ?`, id))
}

// TokenKnown says whether an API token's secret hashes to hash (revoked
// or not).
func (db *DB) TokenKnown(ctx context.Context, hash string) (bool, error) {
	return db.known(ctx, `SELECT COUNT(*) FROM tokens WHERE hash = ?`, hash)
}

// known says whether the count query q finds a row.
func (db *DB) known(ctx context.Context, q string, args ...any) (bool, error) {
	var n int64
	if err := db.queryRow(ctx, q, args...).Scan(&n); err != nil {
		return false, err
	}
	return n > 0, nil
}

// TokenCount is how many API tokens there are, revoked ones too, read
// through the writer's connection (after what it committed).
func (db *DB) TokenCount(ctx context.Context) (int, error) {
	var n int
	err := db.wqueryRow(ctx, `SELECT COUNT(*) FROM tokens`).Scan(&n)
	return n, err
}

// SetTokenLastUsed records when the token id was last presented.
func (t *Tx) SetTokenLastUsed(id int64, at time.Time) error {
	_, err := t.exec(`UPDATE tokens SET last_used = ? WHERE id = ?`, Nanos(at), id)
	return err
}

// RevokeToken revokes the API token id and says whether there was one
// (revoking a revoked token again finds it).
func (t *Tx) RevokeToken(id int64) (bool, error) {
	n, err := affected(t.exec(`UPDATE tokens SET revoked = 1 WHERE id = ?`, id))
	return n > 0, err
}
