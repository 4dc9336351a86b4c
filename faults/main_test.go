package faults

import (
	"os"
	"testing"

	"github.com/moltfleet/molt/internal/e2etest"
)

// The versions every case moves between.
const (
	oldVersion = "1.0.0"
	newVersion = "1.1.0"
)

func TestMain(m *testing.M) {
	// Every binary of these suites has the crash points compiled in.
	e2etest.BuildTags = "faults"
	os.Exit(e2etest.Main(m))
}
