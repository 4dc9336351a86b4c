//go:build unix

package pgtest

import (
	"slices"
	"testing"
)

// PIDs lists the postmaster and its children while the cluster runs, and
// nothing once it is stopped.
func TestPIDs(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a PostgreSQL cluster (skipped with -short)")
	}
	c := Start(t)
	pids := c.PIDs()
	if pm := c.postmasterPID(); !slices.Contains(pids, pm) || len(pids) < 2 {
		t.Fatalf("PIDs() = %v, want the postmaster %d and its children", pids, pm)
	}
	c.Stop()
	if pids := c.PIDs(); len(pids) != 0 {
		t.Errorf("PIDs() after Stop = %v, want none", pids)
	}
}
