package store

import (
	"context"
	"testing"
	"time"
)

// A leader renews its lease while one of its own fenced write
// transactions is open: under load they follow one another without a gap,
// and a renewal that waited for them would miss its deadline and make the
// leader step down. A takeover still waits for the open transaction
// (TestLeaseTakeoverWaitsForFencedWrite).
func TestRenewDuringFencedWrite(t *testing.T) {
	if testing.Short() {
		t.Skip("PostgreSQL: skipped with -short")
	}
	// SQLite has one writer connection, which the open transaction holds:
	// leases there serve one process, which renews between its writes.
	db := openTest(t, Postgres)
	ctx := context.Background()
	a, _, err := db.AcquireLease(ctx, "leader", "A", "", 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	tx, err := db.Begin()
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	if err := tx.CheckLease(a); err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	start := time.Now()
	if _, err := db.RenewLease(rctx, a, 5*time.Second); err != nil {
		t.Fatalf("renewal while a fenced write is open: %v (after %v)", err, time.Since(start).Round(time.Millisecond))
	}
	if _, err := tx.Exec(`INSERT INTO settings (key, value) VALUES ('by', 'A')`); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatalf("the fenced write after its lease was renewed: %v", err)
	}
}
