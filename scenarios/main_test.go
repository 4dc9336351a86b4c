//go:build unix

package scenarios

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/moltfleet/molt/internal/e2etest"
	"github.com/moltfleet/molt/platform"
	"github.com/moltfleet/molt/protocol"
)

// The versions the scenarios move between: v1 is the "golden image", v2
// the release, v3 a later release (cleanup), bad a release whose agent
// crashes at start (testdata/testagent), to be rolled back.
const (
	v1  = "1.0.0"
	v2  = "1.1.0"
	v3  = "1.2.0"
	bad = "1.9.0"
)

func TestMain(m *testing.M) {
	flag.Parse()
	// The scenarios mostly wait for check-ins and trials, not for the CPU:
	// unless told otherwise, run four at once rather than one per core,
	// the longest first.
	e2etest.LongestFirst(4, "TestScenarioRolloutControl")
	os.Exit(e2etest.Main(m))
}

// family is this machine's OS family, the key of activation-upgrade.*.
var family = platform.OSFamily()

// needReal skips under -short: every scenario builds and runs real
// binaries.
func needReal(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("scenario: builds and runs real binaries (skipped with -short)")
	}
	e2etest.Parallel(t)
}

// fleet is a server with the releases a scenario needs.
type fleet struct {
	t   *testing.T
	srv *e2etest.Server
	tok string
}

func newFleet(t *testing.T, settings map[string]string, releases ...e2etest.PackOptions) *fleet {
	t.Helper()
	srv := e2etest.StartServer(t, e2etest.ServerOptions{Version: v2, Settings: settings})
	for _, r := range releases {
		srv.Import(e2etest.Pack(t, r))
	}
	return &fleet{t: t, srv: srv, tok: srv.EnrollToken(50)}
}

// host makes a supervised home at version and starts it.
func (f *fleet) host(name, version string, mod ...func(*e2etest.HostOptions)) *e2etest.Host {
	f.t.Helper()
	o := e2etest.HostOptions{Name: name, Version: version, Supervised: true, EnrollToken: f.tok}
	for _, m := range mod {
		m(&o)
	}
	h := f.srv.NewHost(o)
	h.Start()
	return h
}

// waitAgent waits until the server shows the agent with version v (and,
// for a supervised agent, its supervisor at v too) and online.
func (f *fleet) waitAgent(id, v string, supervised bool) protocol.Agent {
	f.t.Helper()
	var a protocol.Agent
	e2etest.Eventually(f.t, 90*time.Second, "agent "+id+" at "+v, func() (bool, string) {
		a = f.srv.Agent(id)
		ok := a.Version == v && a.Status == protocol.AgentOnline && (!supervised || a.SupervisorVersion == v)
		return ok, fmt.Sprintf("%s %s supervisor %s", a.Version, a.Status, a.SupervisorVersion)
	})
	return a
}

// upgradeWait runs `molt upgrade ARGS --yes --wait --json` and returns its
// exit code and the final run it printed.
func (f *fleet) upgradeWait(args ...string) (int, protocol.Run) {
	f.t.Helper()
	r := f.srv.Molt(append(append([]string{"upgrade"}, args...), "--yes", "--wait", "--json", "--interval", "300ms")...)
	var run protocol.Run
	if err := json.Unmarshal([]byte(r.Stdout), &run); err != nil || run.ID == "" {
		f.t.Fatalf("molt upgrade --wait: no run in its output (%v)\n%s", err, r)
	}
	return r.Code, run
}
