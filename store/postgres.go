package store

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
)

// migrationLock is the advisory lock a migration holds on PostgreSQL, so
// that replicas starting at once migrate one after the other.
const migrationLock = `SELECT pg_advisory_xact_lock(7270001)`

// openPostgres opens the PostgreSQL database at dsn (a postgres:// URL,
// with pgx's parameters) and applies pending migrations. Writes go
// through one connection, as on SQLite: the server commits its changes
// in groups through it.
func openPostgres(ctx context.Context, dsn string) (*DB, error) {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("store %s: %w", redact(dsn), err)
	}
	if cfg.ConnectTimeout == 0 {
		cfg.ConnectTimeout = 10 * time.Second
	}
	open := func(n int) *sql.DB {
		db := stdlib.OpenDB(*cfg)
		db.SetMaxOpenConns(n)
		db.SetMaxIdleConns(n)
		db.SetConnMaxIdleTime(5 * time.Minute)
		return db
	}
	db := &DB{engine: Postgres, w: open(1), r: open(8), l: open(1)}
	if err := db.w.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("store %s: %w", redact(dsn), err)
	}
	if err := db.migrate(ctx, migrationLock); err != nil {
		db.Close()
		return nil, err
	}
	return db, nil
}

// redact is dsn without its password, for messages.
func redact(dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil {
		return "postgres://..."
	}
	return u.Redacted()
}
