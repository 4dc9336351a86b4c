package store

import (
	"context"
	"reflect"
	"testing"
	"time"

	"github.com/moltfleet/molt/protocol"
)

// A quarantine is set, lifted and set again over the lifted row; only
// those in force are listed, by version and platform; rollbacks count
// from the last lift.
func TestQuarantines(t *testing.T) {
	forEachEngine(t, func(t *testing.T, db *DB) {
		ctx := context.Background()
		inForce := func() []Quarantine {
			t.Helper()
			qs, err := db.QuarantinesInForce(ctx)
			if err != nil {
				t.Fatal(err)
			}
			return qs
		}
		rollbacks := func(version, platform string) (n int) {
			t.Helper()
			runsUpdate(t, db, func(tx *Tx) (err error) {
				n, err = tx.RollbacksSinceLift(version, platform)
				return err
			})
			return n
		}
		if qs := inForce(); len(qs) != 0 {
			t.Fatalf("in force at first: %+v", qs)
		}
		q1 := Quarantine{Version: "1.5.0", Platform: "linux/arm64", Reason: "rolled back on 3", Automatic: true, At: runsT0}
		q2 := Quarantine{Version: "1.5.0", Platform: "linux/amd64", Reason: "by hand", At: runsT0}
		q3 := Quarantine{Version: "1.4.0", Platform: "linux/amd64", Reason: "old", At: runsT0}
		runsUpdate(t, db, func(tx *Tx) error {
			for _, q := range []Quarantine{q1, q2, q3} {
				if err := tx.SetQuarantine(q); err != nil {
					return err
				}
			}
			return nil
		})
		if got, want := inForce(), []Quarantine{q3, q2, q1}; !reflect.DeepEqual(got, want) {
			t.Fatalf("in force %+v, want %+v", got, want)
		}

		for i, d := range []testDep{
			{agent: "a", to: "1.5.0", platform: "linux/amd64", state: protocol.StateRolledBack, ended: runsT0.Add(time.Minute)},
			{agent: "b", to: "1.5.0", platform: "linux/amd64", state: protocol.StateRolledBack, ended: runsT0.Add(3 * time.Minute)},
			{agent: "c", to: "1.5.0", platform: "linux/amd64", state: protocol.StateFailed, ended: runsT0.Add(3 * time.Minute)},
			{agent: "d", to: "1.5.0", platform: "linux/arm64", state: protocol.StateRolledBack, ended: runsT0.Add(3 * time.Minute)},
			{agent: "e", to: "1.6.0", platform: "linux/amd64", state: protocol.StateRolledBack, ended: runsT0.Add(3 * time.Minute)},
		} {
			d.run = int64(i + 1)
			addDep(t, db, d)
		}
		if n := rollbacks("1.5.0", "linux/amd64"); n != 2 {
			t.Fatalf("%d rollbacks before any lift, want 2", n)
		}
		if n := rollbacks("1.6.0", "linux/amd64"); n != 1 {
			t.Fatalf("%d rollbacks of a version never quarantined, want 1", n)
		}

		runsUpdate(t, db, func(tx *Tx) error { return tx.LiftQuarantine("1.5.0", "linux/amd64", runsT0.Add(2*time.Minute)) })
		if got, want := inForce(), []Quarantine{q3, q1}; !reflect.DeepEqual(got, want) {
			t.Fatalf("after a lift %+v, want %+v", got, want)
		}
		if n := rollbacks("1.5.0", "linux/amd64"); n != 1 {
			t.Fatalf("%d rollbacks since the lift, want 1", n)
		}

		again := Quarantine{Version: "1.5.0", Platform: "linux/amd64", Reason: "rolled back again", Automatic: true, At: runsT0.Add(time.Hour)}
		runsUpdate(t, db, func(tx *Tx) error { return tx.SetQuarantine(again) })
		if got, want := inForce(), []Quarantine{q3, again, q1}; !reflect.DeepEqual(got, want) {
			t.Fatalf("quarantined again %+v, want %+v", got, want)
		}
		var lifted int64
		if err := db.w.QueryRowContext(ctx, db.q(`SELECT lifted FROM quarantines WHERE version = ? AND platform = ?`), "1.5.0", "linux/amd64").Scan(&lifted); err != nil || lifted != 0 {
			t.Fatalf("lifted %d (%v) once quarantined again, want 0", lifted, err)
		}
	})
}
