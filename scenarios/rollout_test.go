//go:build unix

package scenarios

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/moltfleet/molt/internal/buildinfo"
	"github.com/moltfleet/molt/internal/e2etest"
	"github.com/moltfleet/molt/protocol"
	"github.com/moltfleet/molt/updater/pack"
	"github.com/moltfleet/molt/workload/spec"
)

// rolloutHosts is the fleet of the rollout scenario, half of each family.
const rolloutHosts = 20

// The releases of the rollout scenario: relA's molt-agent crashes at
// start on hosts of OS family "beta" only, relB commits everywhere but
// ships a workload that starts crash-looping some seconds after the
// upgrade.
const (
	relA = v2
	relB = v3
)

// Scenario 13: rollout control end to end. Twenty hosts of two OS
// families (label os=alpha / os=beta; every host of this machine has the
// same platform, so the family is a label). A release broken on beta meets a
// beta canary (--canary 1 --canary-cover os makes two canaries), halts the
// run after the canaries and is quarantined; a release whose workload
// crash-loops after the commit halts its run by health before wave 2; and
// `molt runs rollback` brings the moved agents back to where they were.
func TestScenarioRolloutControl(t *testing.T) {
	needReal(t)
	start := time.Now()
	// v1 is imported too: a rollback goes back to an imported release.
	f := newFleet(t, nil, e2etest.PackOptions{Version: v1},
		e2etest.PackOptions{Version: relB, Workloads: []e2etest.Workload{crashLater(t)}})
	srv := f.srv
	srv.Import(betaBrokenPack(t))
	t.Logf("server with 3 releases after %s", time.Since(start).Round(time.Second))

	type host struct {
		h      *e2etest.Host
		id, os string
	}
	var hosts []host
	for i := range rolloutHosts {
		fam := []string{"alpha", "beta"}[i%2]
		n := fmt.Sprintf("%s-%d", fam, i/2+1)
		h := f.host(n, v1, func(o *e2etest.HostOptions) {
			o.Labels = map[string]string{"os": fam}
			o.Env = []string{"ROLLOUT_OS=" + fam}
		})
		hosts = append(hosts, host{h: h, os: fam})
	}
	byID := map[string]host{}
	for i := range hosts {
		hosts[i].id = hosts[i].h.WaitEnrolled(30 * time.Second)
		byID[hosts[i].id] = hosts[i]
	}
	// One listing for the whole fleet rather than one `agents show` each.
	e2etest.Eventually(t, 90*time.Second, "every agent online at "+v1, func() (bool, string) {
		n := 0
		for _, a := range srv.Agents() {
			if _, ok := byID[a.ID]; ok && a.Version == v1 && a.SupervisorVersion == v1 && a.Status == protocol.AgentOnline {
				n++
			}
		}
		return n == len(hosts), fmt.Sprintf("%d of %d", n, len(hosts))
	})
	t.Logf("%d hosts enrolled at %s after %s", len(hosts), v1, time.Since(start).Round(time.Second))

	// Part 1: release A, broken on beta. The canaries cover both
	// families; the beta one rolls back, which halts the run at once and
	// quarantines A. No host beyond the canaries is touched.
	runA := srv.Upgrade("--target", relA, "--all", "--canary", "1", "--canary-cover", "os",
		"--waves", "50%,100%", "--canary-soak", "5s", "--text", "release A")
	e2etest.Eventually(t, 90*time.Second, "run A halted", func() (bool, string) {
		srv.JSON(&runA, "runs", "show", runA.ID)
		return runA.Status == protocol.RunPaused, fmt.Sprintf("%s %q %v", runA.Status, runA.Reason, runA.Counts)
	})
	if !strings.HasPrefix(runA.Reason, "halted:") {
		t.Errorf("run A paused with reason %q, want one starting \"halted:\"", runA.Reason)
	}
	// The alpha canary's trial may still be going on: it ends on its own.
	var canariesA map[string]protocol.Deployment
	e2etest.Eventually(t, 60*time.Second, "run A's canaries ended", func() (bool, string) {
		canariesA = map[string]protocol.Deployment{}
		ended := true
		for _, d := range srv.RunReport(runA.ID).Deployments {
			if d.Canary {
				canariesA[byID[d.AgentID].os] = d
				ended = ended && protocol.Terminal(d.State)
			}
		}
		return ended && len(canariesA) == 2, fmt.Sprintf("%+v", canariesA)
	})
	if d := canariesA["beta"]; d.State != protocol.StateRolledBack {
		t.Errorf("beta canary of run A: %s %q, want rolled_back", d.State, d.Reason)
	}
	if d := canariesA["alpha"]; d.State != protocol.StateSucceeded {
		t.Errorf("alpha canary of run A: %s %q, want succeeded", d.State, d.Reason)
	}
	for _, d := range srv.RunReport(runA.ID).Deployments {
		if !d.Canary && (d.State != protocol.StatePending || !d.Started.IsZero()) {
			t.Errorf("run A touched %s beyond the canaries: %s (started %v)", d.AgentName, d.State, d.Started)
		}
	}
	evs := srv.Events()
	halted := eventsWithID(e2etest.OfRun(evs, runA.ID), protocol.EvRunHalted)
	if len(halted) != 1 || halted[0].Fields["signal"] != "canary" {
		t.Errorf("run A: 805 events %+v, want one with signal canary", halted)
	}
	for _, h := range hosts {
		want := v1
		if h.id == canariesA["alpha"].AgentID {
			want = relA
		}
		if c := h.h.Current(); c != want {
			t.Errorf("after run A %s runs %s, want %s", h.h.Name, c, want)
		}
	}
	if res, ok := byID[canariesA["beta"].AgentID].h.Result(); !ok || res.Outcome != "rolled_back" || res.Version != relA {
		t.Errorf("beta canary's result.json: %+v", res)
	}
	// Quarantine is per platform, and every host here has this machine's
	// platform: A is quarantined for it, alpha hosts included.
	var rels []protocol.Release
	srv.JSON(&rels, "release", "list")
	var qa []protocol.Quarantine
	for _, r := range rels {
		if r.Version == relA {
			qa = r.Quarantined
		}
	}
	if len(qa) != 1 || qa[0].Platform != buildinfo.Platform() || !qa[0].Automatic {
		t.Errorf("quarantine of %s: %+v, want automatic on %s only", relA, qa, buildinfo.Platform())
	}
	if len(eventsWithID(evs, protocol.EvQuarantined)) != 1 {
		t.Errorf("want one 1007 event")
	}
	srv.OK("runs", "cancel", runA.ID)
	t.Logf("part 1 (canary halt, quarantine) done after %s: %s", time.Since(start).Round(time.Second), runA.Reason)

	// Part 2: release B commits everywhere, then its workload
	// crash-loops: the health watch halts the run in the canaries' soak,
	// before wave 2 starts.
	before := map[string]string{}
	for _, h := range hosts {
		before[h.id] = h.h.Current()
	}
	runB := srv.Upgrade("--target", relB, "--all", "--canary", "1", "--canary-cover", "os",
		"--waves", "50%,100%", "--canary-soak", "60s", "--health-soak", "60s", "--text", "release B")
	e2etest.Eventually(t, 90*time.Second, "run B halted by health", func() (bool, string) {
		srv.JSON(&runB, "runs", "show", runB.ID)
		return runB.Status == protocol.RunPaused, fmt.Sprintf("%s %q %v", runB.Status, runB.Reason, runB.Counts)
	})
	if !strings.HasPrefix(runB.Reason, "halted: health:") {
		t.Errorf("run B paused with reason %q, want one starting \"halted: health:\"", runB.Reason)
	}
	moved := map[string]string{} // agent id -> the version it came from
	for _, d := range srv.RunReport(runB.ID).Deployments {
		switch {
		case d.Canary && d.State == protocol.StateSucceeded:
			moved[d.AgentID] = d.From
		case d.Canary:
			t.Errorf("canary %s of run B: %s %q, want succeeded", d.AgentName, d.State, d.Reason)
		case d.State != protocol.StatePending || !d.Started.IsZero():
			t.Errorf("run B started wave %d on %s: %s", d.Wave, d.AgentName, d.State)
		}
	}
	if len(moved) != 2 {
		t.Fatalf("run B moved %d agents, want its 2 canaries", len(moved))
	}
	halted = eventsWithID(e2etest.OfRun(srv.Events(), runB.ID), protocol.EvRunHalted)
	if len(halted) != 1 || !strings.HasPrefix(halted[0].Fields["signal"], "health_") {
		t.Errorf("run B: 805 events %+v, want one with a health_ signal", halted)
	}
	for id, from := range moved {
		if from != before[id] {
			t.Errorf("%s: run B's deployment from %s, the host ran %s", byID[id].h.Name, from, before[id])
		}
		if w, ok := byID[id].h.Workload("crasher"); !ok || w.Restarts == 0 {
			t.Errorf("%s: workload crasher %+v, want restarted", byID[id].h.Name, w)
		}
	}
	for id, from := range moved {
		t.Logf("run B moved canary %s from %s", byID[id].h.Name, from)
	}
	t.Logf("part 2 (health halt) done after %s: %s", time.Since(start).Round(time.Second), runB.Reason)

	// Part 3: roll run B back (paused). One canary may come from A, which
	// is quarantined: --force takes it back there all the same. A rollout
	// flag replaces B's canaries and soaks.
	var dry protocol.Run
	srv.JSON(&dry, "runs", "rollback", runB.ID, "--dry-run")
	for id, from := range moved {
		left := slices.ContainsFunc(dry.Excluded, func(x protocol.Exclusion) bool {
			return x.AgentID == id && strings.Contains(x.Reason, "quarantined")
		})
		if left != (from == relA) {
			t.Errorf("dry run without --force: %s (from %s) left out as quarantined: %v; excluded %+v", byID[id].h.Name, from, left, dry.Excluded)
		}
	}
	r := srv.OK("runs", "rollback", runB.ID, "--yes", "--json", "--force", "--max-concurrent", "10")
	var back protocol.Run
	if err := json.Unmarshal([]byte(r.Stdout), &back); err != nil || back.ID == "" {
		t.Fatalf("molt runs rollback: %v\n%s", err, r)
	}
	if back.Target != protocol.RollbackTarget || back.Total != len(moved) {
		t.Errorf("rollback run: target %q total %d, want %q and %d (left out: %+v)", back.Target, back.Total, protocol.RollbackTarget, len(moved), back.Excluded)
	}
	if end := srv.WaitRun(back.ID, 90*time.Second); end.Status != protocol.RunEndedOK {
		t.Fatalf("rollback run: %s %q %v", end.Status, end.Reason, end.Counts)
	}
	for id, from := range moved {
		h := byID[id]
		f.waitAgent(id, from, true)
		if act := h.h.Active(); act.Current != from || act.Trial != nil {
			t.Errorf("%s after the rollback: active.json %+v, want %s", h.h.Name, act, from)
		}
		// Neither v1 nor A carries the workload.
		if w, ok := h.h.Workload("crasher"); ok && w.Version == relB {
			t.Errorf("%s still lists workload crasher after going back to %s", h.h.Name, from)
		}
	}
	rb := eventsWithID(e2etest.OfRun(srv.Events(), back.ID), protocol.EvRunRollback)
	if len(rb) != 1 || rb[0].Fields["of"] != runB.ID {
		t.Errorf("811 events of the rollback run: %+v", rb)
	}
	t.Logf("rolled back %d agents; whole scenario %s", len(moved), time.Since(start).Round(time.Second))
}

// crashLater is release B's workload: its first start stays up for 10 s
// (past the trial, which commits), every later start exits at once, so it
// crash-loops after the upgrade committed. The count of starts lives in
// its data directory, its working directory.
func crashLater(t *testing.T) e2etest.Workload {
	t.Helper()
	script := e2etest.WriteScript(t, "crasher.sh", `n=$(cat starts 2>/dev/null || echo 0)
echo $((n+1)) > starts
if [ "$n" -eq 0 ]; then sleep 10; fi
echo "crasher: exiting 3 after start $((n+1))" >&2
exit 3
`)
	d := func(s string) spec.Duration {
		v, err := time.ParseDuration(s)
		if err != nil {
			t.Fatal(err)
		}
		return spec.Duration(v)
	}
	return e2etest.Workload{
		Spec: spec.Spec{
			Name:    "crasher",
			Command: "crasher.sh",
			Ready:   spec.Ready{Probe: spec.Probe{Running: d("1s")}, Within: d("30s")},
			Stop:    spec.Stop{Grace: d("2s")},
			Restart: spec.Restart{BackoffMin: d("200ms"), BackoffMax: d("1s")},
		},
		Files: map[string]string{"crasher.sh": script},
	}
}

// betaBrokenPack is release A: its molt-agent is a script that exits 3 at
// `run` when the host's environment says ROLLOUT_OS=beta (HostOptions.Env,
// passed by the supervisor to the agent), and otherwise becomes the real
// molt-agent of relA from the harness's build directory. The harness's
// packs break an agent on every host alike (PackOptions.AgentMode), so
// this pack is laid out and signed here, with the harness's key.
func betaBrokenPack(t *testing.T) string {
	t.Helper()
	bin := e2etest.Binaries(t, relA)
	dir := t.TempDir()
	plat := filepath.Join(dir, "bin", e2etest.PlatformDir())
	if err := os.MkdirAll(plat, 0o755); err != nil {
		t.Fatal(err)
	}
	agent := fmt.Sprintf(`#!/bin/sh
if [ "$1" = run ] && [ "$ROLLOUT_OS" = beta ]; then
	echo "molt-agent %s: does not start on OS family beta" >&2
	exit 3
fi
exec %q "$@"
`, relA, filepath.Join(bin, "molt-agent"))
	if err := os.WriteFile(filepath.Join(plat, "molt-agent"), []byte(agent), 0o755); err != nil {
		t.Fatal(err)
	}
	sup, err := os.ReadFile(filepath.Join(bin, "molt-supervisor"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(plat, "molt-supervisor"), sup, 0o755); err != nil {
		t.Fatal(err)
	}
	_, secFile := e2etest.Key(t)
	text, err := os.ReadFile(secFile)
	if err != nil {
		t.Fatal(err)
	}
	sk, err := pack.ParseSecretKey(text, "")
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "release-a.zip")
	if err := pack.Build(pack.BuildOptions{Version: relA, BinDir: filepath.Dir(plat), Key: sk, Out: out, SkipVersionCheck: true}); err != nil {
		t.Fatalf("pack of %s: %v", relA, err)
	}
	return out
}

// eventsWithID keeps the events with event id id.
func eventsWithID(evs []protocol.Event, id int) []protocol.Event {
	return e2etest.Filter(evs, func(e protocol.Event) bool { return e.ID == id })
}
