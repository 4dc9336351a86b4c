package store

import (
	"context"
	"database/sql"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/moltfleet/molt/protocol"
)

// runsT0 is a time every engine keeps to the nanosecond.
var runsT0 = time.Unix(1_700_000_000, 123456789).UTC()

// runsExec runs a statement through the writer, for a test's fixtures.
func runsExec(t *testing.T, db *DB, q string, args ...any) {
	t.Helper()
	if _, err := db.w.ExecContext(context.Background(), db.q(q), db.args(args)...); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

// runsUpdate runs fn in a committed write transaction.
func runsUpdate(t *testing.T, db *DB, fn func(*Tx) error) {
	t.Helper()
	if err := db.Update(context.Background(), fn); err != nil {
		t.Fatal(err)
	}
}

// testDep is a deployment fixture.
type testDep struct {
	run             int64
	agent, platform string
	kind, from, to  string
	state           string
	wave            int
	started, ended  time.Time
}

// addDep inserts d and returns its id.
func addDep(t *testing.T, db *DB, d testDep) int64 {
	t.Helper()
	if d.platform == "" {
		d.platform = "linux/amd64"
	}
	if d.kind == "" {
		d.kind = protocol.KindUpgrade
	}
	if d.to == "" {
		d.to = "1.5.0"
	}
	var id int64
	err := db.w.QueryRowContext(context.Background(), db.q(`INSERT INTO deployments (run_id, agent_id, agent_name, platform, kind, from_version, target, state, wave, created, started, ended, updated)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`),
		db.args([]any{d.run, d.agent, "name-" + d.agent, d.platform, d.kind, d.from, d.to, d.state, d.wave, Nanos(runsT0), Nanos(d.started), Nanos(d.ended), Nanos(runsT0)})...).Scan(&id)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func insertRun(t *testing.T, db *DB, r Run) int64 {
	t.Helper()
	var id int64
	runsUpdate(t, db, func(tx *Tx) (err error) {
		id, err = tx.InsertRun(r)
		return err
	})
	return id
}

func fullRun() Run {
	return Run{
		Text: "spring upgrade", Status: protocol.RunRunning, Target: "1.5.0", TargetFor: map[string]string{"linux/arm64": "1.4.9"},
		Scope: "patch", MaxConcurrent: 5, FailureThreshold: 2,
		Selection: protocol.Selection{AgentIDs: []string{"a1", "a2"}, Labels: map[string]string{"ring": "early"}},
		CreatedBy: "t-1", Created: runsT0,
		Plan:     []protocol.PlanLine{{Platform: "linux/amd64", Agents: 2, Target: "1.5.0"}},
		Excluded: []protocol.Exclusion{{AgentID: "a3", AgentName: "db", Reason: "offline"}},
		Controls: protocol.RunControls{Canary: 1, WaveWaitSeconds: 60, WaveApprove: true, Window: "Sat 02:00-04:00"},
		Waves:    []protocol.WaveStatus{{Wave: 0, Name: "canary", Agents: 1}, {Wave: 1, Name: "rest", Agents: 1}},
	}
}

// A run reads back as it was inserted, with its counts; ids grow; a
// missing run is sql.ErrNoRows.
func TestRunInsertAndRead(t *testing.T) {
	forEachEngine(t, func(t *testing.T, db *DB) {
		ctx := context.Background()
		want := fullRun()
		id := insertRun(t, db, want)
		plain := Run{Status: protocol.RunRunning, Target: "1.5.0", Scope: "any", MaxConcurrent: 1, Created: runsT0}
		id2 := insertRun(t, db, plain)
		if id <= 0 || id2 <= id {
			t.Fatalf("ids %d, %d: want positive and growing", id, id2)
		}
		got, err := db.Run(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		want.ID = id
		want.Counts = map[string]int{}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("read\n%+v\nwant\n%+v", got, want)
		}
		got2, err := db.Run(ctx, id2)
		if err != nil {
			t.Fatal(err)
		}
		if got2.TargetFor != nil || got2.Plan != nil || got2.Waves != nil || got2.Counts == nil {
			t.Fatalf("a plain run read %+v: want no target_for, plan or waves, counts empty", got2)
		}
		if _, err := db.Run(ctx, id2+10); !errors.Is(err, sql.ErrNoRows) {
			t.Fatalf("a missing run: %v, want sql.ErrNoRows", err)
		}

		for _, d := range []testDep{
			{run: id, agent: "a1", state: protocol.StateSucceeded, wave: 0},
			{run: id, agent: "a2", state: protocol.StateFailed, wave: 1},
			{run: id, agent: "a4", state: protocol.StateSucceeded, wave: 1},
			{run: id, agent: "a5", state: protocol.StatePending, wave: 1},
			{run: id2, agent: "a1", state: protocol.StatePending},
			{run: id2, agent: "a2", state: protocol.StatePending},
		} {
			addDep(t, db, d)
		}
		got, err = db.Run(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if c := map[string]int{"succeeded": 2, "failed": 1, "pending": 1}; !reflect.DeepEqual(got.Counts, c) {
			t.Errorf("counts %v, want %v", got.Counts, c)
		}
		if wc := map[int]map[string]int{0: {"succeeded": 1}, 1: {"failed": 1, "succeeded": 1, "pending": 1}}; !reflect.DeepEqual(got.WaveCounts, wc) {
			t.Errorf("wave counts %v, want %v", got.WaveCounts, wc)
		}
		got2, err = db.Run(ctx, id2)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got2.Counts, map[string]int{"pending": 2}) || got2.WaveCounts != nil {
			t.Errorf("a run of one wave: counts %v, wave counts %v; want pending 2 and none by wave", got2.Counts, got2.WaveCounts)
		}
	})
}

// Runs lists newest first, up to the limit, of one status when asked,
// each with its counts.
func TestRuns(t *testing.T) {
	forEachEngine(t, func(t *testing.T, db *DB) {
		ctx := context.Background()
		var ids []int64
		for _, st := range []string{protocol.RunRunning, protocol.RunPaused, protocol.RunRunning, protocol.RunEndedOK} {
			ids = append(ids, insertRun(t, db, Run{Status: st, Target: "1.5.0", Scope: "any", MaxConcurrent: 1, Created: runsT0}))
		}
		addDep(t, db, testDep{run: ids[2], agent: "a1", state: protocol.StateStaged})
		for _, tt := range []struct {
			name   string
			status string
			limit  int
			want   []int64
		}{
			{"all", "", 500, []int64{ids[3], ids[2], ids[1], ids[0]}},
			{"limit", "", 2, []int64{ids[3], ids[2]}},
			{"status", protocol.RunRunning, 500, []int64{ids[2], ids[0]}},
			{"none", "cancelled", 500, nil},
		} {
			t.Run(tt.name, func(t *testing.T) {
				runs, err := db.Runs(ctx, tt.status, tt.limit)
				if err != nil {
					t.Fatal(err)
				}
				if runs == nil {
					t.Fatal("nil list: want an empty one")
				}
				var got []int64
				for _, r := range runs {
					got = append(got, r.ID)
					want := map[string]int{}
					if r.ID == ids[2] {
						want["staged"] = 1
					}
					if !reflect.DeepEqual(r.Counts, want) {
						t.Errorf("run %d counts %v, want %v", r.ID, r.Counts, want)
					}
				}
				if !reflect.DeepEqual(got, tt.want) {
					t.Fatalf("listed %v, want %v", got, tt.want)
				}
			})
		}
	})
}

// Status and wave changes land on their run only.
func TestRunChanges(t *testing.T) {
	forEachEngine(t, func(t *testing.T, db *DB) {
		ctx := context.Background()
		id := insertRun(t, db, fullRun())
		other := insertRun(t, db, fullRun())
		ack := func(id int64) (n int) {
			t.Helper()
			if err := db.w.QueryRowContext(ctx, db.q(`SELECT ack_failures FROM runs WHERE id = ?`), id).Scan(&n); err != nil {
				t.Fatal(err)
			}
			return n
		}
		runsUpdate(t, db, func(tx *Tx) error { return tx.SetRunStatus(id, protocol.RunPaused, "paused by ops") })
		r, err := db.Run(ctx, id)
		if err != nil || r.Status != protocol.RunPaused || r.Reason != "paused by ops" {
			t.Fatalf("after pause: %q %q (%v)", r.Status, r.Reason, err)
		}
		runsUpdate(t, db, func(tx *Tx) error { return tx.SetRunStatusAck(id, protocol.RunRunning, "resumed by ops", 3) })
		if r, _ = db.Run(ctx, id); r.Status != protocol.RunRunning || r.Reason != "resumed by ops" || ack(id) != 3 {
			t.Fatalf("after resume: %q %q, ack %d", r.Status, r.Reason, ack(id))
		}
		at := runsT0.Add(time.Hour)
		runsUpdate(t, db, func(tx *Tx) error { return tx.SetWaveDone(id, at, true) })
		if r, _ = db.Run(ctx, id); !r.WaveDoneAt.Equal(at) || !r.WaveApproval || r.Wave != 0 {
			t.Fatalf("wave done: at %v approval %v wave %d", r.WaveDoneAt, r.WaveApproval, r.Wave)
		}
		runsUpdate(t, db, func(tx *Tx) error { return tx.OpenWave(id, 1) })
		if r, _ = db.Run(ctx, id); !r.WaveDoneAt.IsZero() || r.WaveApproval || r.Wave != 1 {
			t.Fatalf("wave opened: at %v approval %v wave %d", r.WaveDoneAt, r.WaveApproval, r.Wave)
		}
		if o, _ := db.Run(ctx, other); o.Status != protocol.RunRunning || o.Reason != "" || o.Wave != 0 || ack(other) != 0 {
			t.Fatalf("another run changed: %+v", o)
		}
	})
}

// OpenRunTargets lists the runs not ended with their targets; a
// target_for that does not decode names none.
func TestOpenRunTargets(t *testing.T) {
	forEachEngine(t, func(t *testing.T, db *DB) {
		ctx := context.Background()
		a := insertRun(t, db, Run{Status: protocol.RunRunning, Target: "1.5.0", Scope: "any", Created: runsT0})
		b := insertRun(t, db, Run{Status: protocol.RunPaused, Target: "rollback", TargetFor: map[string]string{"linux/amd64": "1.4.0"}, Scope: "any", Created: runsT0})
		ended := insertRun(t, db, Run{Status: protocol.RunEndedOK, Target: "1.6.0", Scope: "any", Created: runsT0})
		runsExec(t, db, `UPDATE runs SET ended = ? WHERE id = ?`, Nanos(runsT0), ended)
		bad := insertRun(t, db, Run{Status: protocol.RunRunning, Target: "1.7.0", Scope: "any", Created: runsT0})
		runsExec(t, db, `UPDATE runs SET target_for = 'not json' WHERE id = ?`, bad)
		got, err := db.OpenRunTargets(ctx)
		if err != nil {
			t.Fatal(err)
		}
		want := []RunTarget{{ID: a, Target: "1.5.0", TargetFor: map[string]string{}}, {ID: b, Target: "rollback", TargetFor: map[string]string{"linux/amd64": "1.4.0"}}, {ID: bad, Target: "1.7.0"}}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("open runs\n%+v\nwant\n%+v", got, want)
		}
	})
}

// RunReport reads the run, its deployments by id, the steps named (of
// its deployments only) and its halts in order.
func TestRunReport(t *testing.T) {
	forEachEngine(t, func(t *testing.T, db *DB) {
		ctx := context.Background()
		id := insertRun(t, db, fullRun())
		other := insertRun(t, db, fullRun())
		d1 := addDep(t, db, testDep{run: id, agent: "a1", from: "1.4.0", state: protocol.StateSucceeded, started: runsT0, ended: runsT0.Add(time.Minute)})
		d0 := addDep(t, db, testDep{run: other, agent: "a1", state: protocol.StatePending})
		d2 := addDep(t, db, testDep{run: id, agent: "a2", state: protocol.StateFailed, wave: 1})
		for _, s := range []struct {
			dep  int64
			name string
			at   time.Duration
		}{{d1, "server: created", 0}, {d1, "server: requested", time.Second}, {d1, "agent: staged", 2 * time.Second}, {d2, "server: created", 3 * time.Second}, {d0, "server: created", 0}} {
			runsExec(t, db, `INSERT INTO steps (deployment_id, at, name, detail) VALUES (?, ?, ?, '')`, s.dep, Nanos(runsT0.Add(s.at)), s.name)
		}
		for i, e := range []struct {
			id     int
			run    int64
			fields string
		}{
			{protocol.EvRunHalted, id, `{"signal":"health_crash","reason":"r1"}`},
			{protocol.EvRunPaused, id, `{"reason":"paused"}`},
			{protocol.EvRunHalted, other, `{"signal":"canary"}`},
			{protocol.EvRunHalted, id, ``},
		} {
			runsExec(t, db, `INSERT INTO events (id, name, at, run_id, message, fields) VALUES (?, 'x', ?, ?, 'm', ?)`, e.id, Nanos(runsT0.Add(time.Duration(i)*time.Minute)), e.run, e.fields)
		}
		var steps []StepTime
		rep, err := db.RunReport(ctx, id, []string{"server: created", "server: requested"}, func(s StepTime) { steps = append(steps, s) })
		if err != nil {
			t.Fatal(err)
		}
		if rep.Run.ID != id || rep.Run.Text != "spring upgrade" || !reflect.DeepEqual(rep.Run.Counts, map[string]int{"succeeded": 1, "failed": 1}) {
			t.Errorf("run %+v", rep.Run)
		}
		if len(rep.Deployments) != 2 || rep.Deployments[0].ID != d1 || rep.Deployments[1].ID != d2 {
			t.Fatalf("deployments %+v: want %d, %d", rep.Deployments, d1, d2)
		}
		wantDep := protocol.Deployment{AgentID: "a1", AgentName: "name-a1", Platform: "linux/amd64", Kind: protocol.KindUpgrade, From: "1.4.0", Target: "1.5.0",
			State: protocol.StateSucceeded, Created: runsT0, Started: runsT0, Ended: runsT0.Add(time.Minute), Updated: runsT0}
		if d := rep.Deployments[0]; d.RunID != id || !reflect.DeepEqual(d.Deployment, wantDep) {
			t.Errorf("deployment %+v\nwant %+v", d.Deployment, wantDep)
		}
		if rep.Deployments[1].Wave != 1 || rep.Deployments[1].Started != (time.Time{}) {
			t.Errorf("second deployment %+v: want wave 1, not started", rep.Deployments[1])
		}
		want := map[StepTime]bool{{d1, "server: created", runsT0}: true, {d1, "server: requested", runsT0.Add(time.Second)}: true, {d2, "server: created", runsT0.Add(3 * time.Second)}: true}
		if len(steps) != len(want) {
			t.Fatalf("steps %+v, want %v", steps, want)
		}
		for _, s := range steps {
			if !want[s] {
				t.Errorf("step %+v not wanted", s)
			}
		}
		wantHalts := []RunHalt{{At: runsT0, Fields: map[string]string{"signal": "health_crash", "reason": "r1"}}, {At: runsT0.Add(3 * time.Minute)}}
		if !reflect.DeepEqual(rep.Halts, wantHalts) {
			t.Errorf("halts %+v, want %+v", rep.Halts, wantHalts)
		}

		steps = nil
		if _, err := db.RunReport(ctx, id, nil, func(s StepTime) { steps = append(steps, s) }); err != nil || steps != nil {
			t.Errorf("no step names: %v, steps %v", err, steps)
		}
		if _, err := db.RunReport(ctx, other+1, nil, nil); !errors.Is(err, sql.ErrNoRows) {
			t.Errorf("a missing run's report: %v, want sql.ErrNoRows", err)
		}
	})
}

// A run ends with a status and a time, and changes status with a reason,
// touching no other run; runs are counted by status for /metrics.
func TestRunStatus(t *testing.T) {
	forEachEngine(t, func(t *testing.T, db *DB) {
		ctx := context.Background()
		if counts, err := db.CountRunsByStatus(ctx); err != nil || len(counts) != 0 || counts == nil {
			t.Fatalf("no runs counted %v (%v)", counts, err)
		}
		a, b, c := seedRun(t, db, "running", 0), seedRun(t, db, "running", 0), seedRun(t, db, "running", 0)
		at := time.Date(2026, 5, 1, 0, 0, 0, 9, time.UTC)
		inTx(t, db, func(tx *Tx) error {
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
