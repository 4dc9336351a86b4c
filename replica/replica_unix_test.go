//go:build unix

package replica

import (
	"context"
	"testing"

	"github.com/moltfleet/molt/internal/pgtest"
	"github.com/moltfleet/molt/store"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// openDB is a new database in the package's PostgreSQL cluster.
func openDB(t *testing.T) *store.DB {
	t.Helper()
	return openAt(t, pgtest.SharedDB(t))
}

func openAt(t *testing.T, dsn string) *store.DB {
	t.Helper()
	db, err := store.Open(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}
