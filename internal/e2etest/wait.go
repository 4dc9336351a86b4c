package e2etest

import (
	"os"
	"sort"
	"testing"
	"time"

	"github.com/moltfleet/molt/protocol"
)

// Eventually polls cond every 250 ms until it holds or d passes; then it
// fails the test with what and the last thing cond saw.
func Eventually(tb testing.TB, d time.Duration, what string, cond func() (ok bool, seen string)) {
	tb.Helper()
	deadline := time.Now().Add(d)
	for {
		ok, seen := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("after %s: %s; last seen: %s", d, what, seen)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// Tail returns the last n lines of a file (or the error reading it).
func Tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	return lastLines(string(b), n)
}

// Filter returns the events that keep returns true for.
func Filter(evs []protocol.Event, keep func(protocol.Event) bool) []protocol.Event {
	var out []protocol.Event
	for _, e := range evs {
		if keep(e) {
			out = append(out, e)
		}
	}
	return out
}

// IDs are the numeric ids of evs, in order.
func IDs(evs []protocol.Event) []int {
	out := make([]int, len(evs))
	for i, e := range evs {
		out[i] = e.ID
	}
	return out
}

// OfAgent are the events of one agent.
func OfAgent(evs []protocol.Event, agentID string) []protocol.Event {
	return Filter(evs, func(e protocol.Event) bool { return e.AgentID == agentID })
}

// OfRun are the events of one run.
func OfRun(evs []protocol.Event, runID string) []protocol.Event {
	return Filter(evs, func(e protocol.Event) bool { return e.RunID == runID })
}

// Span is a deployment's time in progress, from the events: from its
// upgrade_requested (264) to its end (706, 707 or 708).
type Span struct {
	Deployment, Agent string
	Start, End        time.Time
}

// Spans are the in-progress spans of every deployment that the events
// show requested (keep picks the events considered, nil: all). A
// deployment still in progress ends at the zero time.
func Spans(evs []protocol.Event, keep func(protocol.Event) bool) []Span {
	idx := map[string]int{}
	var spans []Span
	for _, e := range evs {
		if e.DeploymentID == "" || (keep != nil && !keep(e)) {
			continue
		}
		switch e.ID {
		case protocol.EvUpgradeRequested:
			if _, ok := idx[e.DeploymentID]; !ok {
				idx[e.DeploymentID] = len(spans)
				spans = append(spans, Span{Deployment: e.DeploymentID, Agent: e.AgentID, Start: e.At})
			}
		case protocol.EvUpgraded, protocol.EvUpgradeFailed, protocol.EvRolledBack:
			if i, ok := idx[e.DeploymentID]; ok && spans[i].End.IsZero() {
				spans[i].End = e.At
			}
		}
	}
	return spans
}

// MaxOverlap is the highest number of spans in progress at one moment. A
// span that ends at the very time another starts does not overlap it
// (the server frees a slot before it fills it).
func MaxOverlap(spans []Span) int {
	type edge struct {
		at    time.Time
		delta int
	}
	var edges []edge
	for _, s := range spans {
		edges = append(edges, edge{s.Start, +1})
		if !s.End.IsZero() {
			edges = append(edges, edge{s.End, -1})
		}
	}
	sort.Slice(edges, func(i, j int) bool {
		if edges[i].at.Equal(edges[j].at) {
			return edges[i].delta < edges[j].delta
		}
		return edges[i].at.Before(edges[j].at)
	})
	n, most := 0, 0
	for _, e := range edges {
		n += e.delta
		most = max(most, n)
	}
	return most
}
