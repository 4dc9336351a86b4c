package store

import (
	"context"
	"database/sql"
	"errors"
	"testing"
)

func TestCleanups(t *testing.T) {
	forEachEngine(t, func(t *testing.T, db *DB) {
		ctx := context.Background()
		var a, b int64
		deployTx(t, db, func(tx *Tx) error {
			var err error
			if a, err = tx.InsertCleanup("agent-1", 4, []string{"2.0.0", "1.0.0"}, t0); err != nil {
				return err
			}
			b, err = tx.InsertCleanup("agent-2", 5, []string{"2.0.0"}, t0)
			return err
		})
		if a < 1 || b <= a {
			t.Fatalf("ids %d, %d: want increasing from 1", a, b)
		}
		var keep string
		var dep, created int64
		if err := db.queryRow(ctx, `SELECT keep, deployment_id, created FROM cleanups WHERE id = ?`, a).Scan(&keep, &dep, &created); err != nil {
			t.Fatal(err)
		}
		if keep != `["2.0.0","1.0.0"]` || dep != 4 || created != Nanos(t0) {
			t.Errorf("stored keep %s, deployment %d, created %d", keep, dep, created)
		}
		deployTx(t, db, func(tx *Tx) error { return tx.FinishCleanup(a) })
		for _, tt := range []struct {
			id    int64
			agent string
			done  bool
			err   error
		}{
			{a, "agent-1", true, nil},
			{b, "agent-2", false, nil},
			{b + 1, "", false, sql.ErrNoRows},
		} {
			agent, done, err := db.CleanupAgent(ctx, tt.id)
			if agent != tt.agent || done != tt.done || !errors.Is(err, tt.err) {
				t.Errorf("CleanupAgent(%d) = %q %v %v; want %q %v %v", tt.id, agent, done, err, tt.agent, tt.done, tt.err)
			}
		}
	})
}
