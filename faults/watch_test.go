//go:build linux

package faults

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moltfleet/molt/home"
	"github.com/moltfleet/molt/internal/e2etest"
	"github.com/moltfleet/molt/protocol"
)

// Bounds of recovery.
const (
	// converge is how long the host and the server have, from the start
	// of the run, to agree on the outcome.
	converge = 150 * time.Second
	// maxGap is the longest a host may run no agent at all (a restart
	// after a kill, a switch of versions).
	maxGap = 30 * time.Second
)

// watcher checks a host's invariants continuously from a goroutine of its
// own: active.json never names a version without .valid (every 5 ms), and
// an agent runs, on which version, and never two workload processes at
// once (every 25 ms). It records; the test
// goroutine asserts.
type watcher struct {
	h    home.Home
	stop chan struct{}
	done chan struct{}

	mu         sync.Mutex
	violations []string
	versions   map[string]bool // versions seen running
	gapStart   time.Time       // zero while an agent runs
	longestGap time.Duration
	checks     int
	doubled    bool // two workload processes were seen at once
}

func watch(h home.Home) *watcher {
	w := &watcher{h: h, stop: make(chan struct{}), done: make(chan struct{}), versions: map[string]bool{}}
	go w.run()
	return w
}

func (w *watcher) run() {
	defer close(w.done)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for i := 0; ; i++ {
		select {
		case <-w.stop:
			w.checkActive()
			return
		case <-tick.C:
		}
		w.checkActive()
		if i%5 == 0 {
			w.checkRunning()
		}
	}
}

// checkActive: every version active.json names has its .valid. A read
// that fails (the file is replaced by rename, so never half written) is
// retried at the next tick.
func (w *watcher) checkActive() {
	a, err := w.h.ReadActive()
	if err != nil {
		return
	}
	named := []string{a.Current, a.Previous}
	if a.Trial != nil {
		named = append(named, a.Trial.Version)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.checks++
	for _, v := range named {
		if v != "" && !w.h.IsValid(v) {
			w.violations = append(w.violations, fmt.Sprintf("%s: active.json names %s without versions/%s/.valid (%+v)",
				time.Now().Format("15:04:05.000"), v, v, a))
		}
	}
}

func (w *watcher) checkRunning() {
	v := runningVersion(w.h)
	procs := workloadProcs(w.h)
	now := time.Now()
	w.mu.Lock()
	defer w.mu.Unlock()
	// Never two instances of the workload at once: a switch stops the
	// old one before it starts the new one, and a starting supervisor
	// stops what a killed one left before it starts its own.
	if len(procs) > 1 && !w.doubled {
		w.doubled = true
		w.violations = append(w.violations, fmt.Sprintf("%s: %d workload processes run at once: %v",
			now.Format("15:04:05.000"), len(procs), procs))
	}
	if v != "" {
		w.versions[v] = true
		if !w.gapStart.IsZero() {
			w.longestGap = max(w.longestGap, now.Sub(w.gapStart))
			w.gapStart = time.Time{}
		}
		return
	}
	if w.gapStart.IsZero() {
		w.gapStart = now
	}
}

// finish stops the watcher and returns what it saw.
func (w *watcher) finish() (violations []string, versions []string, longestGap time.Duration, checks int) {
	close(w.stop)
	<-w.done
	w.mu.Lock()
	defer w.mu.Unlock()
	gap := w.longestGap
	if !w.gapStart.IsZero() {
		gap = max(gap, time.Since(w.gapStart))
	}
	for v := range w.versions {
		versions = append(versions, v)
	}
	slices.Sort(versions)
	return w.violations, versions, gap, w.checks
}

// runningVersion is the version of the agent that runs in home h ("" if
// none): the pid of state/daemon.json, alive and not a zombie, whose
// executable is versions/<V>/molt-agent of this home.
func runningVersion(h home.Home) string {
	var d struct {
		PID int `json:"pid"`
	}
	b, err := os.ReadFile(filepath.Join(h.StateDir(), "daemon.json"))
	if err != nil || json.Unmarshal(b, &d) != nil || d.PID <= 0 {
		return ""
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", d.PID))
	if err != nil || strings.Contains(string(stat), ") Z ") {
		return ""
	}
	exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", d.PID))
	if err != nil {
		return ""
	}
	rel, err := filepath.Rel(h.VersionsDir(), exe)
	if err != nil {
		return ""
	}
	v, file, ok := strings.Cut(rel, string(filepath.Separator))
	if !ok || !strings.HasPrefix(file, "molt-agent") {
		return ""
	}
	return v
}

// acked is what the server acknowledged, as the CLI shows it: every event
// by sequence number, every run and deployment by id with its state.
type acked struct {
	events map[int64]protocol.Event
	runs   map[string]bool
	deps   map[string]string
	steps  map[string]bool // deployment id, step name, time, detail
	// What the lists said, for the fleet's truths.
	runList []protocol.Run
	depList []protocol.Deployment
	agents  []protocol.Agent
}

// snapshot reads what the server acknowledged, and the agents as it
// sees them; ok is false when it could
// not (the server is down).
func snapshot(s *e2etest.Server) (acked, bool) {
	a := acked{events: map[int64]protocol.Event{}, runs: map[string]bool{}, deps: map[string]string{}, steps: map[string]bool{}}
	r := s.Molt("events", "--since", "all", "--json")
	if r.Code != 0 {
		return a, false
	}
	for _, line := range strings.Split(strings.TrimSpace(r.Stdout), "\n") {
		var e protocol.Event
		if line != "" && json.Unmarshal([]byte(line), &e) == nil {
			a.events[e.Seq] = e
		}
	}
	var runs []protocol.Run
	if !tryJSON(s, &runs, "runs", "list") {
		return a, false
	}
	for _, r := range runs {
		a.runs[r.ID] = true
	}
	a.runList = runs
	var deps []protocol.Deployment
	if !tryJSON(s, &deps, "history", "--limit", "1000") {
		return a, false
	}
	a.depList = deps
	for _, d := range deps {
		a.deps[d.ID] = d.State
		var dr protocol.DeploymentReport
		if !tryJSON(s, &dr, "history", "show", d.ID) {
			return a, false
		}
		for _, st := range dr.Steps {
			a.steps[stepKey(d.ID, st)] = true
		}
	}
	if !tryJSON(s, &a.agents, "agents", "list") {
		return a, false
	}
	return a, true
}

func stepKey(dep string, s protocol.Step) string {
	return fmt.Sprintf("%s %s at %s: %s", dep, s.Name, s.At.UTC().Format(time.RFC3339Nano), s.Detail)
}

// tryJSON runs molt ARGS --json and decodes it; false if molt failed.
func tryJSON(s *e2etest.Server, v any, args ...string) bool {
	r := s.Molt(append(args, "--json")...)
	return r.Code == 0 && json.Unmarshal([]byte(r.Stdout), v) == nil
}

// lost lists what before has and after does not: events (by sequence,
// with the same id and time), runs, deployments and their DEPLOY report
// steps, and deployments whose state went back.
func lost(before, after acked) []string {
	var out []string
	for seq, e := range before.events {
		a, ok := after.events[seq]
		if !ok || a.ID != e.ID || !a.At.Equal(e.At) {
			out = append(out, fmt.Sprintf("event %d (%d %s)", seq, e.ID, e.Name))
		}
	}
	for id := range before.runs {
		if !after.runs[id] {
			out = append(out, "run "+id)
		}
	}
	rank := func(s string) int {
		if protocol.Terminal(s) {
			return 100
		}
		return protocol.PhaseRank(s)
	}
	for k := range before.steps {
		if !after.steps[k] {
			out = append(out, "step of deployment "+k)
		}
	}
	for id, st := range before.deps {
		now, ok := after.deps[id]
		switch {
		case !ok:
			out = append(out, "deployment "+id)
		case rank(now) < rank(st):
			out = append(out, fmt.Sprintf("deployment %s went back from %s to %s", id, st, now))
		}
	}
	slices.Sort(out)
	return out
}

// fleet is one case's server and hosts, kept alive as service managers
// would: a supervisor or server that died is started again.
type fleet struct {
	t        *testing.T
	srv      *e2etest.Server
	hosts    []*e2etest.Host
	watchers []*watcher
	ids      []string
	restarts map[string]int // "server", host name -> restarts
	last     acked          // the newest snapshot taken while the server was up
	first    acked          // taken right after the run was acknowledged
	// converge bounds the recovery (default: the constant converge).
	converge time.Duration
	// mustSucceed: only succeeded deployments count as recovered.
	mustSucceed bool
	// target is the run's version (default newVersion).
	target string
	// workloads: the packs carry the exporter; addrs are the hosts'
	// exporters' addresses.
	workloads bool
	addrs     []string
}

func (f *fleet) targetVersion() string {
	if f.target != "" {
		return f.target
	}
	return newVersion
}

// keepAlive restarts what died.
func (f *fleet) keepAlive() {
	if !f.srv.Running() {
		f.restarts["server"]++
		f.t.Logf("service manager: molt serve is dead; starting it again")
		f.srv.Start()
	}
	for _, h := range f.hosts {
		if !h.Running() {
			f.restarts[h.Name]++
			f.t.Logf("service manager: the supervisor of %s is dead; starting it again", h.Name)
			h.Start()
		}
	}
}

// truth is what one host runs and what the server says of it.
type truth struct {
	running, current, reported, state string
	trial                             bool
	target                            string
}

func (t truth) String() string {
	return fmt.Sprintf("runs %q, active.json current %q (trial %v), server says %q, deployment %s",
		t.running, t.current, t.trial, t.reported, t.state)
}

// consistent: the host runs the old or the new version, active.json and
// the server agree with it, and the deployment's end matches it.
func (t truth) consistent() bool {
	if t.running != oldVersion && t.running != t.target {
		return false
	}
	if t.current != t.running || t.trial || t.reported != t.running {
		return false
	}
	switch t.state {
	case protocol.StateSucceeded:
		return t.running == t.target
	case protocol.StateRolledBack, protocol.StateFailed:
		return t.running == oldVersion
	}
	return false
}
