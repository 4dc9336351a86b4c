//go:build linux

package faults

import (
	"testing"

	"github.com/moltfleet/molt/internal/e2etest"
)

// fleetOption changes what newFleet sets up.
type fleetOption int

// withPatches: the new version's pack carries patches from the installed
// one's files (molt pack build --delta-from), so the agents make their
// files from patches and the agent/patch-applying point is reached.
const withPatches fleetOption = 1

// patchedWorkloadPack is workloadPack(newVersion) with patches from the
// files of oldPack, the pack the hosts are installed from.
func patchedWorkloadPack(t *testing.T, oldPack string) string {
	t.Helper()
	return e2etest.Pack(t, e2etest.PackOptions{Version: newVersion, Workloads: []e2etest.Workload{exporterWorkload(t, newVersion)},
		DeltaFrom: []string{oldPack}})
}
