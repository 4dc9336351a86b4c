package faults

import (
	"flag"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/moltfleet/molt/internal/e2etest"
)

// The versions every case moves between.
const (
	oldVersion = "1.0.0"
	newVersion = "1.1.0"
)

// parallel is how many cases run at once unless -parallel says otherwise.
// A case spends most of its time waiting on real processes (a download,
// a supervisor's restart delay, a trial's watch, a minute without
// server), not computing: one case per core, Go's default, left the
// machine mostly idle.
const parallel = "4"

func TestMain(m *testing.M) {
	flag.Parse()
	given := false
	flag.Visit(func(f *flag.Flag) { given = given || f.Name == "test.parallel" })
	if !given {
		_ = flag.Set("test.parallel", parallel)
	}
	// Every binary of these suites has the crash points compiled in.
	e2etest.BuildTags = "faults"
	os.Exit(e2etest.Main(m))
}

// netQueued is closed once the network cases have asked for their turn,
// or will not run.
var (
	netQueued     = make(chan struct{})
	netQueuedOnce sync.Once
)

func networkQueued() { netQueuedOnce.Do(func() { close(netQueued) }) }

// selected says whether -run and -skip let the top-level test name run
// (a guess from their first element: a wrong guess costs only the order
// of the cases).
func selected(name string) bool {
	top := func(f string) (string, bool) {
		fl := flag.Lookup(f)
		if fl == nil || fl.Value.String() == "" {
			return "", false
		}
		p, rest, _ := strings.Cut(fl.Value.String(), "/")
		return p, rest == ""
	}
	if p, _ := top("test.run"); p != "" {
		if ok, err := regexp.MatchString(p, name); err != nil || !ok {
			return false
		}
	}
	if p, whole := top("test.skip"); p != "" && whole {
		if ok, _ := regexp.MatchString(p, name); ok {
			return false
		}
	}
	return true
}
