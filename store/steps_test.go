package store

import (
	"context"
	"database/sql"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/moltfleet/molt/protocol"
)

func TestSteps(t *testing.T) {
	forEachEngine(t, func(t *testing.T, db *DB) {
		ctx := context.Background()
		const dep, other = 5, 6
		var added []bool
		deployTx(t, db, func(tx *Tx) error {
			for _, s := range []struct {
				dep          int64
				at           time.Time
				name, detail string
			}{
				{dep, t0.Add(2 * time.Second), "download", "d"},
				{dep, t0, "server: created", "c"},
				{dep, t0.Add(2 * time.Second), "verify", ""}, // same time, recorded after download
				{dep, t0, "server: created", "again"},        // a repeat: ignored
				{other, t0, "server: created", "c"},          // the same step of another deployment
				{dep, t0.Add(time.Second), "server: dropped", ""},
			} {
				ok, err := tx.InsertStep(s.dep, s.at, s.name, s.detail)
				if err != nil {
					return err
				}
				added = append(added, ok)
			}
			all, named, err := tx.CountSteps(dep, "server: dropped")
			if all != 4 || named != 1 || err != nil {
				t.Errorf("CountSteps = %d, %d, %v; want 4, 1", all, named, err)
			}
			if all, named, err := tx.CountSteps(99, "x"); all != 0 || named != 0 || err != nil {
				t.Errorf("CountSteps of none = %d, %d, %v", all, named, err)
			}
			name, at, err := tx.LastStep(dep)
			if name != "verify" || !at.Equal(t0.Add(2*time.Second)) || err != nil {
				t.Errorf("LastStep = %q %v %v; want verify", name, at, err)
			}
			if _, _, err := tx.LastStep(99); !errors.Is(err, sql.ErrNoRows) {
				t.Errorf("LastStep of none: %v", err)
			}
			for _, tt := range []struct {
				names []string
				want  string
				err   error
			}{
				{[]string{"server: created", "download"}, "download", nil},
				{[]string{"server: created", "server: dropped"}, "server: dropped", nil},
				{[]string{"server: created"}, "server: created", nil},
				{[]string{"nothing"}, "", sql.ErrNoRows},
				{nil, "", sql.ErrNoRows},
			} {
				got, err := tx.LastStepNamed(dep, tt.names...)
				if got != tt.want || !errors.Is(err, tt.err) {
					t.Errorf("LastStepNamed(%q) = %q, %v; want %q, %v", tt.names, got, err, tt.want, tt.err)
				}
			}
			return nil
		})
		if want := []bool{true, true, true, false, true, true}; !reflect.DeepEqual(added, want) {
			t.Errorf("InsertStep said %v, want %v", added, want)
		}
		steps, err := db.Steps(ctx, dep)
		want := []protocol.Step{
			{At: t0, Name: "server: created", Detail: "c"},
			{At: t0.Add(time.Second), Name: "server: dropped"},
			{At: t0.Add(2 * time.Second), Name: "download", Detail: "d"},
			{At: t0.Add(2 * time.Second), Name: "verify"},
		}
		if err != nil || !reflect.DeepEqual(steps, want) {
			t.Errorf("Steps = %+v %v\nwant %+v", steps, err, want)
		}
		if steps, err := db.Steps(ctx, 99); err != nil || steps == nil || len(steps) != 0 {
			t.Errorf("Steps of none = %#v %v, want an empty list", steps, err)
		}
		for _, tt := range []struct {
			dep  int64
			at   time.Time
			name string
			want bool
		}{
			{dep, t0, "server: created", true},
			{dep, t0.Add(time.Second), "server: created", false},
			{other, t0, "server: created", true},
			{dep, t0, "verify", false},
			{dep, time.Time{}, "verify", false},
		} {
			if got, err := db.HasStep(ctx, tt.dep, tt.at, tt.name); got != tt.want || err != nil {
				t.Errorf("HasStep(%d, %v, %q) = %v, %v; want %v", tt.dep, tt.at, tt.name, got, err, tt.want)
			}
		}
	})
}

// RunDeploymentsMarked counts each marked deployment of the run once.
func TestRunDeploymentsMarked(t *testing.T) {
	forEachEngine(t, func(t *testing.T, db *DB) {
		ctx := context.Background()
		d := Deployment{RunID: 1, AgentID: "a", Platform: "p", Kind: protocol.KindUpgrade, Target: "2", State: protocol.StateFailed, Created: t0, Updated: t0}
		o := d
		o.RunID = 2
		ids := insertDeployments(t, db, d, d, d, o)
		deployTx(t, db, func(tx *Tx) error {
			for _, s := range []struct {
				dep  int64
				at   time.Time
				name string
			}{
				{ids[0], t0, "server: retried"},
				{ids[0], t0.Add(time.Second), "server: retried"}, // twice: counted once
				{ids[1], t0, "server: retried"},
				{ids[2], t0, "server: failed"},
				{ids[3], t0, "server: retried"}, // another run
			} {
				if _, err := tx.InsertStep(s.dep, s.at, s.name, ""); err != nil {
					return err
				}
			}
			return nil
		})
		for _, tt := range []struct {
			run  int64
			want int
		}{{1, 2}, {2, 1}, {3, 0}} {
			if n, err := db.RunDeploymentsMarked(ctx, tt.run, "server: retried"); n != tt.want || err != nil {
				t.Errorf("run %d: %d %v, want %d", tt.run, n, err, tt.want)
			}
		}
	})
}

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
			inTx(t, db, func(tx *Tx) error {
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
