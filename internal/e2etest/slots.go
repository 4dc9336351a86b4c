package e2etest

import (
	"flag"
	"slices"
	"sync"
	"testing"
	"time"
)

// slots admits a package's parallel tests n at a time, longest first.
// Go starts parallel tests in no set order: when the longest start last,
// the package takes their length beyond the rest; started first, the
// others fill the slots beside them.
var slots struct {
	mu      sync.Mutex
	n       int // 0: no gate, Go's -parallel admits in its own order
	order   []string
	running int
	opened  bool // the first test arrived: gathering
	ready   bool // the gathering time passed: admitting
	waiting []*slotWaiter
}

type slotWaiter struct {
	rank  int
	start chan struct{}
}

// gather is how long the gate collects the tests that Go releases
// together before it admits the first: they arrive within microseconds.
const gather = 100 * time.Millisecond

// LongestFirst sets up, in TestMain after flag.Parse, the package's
// tests that call Parallel to run n at a time, those named in
// longestFirst first and in its order, the others after them. The
// package's tests mostly wait on real processes, not the CPU: n is
// usually more than the cores. With -parallel given, Go's own limit and
// order apply instead.
func LongestFirst(n int, longestFirst ...string) {
	given := false
	flag.Visit(func(f *flag.Flag) { given = given || f.Name == "test.parallel" })
	if given {
		return
	}
	// Go lets every test by; the gate holds all but n.
	_ = flag.Set("test.parallel", "1000")
	slots.mu.Lock()
	slots.n, slots.order = n, longestFirst
	slots.mu.Unlock()
}

// Parallel is t.Parallel and then, when TestMain called LongestFirst, a
// slot of the gate, held until t ends.
func Parallel(t *testing.T) {
	t.Helper()
	t.Parallel()
	slots.mu.Lock()
	if slots.n == 0 {
		slots.mu.Unlock()
		return
	}
	rank := slices.Index(slots.order, t.Name())
	if rank < 0 {
		rank = len(slots.order)
	}
	w := &slotWaiter{rank: rank, start: make(chan struct{})}
	slots.waiting = append(slots.waiting, w)
	if !slots.opened {
		slots.opened = true
		time.AfterFunc(gather, func() {
			slots.mu.Lock()
			defer slots.mu.Unlock()
			slots.ready = true
			admit()
		})
	}
	admit()
	slots.mu.Unlock()
	since := time.Now()
	<-w.start
	if d := time.Since(since); d > time.Second {
		t.Logf("waited %s for a slot", d.Round(time.Millisecond))
	}
	// Registered first, run last: the slot is free once the test's
	// servers and hosts are stopped.
	t.Cleanup(func() {
		slots.mu.Lock()
		defer slots.mu.Unlock()
		slots.running--
		admit()
		if slots.running == 0 && len(slots.waiting) == 0 {
			// The next round of -count gathers again.
			slots.opened, slots.ready = false, false
		}
	})
}

// admit starts the longest waiting tests while slots are free, once the
// gathering time has passed. Called with slots.mu held.
func admit() {
	for slots.ready && slots.running < slots.n && len(slots.waiting) > 0 {
		i := 0
		for j, w := range slots.waiting {
			if w.rank < slots.waiting[i].rank {
				i = j
			}
		}
		w := slots.waiting[i]
		slots.waiting = slices.Delete(slots.waiting, i, i+1)
		slots.running++
		close(w.start)
	}
}
