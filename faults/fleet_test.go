//go:build linux

package faults

import (
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/moltfleet/molt/internal/e2etest"
	"github.com/moltfleet/molt/protocol"
)

// newFleet starts a server (srvEnv added to its environment) with the new
// version's pack imported, and n supervised hosts at the old version
// (hostEnv added to their supervisors' environment, and so their
// agents'), enrolled and seen online. serverURL, when not nil, gives the
// URL the hosts use (a proxy in front of the server). With workloads,
// both versions' packs carry the exporter of their version
// (workloadPack) and each host is installed from the old one, its
// exporter on a free loopback port of its own.
func newFleet(t *testing.T, n int, srvEnv, hostEnv []string, serverURL func(*e2etest.Server) string, workloads bool, opts ...fleetOption) *fleet {
	t.Helper()
	srv := e2etest.StartServer(t, e2etest.ServerOptions{Version: newVersion, Env: srvEnv})
	oldPack := ""
	if workloads {
		oldPack = workloadPack(t, oldVersion, "")
		if slices.Contains(opts, withPatches) {
			srv.Import(patchedWorkloadPack(t, oldPack))
		} else {
			srv.Import(workloadPack(t, newVersion, ""))
		}
	} else {
		srv.Import(e2etest.Pack(t, e2etest.PackOptions{Version: newVersion}))
	}
	tok := srv.EnrollToken(n)
	f := &fleet{t: t, srv: srv, restarts: map[string]int{}, workloads: workloads}
	url := ""
	if serverURL != nil {
		url = serverURL(srv)
	}
	for i := range n {
		h := srv.NewHost(e2etest.HostOptions{Name: fmt.Sprintf("h%d", i+1), Version: oldVersion, Supervised: true,
			EnrollToken: tok, Env: hostEnv, ServerURL: url, Pack: oldPack})
		if workloads {
			f.addrs = append(f.addrs, writeListenFile(t, h))
		}
		h.Start()
		f.hosts = append(f.hosts, h)
	}
	if workloads {
		for i, h := range f.hosts {
			if why := workloadWrongWithin(h, f.addrs[i], oldVersion, workloadUp); why != "" {
				t.Fatalf("%s before the upgrade: %s", h.Name, why)
			}
		}
	}
	for _, h := range f.hosts {
		f.ids = append(f.ids, h.WaitEnrolled(60*time.Second))
	}
	e2etest.Eventually(t, 60*time.Second, "every host online at "+oldVersion, func() (bool, string) {
		var ags []protocol.Agent
		if !tryJSON(srv, &ags, "agents", "list") {
			return false, "molt agents list failed"
		}
		on := 0
		for _, a := range ags {
			if a.Version == oldVersion && a.Status == protocol.AgentOnline {
				on++
			}
		}
		return on == n, fmt.Sprintf("%+v", ags)
	})
	return f
}

// upgrade runs an upgrade of every host to the new version while the
// hosts' invariants are watched, keeps the fleet alive until the host and
// the server agree on the outcome, and asserts recovery: fired (when not
// "") exists (the point was reached and the process killed), an agent ran
// on the old or the new version throughout (short gaps aside), active.json
// never named a version without .valid, the server's records match each
// host, and nothing acknowledged was lost. It returns a line saying what
// happened.
func (f *fleet) upgrade(fired string) string {
	t := f.t
	t.Helper()
	for _, h := range f.hosts {
		f.watchers = append(f.watchers, watch(h.Home))
	}
	start := time.Now()
	runID := f.startRun()
	lastSnap := time.Now()
	if s, ok := snapshot(f.srv); ok {
		f.first, f.last = s, s
	}
	var truths []truth
	limit := converge
	if f.converge > 0 {
		limit = f.converge
	}
	deadline := start.Add(limit)
	// The loop plays service manager every 200 ms (a dead process is
	// started again at once); the server is read once a second, in the
	// snapshot that also keeps what it acknowledged, and the host's and
	// the server's truths are compared from that snapshot: each molt
	// call is a process of its own, and polling them five times a second
	// cost more CPU than the processes under test.
	lastLog := time.Now()
	for {
		f.keepAlive()
		if runID == "" {
			runID = f.findRun()
		}
		_, err := os.Stat(fired)
		if time.Since(lastSnap) >= time.Second {
			lastSnap = time.Now()
			local := f.localTruths()
			var done bool
			if s, ok := snapshot(f.srv); ok {
				f.last = s
				if f.first.runs == nil {
					f.first = s
				}
				truths, done = f.truths(runID, local, s)
			} else {
				truths = local
			}
			if done && (fired == "" || err == nil) {
				break
			}
		}
		if time.Since(lastLog) > 5*time.Second {
			t.Logf("after %s: run %q, hosts: %v", time.Since(start).Round(time.Second), runID, truths)
			lastLog = time.Now()
		}
		if time.Now().After(deadline) {
			for _, h := range f.hosts {
				h.DumpLogs()
			}
			t.Fatalf("no recovery within %s: run %q, point fired: %v, hosts: %v", limit, runID, err == nil, truths)
		}
		time.Sleep(200 * time.Millisecond)
	}
	took := time.Since(start)
	if os.Getenv("FAULTS_LOGS") != "" {
		for _, h := range f.hosts {
			h.DumpLogs()
		}
	}

	var gaps []string
	for i, w := range f.watchers {
		violations, versions, gap, checks := w.finish()
		for _, v := range violations {
			t.Errorf("%s: %s", f.hosts[i].Name, v)
		}
		if checks < 100 {
			t.Errorf("%s: active.json was checked only %d times", f.hosts[i].Name, checks)
		}
		if gap > maxGap {
			t.Errorf("%s: no agent ran for %s (at most %s allowed)", f.hosts[i].Name, gap.Round(time.Millisecond), maxGap)
		}
		for _, v := range versions {
			if v != oldVersion && v != f.targetVersion() {
				t.Errorf("%s: an agent of version %s ran", f.hosts[i].Name, v)
			}
		}
		gaps = append(gaps, gap.Round(100*time.Millisecond).String())
	}
	final, ok := snapshot(f.srv)
	if !ok {
		t.Fatal("cannot read the server's records at the end")
	}
	for _, l := range lost(f.first, final) {
		t.Errorf("acknowledged right after the run started, gone at the end: %s", l)
	}
	for _, l := range lost(f.last, final) {
		t.Errorf("acknowledged before the last kill, gone at the end: %s", l)
	}
	f.checkSteps(runID)
	// The workload runs once, of the version the host ended at, and
	// serves.
	var wlTimes []string
	if f.workloads {
		for i, h := range f.hosts {
			d := checkWorkload(t, h, f.addrs[i], truths[i].running)
			wlTimes = append(wlTimes, d.Round(100*time.Millisecond).String())
		}
	}
	var states []string
	for i, tr := range truths {
		if f.mustSucceed && tr.state != protocol.StateSucceeded {
			t.Errorf("%s: deployment %s, want succeeded", f.hosts[i].Name, tr.state)
		}
		// The service binary is always a whole program of one of the
		// two versions, whatever happened to its replacement.
		sv := f.hosts[i].SupervisorVersion()
		if sv != oldVersion && sv != newVersion && sv != f.targetVersion() {
			t.Errorf("%s: bin/molt-supervisor version --json says %q", f.hosts[i].Name, sv)
		}
		states = append(states, fmt.Sprintf("%s@%s (supervisor %s)", tr.state, tr.running, sv))
	}
	var restarts []string
	for k, n := range f.restarts {
		restarts = append(restarts, fmt.Sprintf("%s×%d", k, n))
	}
	wl := ""
	if f.workloads {
		wl = "; exporter right after " + strings.Join(wlTimes, ",")
	}
	return fmt.Sprintf("%s in %.0fs; longest without agent %s%s; restarted by the test: %s",
		strings.Join(states, ","), took.Seconds(), strings.Join(gaps, ","), wl, strings.Join(restarts, ",")+orNone(len(restarts)))
}

func orNone(n int) string {
	if n == 0 {
		return "none"
	}
	return ""
}

// startRun asks for the upgrade; a server killed while it schedules may
// not answer, and the run is then found (or asked for again) later.
func (f *fleet) startRun() string {
	r := f.srv.Molt("upgrade", "--target", f.targetVersion(), "--agents", strings.Join(f.ids, ","),
		"--max-concurrent", "2", "--text", "fault injection", "--yes", "--json")
	var run protocol.Run
	if r.Code == 0 && json.Unmarshal([]byte(r.Stdout), &run) == nil && run.ID != "" {
		return run.ID
	}
	f.t.Logf("molt upgrade did not answer (the server may have died): %s", r)
	return ""
}

// findRun finds the run after a server restart; if the server lost it
// (never acknowledged), it asks again.
func (f *fleet) findRun() string {
	if !f.srv.Running() {
		return ""
	}
	var runs []protocol.Run
	if !tryJSON(f.srv, &runs, "runs", "list") {
		return ""
	}
	if len(runs) > 0 {
		return runs[0].ID
	}
	return f.startRun()
}

// localTruths reads what each host runs.
func (f *fleet) localTruths() []truth {
	out := make([]truth, len(f.hosts))
	for i, h := range f.hosts {
		out[i].target = f.targetVersion()
		out[i].running = runningVersion(h.Home)
		if a, err := h.Home.ReadActive(); err == nil {
			out[i].current, out[i].trial = a.Current, a.Trial != nil
		}
	}
	return out
}

// truths adds the server's view in snapshot s (taken after local was
// read) to each host's; done when the run ended and every host is
// consistent.
func (f *fleet) truths(runID string, local []truth, s acked) ([]truth, bool) {
	out := slices.Clone(local)
	if runID == "" {
		return out, false
	}
	var run *protocol.Run
	for i := range s.runList {
		if s.runList[i].ID == runID {
			run = &s.runList[i]
		}
	}
	if run == nil {
		return out, false
	}
	done := run.Status == protocol.RunEndedOK || run.Status == protocol.RunEndedNotOK
	for i, id := range f.ids {
		for _, a := range s.agents {
			if a.ID == id {
				out[i].reported = a.Version
			}
		}
		for _, d := range s.depList {
			if d.RunID == runID && d.AgentID == id {
				out[i].state = d.State
			}
		}
		done = done && out[i].consistent()
	}
	return out, done
}

// checkSteps: the DEPLOY report of each succeeded deployment records its
// commit, and a rolled-back one its reason, a crash of either side
// notwithstanding. (Steps a crash kept the
// agent from reporting are not required; the ones the server
// acknowledged are checked by lost.)
func (f *fleet) checkSteps(runID string) {
	t := f.t
	t.Helper()
	var rep protocol.RunReport
	if !tryJSON(f.srv, &rep, "runs", "report", runID) {
		t.Fatalf("molt runs report %s failed at the end", runID)
	}
	for _, d := range rep.Deployments {
		if d.State == protocol.StateRolledBack && d.Reason == "" {
			t.Errorf("deployment %s rolled back without the agent's reason", d.ID)
		}
		if d.State != protocol.StateSucceeded {
			continue
		}
		var dr protocol.DeploymentReport
		if !tryJSON(f.srv, &dr, "history", "show", d.ID) {
			t.Fatalf("molt history show %s failed at the end", d.ID)
		}
		commit := false
		for _, s := range dr.Steps {
			commit = commit || s.Name == "commit"
		}
		if !commit {
			t.Errorf("deployment %s succeeded without a commit step in its DEPLOY report: %+v", d.ID, dr.Steps)
		}
	}
}
