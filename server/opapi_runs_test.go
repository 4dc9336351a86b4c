package server

import (
	"net/http"
	"strings"
	"testing"

	"github.com/moltfleet/molt/protocol"
)

// TestRunTargetForNeedsAPack: a target for a platform is refused, as
// settings set version.<platform> refuses it, when no release has a pack
// for that platform, for latest as for a version; a pack that exists is
// accepted, and the plan shows the version each platform resolved to.
func TestRunTargetForNeedsAPack(t *testing.T) {
	e := newEnv(t)
	e.importPack("1.1.0", "", "linux/amd64", "windows/amd64")
	e.importPack("1.2.0", "", "linux/amd64")
	a := e.newAgent("a", "1.0.0")
	w := e.newAgent("w", "1.0.0", func(r *protocol.EnrollRequest) { r.Platform, r.OSFamily = "windows/amd64", "windows" })
	sel := protocol.Selection{AgentIDs: []string{a.id, w.id}}
	for _, tc := range []struct {
		name      string
		targetFor map[string]string
		want      string
	}{
		{"release without that platform", map[string]string{"windows/amd64": "1.2.0"}, "target_for windows/amd64: release 1.2.0 has no pack for windows/amd64"},
		{"platform no pack has", map[string]string{"darwin/arm64": "1.1.0"}, "target_for darwin/arm64: release 1.1.0 has no pack for darwin/arm64"},
		{"latest of a platform no pack has", map[string]string{"freebsd/amd64": "latest"}, "target_for freebsd/amd64: no release has a pack for freebsd/amd64"},
		{"release not imported", map[string]string{"linux/amd64": "9.9.9"}, "target_for linux/amd64: release 9.9.9 is not imported"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, dry := range []bool{true, false} {
				code, pe := e.do("POST", "/v1/runs", e.tokens[protocol.RoleOperator], protocol.RunRequest{Target: "latest", TargetFor: tc.targetFor, Selection: sel, DryRun: dry}, nil)
				if code != http.StatusConflict || !strings.Contains(pe.Error, tc.want) {
					t.Errorf("dry run %t: %d %q, want 409 %q", dry, code, pe.Error, tc.want)
				}
			}
		})
	}
	run := e.createRun(protocol.RunRequest{Target: "latest", TargetFor: map[string]string{"windows/amd64": "1.1.0"}, Selection: sel})
	got := map[string]string{}
	for _, p := range e.run(run.ID).Plan {
		got[p.Platform] = p.Target
	}
	if got["linux/amd64"] != "1.2.0" || got["windows/amd64"] != "1.1.0" || len(got) != 2 {
		t.Errorf("plan targets %v, want linux/amd64 1.2.0 and windows/amd64 1.1.0", got)
	}
	var list protocol.Runs
	e.must("GET", "/v1/runs", protocol.RoleViewer, nil, &list)
	if len(list.Runs) != 1 || len(list.Runs[0].Plan) != 2 {
		t.Errorf("the run list lacks the plan: %+v", list.Runs)
	}
}
