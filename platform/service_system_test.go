//go:build linux

package platform_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/moltfleet/molt/home"
	"github.com/moltfleet/molt/internal/e2etest/gobuild"
	"github.com/moltfleet/molt/platform"
)

// These tests install real services into the host's service manager (SysV
// init scripts on the CI machine) with a real molt-supervisor and a test
// agent, so they need root.

type serviceBins struct{ supervisor, agent string }

func buildServiceBins(t *testing.T) serviceBins {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("installing an OS service needs root")
	}
	if platform.ServiceSystem() == "" {
		t.Skip("no service manager on this host")
	}
	dir := t.TempDir()
	b := serviceBins{supervisor: filepath.Join(dir, "molt-supervisor"), agent: filepath.Join(dir, "molt-agent")}
	for _, j := range []struct{ out, ldflags, pkg string }{
		{b.supervisor, "-X github.com/moltfleet/molt/internal/buildinfo.Version=1.0.0", "github.com/moltfleet/molt/cmd/molt-supervisor"},
		{b.agent, "-X github.com/moltfleet/molt/internal/buildinfo.Version=1.0.0 -X main.mode=healthy", "github.com/moltfleet/molt/testdata/testagent"},
	} {
		gobuild.Must(t, j.out, gobuild.Options{Pkgs: []string{j.pkg}, LDFlags: j.ldflags})
	}
	return b
}

// newServiceHome makes a home that runs the test agent 1.0.0. bin/ stays
// empty: install copies the supervisor there.
func newServiceHome(t *testing.T, b serviceBins) home.Home {
	t.Helper()
	h := home.New(t.TempDir())
	if err := os.MkdirAll(h.VersionDir("1.0.0"), 0o755); err != nil {
		t.Fatal(err)
	}
	agent, err := os.ReadFile(b.agent)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(h.AgentBinary("1.0.0"), agent, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(h.ValidPath("1.0.0"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := h.WriteActive(home.Active{Current: "1.0.0"}); err != nil {
		t.Fatal(err)
	}
	return h
}

// cli runs the supervisor's command line and returns its output and exit code.
func (b serviceBins) cli(t *testing.T, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(b.supervisor, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	done := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return out.String(), ee.ExitCode()
		}
		if err != nil {
			t.Fatalf("molt-supervisor %s: %v", strings.Join(args, " "), err)
		}
		return out.String(), 0
	case <-time.After(90 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatalf("molt-supervisor %s: still running after 90s; output:\n%s", strings.Join(args, " "), out.String())
		return "", 0
	}
}

// mustCLI runs the command line and checks exit code and output.
func (b serviceBins) mustCLI(t *testing.T, wantCode int, wantOut string, args ...string) string {
	t.Helper()
	out, code := b.cli(t, args...)
	if code != wantCode || !strings.Contains(out, wantOut) {
		t.Fatalf("molt-supervisor %s: exit %d, output %q; want exit %d and output containing %q",
			strings.Join(args, " "), code, out, wantCode, wantOut)
	}
	return out
}

type agentEvent struct {
	pid  int
	what string
}

func agentEvents(h home.Home) []agentEvent {
	b, _ := os.ReadFile(filepath.Join(h.Dir, "testagent.events"))
	var evs []agentEvent
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) != 4 {
			continue
		}
		pid, _ := strconv.Atoi(f[1])
		evs = append(evs, agentEvent{pid, f[3]})
	}
	return evs
}

// alive reports whether pid runs (a zombie does not).
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i > 0 && len(s) > i+2 && s[i+2] != 'Z'
}

// runningAgents are the agents of h that said ready and still run.
func runningAgents(h home.Home) []int {
	var pids []int
	seen := map[int]bool{}
	for _, e := range agentEvents(h) {
		if e.what == "ready" && !seen[e.pid] && alive(e.pid) {
			seen[e.pid] = true
			pids = append(pids, e.pid)
		}
	}
	return pids
}

// supervisors are the running processes of h's bin/molt-supervisor.
func supervisors(h home.Home) []int {
	var pids []int
	dirs, _ := os.ReadDir("/proc")
	for _, d := range dirs {
		pid, err := strconv.Atoi(d.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", d.Name(), "cmdline"))
		if err != nil {
			continue
		}
		argv := strings.Split(string(b), "\x00")
		if argv[0] == h.SupervisorBinary() && len(argv) > 1 && argv[1] == "run" && alive(pid) {
			pids = append(pids, pid)
		}
	}
	return pids
}

func waitFor(t *testing.T, what string, d time.Duration, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, d)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// cleanupService removes the service of h whatever the test left behind.
func cleanupService(t *testing.T, b serviceBins, h home.Home, args ...string) {
	t.Cleanup(func() {
		out, code := b.cli(t, append([]string{"uninstall", "--home", h.Dir}, args...)...)
		if code != 0 {
			t.Logf("cleanup: uninstall: exit %d: %s", code, out)
		}
		for _, pid := range append(supervisors(h), runningAgents(h)...) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	})
}

func TestServiceLifecycle(t *testing.T) {
	b := buildServiceBins(t)
	h := newServiceHome(t, b)
	name := fmt.Sprintf("molt-test-%d", os.Getpid())
	flags := []string{"--home", h.Dir, "--name", name}
	cleanupService(t, b, h, "--name", name)
	system := platform.ServiceSystem()

	// install: copies the supervisor into bin/ and writes our definition.
	b.mustCLI(t, 0, "installed service "+name, append([]string{"install"}, flags...)...)
	if _, err := os.Stat(h.SupervisorBinary()); err != nil {
		t.Fatalf("install did not place the supervisor: %v", err)
	}
	want, err := platform.RenderService(system, platform.ServiceSpec{
		Name: name, Home: h.Dir, Exe: h.SupervisorBinary(), StopGrace: platform.DefaultStopGrace,
	})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := os.ReadFile(want.Path); err != nil || string(got) != want.Text {
		t.Fatalf("installed definition %s differs from the rendered one (err %v)", want.Path, err)
	}
	b.mustCLI(t, 0, "already installed", append([]string{"install"}, flags...)...)
	b.mustCLI(t, 3, "installed, stopped", append([]string{"status"}, flags...)...)

	// Another home under the same name is refused.
	other := newServiceHome(t, b)
	b.mustCLI(t, 1, "a different service named "+name, "install", "--home", other.Dir, "--name", name)

	// start: the supervisor runs the agent.
	b.mustCLI(t, 0, "started service "+name, append([]string{"start"}, flags...)...)
	waitFor(t, "agent ready", 20*time.Second, func() bool { return len(runningAgents(h)) == 1 })
	first := runningAgents(h)[0]
	b.mustCLI(t, 0, "already running", append([]string{"start"}, flags...)...)
	out := b.mustCLI(t, 0, `"running": true`, append([]string{"status", "--json"}, flags...)...)
	var st struct {
		State, System, Definition string
	}
	if err := json.Unmarshal([]byte(out), &st); err != nil || st.State != "running" || st.System != system || st.Definition != want.Path {
		t.Fatalf("status --json = %s (%v)", out, err)
	}

	// The service manager brings a killed supervisor back, and one agent
	// runs afterwards.
	sups := supervisors(h)
	if len(sups) != 1 {
		t.Fatalf("want one supervisor running, found %v", sups)
	}
	if err := syscall.Kill(sups[0], syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "supervisor restarted by the service manager", 15*time.Second, func() bool {
		s := supervisors(h)
		return len(s) == 1 && s[0] != sups[0]
	})
	// The new supervisor may adopt the old agent or stop it and start
	// another; either way exactly one must run, and stay.
	var agent int
	waitFor(t, "exactly one agent after the restart", 20*time.Second, func() bool {
		a := runningAgents(h)
		if len(a) != 1 {
			return false
		}
		time.Sleep(time.Second)
		b := runningAgents(h)
		agent = a[0]
		return len(b) == 1 && b[0] == a[0]
	})
	if agent == first {
		t.Logf("the restarted supervisor adopted agent %d", first)
	}

	// stop: the agent is stopped gracefully, nothing is left.
	b.mustCLI(t, 0, "stopped service "+name, append([]string{"stop"}, flags...)...)
	if alive(agent) {
		t.Errorf("agent %d still runs after stop", agent)
	}
	if s := supervisors(h); len(s) != 0 {
		t.Errorf("supervisors %v still run after stop", s)
	}
	evs := agentEvents(h)
	if last := evs[len(evs)-1]; last.pid != agent || last.what != "stop" {
		t.Errorf("last agent event %+v, want agent %d to have stopped on request", last, agent)
	}
	b.mustCLI(t, 3, "installed, stopped", append([]string{"status"}, flags...)...)
	b.mustCLI(t, 0, "not running", append([]string{"stop"}, flags...)...)

	// restart of a stopped service starts it.
	b.mustCLI(t, 0, "started service", append([]string{"restart"}, flags...)...)
	waitFor(t, "agent ready after restart", 20*time.Second, func() bool { return len(runningAgents(h)) == 1 })
	agent = runningAgents(h)[0]

	// A changed stop grace changes the definition: install refuses until
	// told to replace it, and the replaced service runs again.
	if err := os.WriteFile(h.ConfigPath(), []byte("supervisor:\n  stop_grace: 5s\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	b.mustCLI(t, 1, "install --replace", append([]string{"install"}, flags...)...)
	b.mustCLI(t, 0, "replaced service "+name, append([]string{"install", "--replace"}, flags...)...)
	want5, err := platform.RenderService(system, platform.ServiceSpec{
		Name: name, Home: h.Dir, Exe: h.SupervisorBinary(), StopGrace: 5 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(want.Path); string(got) != want5.Text || want5.Text == want.Text {
		t.Fatalf("replaced definition is not the one for a 5s stop grace:\n%s", got)
	}
	if alive(agent) {
		t.Errorf("agent %d of the replaced service still runs", agent)
	}
	waitFor(t, "agent ready after replace", 20*time.Second, func() bool { return len(runningAgents(h)) == 1 })
	agent = runningAgents(h)[0]

	// uninstall of a running service stops it first and leaves nothing.
	b.mustCLI(t, 0, "uninstalled service "+name, append([]string{"uninstall"}, flags...)...)
	if alive(agent) {
		t.Errorf("agent %d still runs after uninstall", agent)
	}
	if _, err := os.Stat(want.Path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s still there after uninstall (%v)", want.Path, err)
	}
	links, _ := filepath.Glob("/etc/rc?.d/*" + name)
	if len(links) != 0 {
		t.Errorf("links left after uninstall: %v", links)
	}
	b.mustCLI(t, 4, "not installed", append([]string{"status"}, flags...)...)
	b.mustCLI(t, 0, "not installed; nothing to remove", append([]string{"uninstall"}, flags...)...)
	b.mustCLI(t, 1, "not installed", append([]string{"start"}, flags...)...)
}

// Two agents on one host: two homes, two services by their default names,
// no shared files, and one can stop while the other runs.
func TestServiceTwoHomes(t *testing.T) {
	b := buildServiceBins(t)
	ha, hb := newServiceHome(t, b), newServiceHome(t, b)
	cleanupService(t, b, ha)
	cleanupService(t, b, hb)
	system := platform.ServiceSystem()
	na, nb := platform.ServiceNameFor(ha.Dir), platform.ServiceNameFor(hb.Dir)
	if na == nb || na == platform.DefaultServiceName {
		t.Fatalf("service names %q and %q", na, nb)
	}
	b.mustCLI(t, 0, "installed service "+na, "install", "--home", ha.Dir, "--start")
	b.mustCLI(t, 0, "installed service "+nb, "install", "--home", hb.Dir, "--start")

	waitFor(t, "both agents ready", 20*time.Second, func() bool {
		return len(runningAgents(ha)) == 1 && len(runningAgents(hb)) == 1
	})
	da, _ := platform.RenderService(system, platform.ServiceSpec{Name: na, Home: ha.Dir, Exe: ha.SupervisorBinary()})
	db, _ := platform.RenderService(system, platform.ServiceSpec{Name: nb, Home: hb.Dir, Exe: hb.SupervisorBinary()})
	if da.Path == db.Path {
		t.Fatalf("both services use %s", da.Path)
	}
	if strings.Contains(da.Text, hb.Dir) || strings.Contains(db.Text, ha.Dir) {
		t.Errorf("a definition names the other home")
	}
	for _, h := range []home.Home{ha, hb} {
		if _, err := os.Stat(filepath.Join(h.LogsDir(), "service.log")); err != nil {
			t.Errorf("home %s has no service log of its own: %v", h.Dir, err)
		}
	}

	agentA := runningAgents(ha)[0]
	b.mustCLI(t, 0, "stopped service "+na, "stop", "--home", ha.Dir)
	if alive(agentA) {
		t.Errorf("agent of home a still runs after its service stopped")
	}
	if len(runningAgents(hb)) != 1 || len(supervisors(hb)) != 1 {
		t.Errorf("stopping home a's service touched home b: agents %v, supervisors %v", runningAgents(hb), supervisors(hb))
	}
	b.mustCLI(t, 3, "installed, stopped", "status", "--home", ha.Dir)
	b.mustCLI(t, 0, "installed, running", "status", "--home", hb.Dir)
	b.mustCLI(t, 0, "uninstalled service "+na, "uninstall", "--home", ha.Dir)
	b.mustCLI(t, 0, "installed, running", "status", "--home", hb.Dir)
	b.mustCLI(t, 0, "uninstalled service "+nb, "uninstall", "--home", hb.Dir)
	if len(runningAgents(hb)) != 0 {
		t.Errorf("agent of home b still runs after uninstall")
	}
}
