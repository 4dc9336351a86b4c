package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"maps"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/moltfleet/molt/protocol"
)

// agentRow is what the agents table holds of an agent, for the tests.
type agentRow struct {
	fingerprint, status, alerts string
	enrolled, refusedAt         time.Time
	revoked, hostRefused        bool
}

func readAgent(t *testing.T, db *DB, id string) agentRow {
	t.Helper()
	var a agentRow
	var enrolled, refused int64
	err := db.queryRow(context.Background(), `SELECT fingerprint, status, workload_alerts, enrolled, refused_at, revoked, host_refused FROM agents WHERE id = ?`, id).
		Scan(&a.fingerprint, &a.status, &a.alerts, &enrolled, &refused, &a.revoked, &a.hostRefused)
	if err != nil {
		t.Fatalf("agent %s: %v", id, err)
	}
	a.enrolled, a.refusedAt = FromNanos(enrolled), FromNanos(refused)
	return a
}

func TestInsertAgent(t *testing.T) {
	forEachEngine(t, func(t *testing.T, db *DB) {
		st := protocol.Status{Fingerprint: "fp", Name: "web-1", Platform: "linux/amd64", Version: "1.2.0", Labels: map[string]string{"tier": "web"}}
		inTx(t, db, func(tx *Tx) error { return tx.InsertAgent("a-1", "cred", "fp", at(0), st) })
		a := readAgent(t, db, "a-1")
		var got protocol.Status
		if err := json.Unmarshal([]byte(a.status), &got); err != nil || !reflect.DeepEqual(got, st) {
			t.Fatalf("status %s (%v), want %+v", a.status, err, st)
		}
		if a.fingerprint != "fp" || !a.enrolled.Equal(at(0)) || a.revoked || a.hostRefused || a.alerts != "{}" {
			t.Fatalf("agent %+v", a)
		}
		// Credentials are unique.
		err := db.Update(context.Background(), func(tx *Tx) error { return tx.InsertAgent("a-2", "cred", "fp2", at(0), st) })
		if err == nil {
			t.Fatal("a second agent with the same credential was inserted")
		}
	})
}

// Revoking refuses the agent's host when it has a fingerprint; allowing
// the host stops every revoked agent of that fingerprint refusing it.
func TestHostRefusal(t *testing.T) {
	forEachEngine(t, func(t *testing.T, db *DB) {
		ctx := context.Background()
		inTx(t, db, func(tx *Tx) error {
			for _, a := range []struct {
				id, fp   string
				enrolled time.Duration
			}{{"b-old", "fp1", 0}, {"a-new", "fp1", time.Hour}, {"c-none", "", 0}, {"d-other", "fp2", 0}} {
				if err := tx.InsertAgent(a.id, "cred-"+a.id, a.fp, at(a.enrolled), protocol.Status{Fingerprint: a.fp}); err != nil {
					return err
				}
			}
			return nil
		})
		if ids, err := db.RefusedHostAgents(ctx); err != nil || len(ids) != 0 {
			t.Fatalf("refused before any revocation: %v, %v", ids, err)
		}
		if _, err := db.HostRefusal(ctx, "fp1"); !errors.Is(err, sql.ErrNoRows) {
			t.Fatalf("a host nobody refuses: %v", err)
		}
		inTx(t, db, func(tx *Tx) error {
			for _, id := range []string{"b-old", "a-new", "c-none"} {
				if err := tx.RevokeAgent(id); err != nil {
					return err
				}
			}
			return nil
		})
		for _, tt := range []struct {
			id               string
			revoked, refused bool
		}{{"b-old", true, true}, {"a-new", true, true}, {"c-none", true, false}, {"d-other", false, false}} {
			if a := readAgent(t, db, tt.id); a.revoked != tt.revoked || a.hostRefused != tt.refused {
				t.Errorf("%s: revoked %v, host refused %v; want %v, %v", tt.id, a.revoked, a.hostRefused, tt.revoked, tt.refused)
			}
		}
		if ids, err := db.RefusedHostAgents(ctx); err != nil || !slices.Equal(ids, []string{"a-new", "b-old"}) {
			t.Fatalf("refused %v, %v", ids, err)
		}
		// The most recently enrolled agent of the host answers.
		if h, err := db.HostRefusal(ctx, "fp1"); err != nil || h != (HostRefusal{AgentID: "a-new"}) {
			t.Fatalf("refusal %+v, %v", h, err)
		}
		inTx(t, db, func(tx *Tx) error { return tx.SetHostRefusedAt("a-new", at(time.Minute)) })
		if h, err := db.HostRefusal(ctx, "fp1"); err != nil || h != (HostRefusal{AgentID: "a-new", RefusedAt: at(time.Minute)}) {
			t.Fatalf("refusal %+v, %v", h, err)
		}
		for _, tt := range []struct {
			fp   string
			want int64
		}{{"fp1", 2}, {"fp1", 0}, {"fp2", 0}} {
			inTx(t, db, func(tx *Tx) error {
				n, err := tx.AllowHost(tt.fp)
				if err != nil || n != tt.want {
					t.Errorf("allow %s: %d, %v; want %d", tt.fp, n, err, tt.want)
				}
				return nil
			})
		}
		if a := readAgent(t, db, "a-new"); a.hostRefused || !a.refusedAt.IsZero() || !a.revoked {
			t.Fatalf("an allowed host's agent: %+v", a)
		}
		if ids, err := db.RefusedHostAgents(ctx); err != nil || len(ids) != 0 {
			t.Fatalf("refused after allowing: %v, %v", ids, err)
		}
	})
}

func TestSetWorkloadAlerts(t *testing.T) {
	forEachEngine(t, func(t *testing.T, db *DB) {
		inTx(t, db, func(tx *Tx) error { return tx.InsertAgent("a-1", "cred", "fp", at(0), protocol.Status{}) })
		for _, alerts := range []map[string]string{{"db": "crash_looping", "web": "unhealthy"}, {}} {
			inTx(t, db, func(tx *Tx) error { return tx.SetWorkloadAlerts("a-1", alerts) })
			var got map[string]string
			if err := json.Unmarshal([]byte(readAgent(t, db, "a-1").alerts), &got); err != nil || !maps.Equal(got, alerts) {
				t.Fatalf("alerts %v (%v), want %v", got, err, alerts)
			}
		}
	})
}

// Setting an agent's desired version touches only that agent.
func TestSetAgentDesired(t *testing.T) {
	forEachEngine(t, func(t *testing.T, db *DB) {
		for _, id := range []string{"a-1", "a-2", "a-3"} {
			seedAgent(t, db, id, "{}")
		}
		inTx(t, db, func(tx *Tx) error { return tx.SetAgentDesired("a-2", "1.4.0") })
		rows, err := db.query(context.Background(), `SELECT desired FROM agents ORDER BY id`)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		var desired []string
		for rows.Next() {
			var d string
			if err := rows.Scan(&d); err != nil {
				t.Fatal(err)
			}
			desired = append(desired, d)
		}
		if d := cmp.Diff([]string{"", "1.4.0", ""}, desired); d != "" {
			t.Errorf("desired (-want +got):\n%s", d)
		}
	})
}

func TestRecordAgentStatus(t *testing.T) {
	forEachEngine(t, func(t *testing.T, db *DB) {
		ctx := context.Background()
		deployTx(t, db, func(tx *Tx) error {
			for _, id := range []string{"a", "b"} {
				if _, err := tx.exec(`INSERT INTO agents (id, cred_hash, fingerprint, enrolled, status) VALUES (?, ?, '', 1, '{}')`, id, "h-"+id); err != nil {
					return err
				}
			}
			return tx.RecordAgentStatus("a", protocol.Status{Name: "web-1", Version: "2.0.0", Platform: "linux/amd64"}, t0.Add(time.Minute))
		})
		for _, tt := range []struct {
			id   string
			name string
			seen time.Time
		}{{"a", "web-1", t0.Add(time.Minute)}, {"b", "", time.Time{}}} {
			var status string
			var seen int64
			if err := db.queryRow(ctx, `SELECT status, last_seen FROM agents WHERE id = ?`, tt.id).Scan(&status, &seen); err != nil {
				t.Fatal(err)
			}
			var st protocol.Status
			if err := json.Unmarshal([]byte(status), &st); err != nil {
				t.Fatal(err)
			}
			if st.Name != tt.name || !FromNanos(seen).Equal(tt.seen) {
				t.Errorf("agent %s: status %s, seen %v; want name %q seen %v", tt.id, status, FromNanos(seen), tt.name, tt.seen)
			}
		}
	})
}
