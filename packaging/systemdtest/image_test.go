package systemdtest

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/moltfleet/molt/internal/e2etest"
	"github.com/moltfleet/molt/internal/nspawn"
	"github.com/moltfleet/molt/internal/release"
)

// An image built as image builders do, the package installed into the
// root with its agent.yaml before it ever boots (systemd installed, not
// running; nspawn.Machine.Build): the
// postinst lays out the home and enables the unit without starting
// anything, and the image's first boot starts the service from
// multi-user.target; the agent enrolls.
func TestAgentPackageInImageStartsAtBoot(t *testing.T) {
	if testing.Short() {
		t.Skip("boots a container (-short)")
	}
	need(t, nspawn.Systemd)
	srv := e2etest.StartServer(t, e2etest.ServerOptions{Version: vA})
	debA := deb(t, vA, release.AgentPackage)
	m := mount(t, nspawn.Systemd)
	m.agentConfig(srv)
	m.dumpHomeLogs()
	m.copyIn(debA, "/root/molt-agent.deb", 0o644)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := m.Build(ctx, "dpkg", "-i", "/root/molt-agent.deb")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "service "+unit+" enabled; it starts when the host boots with systemd") {
		t.Fatalf("dpkg -i in the image build:\n%s", out)
	}
	if _, err := m.Build(ctx, "test", "-L", "/etc/systemd/system/multi-user.target.wants/"+unit); err != nil {
		t.Fatalf("the unit is not enabled in the image: %v", err)
	}

	m.boot()
	h := &agentHost{machine: m, srv: srv}
	h.waitReady(1, 60*time.Second)
	h.id = h.waitEnrolled()
	if st := h.show(unit, "ActiveState") + "/" + h.show(unit, "SubState"); st != "active/running" {
		t.Fatalf("%s after the first boot: %s", unit, st)
	}
	h.one("molt-supervisor")
	h.one("molt-agent")
}
