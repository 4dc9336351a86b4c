package e2etest

import (
	"slices"
	"testing"
)

// TestAdmitLongestFirst: free slots go to the waiting tests of lowest
// rank (the longest), whatever order they arrived in; the rest wait for
// a test to end.
func TestAdmitLongestFirst(t *testing.T) {
	saved := slots.n
	t.Cleanup(func() { slots.n, slots.running, slots.waiting, slots.ready = saved, 0, nil, false })
	slots.mu.Lock()
	defer slots.mu.Unlock()
	slots.n, slots.running = 2, 0
	arrived := []int{5, 1, 3, 0, 2} // ranks in the order the tests arrive
	ws := map[int]*slotWaiter{}
	for _, r := range arrived {
		ws[r] = &slotWaiter{rank: r, start: make(chan struct{})}
		slots.waiting = append(slots.waiting, ws[r])
	}
	started := func() []int {
		var out []int
		for r, w := range ws {
			select {
			case <-w.start:
				out = append(out, r)
			default:
			}
		}
		slices.Sort(out)
		return out
	}
	// While the gate gathers, nobody starts.
	admit()
	if got := started(); len(got) != 0 {
		t.Fatalf("started %v while gathering", got)
	}
	slots.ready = true
	admit()
	if got := started(); !slices.Equal(got, []int{0, 1}) {
		t.Fatalf("started %v, want the two longest [0 1]", got)
	}
	slots.running-- // one ends
	admit()
	if got := started(); !slices.Equal(got, []int{0, 1, 2}) {
		t.Fatalf("started %v after one ended, want [0 1 2]", got)
	}
	slots.running -= 2
	admit()
	if got := started(); !slices.Equal(got, []int{0, 1, 2, 3, 5}) || len(slots.waiting) != 0 {
		t.Fatalf("started %v, waiting %d, want all started", got, len(slots.waiting))
	}
}
