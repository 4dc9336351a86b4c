package systemdtest

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/moltfleet/molt/internal/e2etest"
	"github.com/moltfleet/molt/internal/nspawn"
	"github.com/moltfleet/molt/internal/release"
	"github.com/moltfleet/molt/protocol"
	"github.com/moltfleet/molt/workload/spec"
)

const (
	unit   = "molt-supervisor.service"
	supLog = "/opt/molt/logs/supervisor.log"
	// stopGrace is the agent.yaml's supervisor.stop_grace.
	stopGrace = 5 * time.Second
)

// agentHost is a booted container with the agent's package of vA
// installed and its agent enrolled with srv.
type agentHost struct {
	*machine
	srv *e2etest.Server
	id  string
}

// exporter is examples/exporter as a workload listening on addr.
func exporter(t *testing.T, addr string) e2etest.Workload {
	d := func(s string) spec.Duration { v, _ := time.ParseDuration(s); return spec.Duration(v) }
	return e2etest.Workload{
		Spec: spec.Spec{
			Name: "exporter", Command: "exporter", Args: []string{"-listen", addr, "-scan-every", "0"},
			Ready:   spec.Ready{Probe: spec.Probe{HTTP: "http://" + addr + "/metrics"}, Within: d("30s"), Interval: d("100ms")},
			Stop:    spec.Stop{Grace: d("3s")},
			Restart: spec.Restart{BackoffMin: d("200ms")},
		},
		Files: map[string]string{"exporter": e2etest.Exporter(t, vB)},
	}
}

// installAgent boots s's container, puts an agent.yaml for srv at
// /etc/molt/agent.yaml and installs the agent's package of vA: its
// postinst lays out /opt/molt and starts the service (systemd's unit, or
// the definition molt-supervisor install writes for another init). It
// returns once the agent said ready and enrolled.
func installAgent(t *testing.T, srv *e2etest.Server, s nspawn.Spec) *agentHost {
	t.Helper()
	debA := deb(t, vA, release.AgentPackage)
	m := boot(t, s)
	if s.Booted != nil {
		// Without systemd nothing makes a machine id (D-Bus would, in
		// /var/lib/dbus/machine-id, but the minimal root has none), and
		// the server refuses to enroll an agent without a fingerprint.
		// A real host has one: write it as dbus-uuidgen would.
		var id [16]byte
		_, _ = rand.Read(id[:])
		m.write("/etc/machine-id", 0o444, []byte(hex.EncodeToString(id[:])+"\n"))
	}
	m.agentConfig(srv)
	m.dumpHomeLogs()
	out := m.install(debA)
	h := &agentHost{machine: m, srv: srv}
	if s.Booted == nil {
		if !strings.Contains(out, "service "+unit+" enabled and started") {
			t.Fatalf("dpkg -i: the postinst did not start the service:\n%s", out)
		}
		if st := m.show(unit, "UnitFileState"); st != "enabled" {
			t.Fatalf("%s is %s, want enabled", unit, st)
		}
	} else {
		t.Logf("dpkg -i:\n%s", out)
	}
	took := h.waitReady(1, 60*time.Second)
	h.id = h.waitEnrolled()
	t.Logf("installed %s: agent ready %s after dpkg -i returned, enrolled as %s", debA, took.Round(time.Millisecond), h.id)
	return h
}

// agentConfig puts /etc/molt/agent.yaml for srv, with the CA and the
// release key it names, into the container.
func (m *machine) agentConfig(srv *e2etest.Server) {
	m.t.Helper()
	pub, _ := e2etest.Key(m.t)
	m.copyIn(srv.CAFile(), "/etc/molt/ca.pem", 0o644)
	m.copyIn(pub, "/etc/molt/release.pub", 0o644)
	m.write("/etc/molt/agent.yaml", 0o600, []byte(fmt.Sprintf(
		"server: %s\nca_file: /etc/molt/ca.pem\ntrusted_keys: [/etc/molt/release.pub]\nenrollment_token: %q\nname: %s\n"+
			"supervisor: {ready_timeout: 30s, watch: 2s, crash_budget: 1, stop_grace: %s}\n",
		srv.URL(), srv.EnrollToken(1), m.Name, stopGrace)))
}

// dumpHomeLogs prints the ends of the home's logs if the test fails.
func (m *machine) dumpHomeLogs() {
	m.t.Cleanup(func() {
		if m.t.Failed() {
			logs, _ := filepath.Glob(m.Path("/opt/molt/logs/*.log"))
			for _, l := range logs {
				m.t.Logf("--- %s (last lines)\n%s", l, e2etest.Tail(l, 25))
			}
		}
	})
}

// waitReady waits until the supervisor has logged n "agent ready" lines.
func (h *agentHost) waitReady(n int, d time.Duration) time.Duration {
	h.t.Helper()
	return waitFor(h.t, d, fmt.Sprintf("agent ready (#%d) in %s", n, supLog), func() (bool, string) {
		c := h.count(supLog, `"agent ready"`)
		return c >= n, fmt.Sprintf("%d ready lines; processes: %s", c, pids(h.procs("molt-supervisor", "molt-agent")))
	})
}

func (h *agentHost) waitEnrolled() string {
	h.t.Helper()
	var id string
	waitFor(h.t, 60*time.Second, h.Name+" enrolled and checked in", func() (bool, string) {
		for _, a := range h.srv.Agents() {
			if a.Name == h.Name && a.Status == "online" {
				id = a.ID
				return true, ""
			}
		}
		return false, fmt.Sprintf("%d agents", len(h.srv.Agents()))
	})
	return id
}

// one returns the only process named comm, failing when there are none
// or several.
func (h *agentHost) one(comm string) nspawn.Proc {
	h.t.Helper()
	ps := h.procs(comm)
	if len(ps) != 1 {
		h.t.Fatalf("%d %s processes, want 1: %s", len(ps), comm, pids(ps))
	}
	return ps[0]
}

// noneLeft fails unless no process of the agent side is left.
func (h *agentHost) noneLeft(what string) {
	h.t.Helper()
	if ps := h.procs("molt-supervisor", "molt-agent", "exporter"); len(ps) > 0 {
		h.t.Fatalf("%s: processes left: %s", what, pids(ps))
	}
}

// The agent's package on a host that boots systemd, from installation to
// purge: the service starts and the agent enrolls; kill -9 of the
// supervisor is restarted by systemd with one agent afterwards; a run from
// the host's server upgrades the agent and the supervisor itself, the
// unit healthy afterwards; systemctl stop stops the agent and its
// workload within the grace; removing the package stops and removes the
// service; purging keeps the home.
func TestAgentPackageUnderSystemd(t *testing.T) {
	if testing.Short() {
		t.Skip("boots a container, installs the package and upgrades it (-short)")
	}
	need(t, nspawn.Systemd)
	wlAddr := e2etest.FreeAddr(t)
	srv := e2etest.StartServer(t, e2etest.ServerOptions{Version: vB})
	srv.Import(e2etest.Pack(t, e2etest.PackOptions{Version: vB, Workloads: []e2etest.Workload{exporter(t, wlAddr)}}))
	h := installAgent(t, srv, nspawn.Systemd)
	sup := h.one("molt-supervisor")
	if main := h.show(unit, "MainPID"); main != fmt.Sprint(sup.NSPID) {
		t.Fatalf("MainPID %s, but the supervisor is %d", main, sup.NSPID)
	}
	h.one("molt-agent")

	// kill -9: systemd restarts the supervisor after RestartSec (1 s);
	// KillMode=mixed kills what was left of the unit (the old agent), so
	// the new supervisor starts the one agent.
	if err := syscall.Kill(sup.PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	var next nspawn.Proc
	took := waitFor(t, 10*time.Second, "a new supervisor", func() (bool, string) {
		for _, p := range h.procs("molt-supervisor") {
			if p.NSPID != sup.NSPID {
				next = p
				return true, ""
			}
		}
		return false, pids(h.procs("molt-supervisor", "molt-agent"))
	})
	ready := took + h.waitReady(2, 30*time.Second)
	t.Logf("kill -9 of the supervisor: a new one after %s, its agent ready after %s", took.Round(time.Millisecond), ready.Round(time.Millisecond))
	if took > 3*time.Second {
		t.Errorf("systemd restarted the supervisor %s after kill -9, want about 1 s (RestartSec=1s)", took)
	}
	if n := h.show(unit, "NRestarts"); n != "1" {
		t.Errorf("NRestarts %s, want 1", n)
	}
	// One agent now and a moment later: the old one is not left behind.
	h.one("molt-agent")
	time.Sleep(time.Second)
	h.one("molt-agent")
	if h.one("molt-supervisor").NSPID != next.NSPID {
		t.Fatalf("the supervisor changed again")
	}

	// An upgrade from the host's server, the supervisor's self-upgrade
	// included (an exec in place: systemd sees the same main process).
	run := srv.Upgrade("--target", vB, "--agents", h.id)
	if got := srv.WaitRun(run.ID, 3*time.Minute); got.Status != protocol.RunEndedOK {
		t.Fatalf("run %s: %s, want %s: %+v", run.ID, got.Status, protocol.RunEndedOK, srv.RunReport(run.ID))
	}
	waitFor(t, 60*time.Second, "the supervisor upgraded itself to "+vB, func() (bool, string) {
		out, _ := h.try("/opt/molt/bin/molt-supervisor", "version")
		a := srv.Agent(h.id)
		return strings.Contains(out, vB) && a.Version == vB && a.SupervisorVersion == vB,
			fmt.Sprintf("bin/molt-supervisor: %s; server: agent %s, supervisor %s", strings.TrimSpace(out), a.Version, a.SupervisorVersion)
	})
	waitFor(t, 30*time.Second, "the exporter workload answers", func() (bool, string) {
		code, _ := e2etest.Get("http://" + wlAddr + "/metrics")
		return code == 200, fmt.Sprint(code)
	})
	if out, ok := h.try("systemctl", "status", unit); !ok {
		t.Fatalf("systemctl status after the upgrade:\n%s", out)
	}
	if st := h.show(unit, "ActiveState") + "/" + h.show(unit, "SubState"); st != "active/running" {
		t.Fatalf("%s is %s after the upgrade, want active/running", unit, st)
	}
	// molt's own CLI sees the package's unit (docs/packaging.md).
	if out, ok := h.try("/opt/molt/bin/molt-supervisor", "status", "--home", "/opt/molt"); !ok || !strings.Contains(out, "running") {
		t.Errorf("molt-supervisor status on the package's unit:\n%s", out)
	}
	if main := h.show(unit, "MainPID"); main != fmt.Sprint(h.one("molt-supervisor").NSPID) {
		t.Fatalf("MainPID %s is not the supervisor after its self-upgrade: %s", main, pids(h.procs("molt-supervisor")))
	}
	t.Logf("after the upgrade: NRestarts %s, supervisor pid %d (was %d)", h.show(unit, "NRestarts"), h.one("molt-supervisor").NSPID, next.NSPID)
	h.one("molt-agent")
	h.one("exporter")

	// The package's own upgrade (1.0.0 -> 1.1.0 with dpkg) on a host molt
	// already moved: it replaces /usr/lib/molt and the unit file, reloads
	// systemd, and does not touch the running service or the home.
	active := h.run("cat", "/opt/molt/state/active.json")
	mainPID, restarts := h.show(unit, "MainPID"), h.show(unit, "NRestarts")
	out := h.install(deb(t, vB, release.AgentPackage))
	if !strings.Contains(out, "never enables, starts or restarts the supervisor") {
		t.Fatalf("dpkg -i of the next package:\n%s", out)
	}
	if got := h.show(unit, "MainPID") + " " + h.show(unit, "NRestarts"); got != mainPID+" "+restarts {
		t.Fatalf("the package upgrade restarted the service: MainPID NRestarts %s, was %s %s", got, mainPID, restarts)
	}
	if nr := h.show(unit, "NeedDaemonReload"); nr != "no" {
		t.Errorf("NeedDaemonReload=%s after the package upgrade: the postinst did not reload systemd", nr)
	}
	if got := h.run("cat", "/opt/molt/state/active.json"); got != active {
		t.Errorf("the package upgrade changed active.json:\n%s\nwas:\n%s", got, active)
	}
	h.one("molt-agent")
	h.one("exporter")

	// systemctl stop: the supervisor stops its workload and agent, then
	// itself, within the grace; systemd needs no SIGKILL.
	start := time.Now()
	h.run("systemctl", "stop", unit)
	took = time.Since(start)
	t.Logf("systemctl stop took %s", took.Round(time.Millisecond))
	if took > stopGrace {
		t.Errorf("systemctl stop took %s, more than the stop grace %s", took, stopGrace)
	}
	h.noneLeft("after systemctl stop")
	if r := h.show(unit, "Result"); r != "success" {
		t.Errorf("Result=%s after systemctl stop, want success (not a timeout or a kill)", r)
	}

	// Removal: the prerm disables and stops the running service; the
	// unit is gone; purge keeps the home.
	h.run("systemctl", "start", unit)
	h.waitReady(h.count(supLog, `"agent ready"`)+1, 60*time.Second)
	out = h.run("dpkg", "--remove", "molt-agent")
	h.noneLeft("after dpkg --remove:\n" + out)
	if st := h.show(unit, "LoadState"); st != "not-found" {
		t.Errorf("%s after dpkg --remove: LoadState=%s, want not-found", unit, st)
	}
	if out, ok := h.try("systemctl", "is-enabled", unit); ok {
		t.Errorf("%s still enabled after dpkg --remove: %s", unit, out)
	}
	out = h.run("dpkg", "--purge", "molt-agent")
	if _, ok := h.try("dpkg", "-s", "molt-agent"); ok {
		t.Errorf("molt-agent still known to dpkg after --purge:\n%s", out)
	}
	if _, ok := h.try("test", "-f", "/opt/molt/state/identity.json"); !ok {
		t.Errorf("purge removed the home's identity; it is kept")
	}
	if ps := h.procs("molt-supervisor", "molt-agent", "exporter"); len(ps) > 0 {
		t.Errorf("processes after purge: %s", pids(ps))
	}
}
