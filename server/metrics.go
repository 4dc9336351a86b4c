package server

import (
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/moltfleet/molt/protocol"
)

// The Prometheus text format is written by hand: a few gauges and two
// histograms do not justify client_golang's dependency tree and global
// registry.

// The buckets below 1 ms tell a check-in handled in 100 µs from one that
// took 900 µs: an idle fleet's check-ins are mostly there.
var latencyBuckets = []float64{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}

type histogram struct {
	counts []uint64 // per bucket, not cumulative
	count  uint64
	sum    float64
}

func (h *histogram) observe(v float64) {
	if h.counts == nil {
		h.counts = make([]uint64, len(latencyBuckets))
	}
	for i, b := range latencyBuckets {
		if v <= b {
			h.counts[i]++
			break
		}
	}
	h.count++
	h.sum += v
}

func (h *histogram) write(w io.Writer, name, labels string) {
	var cum uint64
	sep := ""
	if labels != "" {
		sep = ","
	}
	for i, b := range latencyBuckets {
		if h.counts != nil {
			cum += h.counts[i]
		}
		fmt.Fprintf(w, "%s_bucket{%s%sle=\"%g\"} %d\n", name, labels, sep, b, cum)
	}
	fmt.Fprintf(w, "%s_bucket{%s%sle=\"+Inf\"} %d\n", name, labels, sep, h.count)
	if labels != "" {
		labels = "{" + labels + "}"
	}
	fmt.Fprintf(w, "%s_sum%s %g\n%s_count%s %d\n", name, labels, h.sum, name, labels, h.count)
}

type metrics struct {
	mu       sync.Mutex
	checkin  histogram
	requests map[string]*histogram // "route|code class"
	// The scheduler's passes, their time (commits included) and the
	// deployments they started.
	schedPasses, schedNanos, schedStarts atomic.Int64
	// halts are the runs halted on their own rules since the server
	// started, by signal (canary, failure_rate, health_*).
	halts map[string]int64
}

func newMetrics() *metrics {
	return &metrics{requests: map[string]*histogram{}, halts: map[string]int64{}}
}

func (m *metrics) observeHalt(signal string) {
	m.mu.Lock()
	m.halts[signal]++
	m.mu.Unlock()
}

func (m *metrics) observeCheckin(d time.Duration) {
	m.mu.Lock()
	m.checkin.observe(d.Seconds())
	m.mu.Unlock()
}

func (m *metrics) observeRequest(route string, status int, d time.Duration) {
	key := route + "|" + fmt.Sprintf("%dxx", status/100)
	m.mu.Lock()
	h := m.requests[key]
	if h == nil {
		h = &histogram{}
		m.requests[key] = h
	}
	h.observe(d.Seconds())
	m.mu.Unlock()
}

func promLabel(v string) string {
	return strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`).Replace(v)
}

func (s *Server) handleMetrics(w http.ResponseWriter, r *http.Request, _ caller) error {
	type agentKey struct{ version, platform, status, upgrade string }
	agents := map[agentKey]int{}
	workloads := map[string]int{} // by state, of online agents
	now := s.clock.Now()
	s.mu.Lock()
	// Every check-in waits for s.mu: the settings are read once, not per
	// agent, so a scrape of 20,000 agents holds it for milliseconds.
	offline, inactive := s.durationSetting("agents.offline-after"), s.durationSetting("agents.inactive-after")
	ups := upgradeStatuses{}
	for _, a := range s.agents {
		if a.Revoked {
			continue
		}
		conn := connStatusAt(a, now, offline, inactive)
		agents[agentKey{a.St.Version, a.St.Platform, conn, ups.of(s, a)}]++
		if conn == protocol.AgentOnline {
			// An offline agent's last report is stale: its workloads are
			// not counted rather than counted as they were.
			for _, w := range a.St.Workloads {
				workloads[w.State]++
			}
		}
	}
	quarantined := s.quarantineMetric()
	byWave := map[int]int{} // runs running or paused, by the wave open in them
	for _, r := range s.runs {
		if r.Status == protocol.RunRunning || r.Status == protocol.RunPaused {
			byWave[r.Wave]++
		}
	}
	s.mu.Unlock()
	deps, err := s.st.CountDeploymentsByState(r.Context())
	if err != nil {
		return err
	}
	// Runs are counted in the store, not in s.runs: that holds only runs
	// not ended, and a cancelled run leaves it as soon as none of its
	// deployments is in progress, so a cancelled count taken there was 0.
	runs, err := s.st.CountRunsByStatus(r.Context())
	if err != nil {
		return err
	}
	var b strings.Builder
	b.WriteString("# HELP molt_agents Enrolled agents by version, platform, connection status and upgrade status.\n# TYPE molt_agents gauge\n")
	keys := make([]agentKey, 0, len(agents))
	for k := range agents {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		return fmt.Sprint(keys[i]) < fmt.Sprint(keys[j])
	})
	for _, k := range keys {
		fmt.Fprintf(&b, "molt_agents{version=\"%s\",platform=\"%s\",status=\"%s\",upgrade_status=\"%s\"} %d\n",
			promLabel(k.version), promLabel(k.platform), k.status, k.upgrade, agents[k])
	}
	b.WriteString("# HELP molt_agent_workloads Workloads reported by online agents, by state (every workload of every online agent counts once).\n# TYPE molt_agent_workloads gauge\n")
	for _, st := range workloadStates {
		fmt.Fprintf(&b, "molt_agent_workloads{state=\"%s\"} %d\n", st, workloads[st])
	}
	b.WriteString("# HELP molt_deployments Deployments by state.\n# TYPE molt_deployments gauge\n")
	for _, st := range protocol.DeploymentStates {
		fmt.Fprintf(&b, "molt_deployments{state=\"%s\"} %d\n", st, deps[st])
	}
	b.WriteString("# HELP molt_runs Runs by status (running and paused ones are in progress; ended_ok, ended_not_ok and cancelled count every run that ended so).\n# TYPE molt_runs gauge\n")
	for _, st := range []string{protocol.RunRunning, protocol.RunPaused, protocol.RunEndedOK, protocol.RunEndedNotOK, protocol.RunCancelled} {
		fmt.Fprintf(&b, "molt_runs{status=\"%s\"} %d\n", st, runs[st])
	}
	b.WriteString("# HELP molt_runs_by_wave Runs in progress (running or paused) by the wave open in them (0: the canaries, or the first wave).\n# TYPE molt_runs_by_wave gauge\n")
	waves := make([]int, 0, len(byWave))
	for w := range byWave {
		waves = append(waves, w)
	}
	sort.Ints(waves)
	for _, w := range waves {
		fmt.Fprintf(&b, "molt_runs_by_wave{wave=\"%d\"} %d\n", w, byWave[w])
	}
	b.WriteString("# HELP molt_run_halts_total Runs halted on their own rules since the server started, by signal (canary, failure_rate, health_crash_loop, health_unhealthy, health_workload_restarts, health_agent_restarts, health_silent).\n# TYPE molt_run_halts_total counter\n")
	s.met.mu.Lock()
	signals := make([]string, 0, len(s.met.halts))
	for k := range s.met.halts {
		signals = append(signals, k)
	}
	sort.Strings(signals)
	for _, k := range signals {
		fmt.Fprintf(&b, "molt_run_halts_total{signal=\"%s\"} %d\n", promLabel(k), s.met.halts[k])
	}
	s.met.mu.Unlock()
	b.WriteString(quarantined)
	b.WriteString("# HELP molt_db_commits_total Write transactions committed (each one fsync).\n# TYPE molt_db_commits_total counter\n")
	fmt.Fprintf(&b, "molt_db_commits_total %d\n", s.st.Commits())
	b.WriteString("# HELP molt_db_changes_total State changes committed; several share a commit when they arrive together.\n# TYPE molt_db_changes_total counter\n")
	fmt.Fprintf(&b, "molt_db_changes_total %d\n", s.st.Changes())
	b.WriteString("# HELP molt_scheduler_passes_total Scheduling passes.\n# TYPE molt_scheduler_passes_total counter\n")
	fmt.Fprintf(&b, "molt_scheduler_passes_total %d\n", s.met.schedPasses.Load())
	b.WriteString("# HELP molt_scheduler_seconds_total Time spent in scheduling passes, their commits included.\n# TYPE molt_scheduler_seconds_total counter\n")
	fmt.Fprintf(&b, "molt_scheduler_seconds_total %g\n", time.Duration(s.met.schedNanos.Load()).Seconds())
	b.WriteString("# HELP molt_scheduler_started_total Deployments the scheduler handed to their agents.\n# TYPE molt_scheduler_started_total counter\n")
	fmt.Fprintf(&b, "molt_scheduler_started_total %d\n", s.met.schedStarts.Load())
	s.met.mu.Lock()
	b.WriteString("# HELP molt_checkin_duration_seconds Time to process a check-in, without the long-poll wait.\n# TYPE molt_checkin_duration_seconds histogram\n")
	s.met.checkin.write(&b, "molt_checkin_duration_seconds", "")
	b.WriteString("# HELP molt_http_request_duration_seconds HTTP request latency by route and status class (check-ins without their long-poll wait).\n# TYPE molt_http_request_duration_seconds histogram\n")
	rk := make([]string, 0, len(s.met.requests))
	for k := range s.met.requests {
		rk = append(rk, k)
	}
	sort.Strings(rk)
	for _, k := range rk {
		route, class, _ := strings.Cut(k, "|")
		s.met.requests[k].write(&b, "molt_http_request_duration_seconds", fmt.Sprintf("route=\"%s\",code=\"%s\"", promLabel(route), class))
	}
	s.met.mu.Unlock()
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	_, err = io.WriteString(w, b.String())
	return err
}
