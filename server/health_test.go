package server

import (
	"strings"
	"testing"
	"time"

	"github.com/moltfleet/molt/protocol"
)

// healthWorld is a run of 10 agents in two waves (50%, 100%) whose agents
// run one workload, exporter, reported in state before the run.
func healthWorld(t *testing.T, state string, c protocol.RunControls) *rolloutWorld {
	t.Helper()
	c.Waves = []string{"50%", "100%"}
	w := newRolloutWorld(t, 10, nil, protocol.RunRequest{MaxConcurrent: 100, RunControls: c})
	for _, a := range w.agents {
		a.st.Workloads = []protocol.Workload{{Name: "exporter", Version: "1.0.0", State: state, Restarts: 1, Since: w.e.clock.Now()}}
		a.checkin()
	}
	return w
}

// crash makes agent i report its exporter crashed once more.
func (w *rolloutWorld) crash(i int) {
	wl := &w.agents[i].st.Workloads[0]
	wl.State, wl.Restarts, wl.LastExit = protocol.WorkloadCrashed, wl.Restarts+1, "exit status 2"
}

// halted returns the signal and reason of the run's run_halted event,
// and checks that a health halt names its agents.
func (w *rolloutWorld) halted() (signal, reason string) {
	for _, ev := range w.e.events() {
		if ev.ID == protocol.EvRunHalted {
			if strings.HasPrefix(ev.Fields["signal"], "health") && ev.Fields["agents"] == "" {
				w.t.Errorf("a health halt without its agents: %v", ev.Fields)
			}
			return ev.Fields["signal"], ev.Fields["reason"]
		}
	}
	return "", ""
}

func TestHealthHalt(t *testing.T) {
	soak := protocol.RunControls{HealthSoakSeconds: 600}
	for _, tc := range []struct {
		name    string
		before  string // the exporter's state before the run
		c       protocol.RunControls
		restart bool // the server restarts between the commits and the soak
		// after the first wave committed: what its agents do, pass by pass
		sick       func(w *rolloutWorld, upgraded []int)
		wantSignal string
		wantReason []string
	}{
		{
			name: "crash loop a few minutes after commit", before: protocol.WorkloadReady, c: soak, restart: true,
			sick: func(w *rolloutWorld, up []int) {
				for _, i := range up[:3] {
					w.crash(i)
				}
			},
			wantSignal: "health_crash_loop",
			wantReason: []string{"health: workload exporter crash-looping on 3 of 5 upgraded agents (", "h0"},
		},
		{
			name: "fine agents", before: protocol.WorkloadReady, c: soak, restart: true,
			sick: func(w *rolloutWorld, up []int) {},
		},
		{
			name: "silent agents", before: protocol.WorkloadReady, c: soak,
			sick: func(w *rolloutWorld, up []int) {
				w.dead[up[0]], w.dead[up[1]] = true, true
			},
			wantSignal: "health_silent",
			wantReason: []string{"health: check-ins missed on 2 of 5 upgraded agents ("},
		},
		{
			name: "unhealthy before the upgrade does not count", before: protocol.WorkloadUnhealthy, c: soak, restart: true,
			sick: func(w *rolloutWorld, up []int) {
				for _, i := range up {
					w.agents[i].st.Workloads[0].Restarts += 5
				}
			},
		},
		{
			name: "unhealthy after the upgrade", before: protocol.WorkloadReady, c: soak,
			sick: func(w *rolloutWorld, up []int) {
				for _, i := range up[:2] {
					w.agents[i].st.Workloads[0].State = protocol.WorkloadUnhealthy
				}
			},
			wantSignal: "health_unhealthy",
			wantReason: []string{"health: workload exporter unhealthy on 2 of 5 upgraded agents ("},
		},
		{
			name: "molt-agent crash-restarts", before: protocol.WorkloadReady, c: soak,
			sick: func(w *rolloutWorld, up []int) {
				for _, i := range up[:2] {
					w.agents[i].st.AgentRestarts = 3
				}
			},
			wantSignal: "health_agent_restarts",
			wantReason: []string{"health: molt-agent restarted after a crash 3 times or more on 2 of 5 upgraded agents ("},
		},
		{
			name: "watch turned off", before: protocol.WorkloadReady, c: protocol.RunControls{NoHealthHalt: true},
			sick: func(w *rolloutWorld, up []int) {
				for _, i := range up {
					w.crash(i)
				}
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := healthWorld(t, tc.before, tc.c)
			up := w.pass()
			if len(up) != 5 {
				t.Fatalf("wave 0 started %v, want 5 agents", up)
			}
			if tc.restart {
				w.e.restart()
			}
			w.e.clock.Add(3 * time.Minute)
			tc.sick(w, up)
			w.pass()
			w.e.clock.Add(time.Minute)
			if tc.wantSignal != "" {
				for _, i := range up {
					if w.agents[i].st.Workloads[0].State == protocol.WorkloadCrashed {
						w.crash(i) // and again
					}
				}
			}
			second := w.pass()
			r := w.get()
			if tc.wantSignal == "" {
				if !tc.c.NoHealthHalt && (r.Status != protocol.RunRunning || len(second) != 0 || r.WaveList[0].State == "done") {
					t.Fatalf("during the soak: %s %q, wave 0 %s, started %v", r.Status, r.Reason, r.WaveList[0].State, second)
				}
				w.e.clock.Add(10 * time.Minute)
				w.pass()
				w.pass()
				if r := w.get(); r.Status != protocol.RunEndedOK || r.Counts[protocol.StateSucceeded] != 10 {
					t.Fatalf("after the soak: %s %q %v", r.Status, r.Reason, r.Counts)
				}
				if sig, _ := w.halted(); sig != "" {
					t.Errorf("halted on %s", sig)
				}
				return
			}
			if r.Status != protocol.RunPaused || !strings.HasPrefix(r.Reason, "halted: health: ") {
				t.Fatalf("run %s %q, want halted on health", r.Status, r.Reason)
			}
			if r.Counts[protocol.StateSucceeded] != 5 || len(second) != 0 {
				t.Errorf("wave 1 started: %v (this pass %v)", r.Counts, second)
			}
			sig, reason := w.halted()
			if sig != tc.wantSignal {
				t.Errorf("event 805 signal %q, want %q", sig, tc.wantSignal)
			}
			for _, want := range tc.wantReason {
				if !strings.Contains(reason, want) || !strings.Contains(r.Reason, want) {
					t.Errorf("reason %q (run %q) lacks %q", reason, r.Reason, want)
				}
			}
			var rep protocol.RunReport
			w.e.must("GET", "/v1/runs/"+w.run.ID+"/report", protocol.RoleViewer, nil, &rep)
			if len(rep.Summary.Health) != 1 || rep.Summary.Health[0].Signal != tc.wantSignal || rep.Summary.Health[0].Reason != reason {
				t.Errorf("run report health %+v, want the halt on %s", rep.Summary.Health, tc.wantSignal)
			}
			if m := w.e.metricsText(); !strings.Contains(m, `molt_run_halts_total{signal="`+tc.wantSignal+`"} 1`) || !strings.Contains(m, `molt_runs_by_wave{wave="0"} 1`) {
				t.Errorf("metrics lack the halt:\n%s", m)
			}
			// Resuming accepts what halted it: the rest goes on.
			w.e.must("POST", "/v1/runs/"+w.run.ID+"/resume", protocol.RoleOperator, nil, nil)
			w.e.clock.Add(11 * time.Minute)
			w.pass()
			w.pass()
			if r := w.get(); r.Status == protocol.RunPaused || r.Counts[protocol.StateSucceeded] < 8 {
				t.Errorf("after resume: %s %q %v", r.Status, r.Reason, r.Counts)
			}
		})
	}
}

// With the default controls the watch runs through the canary soak: a
// canary whose workload crash-loops after its commit halts the run
// before the next wave.
func TestHealthHaltDefaultCanary(t *testing.T) {
	w := newRolloutWorld(t, 6, nil, protocol.RunRequest{MaxConcurrent: 10, RunControls: protocol.RunControls{Canary: 1}})
	for _, a := range w.agents {
		a.st.Workloads = []protocol.Workload{{Name: "exporter", Version: "1.0.0", State: protocol.WorkloadReady}}
	}
	up := w.pass()
	if len(up) != 1 {
		t.Fatalf("started %v, want one canary", up)
	}
	w.e.clock.Add(2 * time.Minute)
	w.crash(up[0])
	w.pass()
	w.crash(up[0])
	w.pass()
	w.e.clock.Add(5 * time.Minute)
	if got := w.pass(); len(got) != 0 {
		t.Fatalf("started %v after the canary crash-looped", got)
	}
	if sig, reason := w.halted(); sig != "health_crash_loop" || !strings.Contains(reason, "on 1 of 1 upgraded agents (h0") {
		t.Errorf("halted %q %q", sig, reason)
	}
}

func TestHealthAgentRestartsBounds(t *testing.T) {
	e := newEnv(t)
	a := e.newAgent("web-01", "1.0.0")
	for _, n := range []int{-1, maxWorkloadRestarts + 1} {
		a.st.AgentRestarts = n
		code, pe := e.do("POST", "/v1/agent/checkin", a.cred, protocol.CheckinRequest{Status: a.st}, nil)
		if code != 400 || !strings.Contains(pe.Error, "agent_restarts") {
			t.Errorf("agent_restarts %d: %d %q, want 400 naming agent_restarts", n, code, pe.Error)
		}
	}
	a.st.AgentRestarts = 7
	a.checkin()
}
