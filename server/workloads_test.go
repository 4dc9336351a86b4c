package server

import (
	"bytes"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/moltfleet/molt/protocol"
)

func wl(name, state string, restarts int) protocol.Workload {
	return protocol.Workload{Name: name, Version: "1.0.0", State: state, Restarts: restarts, Since: time.Date(2026, 1, 2, 3, 0, 0, 0, time.UTC)}
}

// The workloads of a check-in are what GET /v1/agents and
// /v1/agents/{id} show, exactly, also after a restart of the server.
func TestCheckinWorkloadsShown(t *testing.T) {
	e := newEnv(t)
	a := e.newAgent("web-1", "1.0.0")
	exp := wl("exporter", protocol.WorkloadCrashed, 4)
	exp.LastExit, exp.Reason = "exit status 2", "GET http://127.0.0.1:9100/metrics: connection refused"
	want := []protocol.Workload{wl("sensor", protocol.WorkloadReady, 0), exp}
	a.st.Workloads = want
	a.checkin()
	check := func(when string) {
		t.Helper()
		var list protocol.Agents
		e.must("GET", "/v1/agents", protocol.RoleViewer, nil, &list)
		if len(list.Agents) != 1 {
			t.Fatalf("%s: %d agents", when, len(list.Agents))
		}
		if d := cmp.Diff(want, list.Agents[0].Workloads); d != "" {
			t.Errorf("%s: GET /v1/agents workloads (-want +got):\n%s", when, d)
		}
		var one protocol.Agent
		e.must("GET", "/v1/agents/"+a.id, protocol.RoleViewer, nil, &one)
		if d := cmp.Diff(want, one.Workloads); d != "" {
			t.Errorf("%s: GET /v1/agents/{id} workloads (-want +got):\n%s", when, d)
		}
	}
	check("after the check-in")
	e.restart()
	check("after a restart")
}

// What an agent says about its workloads is bounded and checked: a bad
// value is refused with one 400 naming the field, and nothing is stored.
func TestCheckinWorkloadsRefused(t *testing.T) {
	e := newEnv(t)
	a := e.newAgent("h", "1.0.0")
	ok := wl("exporter", protocol.WorkloadReady, 0)
	with := func(f func(*protocol.Workload)) []protocol.Workload {
		w := ok
		f(&w)
		return []protocol.Workload{w}
	}
	many := make([]protocol.Workload, protocol.MaxWorkloads+1)
	for i := range many {
		many[i] = wl("w"+strings.Repeat("x", i), protocol.WorkloadReady, 0)
	}
	for _, tc := range []struct {
		name string
		ws   []protocol.Workload
		lr   *protocol.TrialResult
		want string
	}{
		{"17 workloads", many, nil, "workloads: more than 16"},
		{"bad name", with(func(w *protocol.Workload) { w.Name = "Exporter!" }), nil, `workloads[0].name "Exporter!" is not a workload name`},
		{"empty name", with(func(w *protocol.Workload) { w.Name = "" }), nil, `workloads[0].name "" is not a workload name`},
		{"long name", with(func(w *protocol.Workload) { w.Name = strings.Repeat("a", 33) }), nil, "is not a workload name"},
		{"bad state", with(func(w *protocol.Workload) { w.State = "zombie" }), nil, `workloads[0] (exporter).state "zombie" is not one of starting, ready, unhealthy, crashed, stopped`},
		{"bad version", with(func(w *protocol.Workload) { w.Version = "../1" }), nil, `workloads[0] (exporter).version "../1" is not a valid version`},
		{"negative restarts", with(func(w *protocol.Workload) { w.Restarts = -1 }), nil, "workloads[0] (exporter).restarts -1 is not from 0 to"},
		{"huge restarts", with(func(w *protocol.Workload) { w.Restarts = 1 << 40 }), nil, "workloads[0] (exporter).restarts"},
		{"ESC in reason", with(func(w *protocol.Workload) { w.Reason = "ok\x1b[2Jgone" }), nil, "workloads[0].reason contains the control character U+001B"},
		{"newline in last exit", with(func(w *protocol.Workload) { w.LastExit = "exit\nstatus 1" }), nil, "workloads[0].last_exit contains the control character U+000A"},
		{"bidi override in reason", with(func(w *protocol.Workload) { w.Reason = "a\u202eb" }), nil, "workloads[0].reason contains the control character U+202E"},
		{"long reason", with(func(w *protocol.Workload) { w.Reason = strings.Repeat("r", 1025) }), nil, "workloads[0].reason is longer than 1024 bytes"},
		{"long last exit", with(func(w *protocol.Workload) { w.LastExit = strings.Repeat("r", 257) }), nil, "workloads[0].last_exit is longer than 256 bytes"},
		{"duplicate", []protocol.Workload{ok, ok}, nil, `workloads[1].name "exporter" is reported twice`},
		{"bad trial workload", nil, &protocol.TrialResult{Outcome: protocol.TrialRolledBack, Version: "1.0.0", Workload: "../x"}, `last_result.workload "../x" is not a workload name`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := a.st
			st.Workloads, st.LastResult = tc.ws, tc.lr
			code, pe := e.do("POST", "/v1/agent/checkin", a.cred, protocol.CheckinRequest{Status: st}, nil)
			if code != http.StatusBadRequest || !strings.Contains(pe.Error, tc.want) {
				t.Fatalf("got %d %q, want 400 with %q", code, pe.Error, tc.want)
			}
		})
	}
	var one protocol.Agent
	e.must("GET", "/v1/agents/"+a.id, protocol.RoleViewer, nil, &one)
	if len(one.Workloads) != 0 {
		t.Fatalf("a refused check-in stored workloads: %+v", one.Workloads)
	}
}

// workloadEventIDs lists the workload events of agent, in order.
func (e *env) workloadEventIDs(agent string) []int {
	var out []int
	for _, ev := range e.events() {
		switch ev.ID {
		case protocol.EvWorkloadLooping, protocol.EvWorkloadSick, protocol.EvWorkloadRecovered:
			if ev.AgentID == agent {
				out = append(out, ev.ID)
			}
		}
	}
	return out
}

// Workload events are recorded on transitions only: once when a workload
// starts crash-looping or turns unhealthy, once when it is ready again,
// not on every check-in, not again after a server restart, and not
// during a trial.
func TestWorkloadEvents(t *testing.T) {
	e := newEnv(t)
	e.importPack("2.0.0", "", "linux/amd64")
	a := e.newAgent("h", "1.0.0")
	const (
		loop = protocol.EvWorkloadLooping
		sick = protocol.EvWorkloadSick
		back = protocol.EvWorkloadRecovered
	)
	steps := []struct {
		w       protocol.Workload
		restart bool // restart the server before this check-in
		want    []int
	}{
		{w: wl("exporter", protocol.WorkloadReady, 0)},
		{w: wl("exporter", protocol.WorkloadCrashed, 0)}, // crashed, not restarted since: not a loop yet
		{w: wl("exporter", protocol.WorkloadCrashed, 2), want: []int{loop}},
		{w: wl("exporter", protocol.WorkloadStarting, 3), want: []int{loop}},
		{w: wl("exporter", protocol.WorkloadCrashed, 5), want: []int{loop}},
		{w: wl("exporter", protocol.WorkloadCrashed, 7), restart: true, want: []int{loop}},
		{w: wl("exporter", protocol.WorkloadReady, 7), want: []int{loop, back}},
		{w: wl("exporter", protocol.WorkloadReady, 7), want: []int{loop, back}},
		{w: wl("exporter", protocol.WorkloadUnhealthy, 7), want: []int{loop, back, sick}},
		{w: wl("exporter", protocol.WorkloadUnhealthy, 8), restart: true, want: []int{loop, back, sick}},
		{w: wl("exporter", protocol.WorkloadStarting, 8), want: []int{loop, back, sick}},
		{w: wl("exporter", protocol.WorkloadReady, 8), want: []int{loop, back, sick, back}},
	}
	for i, s := range steps {
		if s.restart {
			e.restart()
		}
		a.st.Workloads = []protocol.Workload{s.w}
		a.checkin()
		if got := e.workloadEventIDs(a.id); !slices.Equal(got, s.want) {
			t.Fatalf("check-in %d (%s, %d restarts): events %v, want %v", i, s.w.State, s.w.Restarts, got, s.want)
		}
	}
	for _, ev := range e.events() {
		if ev.ID == loop {
			if ev.Fields["workload"] != "exporter" || ev.Fields["restarts"] != "2" || !strings.Contains(ev.Message, "crash-looping") {
				t.Errorf("crash-looping event: %+v", ev)
			}
		}
	}

	// In a trial the crashes are the trial's: no event, and the alert
	// stays as it was.
	before := len(e.workloadEventIDs(a.id))
	e.createRun(protocol.RunRequest{Selection: protocol.Selection{All: true}, Target: "2.0.0"})
	e.schedule()
	o := upgradeOrder(a.checkin())
	if o == nil {
		t.Fatal("no upgrade order")
	}
	a.report(protocol.ReportRequest{OrderID: o.ID, Phase: protocol.StateRestarting})
	a.st.Version = "2.0.0"
	for _, w := range []protocol.Workload{wl("exporter", protocol.WorkloadCrashed, 1), wl("exporter", protocol.WorkloadCrashed, 3), wl("exporter", protocol.WorkloadUnhealthy, 3)} {
		a.st.Workloads = []protocol.Workload{w}
		a.checkin()
	}
	if got := e.workloadEventIDs(a.id); len(got) != before {
		t.Fatalf("workload events during a trial: %v", got[before:])
	}
}

// A trial rolled back by a workload shows the agent's reason as it was
// sent and names the workload; the steps the agent reports (each
// workload's start and ready) are in the DEPLOY report.
func TestWorkloadRollBack(t *testing.T) {
	e := newEnv(t)
	e.importPack("2.0.0", "", "linux/amd64")
	a := e.newAgent("h", "1.0.0")
	e.createRun(protocol.RunRequest{Selection: protocol.Selection{All: true}, Target: "2.0.0"})
	e.schedule()
	o := upgradeOrder(a.checkin())
	if o == nil {
		t.Fatal("no upgrade order")
	}
	now := e.clock.Now()
	a.report(protocol.ReportRequest{OrderID: o.ID, Phase: protocol.StateRestarting, Steps: []protocol.Step{
		{At: now.Add(time.Second), Name: "workload exporter started", Detail: "pid 4242"},
		{At: now.Add(3 * time.Second), Name: "workload exporter ready", Detail: "after 2s"},
	}})
	const reason = "workload exporter did not pass its ready check within 30s: GET http://127.0.0.1:9100/metrics: connection refused"
	a.st.LastResult = &protocol.TrialResult{Outcome: protocol.TrialRolledBack, Version: "2.0.0", Previous: "1.0.0", OrderID: o.ID,
		Reason: reason, Logs: "logs/workload-exporter-2.0.0.log", Workload: "exporter", At: now.Add(40 * time.Second)}
	a.checkin()
	rep := e.deployment(o.ID)
	if d := rep.Deployment; d.State != protocol.StateRolledBack || d.Reason != reason || d.Workload != "exporter" {
		t.Fatalf("deployment: %+v", d)
	}
	var names []string
	for _, s := range rep.Steps {
		names = append(names, s.Name)
	}
	if got := strings.Join(names, ","); !strings.Contains(got, "workload exporter started,workload exporter ready") {
		t.Fatalf("steps: %s", got)
	}
	found := false
	for _, ev := range e.events() {
		if ev.ID == protocol.EvRolledBack && ev.Fields["workload"] == "exporter" && ev.Fields["reason"] == reason {
			found = true
		}
	}
	if !found {
		t.Fatal("no rolled_back event naming the workload")
	}
	e.restart()
	if d := e.deployment(o.ID).Deployment; d.Workload != "exporter" {
		t.Fatalf("after a restart: %+v", d)
	}
}

// molt_agent_workloads counts the workloads of online agents by state.
func TestWorkloadMetrics(t *testing.T) {
	e := newEnv(t)
	off := e.newAgent("off", "1.0.0")
	off.st.Workloads = []protocol.Workload{wl("exporter", protocol.WorkloadCrashed, 9)}
	off.checkin()
	e.clock.Add(10 * time.Minute) // "off" is offline from now on
	a := e.newAgent("a", "1.0.0")
	a.st.Workloads = []protocol.Workload{wl("exporter", protocol.WorkloadReady, 0), wl("sensor", protocol.WorkloadCrashed, 2)}
	a.checkin()
	b := e.newAgent("b", "1.0.0")
	b.st.Workloads = []protocol.Workload{wl("exporter", protocol.WorkloadReady, 0), wl("sensor", protocol.WorkloadStarting, 0)}
	b.checkin()
	req, _ := http.NewRequest("GET", e.hs.URL+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+e.tokens[protocol.RoleViewer])
	resp, err := e.hs.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body := new(bytes.Buffer)
	body.ReadFrom(resp.Body)
	resp.Body.Close()
	want := `# TYPE molt_agent_workloads gauge
molt_agent_workloads{state="starting"} 1
molt_agent_workloads{state="ready"} 2
molt_agent_workloads{state="unhealthy"} 0
molt_agent_workloads{state="crashed"} 1
molt_agent_workloads{state="stopped"} 0
`
	if !strings.Contains(body.String(), want) {
		t.Fatalf("metrics lack\n%s\nin:\n%s", want, body)
	}
}
