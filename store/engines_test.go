package store

import (
	"context"
	"path/filepath"
	"testing"
)

// forEachEngine runs f on a new, migrated database of each engine: the
// conformance suite. Every test of this package that reads or writes
// state goes through it, so both engines answer alike. With -short only
// SQLite runs (PostgreSQL needs its cluster started).
func forEachEngine(t *testing.T, f func(t *testing.T, db *DB)) {
	t.Helper()
	for _, e := range []Engine{SQLite, Postgres} {
		t.Run(string(e), func(t *testing.T) {
			if e == Postgres && testing.Short() {
				t.Skip("PostgreSQL: skipped with -short")
			}
			f(t, openTest(t, e))
		})
	}
}

// openTest opens a new database of engine e, closed when t ends.
func openTest(t *testing.T, e Engine) *DB {
	t.Helper()
	target := filepath.Join(t.TempDir(), "molt.db")
	if e == Postgres {
		target = postgresDSN(t)
	}
	db, err := Open(context.Background(), target)
	if err != nil {
		t.Fatalf("open %s: %v", e, err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}
