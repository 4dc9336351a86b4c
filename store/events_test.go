package store

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// coreEvents records evs in one transaction and returns their seqs.
func coreEvents(t *testing.T, db *DB, evs ...Event) []int64 {
	t.Helper()
	inTx(t, db, func(tx *Tx) error {
		for _, e := range evs {
			if err := tx.InsertEvent(e); err != nil {
				return err
			}
		}
		return nil
	})
	all, err := db.Events(context.Background(), EventPage{Limit: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	var seqs []int64
	for _, e := range all[len(all)-len(evs):] {
		seqs = append(seqs, e.Seq)
	}
	return seqs
}

func eventSeqs(evs []Event) []int64 {
	out := []int64{}
	for _, e := range evs {
		out = append(out, e.Seq)
	}
	return out
}

// An event reads back as recorded, and pages of the log select by event
// id, agent and run, within seq and time bounds, oldest first, the first
// or (tail) the newest of them.
func TestEvents(t *testing.T) {
	forEachEngine(t, func(t *testing.T, db *DB) {
		ctx := context.Background()
		if n, err := db.LastEventSeq(ctx); err != nil || n != 0 {
			t.Fatalf("an empty log's last seq %d (%v), want 0", n, err)
		}
		at := func(s int) time.Time { return time.Date(2026, 3, 1, 0, 0, s, 5, time.UTC) }
		seqs := coreEvents(t, db,
			Event{ID: 100, Name: "server_started", At: at(1), Message: "started", Fields: map[string]string{"version": "1.0"}},
			Event{ID: 264, Name: "upgrade_failed", At: at(2), AgentID: "a-1", RunID: 3, DeploymentID: 7, Message: "failed: \"x\"\nnext", Fields: map[string]string{"reason": "r", "é": "ü"}},
			Event{ID: 264, Name: "upgrade_failed", At: at(3), AgentID: "a-2", RunID: 3, DeploymentID: 8, Message: "failed"},
			Event{ID: 300, Name: "other", At: at(4), AgentID: "a-1", Message: "m4"},
			Event{ID: 264, Name: "upgrade_failed", At: at(5), AgentID: "a-1", RunID: 4, DeploymentID: 9, Message: "failed again"},
			Event{ID: 100, Name: "server_started", At: at(6), Message: "started again"},
		)
		if n, err := db.LastEventSeq(ctx); err != nil || n != seqs[5] {
			t.Fatalf("last seq %d (%v), want %d", n, err, seqs[5])
		}
		all, err := db.Events(ctx, EventPage{Limit: 100})
		if err != nil {
			t.Fatal(err)
		}
		want := Event{Seq: seqs[1], ID: 264, Name: "upgrade_failed", At: at(2), AgentID: "a-1", RunID: 3, DeploymentID: 7, Message: "failed: \"x\"\nnext", Fields: map[string]string{"reason": "r", "é": "ü"}}
		if d := cmp.Diff(want, all[1]); d != "" {
			t.Errorf("an event read back (-want +got):\n%s", d)
		}
		if all[0].Fields["version"] != "1.0" || all[2].Fields != nil {
			t.Errorf("fields %v and %v, want version and none", all[0].Fields, all[2].Fields)
		}
		s := func(i ...int) []int64 {
			out := []int64{}
			for _, k := range i {
				out = append(out, seqs[k])
			}
			return out
		}
		for _, c := range []struct {
			name string
			page EventPage
			want []int64
		}{
			{"all", EventPage{Limit: 100}, s(0, 1, 2, 3, 4, 5)},
			{"first page", EventPage{Limit: 2}, s(0, 1)},
			{"newest page", EventPage{Limit: 2, Tail: true}, s(4, 5)},
			{"after", EventPage{After: seqs[3], Limit: 100}, s(4, 5)},
			{"before", EventPage{Before: seqs[3], Limit: 100}, s(0, 1, 2)},
			{"page before, newest", EventPage{Before: seqs[4], Limit: 2, Tail: true}, s(2, 3)},
			{"since", EventPage{Since: at(4), Limit: 100}, s(3, 4, 5)},
			{"one id", EventPage{EventFilter: EventFilter{IDs: []int{264}}, Limit: 100}, s(1, 2, 4)},
			{"two ids", EventPage{EventFilter: EventFilter{IDs: []int{100, 300}}, Limit: 100}, s(0, 3, 5)},
			{"agent", EventPage{EventFilter: EventFilter{AgentID: "a-1"}, Limit: 100}, s(1, 3, 4)},
			{"run", EventPage{EventFilter: EventFilter{RunID: 3}, Limit: 100}, s(1, 2)},
			{"id and agent", EventPage{EventFilter: EventFilter{IDs: []int{264}, AgentID: "a-1"}, Limit: 100}, s(1, 4)},
			{"newest of an agent", EventPage{EventFilter: EventFilter{AgentID: "a-1"}, Limit: 1, Tail: true}, s(4)},
			{"nothing", EventPage{EventFilter: EventFilter{AgentID: "a-9"}, Limit: 100}, s()},
		} {
			t.Run(c.name, func(t *testing.T) {
				got, err := db.Events(ctx, c.page)
				if err != nil {
					t.Fatal(err)
				}
				if d := cmp.Diff(c.want, eventSeqs(got)); d != "" {
					t.Errorf("seqs (-want +got):\n%s", d)
				}
			})
		}
		for _, c := range []struct {
			name           string
			f              EventFilter
			after, through int64
			limit          int
			want           []int64
		}{
			{"all", EventFilter{}, 0, seqs[5], 100, s(0, 1, 2, 3, 4, 5)},
			{"through", EventFilter{}, seqs[0], seqs[3], 100, s(1, 2, 3)},
			{"limit", EventFilter{}, seqs[0], seqs[5], 2, s(1, 2)},
			{"filtered", EventFilter{IDs: []int{264}, AgentID: "a-1"}, 0, seqs[5], 100, s(1, 4)},
			{"run", EventFilter{RunID: 4}, 0, seqs[3], 100, s()},
		} {
			t.Run("through "+c.name, func(t *testing.T) {
				got, err := db.EventsThrough(ctx, c.f, c.after, c.through, c.limit)
				if err != nil {
					t.Fatal(err)
				}
				if d := cmp.Diff(c.want, eventSeqs(got)); d != "" {
					t.Errorf("seqs (-want +got):\n%s", d)
				}
			})
		}
		// A savepoint rolled back takes its events back.
		inTx(t, db, func(tx *Tx) error {
			if err := tx.Savepoint(); err != nil {
				return err
			}
			if err := tx.InsertEvent(Event{ID: 1, Name: "x", At: at(9), Message: "dropped"}); err != nil {
				return err
			}
			return tx.RollbackToSavepoint()
		})
		if n, err := db.LastEventSeq(ctx); err != nil || n != seqs[5] {
			t.Fatalf("last seq %d (%v) after a rolled back event, want %d", n, err, seqs[5])
		}
	})
}

// The newest events of one event id, agent or run, and the page before a
// seq, are read through that column's index, not by walking the whole log
// back (an agent's events among millions). SQLite's plans; PostgreSQL
// plans by its statistics.
func TestEventPageUsesIndexes(t *testing.T) {
	db := openTest(t, SQLite)
	for _, c := range []struct {
		name  string
		f     EventFilter
		index string
	}{
		{"id", EventFilter{IDs: []int{264}}, "events_id"},
		{"agent", EventFilter{AgentID: "a-1"}, "events_agent"},
		{"run", EventFilter{RunID: 3}, "events_run"},
	} {
		for _, before := range []int64{0, 5000} {
			for _, tail := range []bool{true, false} {
				t.Run(fmt.Sprintf("%s before %d tail %v", c.name, before, tail), func(t *testing.T) {
					q, args := EventPage{EventFilter: c.f, Before: before, Limit: 100, Tail: tail}.sql()
					rows, err := db.query(context.Background(), "EXPLAIN QUERY PLAN "+q, args...)
					if err != nil {
						t.Fatal(err)
					}
					defer rows.Close()
					var plan []string
					for rows.Next() {
						var id, parent, unused int
						var detail string
						if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
							t.Fatal(err)
						}
						plan = append(plan, detail)
					}
					joined := strings.Join(plan, " | ")
					if !strings.Contains(joined, "SEARCH events USING INDEX "+c.index+" ") || strings.Contains(joined, "SCAN events") {
						t.Errorf("%s\nplan %q: want a search through %s", q, joined, c.index)
					}
				})
			}
		}
	}
}
