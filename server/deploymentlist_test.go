package server

import (
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/moltfleet/molt/protocol"
)

// TestDeploymentListPagingAndFilters: the history pages on the server
// (limit, offset, total) and filters by kind and by the time range of the
// deployments' creation, as the console's Upgrade History asks it to.
func TestDeploymentListPagingAndFilters(t *testing.T) {
	e := newEnv(t)
	e.importPack("1.0.0", "", "linux/amd64")
	e.importPack("2.0.0", "", "linux/amd64")
	var ids []string
	var agents []*simAgent
	for i := 0; i < 5; i++ {
		a := e.newAgent(fmt.Sprintf("h%d", i), "1.0.0")
		agents = append(agents, a)
		ids = append(ids, a.id)
	}
	start := e.clock.Now()
	first := e.createRun(protocol.RunRequest{Selection: protocol.Selection{AgentIDs: ids[:3]}, Target: "2.0.0"})
	e.clock.Add(2 * time.Hour)
	e.createRun(protocol.RunRequest{Selection: protocol.Selection{AgentIDs: ids[3:]}, Target: "2.0.0"})
	// An agent of the first run finishes its upgrade, then comes back on
	// the old version: a repair.
	for _, a := range agents {
		a.checkin() // online again after the clock moved
	}
	e.schedule()
	var a *simAgent
	var o *protocol.Order
	for _, a = range agents[:3] {
		if o = upgradeOrder(a.checkin()); o != nil {
			break
		}
	}
	if o == nil {
		t.Fatal("no agent of the first run was asked to upgrade")
	}
	a.complete(*o)
	var mine protocol.Deployments
	e.must("GET", "/v1/deployments?agent="+a.id, protocol.RoleViewer, nil, &mine)
	done := mine.Deployments[0]
	e.clock.Add(time.Hour)
	a.st.Version, a.st.LastResult = "1.0.0", nil
	a.checkin()

	list := func(q url.Values) protocol.Deployments {
		t.Helper()
		var ds protocol.Deployments
		e.must("GET", "/v1/deployments?"+q.Encode(), protocol.RoleViewer, nil, &ds)
		return ds
	}
	depIDs := func(ds protocol.Deployments) []string {
		var out []string
		for _, d := range ds.Deployments {
			out = append(out, d.ID)
		}
		return out
	}
	all := list(url.Values{})
	if all.Total != 6 || len(all.Deployments) != 6 {
		t.Fatalf("all: total %d, %d listed, want 6 (5 upgrades and a repair)", all.Total, len(all.Deployments))
	}
	tests := []struct {
		name  string
		q     url.Values
		total int
		want  []string // ids, newest first
	}{
		{"first page", url.Values{"limit": {"2"}}, 6, depIDs(all)[:2]},
		{"second page", url.Values{"limit": {"2"}, "offset": {"2"}}, 6, depIDs(all)[2:4]},
		{"past the end", url.Values{"limit": {"2"}, "offset": {"6"}}, 6, nil},
		{"one run, paged", url.Values{"run": {first.ID}, "limit": {"1"}, "offset": {"1"}}, 3, []string{depIDs(all)[4]}},
		{"repairs", url.Values{"kind": {protocol.KindRepair}}, 1, []string{depIDs(all)[0]}},
		{"since a time", url.Values{"since": {start.Add(time.Hour).Format(time.RFC3339)}}, 3, depIDs(all)[:3]},
		{"until a time", url.Values{"until": {start.Add(time.Hour).Format(time.RFC3339)}}, 3, depIDs(all)[3:]},
		{"since a duration ago", url.Values{"since": {"30m"}}, 1, depIDs(all)[:1]},
		{"a time range", url.Values{"since": {start.Add(time.Hour).Format(time.RFC3339)}, "until": {"30m"}}, 2, depIDs(all)[1:3]},
		{"run and state", url.Values{"run": {first.ID}, "state": {protocol.StateSucceeded}}, 1, []string{done.ID}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := list(tt.q)
			if got.Total != tt.total || fmt.Sprint(depIDs(got)) != fmt.Sprint(tt.want) {
				t.Errorf("total %d %v, want total %d %v", got.Total, depIDs(got), tt.total, tt.want)
			}
		})
	}
}

// TestDeploymentListRefusesBadFilters: a filter the server cannot read is
// a 400 naming it, never an empty page.
func TestDeploymentListRefusesBadFilters(t *testing.T) {
	e := newEnv(t)
	for _, q := range []string{"limit=0", "limit=100001", "offset=-1", "offset=x", "state=done", "kind=patch", "since=yesterday", "until=-1h", "run=3"} {
		t.Run(q, func(t *testing.T) {
			if code, pe := e.do("GET", "/v1/deployments?"+q, e.tokens[protocol.RoleViewer], nil, nil); code != 400 || pe.Code != protocol.CodeBadRequest {
				t.Errorf("%d %s %q, want 400", code, pe.Code, pe.Error)
			}
		})
	}
}

// TestSkipRefusalNamesTheStates: skipping a deployment the agent started
// is a 409 that names its state and every state a skip is allowed in
// (waiting_for_window too, as protocol.Queued has it).
func TestSkipRefusalNamesTheStates(t *testing.T) {
	e := newEnv(t)
	e.importPack("1.0.0", "", "linux/amd64")
	e.importPack("2.0.0", "", "linux/amd64")
	a := e.newAgent("h", "1.0.0")
	e.createRun(protocol.RunRequest{Selection: protocol.Selection{AgentIDs: []string{a.id}}, Target: "2.0.0"})
	e.schedule()
	a.complete(*upgradeOrder(a.checkin()))
	var ds protocol.Deployments
	e.must("GET", "/v1/deployments?agent="+a.id, protocol.RoleViewer, nil, &ds)
	code, pe := e.do("POST", "/v1/deployments/"+ds.Deployments[0].ID+"/skip", e.tokens[protocol.RoleOperator], nil, nil)
	want := "is succeeded: only a deployment the agent has not started (pending, waiting_for_host, waiting_for_window) can be skipped"
	if code != 409 || !strings.Contains(pe.Error, want) {
		t.Errorf("%d %q, want 409 %q", code, pe.Error, want)
	}
}
