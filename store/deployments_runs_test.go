package store

import (
	"context"
	"reflect"
	"testing"
	"time"

	"github.com/moltfleet/molt/protocol"
)

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
