//go:build unix

package e2e

import (
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/moltfleet/molt/home"
	"github.com/moltfleet/molt/internal/e2etest"
	"github.com/moltfleet/molt/protocol"
)

// TestDeltaUpgrade: a release built with --delta-from the installed one
// is applied from its patches by real agents under their supervisors:
// molt-agent, molt-supervisor and the exporter workload are each made
// from a patch (a "delta" step each in the DEPLOY report) and the new
// version runs. On a host whose installed supervisor file was changed
// on disk, that file is downloaded in full instead ("full", saying why)
// and the upgrade succeeds all the same.
func TestDeltaUpgrade(t *testing.T) {
	needBuild(t)
	parallel(t)
	// One pack pair for both hosts, one after the other on one address:
	// a pack and its patches cost seconds of CPU each.
	addr := e2etest.FreeAddr(t)
	p1 := exporterPack(t, wlV1, wlV1, exporterSpec(addr, "20s"), nil)
	p2 := e2etest.Pack(t, e2etest.PackOptions{Version: wlV2, DeltaFrom: []string{p1},
		Workloads: []e2etest.Workload{{Spec: exporterSpec(addr, "20s"), Files: map[string]string{"exporter": e2etest.Exporter(t, wlV2)}}}})
	for _, tc := range []struct {
		name        string
		corrupt     bool
		delta, full []string
		fullBecause string
	}{
		{"d-clean", false, []string{"agent", "supervisor", "workload/exporter/exporter"}, nil, ""},
		{"d-changed", true, []string{"agent", "workload/exporter/exporter"}, []string{"supervisor"}, "installed file is not the patch's base"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// The host before, stopped, let go of the address: what serves
			// there from now on is this host's exporter.
			e2etest.Eventually(t, 30*time.Second, addr+" free", func() (bool, string) {
				l, err := net.Listen("tcp", addr)
				if err != nil {
					return false, err.Error()
				}
				l.Close()
				return true, ""
			})
			srv := e2etest.StartServer(t, e2etest.ServerOptions{Version: wlV2})
			srv.Import(p2)
			h, id := installedHost(t, srv, tc.name, wlV1, p1, "exporter")
			if tc.corrupt {
				// Not the running supervisor (bin/), the version's copy.
				f, err := os.OpenFile(h.Home.StagedSupervisor(wlV1), os.O_APPEND|os.O_WRONLY, 0)
				if err != nil {
					t.Fatal(err)
				}
				f.Write([]byte{0})
				f.Close()
			}
			d := upgradeWait(t, srv, id, wlV2, 0)
			if d.State != protocol.StateSucceeded {
				t.Fatalf("upgrade to %s: %+v", wlV2, d)
			}
			h.WaitWorkload(30*time.Second, "exporter", wlV2, home.WorkloadReady)
			waitMetric(t, addr, `exporter_build_info{version="`+wlV2+`"`)
			var rep protocol.DeploymentReport
			srv.JSON(&rep, "history", "show", d.ID)
			steps := map[string]string{}
			for _, s := range rep.Steps {
				if s.Name == "delta" || s.Name == "full" {
					file, _, _ := strings.Cut(s.Detail, ": ")
					steps[file] = s.Name + ": " + s.Detail
				}
			}
			for _, f := range tc.delta {
				if !strings.HasPrefix(steps[f], "delta: "+f+": patch from "+wlV1) {
					t.Errorf("%s: step %q, want a delta step (all: %v)", f, steps[f], steps)
				}
			}
			for _, f := range tc.full {
				if !strings.HasPrefix(steps[f], "full: ") || !strings.Contains(steps[f], tc.fullBecause) {
					t.Errorf("%s: step %q, want a full step because %q", f, steps[f], tc.fullBecause)
				}
			}
			if len(steps) != len(tc.delta)+len(tc.full) {
				t.Errorf("delta/full steps: %v", steps)
			}
		})
	}
}
