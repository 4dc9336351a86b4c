//go:build unix

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/moltfleet/molt/internal/e2etest"
	"github.com/moltfleet/molt/internal/semver"
	"github.com/moltfleet/molt/internal/testtool"
	"github.com/moltfleet/molt/protocol"
)

// TestFleet is issue 4's real-process scenario: a server, supervisors and
// agents built at two versions, in temporary homes on loopback. An agent is
// upgraded on activation; a run upgrades three more, one of them offline
// until mid-run; the server is killed with -9 mid-run and started again;
// the run completes and nothing acknowledged before the kill is lost.
func TestFleet(t *testing.T) {
	needBuild(t)
	parallel(t)
	dir := t.TempDir()
	goodPack, badPack := packs(t)
	srv := e2etest.StartServer(t, e2etest.ServerOptions{Version: newVersion, KeepDefaults: true})

	// The operator's first steps: the admin token from the data
	// directory works, the release is imported, policy is set.
	var poll protocol.Setting
	srv.JSON(&poll, "settings", "get", "agents.poll-seconds")
	if poll.Key != "agents.poll-seconds" || !poll.Default {
		t.Fatalf("settings get: %+v", poll)
	}
	srv.OK("release", "import", goodPack)
	var releases []protocol.Release
	srv.JSON(&releases, "release", "list")
	if len(releases) != 1 || releases[0].Version != newVersion {
		t.Fatalf("release list: %+v", releases)
	}
	// Version control per platform: a key with a "/" in it.
	pin := "version." + runtime.GOOS + "/" + runtime.GOARCH
	srv.OK("settings", "set", pin, newVersion)
	if got := strings.TrimSpace(srv.OK("settings", "get", pin).Stdout); got != newVersion {
		t.Fatalf("settings get %s: %q", pin, got)
	}
	srv.OK("settings", "reset", pin)
	srv.OK("settings", "set", "agents.poll-seconds", "2")
	srv.OK("settings", "set", "agents.offline-after", "5s")
	srv.OK("settings", "set", "activation-upgrade.linux", "true")
	hookOut := filepath.Join(dir, "run-end.env")
	hook := filepath.Join(dir, "on-run-end.sh")
	if err := os.WriteFile(hook, []byte("#!/bin/sh\nenv | grep '^MOLT_' | sort > "+hookOut+".tmp && mv "+hookOut+".tmp "+hookOut+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	srv.OK("settings", "set", "hooks.on-run-end", hook)
	var et protocol.EnrollTokenCreated
	srv.JSON(&et, "enroll-token", "create", "--uses", "10", "--expires", "1h")
	if et.Secret == "" {
		t.Fatalf("enroll token: %+v", et)
	}

	// 1. Upgrade on activation: an agent enrolling with the old version
	// is upgraded to the platform's target at once.
	a := srv.NewHost(e2etest.HostOptions{Name: "a", Version: oldVersion, Supervised: true, EnrollToken: et.Secret, Labels: map[string]string{"wave": "first"}})
	a.Start()
	e2etest.Eventually(t, 60*time.Second, "agent a upgraded on activation", func() (bool, string) {
		var ags []protocol.Agent
		srv.JSON(&ags, "agents", "list")
		return len(ags) == 1 && ags[0].Version == newVersion && ags[0].UpgradeStatus == protocol.UpgradeUpToDate, fmt.Sprintf("%+v", ags)
	})
	aID := a.ID()
	var aDeps []protocol.Deployment
	srv.JSON(&aDeps, "history", "--agent", aID)
	if len(aDeps) != 1 || aDeps[0].Kind != protocol.KindActivation {
		t.Fatalf("history of a: %+v", aDeps)
	}
	e2etest.Eventually(t, 30*time.Second, "the activation deployment succeeded", func() (bool, string) {
		var rep protocol.DeploymentReport
		srv.JSON(&rep, "history", "show", aDeps[0].ID)
		return rep.Deployment.State == protocol.StateSucceeded, fmt.Sprintf("%+v", rep)
	})
	checkDeployReport(t, srv, aDeps[0].ID)
	e2etest.Eventually(t, 30*time.Second, "a's supervisor upgraded itself", func() (bool, string) {
		v := a.SupervisorVersion()
		return v == newVersion, v
	})
	checkEvents(t, srv, aID, 264, 706)

	// 2. Agents that enroll while activation upgrade is off stay on the
	// old version and are shown as upgrade recommended.
	srv.OK("settings", "set", "activation-upgrade.linux", "false")
	hosts := map[string]*e2etest.Host{}
	for _, n := range []string{"b", "c", "d"} {
		h := srv.NewHost(e2etest.HostOptions{Name: n, Version: oldVersion, Supervised: true, EnrollToken: et.Secret, Labels: map[string]string{"wave": "second"}})
		h.Start()
		hosts[n] = h
	}
	ids := map[string]string{}
	e2etest.Eventually(t, 30*time.Second, "b, c, d enrolled on the old version", func() (bool, string) {
		var ags []protocol.Agent
		srv.JSON(&ags, "agents", "list", "--version", oldVersion)
		for _, ag := range ags {
			ids[ag.Name] = ag.ID
			if ag.UpgradeStatus != protocol.UpgradeRecommended || ag.Status != protocol.AgentOnline {
				return false, fmt.Sprintf("%+v", ag)
			}
		}
		return len(ags) == 3, fmt.Sprintf("%+v", ags)
	})

	// 3. d goes offline before the run.
	hosts["d"].Stop()
	e2etest.Eventually(t, 30*time.Second, "d shown offline", func() (bool, string) {
		var ag protocol.Agent
		srv.JSON(&ag, "agents", "show", ids["d"])
		return ag.Status == protocol.AgentOffline, ag.Status
	})

	// Without a terminal and without --yes, molt upgrade refuses.
	r := srv.Molt("upgrade", "--target", newVersion, "--all")
	if r.Code != 2 || !strings.Contains(r.Stderr, "pass --yes") || !strings.Contains(r.Stdout, "linux/amd64") {
		t.Fatalf("upgrade without --yes and without a terminal: %s", r)
	}

	// An operator follows the event log through everything that comes.
	follow := srv.MoltCmd(context.Background(), "events", "--follow", "--json", "--since", "1s")
	var followOut, followErr e2etest.Buffer
	follow.Stdout, follow.Stderr = &followOut, &followErr
	if err := follow.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { follow.Process.Kill(); follow.Wait() })

	// On a terminal it asks; "n" changes nothing.
	onTerminal(t, srv, "n\n", 1, []string{"upgrade", "--target", newVersion, "--all"},
		"Start upgrading 3 agent(s)? [y/N]", "Left out (1)", "already at target", "not confirmed; nothing was changed")

	// 4. The run, followed by molt upgrade --wait in the background the
	// whole time, through the server's kill and restart.
	up := srv.MoltCmd(context.Background(), "upgrade", "--target", newVersion,
		"--label", "wave=second", "--max-concurrent", "1", "--text", "e2e wave 2",
		"--yes", "--wait", "--json", "--interval", "300ms")
	var upOut, upErr e2etest.Buffer
	up.Stdout, up.Stderr = &upOut, &upErr
	if err := up.Start(); err != nil {
		t.Fatal(err)
	}
	upDone := make(chan error, 1)
	go func() { upDone <- up.Wait() }()
	t.Cleanup(func() { up.Process.Kill() })

	var runID string
	e2etest.Eventually(t, 30*time.Second, "a deployment of the run in progress", func() (bool, string) {
		var runs []protocol.Run
		srv.JSON(&runs, "runs", "list")
		if len(runs) == 0 {
			return false, "no run"
		}
		runID = runs[0].ID
		var rep protocol.RunReport
		srv.JSON(&rep, "runs", "report", runID)
		inProgress := 0
		for _, d := range rep.Deployments {
			if protocol.InProgress(d.State) {
				inProgress++
			}
		}
		if inProgress > 1 {
			t.Fatalf("%d deployments in progress with --max-concurrent 1: %+v", inProgress, rep.Deployments)
		}
		return inProgress == 1, fmt.Sprintf("%+v", rep.Deployments)
	})

	// What the server acknowledged before the kill.
	before := snapshot(t, srv)
	t.Logf("kill -9 of the server with the run at %s", srv.OK("runs", "show", runID).Stdout)
	srv.Kill9()
	time.Sleep(500 * time.Millisecond)
	srv.Start()
	after := snapshot(t, srv)
	checkNothingLost(t, before, after)

	// b and c finish; d waits for its host.
	e2etest.Eventually(t, 90*time.Second, "b and c upgraded, d waiting for its host", func() (bool, string) {
		var rep protocol.RunReport
		srv.JSON(&rep, "runs", "report", runID)
		states := map[string]string{}
		for _, d := range rep.Deployments {
			states[d.AgentID] = d.State
		}
		return states[ids["b"]] == protocol.StateSucceeded && states[ids["c"]] == protocol.StateSucceeded &&
			states[ids["d"]] == protocol.StateWaitingForHost, fmt.Sprint(states)
	})
	select {
	case err := <-upDone:
		t.Fatalf("molt upgrade --wait returned while d waits: %v\n%s\n%s", err, upOut.String(), upErr.String())
	default:
	}

	// 5. d comes back and is upgraded; the run ends OK and molt upgrade
	// --wait, which followed it through the restart, exits 0.
	hosts["d"].Start()
	select {
	case err := <-upDone:
		if err != nil {
			t.Fatalf("molt upgrade --wait: %v\nstdout:\n%s\nstderr:\n%s", err, upOut.String(), upErr.String())
		}
	case <-time.After(90 * time.Second):
		t.Fatalf("molt upgrade --wait still waiting\nstdout:\n%s\nstderr:\n%s", upOut.String(), upErr.String())
	}
	var final protocol.Run
	if err := json.Unmarshal([]byte(upOut.String()), &final); err != nil {
		t.Fatalf("molt upgrade --json output: %v\n%s", err, upOut.String())
	}
	if final.ID != runID || final.Status != protocol.RunEndedOK || final.Counts[protocol.StateSucceeded] != 3 || final.Total != 3 {
		t.Fatalf("run as molt upgrade --wait saw it end: %+v", final)
	}
	if !strings.Contains(upErr.String(), "cannot connect to the server at "+srv.Addr) {
		t.Errorf("molt upgrade --wait did not say it lost the server:\n%s", upErr.String())
	}

	// The follower saw the run end after the restart, and every event in
	// between: none twice, none missing.
	var followed []protocol.Event
	e2etest.Eventually(t, 20*time.Second, "molt events --follow saw the run end", func() (bool, string) {
		followed = followed[:0]
		ended := false
		for _, line := range strings.Split(followOut.String(), "\n") {
			var e protocol.Event
			if json.Unmarshal([]byte(line), &e) == nil && e.Seq > 0 {
				followed = append(followed, e)
				ended = ended || (e.ID == protocol.EvRunEnded && e.RunID == runID)
			}
		}
		return ended, followErr.String()
	})
	seen := map[int64]bool{}
	for i, e := range followed {
		if seen[e.Seq] || (i > 0 && e.Seq < followed[i-1].Seq) {
			t.Fatalf("molt events --follow printed event %d twice or out of order", e.Seq)
		}
		seen[e.Seq] = true
	}
	first, last := followed[0].Seq, followed[len(followed)-1].Seq
	for _, e := range srv.Events() {
		if e.Seq >= first && e.Seq <= last && !seen[e.Seq] {
			t.Errorf("molt events --follow missed event %d (%d %s)", e.Seq, e.ID, e.Name)
		}
	}

	// 6. What an operator sees afterwards.
	var ags []protocol.Agent
	srv.JSON(&ags, "agents", "list")
	if len(ags) != 4 {
		t.Fatalf("%d agents, want 4: %+v", len(ags), ags)
	}
	for _, ag := range ags {
		if ag.Version != newVersion || ag.UpgradeStatus != protocol.UpgradeUpToDate {
			t.Errorf("agent %s (%s): %s %s", ag.Name, ag.ID, ag.Version, ag.UpgradeStatus)
		}
	}
	var rep protocol.RunReport
	srv.JSON(&rep, "runs", "report", runID)
	if rep.Run.Status != protocol.RunEndedOK || len(rep.Deployments) != 3 {
		t.Fatalf("run report: %+v", rep)
	}
	for _, d := range rep.Deployments {
		if d.State != protocol.StateSucceeded || d.From != oldVersion || d.Target != newVersion {
			t.Errorf("deployment %+v", d)
		}
		checkDeployReport(t, srv, d.ID)
	}
	checkRunEvents(t, srv, runID, 800, 803)
	e2etest.Eventually(t, 20*time.Second, "the run-end hook ran", func() (bool, string) {
		b, err := os.ReadFile(hookOut)
		env := string(b)
		return err == nil && strings.Contains(env, "MOLT_RUN_ID="+runID) && strings.Contains(env, "MOLT_RUN_STATUS=ENDED_OK") &&
			strings.Contains(env, "MOLT_RUN_TEXT=e2e wave 2"), env
	})
	for _, n := range []string{"b", "c", "d"} {
		n := n
		e2etest.Eventually(t, 30*time.Second, n+" cleaned up after its upgrade", func() (bool, string) {
			return hasEvent(t, srv, ids[n], 712), "no cleanup_done event"
		})
		checkEvents(t, srv, ids[n], 264, 706, 711, 713)
		if v := hosts[n].SupervisorVersion(); v != newVersion {
			t.Errorf("%s: bin/molt-supervisor is %q, want %s", n, v, newVersion)
		}
	}
	t.Logf("molt runs report %s:\n%s", runID, srv.OK("runs", "report", runID).Stdout)
	t.Logf("molt history show %s:\n%s", rep.Deployments[0].ID, srv.OK("history", "show", rep.Deployments[0].ID).Stdout)
	t.Logf("molt agents list:\n%s", srv.OK("agents", "list").Stdout)
	t.Logf("molt upgrade --wait, stderr:\n%s", upErr.String())
	text := srv.OK("runs", "show", runID).Stdout
	if !strings.Contains(text, "ended_ok") || !strings.Contains(text, "e2e wave 2") || !strings.Contains(text, "succeeded 3") {
		t.Errorf("molt runs show:\n%s", text)
	}

	// 7. A bad release: its agent crashes at start. The supervisor rolls
	// it back, the operator sees rolled_back with the reason, and
	// molt upgrade --wait exits 3.
	srv.OK("release", "import", badPack)
	// This time on a terminal: confirmed with "y", the progress is one
	// line redrawn in place.
	badArgs := []string{"upgrade", "--target", badVersion, "--agents", aID, "--wait", "--interval", "300ms"}
	if !onTerminal(t, srv, "y\n", 3, badArgs, "Start upgrading 1 agent(s)? [y/N]", "\r\x1b[K[", "ended_not_ok: rolled_back 1") {
		if r := srv.Molt(append(badArgs, "--yes")...); r.Code != 3 {
			t.Fatalf("upgrade to the crashing %s: %s", badVersion, r)
		}
	}
	var runs []protocol.Run
	srv.JSON(&runs, "runs", "list")
	bad := runs[0]
	if bad.Target != badVersion || bad.Status != protocol.RunEndedNotOK || bad.Counts[protocol.StateRolledBack] != 1 {
		t.Fatalf("the bad run: %+v", bad)
	}
	var badRep protocol.RunReport
	srv.JSON(&badRep, "runs", "report", bad.ID)
	if len(badRep.Deployments) != 1 || badRep.Deployments[0].State != protocol.StateRolledBack || badRep.Deployments[0].Reason == "" {
		t.Fatalf("bad run report: %+v", badRep.Deployments)
	}
	t.Logf("rolled back: %s", badRep.Deployments[0].Reason)
	var aNow protocol.Agent
	srv.JSON(&aNow, "agents", "show", aID)
	if aNow.Version != newVersion || aNow.LastResult == nil || aNow.LastResult.Outcome != protocol.TrialRolledBack || aNow.LastResult.Version != badVersion {
		t.Fatalf("agent a after the rollback: %+v %+v", aNow, aNow.LastResult)
	}
	checkEvents(t, srv, aID, 708)
	names := map[string]bool{}
	var badDeploy protocol.DeploymentReport
	srv.JSON(&badDeploy, "history", "show", badRep.Deployments[0].ID)
	for _, s := range badDeploy.Steps {
		names[s.Name] = true
	}
	if !names["switch"] || !names["rollback"] {
		t.Errorf("DEPLOY report of the rolled-back deployment: %+v", badDeploy.Steps)
	}

	// 8. b's home, identity included, is copied to another machine (an
	// image captured without reset-identity): the copy sees another
	// machine fingerprint and enrolls as a new agent; b keeps its own.
	cloneOnAnotherMachine(t, srv, dir, hosts["b"], ids["b"], et.Secret)
}

// onTerminal runs molt on a pseudo-terminal (script(1)), types answer,
// and checks the exit code and what the terminal showed. It returns false
// when it cannot (no script(1)).
func onTerminal(t *testing.T, srv *e2etest.Server, answer string, wantCode int, args []string, want ...string) bool {
	t.Helper()
	if _, ok := testtool.Have(t, "script", "apt-get install bsdutils for the terminal step (script(1))"); !ok {
		return false
	}
	line := moltBin(t)
	for _, a := range args {
		line += " '" + a + "'"
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "script", "-qec", line, "/dev/null")
	cmd.Env = srv.Env()
	cmd.Stdin = strings.NewReader(answer)
	out, err := cmd.CombinedOutput()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	}
	for _, w := range want {
		if !strings.Contains(string(out), w) {
			t.Errorf("molt %v on a terminal: no %q in:\n%q", args, w, out)
		}
	}
	if code != wantCode {
		t.Errorf("molt %v on a terminal: exit %d, want %d:\n%q", args, code, wantCode, out)
	}
	return true
}

// cloneOnAnotherMachine copies h's home and runs the copy in a mount
// namespace with another /etc/machine-id. h enrolled, so its agent.yaml no
// longer holds the enrollment token: the image's is put back, as an
// operator capturing an enrolled host does (docs/agent.md).
func cloneOnAnotherMachine(t *testing.T, srv *e2etest.Server, dir string, h *e2etest.Host, id, token string) {
	t.Helper()
	if os.Getuid() != 0 || runtime.GOOS != "linux" {
		t.Log("clone step skipped: needs root on Linux for a mount namespace")
		return
	}
	if _, ok := testtool.Have(t, "unshare", "apt-get install util-linux for the clone step (unshare(1))"); !ok {
		return
	}
	if _, err := os.Stat("/etc/machine-id"); err != nil {
		t.Log("clone step skipped: no /etc/machine-id to replace")
		return
	}
	mid := filepath.Join(dir, "other-machine-id")
	os.WriteFile(mid, []byte("0123456789abcdef0123456789abcdef\n"), 0o444)
	h.Stop()
	clone := h.Clone("clone", "unshare", "--mount", "--propagation", "private", "sh", "-c",
		`mount --bind "$0" /etc/machine-id && exec "$@"`, mid)
	f, err := os.OpenFile(clone.Home.ConfigPath(), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(f, "enrollment_token: %q\n", token)
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	h.Start()
	clone.Start()
	origFP := h.Fingerprint()
	e2etest.Eventually(t, 30*time.Second, "the clone enrolled as a new agent", func() (bool, string) {
		cid, cfp := clone.ID(), clone.Fingerprint()
		return cid != "" && cid != id && cfp != "" && cfp != origFP, cid
	})
	cloneID := clone.ID()
	e2etest.Eventually(t, 30*time.Second, "b and its clone both online, each with its own id", func() (bool, string) {
		var ags []protocol.Agent
		srv.JSON(&ags, "agents", "list")
		online := map[string]bool{}
		for _, ag := range ags {
			online[ag.ID] = ag.Status == protocol.AgentOnline
		}
		return online[id] && online[cloneID] && len(ags) == 5, fmt.Sprintf("%+v", ags)
	})
	if bid := h.ID(); bid != id {
		t.Errorf("b's identity changed to %s", bid)
	}
	checkEvents(t, srv, cloneID, 900)
	t.Logf("b (%s) copied to another machine enrolled as %s", id, cloneID)
}

// checkDeployReport asserts the DEPLOY report has the agent's steps, each
// with a time, in order.
func checkDeployReport(t *testing.T, srv *e2etest.Server, id string) {
	t.Helper()
	var rep protocol.DeploymentReport
	srv.JSON(&rep, "history", "show", id)
	var names []string
	var last time.Time
	for _, s := range rep.Steps {
		if s.At.IsZero() {
			t.Errorf("deployment %s: step %s without a time", id, s.Name)
		}
		if s.At.Before(last.Add(-time.Second)) {
			t.Errorf("deployment %s: step %s at %s before the one before it (%s)", id, s.Name, s.At, last)
		}
		last = s.At
		names = append(names, s.Name)
	}
	for _, want := range []string{"download", "stage", "switch", "exit", "start", "commit"} {
		if !slices.Contains(names, want) {
			t.Errorf("deployment %s: no %q step in the DEPLOY report %v", id, want, names)
		}
	}
	text := srv.OK("history", "show", id).Stdout
	if !strings.Contains(text, "STEP") || !strings.Contains(text, "succeeded") {
		t.Errorf("molt history show %s:\n%s", id, text)
	}
}

// checkEvents asserts the agent's events include the given ids.
func checkEvents(t *testing.T, srv *e2etest.Server, agentID string, want ...int) {
	t.Helper()
	seen := map[int]bool{}
	for _, e := range srv.Events() {
		if e.AgentID == agentID {
			seen[e.ID] = true
		}
	}
	for _, id := range want {
		if !seen[id] {
			t.Errorf("agent %s: no event %d in molt events (saw %v)", agentID, id, seen)
		}
	}
}

// checkRunEvents asserts the run's events include the given ids.
func checkRunEvents(t *testing.T, srv *e2etest.Server, runID string, want ...int) {
	t.Helper()
	seen := map[int]bool{}
	for _, e := range srv.Events() {
		if e.RunID == runID {
			seen[e.ID] = true
		}
	}
	for _, id := range want {
		if !seen[id] {
			t.Errorf("run %s: no event %d in molt events (saw %v)", runID, id, seen)
		}
	}
}

func hasEvent(t *testing.T, srv *e2etest.Server, agentID string, id int) bool {
	for _, e := range srv.Events() {
		if e.AgentID == agentID && e.ID == id {
			return true
		}
	}
	return false
}

// state is what the server has acknowledged, as the CLI shows it.
type state struct {
	events      []protocol.Event
	agents      []protocol.Agent
	runs        []protocol.Run
	deployments []protocol.Deployment
}

func snapshot(t *testing.T, srv *e2etest.Server) state {
	t.Helper()
	var s state
	s.events = srv.Events()
	s.agents = srv.Agents()
	s.runs = srv.Runs()
	s.deployments = srv.History()
	return s
}

// checkNothingLost: every event, agent, run and deployment seen before
// the kill is there after the restart; deployments never move back.
func checkNothingLost(t *testing.T, before, after state) {
	t.Helper()
	evAfter := map[int64]protocol.Event{}
	for _, e := range after.events {
		evAfter[e.Seq] = e
	}
	for _, e := range before.events {
		a, ok := evAfter[e.Seq]
		if !ok || a.ID != e.ID || a.Message != e.Message || !a.At.Equal(e.At) {
			t.Errorf("event %d (%d %s) lost or changed by the restart: %+v", e.Seq, e.ID, e.Name, a)
		}
	}
	ids := func(v any) []string {
		var out []string
		switch x := v.(type) {
		case []protocol.Agent:
			// Versions may move on between the two snapshots: an agent
			// can finish its trial while the server restarts.
			for _, a := range x {
				out = append(out, a.ID)
			}
		case []protocol.Run:
			for _, r := range x {
				out = append(out, r.ID)
			}
		}
		sort.Strings(out)
		return out
	}
	if b, a := ids(before.agents), ids(after.agents); !slices.Equal(b, a) {
		t.Errorf("agents before the kill %v, after %v", b, a)
	}
	verAfter := map[string]string{}
	for _, a := range after.agents {
		verAfter[a.ID] = a.Version
	}
	for _, a := range before.agents {
		if v := verAfter[a.ID]; semver.Less(v, a.Version) {
			t.Errorf("agent %s went back from %s to %s over the restart", a.ID, a.Version, v)
		}
	}
	if b, a := ids(before.runs), ids(after.runs); !slices.Equal(b, a) {
		t.Errorf("runs before the kill %v, after %v", b, a)
	}
	rank := func(s string) int {
		if protocol.Terminal(s) {
			return 100
		}
		if r := protocol.PhaseRank(s); r > 0 {
			return 10 + r
		}
		return 0
	}
	depAfter := map[string]protocol.Deployment{}
	for _, d := range after.deployments {
		depAfter[d.ID] = d
	}
	for _, d := range before.deployments {
		a, ok := depAfter[d.ID]
		if !ok {
			t.Errorf("deployment %s lost by the restart", d.ID)
			continue
		}
		if rank(a.State) < rank(d.State) {
			t.Errorf("deployment %s went back from %s to %s over the restart", d.ID, d.State, a.State)
		}
	}
}
