package store

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// Last-seen times are written together in one commit, agents not named
// keep theirs, an unknown agent is passed over, and nothing to write
// commits nothing.
func TestFlushLastSeen(t *testing.T) {
	forEachEngine(t, func(t *testing.T, db *DB) {
		ctx := context.Background()
		for _, id := range []string{"a-1", "a-2", "a-3"} {
			seedAgent(t, db, id, "{}")
		}
		seen := func() map[string]int64 {
			t.Helper()
			rows, err := db.query(ctx, `SELECT id, last_seen FROM agents`)
			if err != nil {
				t.Fatal(err)
			}
			defer rows.Close()
			out := map[string]int64{}
			for rows.Next() {
				var id string
				var at int64
				if err := rows.Scan(&id, &at); err != nil {
					t.Fatal(err)
				}
				out[id] = at
			}
			return out
		}
		c0 := db.Commits()
		if err := db.FlushLastSeen(ctx, nil); err != nil || db.Commits() != c0 {
			t.Fatalf("nothing to flush: %v, %d commits", err, db.Commits()-c0)
		}
		t1, t2 := time.Date(2026, 6, 1, 0, 0, 0, 1, time.UTC), time.Date(2026, 6, 2, 0, 0, 0, 2, time.UTC)
		if err := db.FlushLastSeen(ctx, []AgentSeen{{"a-1", t1}, {"a-3", t2}, {"a-9", t2}}); err != nil {
			t.Fatal(err)
		}
		if db.Commits() != c0+1 {
			t.Errorf("%d commits, want 1", db.Commits()-c0)
		}
		if d := cmp.Diff(map[string]int64{"a-1": t1.UnixNano(), "a-2": 0, "a-3": t2.UnixNano()}, seen()); d != "" {
			t.Errorf("last seen (-want +got):\n%s", d)
		}
	})
}

// Pruning deletes the oldest events before the cutoff, at most limit at a
// time, and never one at or after it.
func TestPruneEvents(t *testing.T) {
	forEachEngine(t, func(t *testing.T, db *DB) {
		ctx := context.Background()
		base := time.Date(2026, 7, 1, 0, 0, 0, 0, time.UTC)
		var evs []Event
		// Out of time order: pruning goes by time, in seq order.
		for i, s := range []int{5, 1, 2, 9, 3, 7, 0} {
			evs = append(evs, Event{ID: 1, Name: "e", At: base.Add(time.Duration(s) * time.Second), Message: fmt.Sprint(i)})
		}
		coreEvents(t, db, evs...)
		cutoff := base.Add(5 * time.Second) // before it: messages 1, 2, 4, 6
		for _, want := range []struct {
			n    int64
			left []string
		}{
			{2, []string{"0", "3", "4", "5", "6"}},
			{2, []string{"0", "3", "5"}},
			{0, []string{"0", "3", "5"}},
		} {
			n, err := db.PruneEvents(ctx, cutoff, 2)
			if err != nil {
				t.Fatal(err)
			}
			all, err := db.Events(ctx, EventPage{Limit: 100})
			if err != nil {
				t.Fatal(err)
			}
			var left []string
			for _, e := range all {
				left = append(left, e.Message)
			}
			if n != want.n || !cmp.Equal(left, want.left) {
				t.Fatalf("pruned %d, left %v; want %d, %v", n, left, want.n, want.left)
			}
		}
	})
}
