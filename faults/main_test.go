package faults

import (
	"flag"
	"os"
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
