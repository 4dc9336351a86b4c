package store

import (
	"context"
	"database/sql"
)

// Raw is SQL access to one of a DB's pools, in this engine's words
// (placeholders rebound, arguments converted). It is for tests that seed
// or inspect a database; the server itself goes through the methods
// (server's TestNoSQLInServer keeps it so).
type Raw struct {
	db   *DB
	pool *sql.DB
}

// Reader is raw access through the readers' pool.
func (db *DB) Reader() Raw { return Raw{db, db.r} }

// Writer is raw access through the writer's connection.
func (db *DB) Writer() Raw { return Raw{db, db.w} }

func (r Raw) QueryContext(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	return r.pool.QueryContext(ctx, r.db.q(q), r.db.args(args)...)
}

func (r Raw) QueryRowContext(ctx context.Context, q string, args ...any) *sql.Row {
	return r.pool.QueryRowContext(ctx, r.db.q(q), r.db.args(args)...)
}

// BeginTx opens a transaction on the pool (read-only ones for consistent
// reports).
func (r Raw) BeginTx(ctx context.Context, opts *sql.TxOptions) (*Tx, error) {
	tx, err := r.pool.BeginTx(ctx, opts)
	if err != nil {
		return nil, err
	}
	return &Tx{db: r.db, tx: tx, ctx: ctx}, nil
}

func (t *Tx) Exec(q string, args ...any) (sql.Result, error) { return t.exec(q, args...) }

func (t *Tx) QueryRow(q string, args ...any) *sql.Row { return t.queryRow(q, args...) }

func (t *Tx) QueryContext(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	return t.tx.QueryContext(ctx, t.db.q(q), t.db.args(args)...)
}

func (t *Tx) QueryRowContext(ctx context.Context, q string, args ...any) *sql.Row {
	return t.tx.QueryRowContext(ctx, t.db.q(q), t.db.args(args)...)
}

// Query, QueryRow and Exec are the context-free forms, for tests.
func (r Raw) Query(q string, args ...any) (*sql.Rows, error) {
	return r.QueryContext(context.Background(), q, args...)
}

func (r Raw) QueryRow(q string, args ...any) *sql.Row {
	return r.QueryRowContext(context.Background(), q, args...)
}

func (r Raw) Exec(q string, args ...any) (sql.Result, error) {
	return r.pool.ExecContext(context.Background(), r.db.q(q), r.db.args(args)...)
}

// PrepareContext prepares q in t.
func (t *Tx) PrepareContext(ctx context.Context, q string) (*sql.Stmt, error) {
	return t.tx.PrepareContext(ctx, t.db.q(q))
}
