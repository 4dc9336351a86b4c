package workload_test

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/moltfleet/molt/agent"
	"github.com/moltfleet/molt/home"
	"github.com/moltfleet/molt/workload"
)

// TestAgentReadsHolds checks the other side of the protocol: the agent's
// reader lists what Hold and HoldFor write, and nothing once released.
func TestAgentReadsHolds(t *testing.T) {
	dir := t.TempDir()
	h := home.New(dir)
	t.Setenv(workload.EnvName, "exporter")
	t.Setenv(workload.EnvHoldsDir, h.HoldsDir())
	if got, want := filepath.Join(h.StateDir(), "holds"), h.HoldsDir(); got != want {
		t.Fatalf("the agent's holds %s, the workload's %s", got, want)
	}

	release, err := workload.Hold("nightly scan")
	if err != nil {
		t.Fatal(err)
	}
	releaseFor, err := workload.HoldFor("key rotation", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	holds, err := agent.HoldsOf(h).List()
	if err != nil {
		t.Fatal(err)
	}
	reasons := map[string]bool{}
	for _, hd := range holds {
		reasons[hd.Reason] = true
	}
	if len(holds) != 2 || !reasons["nightly scan"] || !reasons["key rotation"] {
		t.Fatalf("the agent lists %+v, want the two holds", holds)
	}

	if err := release(); err != nil {
		t.Fatal(err)
	}
	if err := releaseFor(); err != nil {
		t.Fatal(err)
	}
	if holds, err := agent.HoldsOf(h).List(); err != nil || len(holds) != 0 {
		t.Fatalf("after release the agent lists %+v, %v", holds, err)
	}
}
