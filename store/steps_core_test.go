package store

import (
	"context"
	"testing"
	"time"
)

// A step is added once: the same name at the same time again (a report
// sent twice) is ignored and keeps the first detail, without failing the
// transaction.
func TestInsertStepOnce(t *testing.T) {
	forEachEngine(t, func(t *testing.T, db *DB) {
		at := time.Date(2026, 8, 1, 0, 0, 0, 3, time.UTC)
		for _, c := range []struct {
			name, detail string
			at           time.Time
			added        bool
		}{
			{"server: requested", "first", at, true},
			{"server: requested", "again", at, false},
			{"server: requested", "later", at.Add(time.Nanosecond), true},
			{"server: failed", "other name", at, true},
		} {
			coreTx(t, db, func(tx *Tx) error {
				added, err := tx.InsertStep(7, c.at, c.name, c.detail)
				if err != nil {
					return err
				}
				if added != c.added {
					t.Errorf("%s %q: added %v, want %v", c.name, c.detail, added, c.added)
				}
				return nil
			})
		}
		rows, err := db.query(context.Background(), `SELECT at, name, detail FROM steps WHERE deployment_id = 7 ORDER BY seq`)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		var got []string
		for rows.Next() {
			var at int64
			var name, detail string
			if err := rows.Scan(&at, &name, &detail); err != nil {
				t.Fatal(err)
			}
			got = append(got, FromNanos(at).Format(time.RFC3339Nano)+" "+name+" "+detail)
		}
		want := []string{
			"2026-08-01T00:00:00.000000003Z server: requested first",
			"2026-08-01T00:00:00.000000004Z server: requested later",
			"2026-08-01T00:00:00.000000003Z server: failed other name",
		}
		if len(got) != len(want) {
			t.Fatalf("steps %q, want %q", got, want)
		}
		for i := range want {
			if got[i] != want[i] {
				t.Errorf("step %d: %q, want %q", i, got[i], want[i])
			}
		}
	})
}
