package systemdtest

import (
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/moltfleet/molt/internal/e2etest"
	"github.com/moltfleet/molt/internal/nspawn"
)

// The agent's package on a host that boots sysvinit with OpenRC (no
// systemd): the postinst has molt-supervisor write its own OpenRC script
// and start it; supervise-daemon restarts a supervisor killed with
// kill -9, with one agent afterwards; rc-service stop stops the agent;
// removing the package removes the service.
func TestAgentPackageUnderOpenRC(t *testing.T) {
	if testing.Short() {
		t.Skip("boots a container and installs the package (-short)")
	}
	need(t, nspawn.OpenRC)
	srv := e2etest.StartServer(t, e2etest.ServerOptions{Version: vA})
	h := installAgent(t, srv, nspawn.OpenRC)
	const svc = "molt-supervisor"
	script := h.run("cat", "/etc/init.d/"+svc)
	if !strings.Contains(script, "supervisor=supervise-daemon") {
		t.Fatalf("/etc/init.d/%s is not molt's OpenRC script:\n%s", svc, script)
	}
	if out := h.run("rc-status", "default"); !strings.Contains(out, svc) {
		t.Errorf("%s not in the default runlevel:\n%s", svc, out)
	}
	sup := h.one("molt-supervisor")
	h.one("molt-agent")

	if err := syscall.Kill(sup.PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	took := waitFor(t, 10*time.Second, "a new supervisor", func() (bool, string) {
		for _, p := range h.procs("molt-supervisor") {
			if p.NSPID != sup.NSPID {
				return true, ""
			}
		}
		return false, pids(h.procs("molt-supervisor", "molt-agent", "supervise-daemon"))
	})
	ready := took + h.waitReady(2, 30*time.Second)
	t.Logf("kill -9 of the supervisor: a new one after %s, its agent ready after %s", took.Round(time.Millisecond), ready.Round(time.Millisecond))
	if took > 3*time.Second {
		t.Errorf("supervise-daemon restarted the supervisor %s after kill -9, want about 1 s (respawn_delay=1)", took)
	}
	time.Sleep(time.Second)
	h.one("molt-supervisor")
	h.one("molt-agent")

	start := time.Now()
	out := h.run("rc-service", svc, "stop")
	took = time.Since(start)
	t.Logf("rc-service stop took %s", took.Round(time.Millisecond))
	if took > stopGrace {
		t.Errorf("rc-service stop took %s, more than the stop grace %s:\n%s", took, stopGrace, out)
	}
	h.noneLeft("after rc-service stop")

	h.run("rc-service", svc, "start")
	h.waitReady(h.count(supLog, `"agent ready"`)+1, 60*time.Second)
	out = h.run("dpkg", "--purge", "molt-agent")
	h.noneLeft("after dpkg --purge:\n" + out)
	if _, ok := h.try("test", "-e", "/etc/init.d/"+svc); ok {
		t.Errorf("/etc/init.d/%s is left after dpkg --purge:\n%s", svc, out)
	}
	if _, ok := h.try("test", "-f", "/opt/molt/state/identity.json"); !ok {
		t.Errorf("purge removed the home's identity; it is kept")
	}
}
