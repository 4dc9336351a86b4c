package server

import (
	"context"
	"testing"

	"github.com/moltfleet/molt/protocol"
)

// TestScheduleBatchesDecisions: a scheduling pass writes what it decides
// for a run (deployments that start, wait or go back to pending) in one
// transaction, not one each: every commit is an fsync made while
// check-ins wait for s.mu, and a run of thousands has thousands in its
// queue and hundreds to start.
func TestScheduleBatchesDecisions(t *testing.T) {
	e := newEnv(t)
	e.importPack("1.1.0", "", "linux/amd64")
	const n = 8
	agents := make([]*simAgent, n)
	for i := range agents {
		agents[i] = e.enrollOnly("a"+string(rune('0'+i)), "1.0.0")
	}
	r := e.createRun(protocol.RunRequest{Target: "1.1.0", MaxConcurrent: 2, Selection: protocol.Selection{All: true}})
	for _, tc := range []struct {
		name       string
		before     func()
		maxCommits int64
		want       map[string]int
	}{
		// None of the agents ever connected: all wait, in one commit
		// (and at most one more for the run's own bookkeeping).
		{"never connected", func() {}, 2, map[string]int{protocol.StateWaitingForHost: n}},
		// They connect: two start and the other six go back to pending,
		// in one commit.
		{"connected", func() {
			for _, a := range agents {
				a.checkin()
			}
		}, 2, map[string]int{protocol.StateRequested: 2, protocol.StatePending: n - 2}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.before()
			c0 := e.s.st.commits.Load()
			e.schedule()
			if c := e.s.st.commits.Load() - c0; c > tc.maxCommits {
				t.Errorf("one pass made %d commits, want at most %d", c, tc.maxCommits)
			}
			got := e.run(r.ID).Counts
			for st, w := range tc.want {
				if got[st] != w {
					t.Errorf("%d deployments %s, want %d (all: %v)", got[st], st, w, got)
				}
			}
		})
	}
}

// TestWriterStatementsPrepared: the writer's statements are prepared once
// (before the batch after their first use) and reused by later
// transactions: parsing SQL was a tenth of the server's work in a large
// run.
func TestWriterStatementsPrepared(t *testing.T) {
	e := newEnv(t)
	st := e.s.st
	const q = `UPDATE agents SET desired = ? WHERE id = ?`
	use := func() {
		t.Helper()
		e.s.mu.Lock()
		defer e.s.mu.Unlock()
		if err := e.s.change(context.Background(), func(w *writer) error { _, err := w.exec(q, "", "none"); return err }); err != nil {
			t.Fatal(err)
		}
	}
	use()
	use()
	prep := st.prepared(q)
	if prep == nil {
		t.Fatal("a statement used in two batches is not prepared")
	}
	use()
	if again := st.prepared(q); again != prep {
		t.Fatal("the statement was prepared again")
	}
	st.stmtMu.Lock()
	n, noted := len(st.stmts), len(st.noted)
	st.stmtMu.Unlock()
	if n == 0 || noted != 0 {
		t.Fatalf("%d statements prepared, %d waiting to be: want some and none", n, noted)
	}
}
