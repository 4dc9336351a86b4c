//go:build unix

package e2e

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/moltfleet/molt/home"
	"github.com/moltfleet/molt/internal/e2etest"
	"github.com/moltfleet/molt/internal/testtool"
	"github.com/moltfleet/molt/protocol"
	"github.com/moltfleet/molt/workload/spec"
)

// The molt versions the workload tests move between (the same as the
// fleet test's, so one test process builds them once).
const (
	wlV1 = "1.0.0"
	wlV2 = "1.1.0"
	wlV3 = "1.2.0"
)

func dur(s string) spec.Duration {
	d, err := time.ParseDuration(s)
	if err != nil {
		panic(err)
	}
	return spec.Duration(d)
}

// exporterSpec is examples/exporter listening on addr, without its
// periodic scan (a test holds when it wants to), ready when /metrics
// answers, live while /healthz does.
func exporterSpec(addr, within string, args ...string) spec.Spec {
	return spec.Spec{
		Name:    "exporter",
		Command: "exporter",
		Args:    append([]string{"-listen", addr, "-scan-every", "0"}, args...),
		Ready:   spec.Ready{Probe: spec.Probe{HTTP: "http://" + addr + "/metrics"}, Within: dur(within), Interval: dur("100ms")},
		Live:    &spec.Live{Probe: spec.Probe{HTTP: "http://" + addr + "/healthz"}, Interval: dur("1s"), Failures: 3},
		Stop:    spec.Stop{Grace: dur("5s")},
		Restart: spec.Restart{BackoffMin: dur("200ms")},
	}
}

// exporterPack is a pack of molt version v carrying the exporter built at
// exporterVersion with s.
func exporterPack(t *testing.T, v, exporterVersion string, s spec.Spec, more map[string]string) string {
	t.Helper()
	files := map[string]string{"exporter": e2etest.Exporter(t, exporterVersion)}
	for k, f := range more {
		files[k] = f
	}
	return e2etest.Pack(t, e2etest.PackOptions{Version: v, Workloads: []e2etest.Workload{{Spec: s, Files: files}}})
}

// installedHost is an enrolled, supervised host installed from packFile
// (molt-agent install --pack), started, with its workload name ready.
func installedHost(t *testing.T, srv *e2etest.Server, name, v, packFile, workload string) (*e2etest.Host, string) {
	t.Helper()
	h := srv.NewHost(e2etest.HostOptions{Name: name, Version: v, Supervised: true, EnrollToken: srv.EnrollToken(1), Pack: packFile})
	if _, err := os.Stat(h.Home.WorkloadsFile(v)); err != nil {
		t.Fatalf("molt-agent install --pack did not install the pack's workloads: %v", err)
	}
	h.Start()
	id := h.WaitEnrolled(30 * time.Second)
	h.WaitWorkload(60*time.Second, workload, v, home.WorkloadReady)
	return h, id
}

// metric returns the body of GET http://addr/metrics once it answers 200
// and contains want.
func waitMetric(t *testing.T, addr, want string) string {
	t.Helper()
	var body string
	e2etest.Eventually(t, 30*time.Second, "http://"+addr+"/metrics serves "+want, func() (bool, string) {
		code, b := e2etest.Get("http://" + addr + "/metrics")
		body = b
		return code == 200 && strings.Contains(b, want), fmt.Sprintf("%d %.300s", code, b)
	})
	return body
}

// serverWorkload waits until the server shows agent id's workload name
// in state st (and, when restarts >= 0, with that many restarts).
func serverWorkload(t *testing.T, srv *e2etest.Server, id, name, v, st string, restarts int) protocol.Workload {
	t.Helper()
	var got protocol.Workload
	e2etest.Eventually(t, 30*time.Second, fmt.Sprintf("molt agents show: workload %s %s %s", name, v, st), func() (bool, string) {
		ag := srv.Agent(id)
		for _, w := range ag.Workloads {
			if w.Name == name {
				got = w
				return w.State == st && (v == "" || w.Version == v) && (restarts < 0 || w.Restarts == restarts), fmt.Sprintf("%+v", w)
			}
		}
		return false, fmt.Sprintf("no workload %s in %+v", name, ag.Workloads)
	})
	return got
}

// upgradeWait runs molt upgrade --wait for one agent and returns the
// run's deployment once the run ended, checking molt's exit code.
func upgradeWait(t *testing.T, srv *e2etest.Server, id, target string, wantCode int) protocol.Deployment {
	t.Helper()
	r := srv.Molt("upgrade", "--target", target, "--agents", id, "--yes", "--wait", "--json", "--interval", "300ms")
	if r.Code != wantCode {
		t.Fatalf("upgrade to %s: exit %d, want %d\n%s", target, r.Code, wantCode, r)
	}
	var run protocol.Run
	if err := json.Unmarshal([]byte(r.Stdout), &run); err != nil {
		t.Fatalf("molt upgrade --json: %v\n%s", err, r.Stdout)
	}
	rep := srv.RunReport(run.ID)
	if len(rep.Deployments) != 1 {
		t.Fatalf("run %s: %d deployments: %+v", run.ID, len(rep.Deployments), rep.Deployments)
	}
	return rep.Deployments[0]
}

// TestWorkloadInstall: a host installed from a pack that carries the
// example exporter runs it, the host and the server show it ready, and a
// kill -9 of the workload is a crash the supervisor restarts, counted.
func TestWorkloadInstall(t *testing.T) {
	needBuild(t)
	parallel(t)
	start := time.Now()
	addr := e2etest.FreeAddr(t)
	p1 := exporterPack(t, wlV1, wlV1, exporterSpec(addr, "20s"), nil)
	srv := e2etest.StartServer(t, e2etest.ServerOptions{Version: wlV1})
	h, id := installedHost(t, srv, "w-install", wlV1, p1, "exporter")

	body := waitMetric(t, addr, `exporter_build_info{version="`+wlV1+`"`)
	if !strings.Contains(body, `workload_version="`+wlV1+`"`) {
		t.Errorf("the exporter does not see MOLT_WORKLOAD_VERSION %s:\n%s", wlV1, body)
	}

	// On the host.
	st := h.AgentCLI("status")
	if st.Code != 0 || !regexp.MustCompile(`(?m)exporter.*ready`).MatchString(st.Stdout) {
		t.Errorf("molt-agent status shows no ready exporter:\n%s", st)
	}
	js := h.AgentCLI("status", "--json")
	var status struct {
		Workloads []home.WorkloadStatus `json:"workloads"`
	}
	if err := json.Unmarshal([]byte(js.Stdout), &status); err != nil || len(status.Workloads) != 1 ||
		status.Workloads[0].Name != "exporter" || status.Workloads[0].State != home.WorkloadReady || status.Workloads[0].Version != wlV1 {
		t.Errorf("molt-agent status --json: workloads %+v (%v)\n%s", status.Workloads, err, js.Stdout)
	}

	// On the server.
	serverWorkload(t, srv, id, "exporter", wlV1, protocol.WorkloadReady, 0)
	show := srv.OK("agents", "show", id).Stdout
	if !regexp.MustCompile(`(?s)exporter.*\bready\b`).MatchString(show) {
		t.Errorf("molt agents show:\n%s", show)
	}
	list := srv.OK("agents", "list").Stdout
	if !regexp.MustCompile(`(?m)^.*w-install.*(1/1|ready)`).MatchString(list) {
		t.Errorf("molt agents list shows no workload health:\n%s", list)
	}
	t.Logf("molt agents list:\n%s", list)
	var ags []protocol.Agent
	srv.JSON(&ags, "agents", "list")
	if len(ags) != 1 || len(ags[0].Workloads) != 1 || ags[0].Workloads[0].State != protocol.WorkloadReady {
		t.Errorf("molt agents list --json: %+v", ags)
	}

	// kill -9 of the workload: a crash, restarted, counted.
	w, _ := h.Workload("exporter")
	if err := syscall.Kill(w.Process.PID, syscall.SIGKILL); err != nil {
		t.Fatalf("kill -9 %d: %v", w.Process.PID, err)
	}
	var again home.WorkloadStatus
	e2etest.Eventually(t, 30*time.Second, "the exporter restarted after kill -9", func() (bool, string) {
		again, _ = h.Workload("exporter")
		return again.State == home.WorkloadReady && again.Process.PID != w.Process.PID && again.Process.PID > 0, fmt.Sprintf("%+v", again)
	})
	if again.Restarts != 1 || !strings.Contains(again.LastExit, "kill") {
		t.Errorf("after kill -9: restarts %d, last exit %q; want 1 and killed", again.Restarts, again.LastExit)
	}
	waitMetric(t, addr, `exporter_build_info{version="`+wlV1+`"`)
	sw := serverWorkload(t, srv, id, "exporter", wlV1, protocol.WorkloadReady, 1)
	if !strings.Contains(sw.LastExit, "kill") {
		t.Errorf("the server shows last exit %q, want the kill", sw.LastExit)
	}
	show = srv.OK("agents", "show", id).Stdout
	if !regexp.MustCompile(`(?is)exporter.*restarts:?\s+1\b`).MatchString(show) {
		t.Errorf("molt agents show after the restart:\n%s", show)
	}
	t.Logf("molt agents show:\n%s\nmolt-agent status:\n%s", show, h.AgentCLI("status").Stdout)
	t.Logf("TestWorkloadInstall: %s", time.Since(start).Round(time.Millisecond))
}

// TestWorkloadRollback: a release whose workload never becomes ready is
// rolled back by the trial; the server names the workload, the DEPLOY
// report has the workload's steps, the previous workload serves again,
// the failed one's log stays on the host. The workload's data directory
// survives the upgrade, the cleanup after it and the rollback.
func TestWorkloadRollback(t *testing.T) {
	needBuild(t)
	parallel(t)
	start := time.Now()
	addr := e2etest.FreeAddr(t)
	p1 := exporterPack(t, wlV1, wlV1, exporterSpec(addr, "20s"), nil)
	p2 := exporterPack(t, wlV2, wlV2, exporterSpec(addr, "20s"), nil)
	p3 := exporterPack(t, wlV3, wlV3, exporterSpec(addr, "4s", "-fail-ready"), nil)
	srv := e2etest.StartServer(t, e2etest.ServerOptions{Version: wlV2})
	srv.Import(p2)
	srv.Import(p3)
	h, id := installedHost(t, srv, "w-rollback", wlV1, p1, "exporter")
	startsBefore := exporterStarts(t, waitMetric(t, addr, `exporter_starts_total`))

	// The operator's file in the workload's data directory.
	keep := h.DataFile("exporter", "conf/keep.txt")
	os.MkdirAll(filepath.Dir(keep), 0o750)
	const precious = "written at 1.0.0, kept across versions\n"
	if err := os.WriteFile(keep, []byte(precious), 0o640); err != nil {
		t.Fatal(err)
	}
	checkKept := func(when string) {
		t.Helper()
		b, err := os.ReadFile(keep)
		if err != nil || string(b) != precious {
			t.Fatalf("%s: data/exporter/conf/keep.txt: %q, %v", when, b, err)
		}
	}

	// An upgrade: the changed exporter is restarted from 1.1.0, its data
	// directory is the same (its own start counter goes on), and the
	// cleanup ordered after the success leaves it alone.
	d2 := upgradeWait(t, srv, id, wlV2, 0)
	if d2.State != protocol.StateSucceeded {
		t.Fatalf("upgrade to %s: %+v", wlV2, d2)
	}
	h.WaitWorkload(30*time.Second, "exporter", wlV2, home.WorkloadReady)
	waitMetric(t, addr, `exporter_build_info{version="`+wlV2+`"`)
	// The exporter counts its starts in its data directory: a counter
	// that goes on proves the new version found the old one's state.
	if n := exporterStarts(t, waitMetric(t, addr, `exporter_starts_total`)); n <= startsBefore {
		t.Errorf("exporter_starts_total %d after the upgrade, %d before: the data directory was not kept", n, startsBefore)
	}
	e2etest.Eventually(t, 30*time.Second, "cleanup done after the upgrade", func() (bool, string) {
		return hasEvent(t, srv, id, protocol.EvCleanupDone), "no cleanup_done"
	})
	checkKept("after the upgrade and its cleanup")

	// A release whose exporter never answers /metrics: rolled back.
	d3 := upgradeWait(t, srv, id, wlV3, 3)
	if d3.State != protocol.StateRolledBack || d3.Workload != "exporter" || !strings.Contains(d3.Reason, "exporter") {
		t.Fatalf("deployment of the never-ready workload: state %s, workload %q, reason %q", d3.State, d3.Workload, d3.Reason)
	}
	t.Logf("rolled back: %s", d3.Reason)
	checkWorkloadSteps(t, srv, d2.ID, "exporter", "start", "ready")
	checkWorkloadSteps(t, srv, d3.ID, "exporter", "start")
	text := srv.OK("history", "show", d3.ID).Stdout
	if !strings.Contains(text, "exporter") || !strings.Contains(text, "rolled_back") {
		t.Errorf("molt history show %s:\n%s", d3.ID, text)
	}
	t.Logf("molt history show %s:\n%s", d3.ID, text)

	// The previous exporter serves again, from 1.1.0, with its data.
	if h.Current() != wlV2 {
		t.Fatalf("current %q after the rollback, want %s", h.Current(), wlV2)
	}
	h.WaitWorkload(30*time.Second, "exporter", wlV2, home.WorkloadReady)
	waitMetric(t, addr, `exporter_build_info{version="`+wlV2+`"`)
	res, ok := h.Result()
	if !ok || res.Outcome != home.OutcomeRolledBack || res.Workload != "exporter" ||
		!strings.Contains(res.WorkloadLogs, home.WorkloadLogName("exporter", wlV3)) {
		t.Errorf("result.json: outcome %s, workload %q, workload_logs %q", res.Outcome, res.Workload, res.WorkloadLogs)
	}
	// The failed version's output is kept on the host.
	failedLog := filepath.Join(h.Home.LogsDir(), home.WorkloadLogName("exporter", wlV3))
	if b, err := os.ReadFile(failedLog); err != nil || !strings.Contains(string(b), "-fail-ready") {
		t.Errorf("the failed exporter's log %s: %v\n%s", failedLog, err, b)
	}
	checkKept("after the rollback")
	var ag protocol.Agent
	srv.JSON(&ag, "agents", "show", id)
	if ag.Version != wlV2 || ag.LastResult == nil || ag.LastResult.Workload != "exporter" {
		t.Errorf("agent after the rollback: version %s, last result %+v", ag.Version, ag.LastResult)
	}
	t.Logf("TestWorkloadRollback: %s", time.Since(start).Round(time.Millisecond))
}

// agentBusyReason is how the agent names a busy probe that said busy
// (agent.BusyReason).
const agentBusyReason = "workload exporter is busy"

var startsRe = regexp.MustCompile(`(?m)^exporter_starts_total (\d+)$`)

// exporterStarts reads exporter_starts_total from a /metrics body.
func exporterStarts(t *testing.T, body string) int {
	t.Helper()
	m := startsRe.FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no exporter_starts_total in:\n%s", body)
	}
	var n int
	fmt.Sscan(m[1], &n)
	return n
}

// checkWorkloadSteps asserts deployment id's DEPLOY report has the
// trial's steps of workload name ("workload exporter start", "... ready"),
// each with a time.
func checkWorkloadSteps(t *testing.T, srv *e2etest.Server, id, name string, want ...string) {
	t.Helper()
	have := map[string]bool{}
	var all []string
	for _, s := range srv.DeployReport(id).Steps {
		all = append(all, s.Name)
		if strings.HasPrefix(s.Name, "workload "+name+" ") && !s.At.IsZero() {
			have[strings.TrimPrefix(s.Name, "workload "+name+" ")] = true
		}
	}
	for _, w := range want {
		if !have[w] {
			t.Errorf("deployment %s: no step \"workload %s %s\" in the DEPLOY report %q", id, name, w, all)
		}
	}
}

// TestWorkloadBusy: a workload that holds through the file protocol, and
// one whose busy probe says busy, keep a run's deployment waiting for the
// host with the reason; it proceeds once they are done. The exporter is
// the same in every release, so it keeps running through the upgrades.
func TestWorkloadBusy(t *testing.T) {
	needBuild(t)
	parallel(t)
	start := time.Now()
	addr := e2etest.FreeAddr(t)
	// The busy probe: a script of the workload, run in its directory
	// versions/<v>/workloads/exporter, that says busy while a flag file
	// is in the workload's data directory.
	probe := e2etest.WriteScript(t, "busy.sh", `f="${MOLT_DATA_DIR:-../../../../data/exporter}/busy"
if [ -e "$f" ]; then echo "busy: $(cat "$f")"; else echo idle; fi
`)
	s := exporterSpec(addr, "20s")
	s.Busy = &spec.Busy{Probe: spec.Probe{Command: []string{"busy.sh"}}}
	more := map[string]string{"busy.sh": probe}
	p1 := exporterPack(t, wlV1, wlV1, s, more)
	p2 := exporterPack(t, wlV2, wlV1, s, more)
	p3 := exporterPack(t, wlV3, wlV1, s, more)
	srv := e2etest.StartServer(t, e2etest.ServerOptions{Version: wlV2})
	srv.Import(p2)
	srv.Import(p3)
	h, id := installedHost(t, srv, "w-busy", wlV1, p1, "exporter")
	first, _ := h.Workload("exporter")

	// 1. A hold file, written as any workload writes it.
	const reason = "e2e scan in progress"
	holdFile := filepath.Join(h.Home.HoldsDir(), "e2e-scan.json")
	tmp := filepath.Join(h.Home.HoldsDir(), ".e2e-scan.tmp")
	os.MkdirAll(h.Home.HoldsDir(), 0o755)
	hold, _ := json.Marshal(map[string]any{"reason": reason, "expires": time.Now().Add(10 * time.Minute).UTC()})
	if err := os.WriteFile(tmp, hold, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, holdFile); err != nil {
		t.Fatal(err)
	}
	waitHeld(t, srv, h, id, wlV2, reason, func() { os.Remove(holdFile) })
	if w, _ := h.Workload("exporter"); w.Process.PID != first.Process.PID || w.Version != wlV1 {
		t.Errorf("the unchanged exporter was restarted by the upgrade: %+v, before %+v", w, first)
	}

	// 2. The busy probe.
	flag := h.DataFile("exporter", "busy")
	if err := os.WriteFile(flag, []byte("e2e nightly job\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	waitHeld(t, srv, h, id, wlV3, agentBusyReason, func() { os.Remove(flag) })

	// Two upgrades later the exporter still runs from 1.0.0: the cleanup
	// after each success kept the version a running workload uses.
	e2etest.Eventually(t, 30*time.Second, "the cleanups after both upgrades done", func() (bool, string) {
		n := len(e2etest.Filter(e2etest.OfAgent(srv.Events(), id), func(e protocol.Event) bool { return e.ID == protocol.EvCleanupDone }))
		return n == 2, fmt.Sprintf("%d cleanup_done", n)
	})
	if !h.Home.IsValid(wlV1) {
		t.Errorf("the cleanup removed versions/%s, which the running exporter uses (versions: %v)", wlV1, h.Versions())
	}
	if w, _ := h.Workload("exporter"); w.Process.PID != first.Process.PID || w.Version != wlV1 || w.State != home.WorkloadReady {
		t.Errorf("after two upgrades and their cleanups: %+v, at the start %+v", w, first)
	}
	waitMetric(t, addr, `exporter_build_info{version="`+wlV1+`"`)
	t.Logf("TestWorkloadBusy: %s", time.Since(start).Round(time.Millisecond))
}

// waitHeld starts a run of agent id to target while the host is busy
// (a hold file, or a busy probe saying busy: the agent asks the probes
// while no order runs too), checks that its deployment waits as
// waiting_for_host with a reason containing want (the server does not
// send the order) and that the host stays where it is, then calls release
// and waits for the run to end OK.
func waitHeld(t *testing.T, srv *e2etest.Server, h *e2etest.Host, id, target, want string, release func()) {
	t.Helper()
	from := h.Current()
	// The agent reports the hold with its next check-in.
	e2etest.Eventually(t, 60*time.Second, "the server sees the host held", func() (bool, string) {
		ag := srv.Agent(id)
		return strings.Contains(strings.Join(ag.Holds, ", "), want), fmt.Sprintf("busy %v holds %v", ag.Busy, ag.Holds)
	})
	run := srv.Upgrade("--target", target, "--agents", id)
	waiting := func() (bool, string) {
		rep := srv.RunReport(run.ID)
		if len(rep.Deployments) != 1 {
			return false, fmt.Sprintf("%+v", rep.Deployments)
		}
		d := rep.Deployments[0]
		return d.State == protocol.StateWaitingForHost && strings.Contains(d.Reason, want), fmt.Sprintf("%s %q", d.State, d.Reason)
	}
	var seen string
	e2etest.Eventually(t, 60*time.Second, "the deployment waits for the host: "+want, func() (bool, string) {
		ok, s := waiting()
		seen = s
		return ok, s
	})
	t.Logf("waiting for the host: %s", seen)
	// It keeps waiting while the host is busy.
	time.Sleep(5 * time.Second)
	if ok, s := waiting(); !ok || h.Current() != from {
		t.Fatalf("while busy: deployment %s, host at %s (was %s)", s, h.Current(), from)
	}
	release()
	end := srv.WaitRun(run.ID, 90*time.Second)
	if end.Status != protocol.RunEndedOK || h.Current() != target {
		t.Fatalf("after the release: run %s, host at %s", end.Status, h.Current())
	}
}

// node_exporter, a program nobody here wrote, at the versions of issue 8's
// test 7.
const (
	nodeExporterModule = "github.com/prometheus/node_exporter"
	nodeExporterOld    = "v1.11.1"
	nodeExporterNew    = "v1.12.1"
)

// nodeExporter builds node_exporter at version from the Go module proxy
// (cached across runs). It skips the test when the proxy cannot be
// reached, except in CI, where that fails it.
func nodeExporter(t *testing.T, version string) string {
	t.Helper()
	// Stamped as Prometheus' release build stamps it, so that
	// node_exporter_build_info says which version serves.
	b, err := e2etest.GoInstall(nodeExporterModule, version,
		"-X github.com/prometheus/common/version.Version="+strings.TrimPrefix(version, "v"))
	switch {
	case errors.Is(err, e2etest.ErrNoModuleProxy):
		testtool.Missing(t, "node_exporter test skipped: %v", err)
	case err != nil:
		t.Fatalf("build node_exporter %s: %v", version, err)
	}
	how := "built"
	if b.Cached {
		how = "cached"
	}
	t.Logf("node_exporter %s: %s in %s (%s)", version, how, b.Took.Round(time.Millisecond), b.Path)
	return b.Path
}

// TestWorkloadNodeExporter is issue 8's test 7: Prometheus node_exporter,
// built from the module proxy at two versions, packed with molt, installed
// on an enrolled host, upgraded by a run, and a third release that starts
// it with a bad flag is rolled back automatically.
func TestWorkloadNodeExporter(t *testing.T) {
	if testing.Short() {
		t.Skip("node_exporter test skipped with -short: it builds node_exporter from the Go module proxy and runs real processes")
	}
	needBuild(t)
	parallel(t)
	start := time.Now()
	oldBin := nodeExporter(t, nodeExporterOld)
	newBin := nodeExporter(t, nodeExporterNew)
	addr := e2etest.FreeAddr(t)
	neSpec := func(extra ...string) spec.Spec {
		return spec.Spec{
			Name:    "node-exporter",
			Command: "node_exporter",
			Args: append([]string{"--web.listen-address=" + addr, "--collector.disable-defaults",
				"--collector.loadavg", "--collector.time"}, extra...),
			Ready:   spec.Ready{Probe: spec.Probe{HTTP: "http://" + addr + "/metrics"}, Within: dur("15s"), Interval: dur("100ms")},
			Live:    &spec.Live{Probe: spec.Probe{HTTP: "http://" + addr + "/metrics"}, Interval: dur("2s"), Failures: 3},
			Stop:    spec.Stop{Grace: dur("5s")},
			Restart: spec.Restart{BackoffMin: dur("200ms")},
		}
	}
	pk := func(v, bin string, s spec.Spec) string {
		return e2etest.Pack(t, e2etest.PackOptions{Version: v, Workloads: []e2etest.Workload{{Spec: s, Files: map[string]string{"node_exporter": bin}}}})
	}
	p1 := pk(wlV1, oldBin, neSpec())
	p2 := pk(wlV2, newBin, neSpec())
	p3 := pk(wlV3, newBin, neSpec("--no-such-flag"))
	srv := e2etest.StartServer(t, e2etest.ServerOptions{Version: wlV2})
	srv.Import(p2)
	srv.Import(p3)
	h, id := installedHost(t, srv, "w-node", wlV1, p1, "node-exporter")
	waitMetric(t, addr, `node_exporter_build_info{`)
	waitMetric(t, addr, `version="`+strings.TrimPrefix(nodeExporterOld, "v")+`"`)
	serverWorkload(t, srv, id, "node-exporter", wlV1, protocol.WorkloadReady, -1)

	// Upgraded by a run: node_exporter 1.12.1 serves.
	if d := upgradeWait(t, srv, id, wlV2, 0); d.State != protocol.StateSucceeded {
		t.Fatalf("upgrade to node_exporter %s: %+v", nodeExporterNew, d)
	}
	h.WaitWorkload(30*time.Second, "node-exporter", wlV2, home.WorkloadReady)
	newMetric := `version="` + strings.TrimPrefix(nodeExporterNew, "v") + `"`
	waitMetric(t, addr, newMetric)
	serverWorkload(t, srv, id, "node-exporter", wlV2, protocol.WorkloadReady, -1)

	// A bad flag: node_exporter exits at once; the trial rolls it back.
	d := upgradeWait(t, srv, id, wlV3, 3)
	if d.State != protocol.StateRolledBack || d.Workload != "node-exporter" || !strings.Contains(d.Reason, "node-exporter") {
		t.Fatalf("deployment with --no-such-flag: state %s, workload %q, reason %q", d.State, d.Workload, d.Reason)
	}
	t.Logf("rolled back: %s", d.Reason)
	if b, err := os.ReadFile(filepath.Join(h.Home.LogsDir(), home.WorkloadLogName("node-exporter", wlV3))); err != nil || !strings.Contains(string(b), "no-such-flag") {
		t.Errorf("the failed node_exporter's log: %v\n%s", err, b)
	}
	h.WaitWorkload(30*time.Second, "node-exporter", wlV2, home.WorkloadReady)
	waitMetric(t, addr, newMetric)
	serverWorkload(t, srv, id, "node-exporter", wlV2, protocol.WorkloadReady, -1)
	t.Logf("molt agents show:\n%s", srv.OK("agents", "show", id).Stdout)
	t.Logf("TestWorkloadNodeExporter: %s", time.Since(start).Round(time.Millisecond))
}
