package store

import (
	"context"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// A deployment's move to a state sets its updated time, and its started
// or ended time only when it starts or ends; its from version is set
// alone.
func TestSetDeploymentState(t *testing.T) {
	forEachEngine(t, func(t *testing.T, db *DB) {
		ctx := context.Background()
		at := time.Date(2026, 4, 1, 2, 3, 4, 5, time.UTC)
		type row struct {
			State, Reason, From     string
			Updated, Started, Ended int64
		}
		read := func(id int64) row {
			t.Helper()
			var r row
			if err := db.queryRow(ctx, `SELECT state, reason, from_version, updated, started, ended FROM deployments WHERE id = ?`, id).
				Scan(&r.State, &r.Reason, &r.From, &r.Updated, &r.Started, &r.Ended); err != nil {
				t.Fatal(err)
			}
			return r
		}
		for _, c := range []struct {
			name string
			st   DeploymentState
			want row
		}{
			{"waits", DeploymentState{State: "waiting_for_host", Reason: "busy", At: at}, row{State: "waiting_for_host", Reason: "busy", Updated: at.UnixNano()}},
			{"starts", DeploymentState{State: "requested", At: at, Started: true}, row{State: "requested", Updated: at.UnixNano(), Started: at.UnixNano()}},
			{"ends", DeploymentState{State: "failed", Reason: "below floor", At: at, Ended: true}, row{State: "failed", Reason: "below floor", Updated: at.UnixNano(), Ended: at.UnixNano()}},
			{"starts and ends", DeploymentState{State: "succeeded", At: at, Started: true, Ended: true}, row{State: "succeeded", Updated: at.UnixNano(), Started: at.UnixNano(), Ended: at.UnixNano()}},
		} {
			t.Run(c.name, func(t *testing.T) {
				id := coreDeployment(t, db, 0, "a-1", "pending")
				other := coreDeployment(t, db, 0, "a-2", "pending")
				coreTx(t, db, func(tx *Tx) error { return tx.SetDeploymentState(id, c.st) })
				if d := cmp.Diff(c.want, read(id)); d != "" {
					t.Errorf("(-want +got):\n%s", d)
				}
				if got := read(other); got != (row{State: "pending", Updated: 1}) {
					t.Errorf("another deployment changed: %+v", got)
				}
			})
		}
		id := coreDeployment(t, db, 0, "a-1", "pending")
		coreTx(t, db, func(tx *Tx) error { return tx.SetDeploymentFromVersion(id, "1.2.3") })
		if got := read(id); got != (row{State: "pending", From: "1.2.3", Updated: 1}) {
			t.Errorf("from version set: %+v", got)
		}
	})
}

// A run's deployments are counted by state, through the readers or inside
// a transaction (which sees its own writes); every deployment by state
// for /metrics.
func TestRunCounts(t *testing.T) {
	forEachEngine(t, func(t *testing.T, db *DB) {
		ctx := context.Background()
		counts, total, err := db.RunCounts(ctx, 1)
		if err != nil || len(counts) != 0 || counts == nil || total != 0 {
			t.Fatalf("a run of no deployments: %v %d %v", counts, total, err)
		}
		if all, err := db.CountDeploymentsByState(ctx); err != nil || len(all) != 0 || all == nil {
			t.Fatalf("no deployments counted %v (%v)", all, err)
		}
		for _, d := range []struct {
			run   int64
			state string
		}{{1, "pending"}, {1, "pending"}, {1, "succeeded"}, {1, "failed"}, {2, "pending"}, {0, "requested"}} {
			coreDeployment(t, db, d.run, "a", d.state)
		}
		want := map[string]int{"pending": 2, "succeeded": 1, "failed": 1}
		counts, total, err = db.RunCounts(ctx, 1)
		if err != nil || total != 4 {
			t.Fatalf("total %d (%v), want 4", total, err)
		}
		if d := cmp.Diff(want, counts); d != "" {
			t.Errorf("run counts (-want +got):\n%s", d)
		}
		all, err := db.CountDeploymentsByState(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if d := cmp.Diff(map[string]int{"pending": 3, "succeeded": 1, "failed": 1, "requested": 1}, all); d != "" {
			t.Errorf("all counts (-want +got):\n%s", d)
		}
		coreTx(t, db, func(tx *Tx) error {
			if err := tx.SetDeploymentState(1, DeploymentState{State: "requested", At: time.Now()}); err != nil {
				return err
			}
			counts, total, err := tx.RunCounts(1)
			if err != nil {
				return err
			}
			if d := cmp.Diff(map[string]int{"pending": 1, "requested": 1, "succeeded": 1, "failed": 1}, counts); d != "" || total != 4 {
				t.Errorf("counts in the transaction, total %d (-want +got):\n%s", total, d)
			}
			return nil
		})
	})
}
