package rollout

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/moltfleet/molt/protocol"
)

// Health signals: how an upgraded agent can do worse than it did before
// its upgrade, during the soak after its trial committed. A trial that
// commits has seen the new version start; these are what shows later.
const (
	// SignalCrashLoop: a workload crash-looping that was not before.
	SignalCrashLoop = "crash_loop"
	// SignalUnhealthy: a workload unhealthy that was ready before.
	SignalUnhealthy = "unhealthy"
	// SignalRestarts: a workload restarted HealthRestarts times or more
	// since the upgrade started.
	SignalRestarts = "workload_restarts"
	// SignalAgentRestarts: molt-agent itself crashed and was restarted
	// HealthRestarts times or more since the upgrade started.
	SignalAgentRestarts = "agent_restarts"
	// SignalSilent: the agent missed its check-ins.
	SignalSilent = "silent"
)

// Defaults of the health watch (docs/server.md, "Health-driven halt").
const (
	DefaultHealthSoak      = 15 * time.Minute
	DefaultHealthMinAgents = 2
	DefaultHealthPercent   = 10
	// HealthRestarts is how many restarts of a workload since the upgrade
	// count as a regression; HealthMissedPolls how many poll waits
	// without a check-in make an agent silent (never less than
	// HealthMinSilence: an agent retries with back-off, a server restart
	// breaks every poll).
	HealthRestarts    = 3
	HealthMissedPolls = 3
	HealthMinSilence  = 2 * time.Minute
)

// HealthSample is what the health watch compares of one agent: its
// workloads as it reported them, and which of them the server saw
// crash-looping (its workload alerts).
type HealthSample struct {
	Workloads []protocol.Workload `json:"workloads,omitempty"`
	Looping   []string            `json:"looping,omitempty"`
	// AgentRestarts is the supervisor's count of molt-agent's crashes.
	AgentRestarts int `json:"agent_restarts,omitempty"`
}

// Regression is one way an agent does worse than its baseline.
type Regression struct {
	Signal   string
	Workload string // empty for SignalSilent
}

// Regressions compares an agent now with its baseline from before its
// upgrade. A workload already unhealthy, crashed or crash-looping before
// does not count: the upgrade did not cause it.
func Regressions(base, now HealthSample, silent bool) []Regression {
	before := make(map[string]protocol.Workload, len(base.Workloads))
	for _, w := range base.Workloads {
		before[w.Name] = w
	}
	wasLooping := map[string]bool{}
	for _, n := range base.Looping {
		wasLooping[n] = true
	}
	isLooping := map[string]bool{}
	for _, n := range now.Looping {
		isLooping[n] = true
	}
	var out []Regression
	if silent {
		out = append(out, Regression{Signal: SignalSilent})
	}
	if since(base.AgentRestarts, now.AgentRestarts) >= HealthRestarts {
		out = append(out, Regression{Signal: SignalAgentRestarts})
	}
	for _, w := range now.Workloads {
		b, seen := before[w.Name]
		if seen && (b.State == protocol.WorkloadUnhealthy || b.State == protocol.WorkloadCrashed || wasLooping[w.Name]) {
			continue
		}
		restarts := since(b.Restarts, w.Restarts)
		switch {
		case isLooping[w.Name] || (w.State == protocol.WorkloadCrashed && restarts >= HealthRestarts):
			out = append(out, Regression{Signal: SignalCrashLoop, Workload: w.Name})
		case w.State == protocol.WorkloadUnhealthy:
			out = append(out, Regression{Signal: SignalUnhealthy, Workload: w.Name})
		case restarts >= HealthRestarts:
			out = append(out, Regression{Signal: SignalRestarts, Workload: w.Name})
		}
	}
	return out
}

// since is how much a counter went up from base to now; a counter that
// went down started again (its supervisor restarted), so all of it is
// since.
func since(base, now int) int {
	if now < base {
		return max(now, 0)
	}
	return now - base
}

// HealthAgent is one upgraded agent in its soak, with its regressions.
type HealthAgent struct {
	Name        string
	Regressions []Regression
}

// HealthHalt decides whether the soaking agents of a run do measurably
// worse: any one of them with a crash-looping workload, or, for any other
// signal, HealthMinAgents of them and HealthPercent of the soaking ones
// with the same signal (of the same workload). It returns the signal
// ("health_" and the signal's name) and the reason naming up to 5 hosts,
// or "" when the run goes on.
func HealthHalt(c protocol.RunControls, agents []HealthAgent) (signal, reason string) {
	minAgents, pct := c.HealthMinAgents, c.HealthPercent
	if minAgents == 0 {
		minAgents = DefaultHealthMinAgents
	}
	if pct == 0 {
		pct = DefaultHealthPercent
	}
	hosts := map[Regression][]string{}
	for _, a := range agents {
		seen := map[Regression]bool{}
		for _, r := range a.Regressions {
			if !seen[r] {
				seen[r] = true
				hosts[r] = append(hosts[r], a.Name)
			}
		}
	}
	keys := make([]Regression, 0, len(hosts))
	for k := range hosts {
		keys = append(keys, k)
	}
	rank := map[string]int{SignalCrashLoop: 0, SignalUnhealthy: 1, SignalRestarts: 2, SignalAgentRestarts: 3, SignalSilent: 4}
	sort.Slice(keys, func(i, j int) bool {
		a, b := keys[i], keys[j]
		if rank[a.Signal] != rank[b.Signal] {
			return rank[a.Signal] < rank[b.Signal]
		}
		if len(hosts[a]) != len(hosts[b]) {
			return len(hosts[a]) > len(hosts[b])
		}
		return a.Workload < b.Workload
	})
	for _, k := range keys {
		n := len(hosts[k])
		if k.Signal != SignalCrashLoop && (n < minAgents || float64(n)*100 < pct*float64(len(agents))) {
			continue
		}
		return "health_" + k.Signal, healthReason(k, hosts[k], len(agents))
	}
	return "", ""
}

func healthReason(k Regression, hosts []string, of int) string {
	hosts = append([]string(nil), hosts...)
	sort.Strings(hosts)
	named := hosts
	if len(named) > 5 {
		named = append(named[:5:5], "...")
	}
	var what string
	switch k.Signal {
	case SignalCrashLoop:
		what = fmt.Sprintf("workload %s crash-looping", k.Workload)
	case SignalUnhealthy:
		what = fmt.Sprintf("workload %s unhealthy", k.Workload)
	case SignalRestarts:
		what = fmt.Sprintf("workload %s restarted %d times or more", k.Workload, HealthRestarts)
	case SignalAgentRestarts:
		what = fmt.Sprintf("molt-agent restarted after a crash %d times or more", HealthRestarts)
	default:
		what = "check-ins missed"
	}
	return fmt.Sprintf("health: %s on %d of %d upgraded agents (%s)", what, len(hosts), of, strings.Join(named, ", "))
}

// HealthSoak is how long c watches an upgraded agent after its trial
// committed, and whether the watch is on at all.
func HealthSoak(c protocol.RunControls) (time.Duration, bool) {
	if c.NoHealthHalt {
		return 0, false
	}
	if c.HealthSoakSeconds > 0 {
		return time.Duration(c.HealthSoakSeconds) * time.Second, true
	}
	return DefaultHealthSoak, true
}

// HealthSilence is how long without a check-in makes an agent silent,
// for agents polling every poll.
func HealthSilence(poll time.Duration) time.Duration {
	return max(HealthMissedPolls*poll, HealthMinSilence)
}

// checkHealth validates the health controls of c.
func checkHealth(c protocol.RunControls) error {
	switch {
	case c.HealthSoakSeconds < 0 || c.HealthSoakSeconds > 7*24*3600:
		return fmt.Errorf("health_soak_seconds %d is not from 0 to a week (e.g. 900 for 15 minutes)", c.HealthSoakSeconds)
	case c.HealthMinAgents < 0 || c.HealthMinAgents > 100000:
		return fmt.Errorf("health_min_agents %d is not from 0 to 100000 (e.g. 2)", c.HealthMinAgents)
	case c.HealthPercent < 0 || c.HealthPercent > 100:
		return fmt.Errorf("health_percent %g is not from 0 to 100 (e.g. 10)", c.HealthPercent)
	}
	return nil
}
