package store

import (
	"context"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// A run ends with a status and a time, and changes status with a reason,
// touching no other run; runs are counted by status for /metrics.
func TestRunStatus(t *testing.T) {
	forEachEngine(t, func(t *testing.T, db *DB) {
		ctx := context.Background()
		if counts, err := db.CountRunsByStatus(ctx); err != nil || len(counts) != 0 || counts == nil {
			t.Fatalf("no runs counted %v (%v)", counts, err)
		}
		a, b, c := coreRun(t, db, "running", 0), coreRun(t, db, "running", 0), coreRun(t, db, "running", 0)
		at := time.Date(2026, 5, 1, 0, 0, 0, 9, time.UTC)
		coreTx(t, db, func(tx *Tx) error {
			if err := tx.EndRun(a, "ended_not_ok", at); err != nil {
				return err
			}
			return tx.SetRunStatus(b, "paused", "failure threshold reached")
		})
		type row struct {
			Status, Reason string
			Ended          int64
		}
		for id, want := range map[int64]row{
			a: {Status: "ended_not_ok", Ended: at.UnixNano()},
			b: {Status: "paused", Reason: "failure threshold reached"},
			c: {Status: "running"},
		} {
			var got row
			if err := db.queryRow(ctx, `SELECT status, reason, ended FROM runs WHERE id = ?`, id).Scan(&got.Status, &got.Reason, &got.Ended); err != nil {
				t.Fatal(err)
			}
			if got != want {
				t.Errorf("run %d: %+v, want %+v", id, got, want)
			}
		}
		counts, err := db.CountRunsByStatus(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if d := cmp.Diff(map[string]int{"ended_not_ok": 1, "paused": 1, "running": 1}, counts); d != "" {
			t.Errorf("(-want +got):\n%s", d)
		}
	})
}
