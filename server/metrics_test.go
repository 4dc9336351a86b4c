package server

import (
	"bytes"
	"net/http"
	"strings"
	"testing"

	"github.com/moltfleet/molt/protocol"
)

// metricsText scrapes /metrics with a viewer token.
func (e *env) metricsText() string {
	e.t.Helper()
	req, _ := http.NewRequest("GET", e.hs.URL+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+e.tokens[protocol.RoleViewer])
	resp, err := e.hs.Client().Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	b.ReadFrom(resp.Body)
	return b.String()
}

// TestMetricsRuns: molt_runs counts runs by status, the ended ones too. A
// cancelled run used to leave the server's table of runs in progress as
// soon as the scheduler saw none of its deployments open, so
// molt_runs{status="cancelled"} stayed 0.
func TestMetricsRuns(t *testing.T) {
	e := newEnv(t)
	e.importPack("1.1.0", "", "linux/amd64")
	a := e.newAgent("a", "1.0.0")
	b := e.newAgent("b", "1.0.0")
	cancelled := e.createRun(protocol.RunRequest{Target: "1.1.0", Selection: protocol.Selection{AgentIDs: []string{a.id}}})
	e.must("POST", "/v1/runs/"+cancelled.ID+"/cancel", protocol.RoleOperator, nil, nil)
	e.createRun(protocol.RunRequest{Target: "1.1.0", Selection: protocol.Selection{AgentIDs: []string{b.id}}})
	e.schedule()
	if st := e.run(cancelled.ID).Status; st != protocol.RunCancelled {
		t.Fatalf("run %s is %s, want cancelled", cancelled.ID, st)
	}
	body := e.metricsText()
	for _, want := range []string{
		`molt_runs{status="running"} 1`,
		`molt_runs{status="paused"} 0`,
		`molt_runs{status="ended_ok"} 0`,
		`molt_runs{status="ended_not_ok"} 0`,
		`molt_runs{status="cancelled"} 1`,
	} {
		if !strings.Contains(body, want+"\n") {
			t.Errorf("metrics lack %q:\n%s", want, body)
		}
	}
}

// TestMetricsAgentStatuses: molt_agents counts each agent under its own
// upgrade status although a scrape works it out once per platform,
// version, protocol and supervision (upgradeStatuses), and its connection
// status from settings read once per scrape.
func TestMetricsAgentStatuses(t *testing.T) {
	e := newEnv(t)
	e.importPack("1.1.0", "", "linux/amd64")
	e.newAgent("old-1", "1.0.0")
	e.newAgent("old-2", "1.0.0")
	e.newAgent("new", "1.1.0")
	e.newAgent("manual", "1.0.0", func(r *protocol.EnrollRequest) { r.Supervised = false })
	e.newAgent("win", "1.0.0", func(r *protocol.EnrollRequest) { r.Platform, r.OSFamily = "windows/amd64", "windows" })
	e.enrollOnly("never", "1.0.0")
	body := e.metricsText()
	for _, want := range []string{
		`molt_agents{version="1.0.0",platform="linux/amd64",status="online",upgrade_status="upgrade_recommended"} 2`,
		`molt_agents{version="1.1.0",platform="linux/amd64",status="online",upgrade_status="up_to_date"} 1`,
		`molt_agents{version="1.0.0",platform="linux/amd64",status="online",upgrade_status="manual_upgrade_required"} 1`,
		`molt_agents{version="1.0.0",platform="windows/amd64",status="online",upgrade_status="up_to_date"} 1`,
		`molt_agents{version="1.0.0",platform="linux/amd64",status="offline",upgrade_status="upgrade_recommended"} 1`,
	} {
		if !strings.Contains(body, want+"\n") {
			t.Errorf("metrics lack %q:\n%s", want, body)
		}
	}
}
