package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/moltfleet/molt/protocol"
)

// deployTx runs fn in a write transaction of db and commits it.
func deployTx(t *testing.T, db *DB, fn func(tx *Tx) error) {
	t.Helper()
	tx, err := db.Begin()
	if err != nil {
		t.Fatal(err)
	}
	if err := fn(tx); err != nil {
		tx.Rollback()
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
}

// insertDeployments records ds in order and returns their ids.
func insertDeployments(t *testing.T, db *DB, ds ...Deployment) []int64 {
	t.Helper()
	var ids []int64
	deployTx(t, db, func(tx *Tx) error {
		for _, d := range ds {
			id, err := tx.InsertDeployment(d)
			if err != nil {
				return err
			}
			ids = append(ids, id)
		}
		return nil
	})
	return ids
}

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func TestInsertAndReadDeployment(t *testing.T) {
	forEachEngine(t, func(t *testing.T, db *DB) {
		ctx := context.Background()
		want := Deployment{RunID: 7, AgentID: "a-1", AgentName: "web-1", Platform: "linux/amd64", Kind: protocol.KindUpgrade,
			From: "1.0.0", Target: "0.9.0", Revert: true, State: protocol.StatePending, Wave: 2, Canary: true,
			Created: t0, Updated: t0.Add(time.Second)}
		ids := insertDeployments(t, db, want, Deployment{AgentID: "a-2", Platform: "p", Kind: protocol.KindRepair, Target: "2", State: protocol.StatePending, Created: t0, Updated: t0})
		if ids[0] < 1 || ids[1] <= ids[0] {
			t.Fatalf("ids %v, want increasing from 1", ids)
		}
		got, err := db.Deployment(ctx, ids[0])
		if err != nil {
			t.Fatal(err)
		}
		want.ID = ids[0]
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("read\n%+v\nwant\n%+v", got, want)
		}
		other, err := db.Deployment(ctx, ids[1])
		if err != nil || other.Revert || other.Canary || other.RunID != 0 || !other.Started.IsZero() || !other.Ended.IsZero() {
			t.Fatalf("second: %+v %v", other, err)
		}
		if _, err := db.Deployment(ctx, ids[1]+1); !errors.Is(err, sql.ErrNoRows) {
			t.Fatalf("a missing deployment: %v, want sql.ErrNoRows", err)
		}
	})
}

func TestDeploymentLookups(t *testing.T) {
	forEachEngine(t, func(t *testing.T, db *DB) {
		ctx := context.Background()
		d := Deployment{RunID: 3, AgentID: "a", Platform: "p", Kind: protocol.KindUpgrade, Target: "2", State: protocol.StatePending, Created: t0, Updated: t0}
		e := d
		e.RunID = 0
		ids := insertDeployments(t, db, d, e)
		deployTx(t, db, func(tx *Tx) error {
			_, err := tx.exec(`UPDATE deployments SET state = ?, ended = ? WHERE id = ?`, protocol.StateSucceeded, Nanos(t0.Add(time.Hour)), ids[0])
			return err
		})
		agent, state, err := db.DeploymentAgentState(ctx, ids[0])
		if agent != "a" || state != protocol.StateSucceeded || err != nil {
			t.Errorf("DeploymentAgentState: %q %q %v", agent, state, err)
		}
		if _, _, err := db.DeploymentAgentState(ctx, 99); !errors.Is(err, sql.ErrNoRows) {
			t.Errorf("DeploymentAgentState of none: %v", err)
		}
		deployTx(t, db, func(tx *Tx) error {
			for _, tt := range []struct {
				agent string
				id    int64
				run   int64
				err   error
			}{
				{"a", ids[0], 3, nil},
				{"a", ids[1], 0, nil},
				{"b", ids[0], 0, sql.ErrNoRows}, // another agent's
				{"a", 99, 0, sql.ErrNoRows},
			} {
				run, err := tx.AgentDeploymentRun(tt.agent, tt.id)
				if run != tt.run || !errors.Is(err, tt.err) {
					t.Errorf("AgentDeploymentRun(%s, %d) = %d, %v; want %d, %v", tt.agent, tt.id, run, err, tt.run, tt.err)
				}
			}
			if id, err := tx.LastDeploymentOf("a"); id != ids[1] || err != nil {
				t.Errorf("LastDeploymentOf(a) = %d, %v; want %d", id, err, ids[1])
			}
			if _, err := tx.LastDeploymentOf("b"); !errors.Is(err, sql.ErrNoRows) {
				t.Errorf("LastDeploymentOf(b): %v, want sql.ErrNoRows", err)
			}
			state, ended, err := tx.DeploymentEnd(ids[0])
			if state != protocol.StateSucceeded || !ended.Equal(t0.Add(time.Hour)) || err != nil {
				t.Errorf("DeploymentEnd of the ended: %q %v %v", state, ended, err)
			}
			state, ended, err = tx.DeploymentEnd(ids[1])
			if state != protocol.StatePending || !ended.IsZero() || err != nil {
				t.Errorf("DeploymentEnd of the open: %q %v %v", state, ended, err)
			}
			if _, _, err := tx.DeploymentEnd(99); !errors.Is(err, sql.ErrNoRows) {
				t.Errorf("DeploymentEnd of none: %v", err)
			}
			return nil
		})
	})
}

func TestDeploymentSetters(t *testing.T) {
	forEachEngine(t, func(t *testing.T, db *DB) {
		ctx := context.Background()
		base := Deployment{AgentID: "a", Platform: "p", Kind: protocol.KindUpgrade, Target: "2", State: protocol.StatePending, Created: t0, Updated: t0}
		for _, tt := range []struct {
			name string
			set  func(tx *Tx, id int64) error
			want func(d *Deployment)
		}{
			{"progress keeps updated", func(tx *Tx, id int64) error { return tx.SetDeploymentProgress(id, 5, 10) },
				func(d *Deployment) { d.Done, d.Total = 5, 10 }},
			{"reported progress sets updated", func(tx *Tx, id int64) error { return tx.ReportDeploymentProgress(id, 6, 12, t0.Add(time.Minute)) },
				func(d *Deployment) { d.Done, d.Total, d.Updated = 6, 12, t0.Add(time.Minute) }},
			{"updated", func(tx *Tx, id int64) error { return tx.SetDeploymentUpdated(id, t0.Add(-time.Hour)) },
				func(d *Deployment) { d.Updated = t0.Add(-time.Hour) }},
			{"workload", func(tx *Tx, id int64) error { return tx.SetDeploymentWorkload(id, "exporter") },
				func(d *Deployment) { d.Workload = "exporter" }},
		} {
			t.Run(tt.name, func(t *testing.T) {
				ids := insertDeployments(t, db, base, base)
				deployTx(t, db, func(tx *Tx) error { return tt.set(tx, ids[0]) })
				want := base
				want.ID = ids[0]
				tt.want(&want)
				if got, err := db.Deployment(ctx, ids[0]); err != nil || !reflect.DeepEqual(got, want) {
					t.Errorf("got\n%+v %v\nwant\n%+v", got, err, want)
				}
				// The other deployment is untouched.
				untouched := base
				untouched.ID = ids[1]
				if got, err := db.Deployment(ctx, ids[1]); err != nil || !reflect.DeepEqual(got, untouched) {
					t.Errorf("the other: %+v %v", got, err)
				}
			})
		}
	})
}

// HealthBaselines reads back the run's deployments with a baseline that
// are open, succeeded, or ended in the soak window.
func TestHealthBaselines(t *testing.T) {
	forEachEngine(t, func(t *testing.T, db *DB) {
		ctx := context.Background()
		soakFrom := t0.Add(-time.Hour)
		rows := []struct {
			run      int64
			state    string
			ended    time.Time
			baseline string
		}{
			{1, protocol.StateDownloading, time.Time{}, `{"a":1}`},           // open
			{1, protocol.StateSucceeded, t0.Add(-48 * time.Hour), `{"b":2}`}, // succeeded long ago
			{1, protocol.StateFailed, t0.Add(-48 * time.Hour), `{"c":3}`},    // failed before the window
			{1, protocol.StateRolledBack, soakFrom, `{"d":4}`},               // ended in the window
			{1, protocol.StatePending, time.Time{}, ``},                      // no baseline
			{2, protocol.StatePending, time.Time{}, `{"e":5}`},               // another run
		}
		var ids []int64
		for i, r := range rows {
			d := Deployment{RunID: r.run, AgentID: fmt.Sprint("a", i), Platform: "p", Kind: protocol.KindUpgrade, Target: "2", State: protocol.StatePending, Wave: i, Created: t0, Updated: t0}
			id := insertDeployments(t, db, d)[0]
			ids = append(ids, id)
			deployTx(t, db, func(tx *Tx) error {
				if err := tx.SetDeploymentBaseline(id, r.baseline); err != nil {
					return err
				}
				_, err := tx.exec(`UPDATE deployments SET state = ?, ended = ? WHERE id = ?`, r.state, Nanos(r.ended), id)
				return err
			})
		}
		got, err := db.HealthBaselines(ctx, 1, soakFrom)
		if err != nil {
			t.Fatal(err)
		}
		byID := map[int64]DeploymentBaseline{}
		for _, b := range got {
			byID[b.ID] = b
		}
		for i, r := range rows {
			b, ok := byID[ids[i]]
			want := i <= 1 || i == 3
			if ok != want {
				t.Errorf("row %d (%s, run %d) read back: %v, want %v", i, r.state, r.run, ok, want)
				continue
			}
			if ok && (b.AgentID != fmt.Sprint("a", i) || b.Wave != i || b.State != r.state || !b.Ended.Equal(r.ended) || b.Baseline != r.baseline) {
				t.Errorf("row %d: %+v", i, b)
			}
		}
		// A baseline dropped is no longer read back.
		deployTx(t, db, func(tx *Tx) error { return tx.SetDeploymentBaseline(ids[0], "") })
		if got, err := db.HealthBaselines(ctx, 1, soakFrom); err != nil || len(got) != 2 {
			t.Errorf("after dropping one: %+v %v", got, err)
		}
	})
}

// The history's filters, paging and count, newest first.
func TestDeploymentsFilterAndPage(t *testing.T) {
	forEachEngine(t, func(t *testing.T, db *DB) {
		ctx := context.Background()
		mk := func(agent string, run int64, kind, state string, created time.Time) Deployment {
			return Deployment{RunID: run, AgentID: agent, Platform: "p", Kind: kind, Target: "2", State: state, Created: created, Updated: created}
		}
		ids := insertDeployments(t, db,
			mk("a", 1, protocol.KindUpgrade, protocol.StateSucceeded, t0),
			mk("b", 1, protocol.KindUpgrade, protocol.StateFailed, t0.Add(time.Hour)),
			mk("c", 2, protocol.KindUpgrade, protocol.StatePending, t0.Add(2*time.Hour)),
			mk("a", 0, protocol.KindRepair, protocol.StatePending, t0.Add(3*time.Hour)),
			// A clock set back: created out of id order.
			mk("b", 0, protocol.KindActivation, protocol.StateSucceeded, t0.Add(-time.Hour)),
		)
		newest := func(is ...int) []int64 {
			out := []int64{}
			for _, i := range is {
				out = append(out, ids[i])
			}
			return out
		}
		for _, tt := range []struct {
			name          string
			f             DeploymentFilter
			limit, offset int
			want          []int64
			total         int
		}{
			{"all", DeploymentFilter{}, 10, 0, newest(4, 3, 2, 1, 0), 5},
			{"first page", DeploymentFilter{}, 2, 0, newest(4, 3), 5},
			{"second page", DeploymentFilter{}, 2, 2, newest(2, 1), 5},
			{"past the end", DeploymentFilter{}, 2, 5, newest(), 5},
			{"agent", DeploymentFilter{AgentID: "a"}, 10, 0, newest(3, 0), 2},
			{"run", DeploymentFilter{RunID: 1}, 10, 0, newest(1, 0), 2},
			{"run paged", DeploymentFilter{RunID: 1}, 1, 1, newest(0), 2},
			{"state", DeploymentFilter{State: protocol.StateSucceeded}, 10, 0, newest(4, 0), 2},
			{"kind", DeploymentFilter{Kind: protocol.KindRepair}, 10, 0, newest(3), 1},
			{"since", DeploymentFilter{Since: t0.Add(time.Hour)}, 10, 0, newest(3, 2, 1), 3},
			{"until", DeploymentFilter{Until: t0.Add(time.Hour)}, 10, 0, newest(4, 0), 2},
			{"since and until", DeploymentFilter{Since: t0, Until: t0.Add(2 * time.Hour)}, 10, 0, newest(1, 0), 2},
			{"agent and kind", DeploymentFilter{AgentID: "a", Kind: protocol.KindUpgrade}, 10, 0, newest(0), 1},
			{"none", DeploymentFilter{AgentID: "z"}, 10, 0, newest(), 0},
		} {
			t.Run(tt.name, func(t *testing.T) {
				ds, err := db.Deployments(ctx, tt.f, tt.limit, tt.offset)
				if err != nil {
					t.Fatal(err)
				}
				got := []int64{}
				for _, d := range ds {
					got = append(got, d.ID)
				}
				n, err := db.CountDeployments(ctx, tt.f)
				if err != nil {
					t.Fatal(err)
				}
				if !reflect.DeepEqual(got, tt.want) || n != tt.total {
					t.Errorf("got %v of %d, want %v of %d", got, n, tt.want, tt.total)
				}
			})
		}
	})
}

// Every filter of the history reads its page and its count through an
// index, never the whole table (a page of repairs, or of the last day, at
// millions of deployments). SQLite's plans only: PostgreSQL's planner
// chooses by its statistics.
func TestDeploymentsUseIndexes(t *testing.T) {
	db := openTest(t, SQLite)
	for _, tt := range []struct {
		name string
		f    DeploymentFilter
	}{
		{"since", DeploymentFilter{Since: t0}},
		{"until", DeploymentFilter{Until: t0}},
		{"since and until", DeploymentFilter{Since: t0, Until: t0.Add(time.Hour)}},
		{"kind", DeploymentFilter{Kind: protocol.KindRepair}},
		{"state since", DeploymentFilter{State: protocol.StateFailed, Since: t0}},
		{"run", DeploymentFilter{RunID: 3}},
		{"agent kind", DeploymentFilter{AgentID: "a", Kind: protocol.KindRepair}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			list, count, args := db.deploymentQueries(tt.f)
			for _, q := range []struct {
				sql  string
				args []any
			}{{list, append(args[:len(args):len(args)], 10, 0)}, {count, args}} {
				rows, err := db.query(context.Background(), "EXPLAIN QUERY PLAN "+q.sql, q.args...)
				if err != nil {
					t.Fatal(err)
				}
				var plan []string
				for rows.Next() {
					var id, parent, unused int
					var detail string
					if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
						t.Fatal(err)
					}
					plan = append(plan, detail)
				}
				rows.Close()
				for _, p := range plan {
					// "SEARCH deployments" alone is a min/max walking the
					// table in id order until a row matches.
					if strings.HasPrefix(p, "SCAN ") || p == "SEARCH deployments" || strings.Contains(p, "TEMP B-TREE") {
						t.Errorf("%s\nreads every row or sorts every match: %q", q.sql, plan)
					}
				}
			}
		})
	}
}

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
				id := seedDeployment(t, db, 0, "a-1", "pending")
				other := seedDeployment(t, db, 0, "a-2", "pending")
				inTx(t, db, func(tx *Tx) error { return tx.SetDeploymentState(id, c.st) })
				if d := cmp.Diff(c.want, read(id)); d != "" {
					t.Errorf("(-want +got):\n%s", d)
				}
				if got := read(other); got != (row{State: "pending", Updated: 1}) {
					t.Errorf("another deployment changed: %+v", got)
				}
			})
		}
		id := seedDeployment(t, db, 0, "a-1", "pending")
		inTx(t, db, func(tx *Tx) error { return tx.SetDeploymentFromVersion(id, "1.2.3") })
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
			seedDeployment(t, db, d.run, "a", d.state)
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
		inTx(t, db, func(tx *Tx) error {
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

// RunWaveTallies counts by wave and state with the lowest id and the
// earliest start of each (zero when none started), for one run only.
func TestRunWaveTallies(t *testing.T) {
	forEachEngine(t, func(t *testing.T, db *DB) {
		ctx := context.Background()
		const run = 7
		addDep(t, db, testDep{run: 8, agent: "x", state: protocol.StateSucceeded, started: runsT0.Add(-time.Hour)})
		a := addDep(t, db, testDep{run: run, agent: "a", state: protocol.StateSucceeded, started: runsT0.Add(time.Minute)})
		addDep(t, db, testDep{run: run, agent: "b", state: protocol.StateSucceeded, started: runsT0})
		c := addDep(t, db, testDep{run: run, agent: "c", state: protocol.StatePending, wave: 1})
		addDep(t, db, testDep{run: run, agent: "d", state: protocol.StatePending, wave: 1})
		e := addDep(t, db, testDep{run: run, agent: "e", state: protocol.StateFailed, wave: 1, started: runsT0.Add(2 * time.Minute)})
		got, err := db.RunWaveTallies(ctx, run)
		if err != nil {
			t.Fatal(err)
		}
		want := []WaveTally{
			{Wave: 0, State: protocol.StateSucceeded, Count: 2, FirstID: a, FirstStarted: runsT0},
			{Wave: 1, State: protocol.StateFailed, Count: 1, FirstID: e, FirstStarted: runsT0.Add(2 * time.Minute)},
			{Wave: 1, State: protocol.StatePending, Count: 2, FirstID: c},
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("tallies\n%+v\nwant\n%+v", got, want)
		}
		if got, err := db.RunWaveTallies(ctx, 99); err != nil || len(got) != 0 {
			t.Fatalf("a run without deployments: %v (%v)", got, err)
		}
	})
}

// MovedAgents lists, by id, the run's succeeded upgrades that were
// started and changed the version.
func TestMovedAgents(t *testing.T) {
	forEachEngine(t, func(t *testing.T, db *DB) {
		ctx := context.Background()
		const run = 3
		for _, d := range []testDep{
			{run: run, agent: "moved2", from: "1.3.0", to: "1.5.0", state: protocol.StateSucceeded, started: runsT0},
			{run: run, agent: "moved1", from: "1.4.0", to: "1.5.0", state: protocol.StateSucceeded, started: runsT0},
			{run: run, agent: "failed", from: "1.4.0", state: protocol.StateFailed, started: runsT0},
			{run: run, agent: "never-started", from: "1.4.0", state: protocol.StateSucceeded},
			{run: run, agent: "already-there", from: "1.5.0", state: protocol.StateSucceeded, started: runsT0},
			{run: run, agent: "no-from", state: protocol.StateSucceeded, started: runsT0},
			{run: run, agent: "repair", kind: protocol.KindRepair, from: "1.5.0", to: "1.4.0", state: protocol.StateSucceeded, started: runsT0},
			{run: run + 1, agent: "other-run", from: "1.4.0", state: protocol.StateSucceeded, started: runsT0},
		} {
			addDep(t, db, d)
		}
		got, err := db.MovedAgents(ctx, run)
		if err != nil {
			t.Fatal(err)
		}
		want := []MovedAgent{{"moved2", "name-moved2", "1.3.0", "1.5.0"}, {"moved1", "name-moved1", "1.4.0", "1.5.0"}}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("moved %+v, want %+v", got, want)
		}
	})
}
