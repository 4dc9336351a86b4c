package rollout

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/moltfleet/molt/protocol"
)

func wl(name, state string, restarts int) protocol.Workload {
	return protocol.Workload{Name: name, Version: "1.0.0", State: state, Restarts: restarts}
}

func TestRegressions(t *testing.T) {
	ready := func(restarts int) HealthSample {
		return HealthSample{Workloads: []protocol.Workload{wl("exporter", protocol.WorkloadReady, restarts)}}
	}
	for _, tc := range []struct {
		name      string
		base, now HealthSample
		silent    bool
		want      []Regression
	}{
		{name: "fine", base: ready(2), now: ready(2)},
		{name: "a restart or two is no regression", base: ready(2), now: ready(4)},
		{name: "restarted three times since", base: ready(2), now: ready(5),
			want: []Regression{{SignalRestarts, "exporter"}}},
		{name: "the counter started again", base: ready(7), now: ready(3),
			want: []Regression{{SignalRestarts, "exporter"}}},
		{name: "crash-looping by the server's alert", base: ready(0),
			now:  HealthSample{Workloads: []protocol.Workload{wl("exporter", protocol.WorkloadStarting, 1)}, Looping: []string{"exporter"}},
			want: []Regression{{SignalCrashLoop, "exporter"}}},
		{name: "crashed and restarted since", base: ready(0),
			now:  HealthSample{Workloads: []protocol.Workload{wl("exporter", protocol.WorkloadCrashed, 3)}},
			want: []Regression{{SignalCrashLoop, "exporter"}}},
		{name: "unhealthy", base: ready(0),
			now:  HealthSample{Workloads: []protocol.Workload{wl("exporter", protocol.WorkloadUnhealthy, 0)}},
			want: []Regression{{SignalUnhealthy, "exporter"}}},
		{name: "unhealthy before the upgrade does not count",
			base: HealthSample{Workloads: []protocol.Workload{wl("exporter", protocol.WorkloadUnhealthy, 4)}},
			now:  HealthSample{Workloads: []protocol.Workload{wl("exporter", protocol.WorkloadUnhealthy, 9)}}},
		{name: "crash-looping before does not count",
			base: HealthSample{Workloads: []protocol.Workload{wl("exporter", protocol.WorkloadStarting, 4)}, Looping: []string{"exporter"}},
			now:  HealthSample{Workloads: []protocol.Workload{wl("exporter", protocol.WorkloadCrashed, 9)}, Looping: []string{"exporter"}}},
		{name: "a workload new since counts from zero", base: HealthSample{},
			now:  HealthSample{Workloads: []protocol.Workload{wl("exporter", protocol.WorkloadUnhealthy, 0)}},
			want: []Regression{{SignalUnhealthy, "exporter"}}},
		{name: "silent", base: ready(0), now: ready(0), silent: true,
			want: []Regression{{SignalSilent, ""}}},
		{name: "molt-agent restarted twice", base: HealthSample{AgentRestarts: 1}, now: HealthSample{AgentRestarts: 3}},
		{name: "molt-agent restarted three times", base: HealthSample{AgentRestarts: 1}, now: HealthSample{AgentRestarts: 4},
			want: []Regression{{Signal: SignalAgentRestarts}}},
		{name: "molt-agent restarts after the supervisor restarted", base: HealthSample{AgentRestarts: 9}, now: HealthSample{AgentRestarts: 3},
			want: []Regression{{Signal: SignalAgentRestarts}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Regressions(tc.base, tc.now, tc.silent); !slices.Equal(got, tc.want) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}

func TestHealthHalt(t *testing.T) {
	// agents makes n soaking agents web-01.., the first bad of them with
	// regression reg.
	agents := func(n, bad int, reg Regression) []HealthAgent {
		out := make([]HealthAgent, n)
		for i := range out {
			out[i].Name = fmt.Sprintf("web-%02d", i+1)
			if i < bad {
				out[i].Regressions = []Regression{reg}
			}
		}
		return out
	}
	loop := Regression{SignalCrashLoop, "exporter"}
	sick := Regression{SignalUnhealthy, "exporter"}
	silent := Regression{Signal: SignalSilent}
	agent := Regression{Signal: SignalAgentRestarts}
	for _, tc := range []struct {
		name       string
		c          protocol.RunControls
		agents     []HealthAgent
		wantSignal string
		wantReason string
	}{
		{name: "nobody soaking", agents: nil},
		{name: "all fine", agents: agents(20, 0, sick)},
		{name: "one crash loop is enough", agents: agents(20, 1, loop), wantSignal: "health_crash_loop",
			wantReason: "health: workload exporter crash-looping on 1 of 20 upgraded agents (web-01)"},
		{name: "one unhealthy is not", agents: agents(20, 1, sick)},
		{name: "two unhealthy of 20 (10%)", agents: agents(20, 2, sick), wantSignal: "health_unhealthy",
			wantReason: "health: workload exporter unhealthy on 2 of 20 upgraded agents (web-01, web-02)"},
		{name: "two silent of 30 is under 10%", agents: agents(30, 2, silent)},
		{name: "three silent of 30", agents: agents(30, 3, silent), wantSignal: "health_silent",
			wantReason: "health: check-ins missed on 3 of 30 upgraded agents (web-01, web-02, web-03)"},
		{name: "molt-agent restarts", agents: agents(10, 2, agent), wantSignal: "health_agent_restarts",
			wantReason: "health: molt-agent restarted after a crash 3 times or more on 2 of 10 upgraded agents (web-01, web-02)"},
		{name: "at most 5 hosts named", agents: agents(10, 7, sick), wantSignal: "health_unhealthy",
			wantReason: "health: workload exporter unhealthy on 7 of 10 upgraded agents (web-01, web-02, web-03, web-04, web-05, ...)"},
		{name: "thresholds from the run", c: protocol.RunControls{HealthMinAgents: 4, HealthPercent: 50}, agents: agents(6, 3, sick)},
		{name: "thresholds from the run, met", c: protocol.RunControls{HealthMinAgents: 3, HealthPercent: 50}, agents: agents(6, 3, sick), wantSignal: "health_unhealthy",
			wantReason: "health: workload exporter unhealthy on 3 of 6 upgraded agents (web-01, web-02, web-03)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sig, reason := HealthHalt(tc.c, tc.agents)
			if sig != tc.wantSignal || reason != tc.wantReason {
				t.Errorf("got %q %q, want %q %q", sig, reason, tc.wantSignal, tc.wantReason)
			}
		})
	}
}

func TestHealthControls(t *testing.T) {
	if d, on := HealthSoak(protocol.RunControls{}); d != DefaultHealthSoak || !on {
		t.Errorf("default soak %v %v", d, on)
	}
	if d, _ := HealthSoak(protocol.RunControls{HealthSoakSeconds: 60}); d != time.Minute {
		t.Errorf("soak of 60 s: %v", d)
	}
	if _, on := HealthSoak(protocol.RunControls{NoHealthHalt: true}); on {
		t.Error("no_health_halt leaves the watch on")
	}
	if got := HealthSilence(20 * time.Millisecond); got != HealthMinSilence {
		t.Errorf("silence for short polls: %v", got)
	}
	if got := HealthSilence(time.Minute); got != 3*time.Minute {
		t.Errorf("silence for 60 s polls: %v", got)
	}
	for _, c := range []protocol.RunControls{{HealthSoakSeconds: -1}, {HealthPercent: 101}, {HealthMinAgents: -2}} {
		if err := Check(c, 10); err == nil {
			t.Errorf("Check(%+v) accepted", c)
		}
	}
	if err := Check(protocol.RunControls{HealthSoakSeconds: 900, HealthPercent: 10, HealthMinAgents: 2}, 10); err != nil {
		t.Error(err)
	}
}
