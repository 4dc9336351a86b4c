package server

import (
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
			c0 := e.s.st.Commits()
			e.schedule()
			if c := e.s.st.Commits() - c0; c > tc.maxCommits {
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
