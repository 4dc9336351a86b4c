//go:build linux

package supervisor_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/moltfleet/molt/home"
	"github.com/moltfleet/molt/internal/e2etest"
)

// Binaries built once per test run (TestMain).
var (
	binDir       string
	testWorkload string
	exporter     string                // examples/exporter
	supervisor   = map[string]string{} // version -> molt-supervisor
	agents       = map[string]string{} // "version mode" -> testagent
)

// Builds every test binary needs; each is linked once.
var (
	supervisorVersions = []string{"1.0.0", "2.0.0"}
	agentBuilds        = []string{
		"1.0.0 healthy",
		"1.0.0 ignore-stop",
		"1.0.0 runs=0s,0s,0s,1500ms,0s",
		"1.1.0 healthy",
		"1.1.0 crash-at-start",
		"1.1.0 never-ready",
		"1.1.0 crash-after=300ms",
		"1.1.0 crash-after=1s",
		"1.1.0 exit0",
		"3.0.0 healthy",
	}
)

func TestMain(m *testing.M) {
	flag.Parse()
	os.Exit(e2etest.MainBuilt(m, "molt-supervisor-test", func(dir string) error {
		binDir = dir
		return buildAll()
	}))
}

func buildAll() error {
	var builds []e2etest.Build
	for _, v := range supervisorVersions {
		out := filepath.Join(binDir, "molt-supervisor-"+v)
		supervisor[v] = out
		builds = append(builds, e2etest.Build{Out: out, Pkg: "github.com/moltfleet/molt/cmd/molt-supervisor", Version: v})
	}
	testWorkload = filepath.Join(binDir, "testworkload")
	exporter = filepath.Join(binDir, "exporter")
	builds = append(builds, e2etest.Build{Out: testWorkload, Pkg: "github.com/moltfleet/molt/testdata/testworkload"},
		e2etest.Build{Out: exporter, Pkg: "github.com/moltfleet/molt/examples/exporter"})
	for i, b := range agentBuilds {
		v, mode, _ := strings.Cut(b, " ")
		out := filepath.Join(binDir, fmt.Sprintf("testagent-%d", i))
		agents[b] = out
		builds = append(builds, e2etest.Build{Out: out, Pkg: "github.com/moltfleet/molt/testdata/testagent", Version: v, Mode: mode})
	}
	return e2etest.BuildAll(builds...)
}

// testHome is one agent home with a supervisor installed in bin/.
type testHome struct {
	t testing.TB
	home.Home
}

func newHome(t testing.TB) *testHome {
	t.Helper()
	h := &testHome{t: t, Home: home.New(t.TempDir())}
	h.copy(supervisor["1.0.0"], h.SupervisorBinary())
	t.Cleanup(h.killAll)
	return h
}

func (h *testHome) copy(src, dst string) {
	h.t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		h.t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		h.t.Fatal(err)
	}
	if err := os.WriteFile(dst, b, 0o755); err != nil {
		h.t.Fatal(err)
	}
}

// install puts the test agent built as "version mode" into
// versions/<version>/ and marks it valid.
func (h *testHome) install(build string) string {
	h.t.Helper()
	src, ok := agents[build]
	if !ok {
		h.t.Fatalf("no test agent build %q", build)
	}
	v, _, _ := strings.Cut(build, " ")
	h.copy(src, h.AgentBinary(v))
	if err := os.WriteFile(h.ValidPath(v), nil, 0o644); err != nil {
		h.t.Fatal(err)
	}
	return v
}

func (h *testHome) setActive(a home.Active) {
	h.t.Helper()
	if err := h.WriteActive(a); err != nil {
		h.t.Fatal(err)
	}
}

func (h *testHome) active() home.Active {
	h.t.Helper()
	a, err := h.ReadActive()
	if err != nil {
		h.t.Fatal(err)
	}
	return a
}

// start runs bin/molt-supervisor run with args; its output goes to a file
// that is printed if the test fails.
func (h *testHome) start(args ...string) *exec.Cmd {
	h.t.Helper()
	out, err := os.OpenFile(filepath.Join(h.Dir, "supervisor.out"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		h.t.Fatal(err)
	}
	defer out.Close()
	cmd := exec.Command(h.SupervisorBinary(), append([]string{"run", "--home", h.Dir, "--log-level", "debug"}, args...)...)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if h.t.Failed() {
			b, _ := os.ReadFile(filepath.Join(h.LogsDir(), "supervisor.log"))
			h.t.Logf("supervisor.log:\n%s", tail(b, 60))
			o, _ := os.ReadFile(filepath.Join(h.Dir, "supervisor.out"))
			h.t.Logf("supervisor output:\n%s", tail(o, 20))
		}
	})
	return cmd
}

func tail(b []byte, n int) string {
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// killAll kills every agent and workload process of this home (test
// cleanup).
func (h *testHome) killAll() {
	for _, pid := range h.pids(func(string) bool { return true }) {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
}

// agentPIDs scans /proc for live processes running an agent of this
// home's versions/ directory.
func (h *testHome) agentPIDs() []int {
	return h.pids(func(exe string) bool { return !isWorkload(exe) })
}

// workloadPIDs are the live processes running a workload's program of
// this home.
func (h *testHome) workloadPIDs() []int { return h.pids(isWorkload) }

func isWorkload(exe string) bool {
	sep := string(os.PathSeparator)
	return strings.Contains(exe, sep+"workloads"+sep)
}

// pids scans /proc for live processes running a binary of this home's
// versions/ directory that match.
func (h *testHome) pids(match func(exe string) bool) []int {
	prefix := h.VersionsDir() + string(os.PathSeparator)
	ents, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		exe, err := os.Readlink(filepath.Join("/proc", e.Name(), "exe"))
		if err != nil || !strings.HasPrefix(exe, prefix) || !match(exe) {
			continue
		}
		if st, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat")); err == nil {
			if i := bytes.LastIndexByte(st, ')'); i > 0 && bytes.HasPrefix(bytes.TrimSpace(st[i+1:]), []byte("Z")) {
				continue
			}
		}
		pids = append(pids, pid)
	}
	sort.Ints(pids)
	return pids
}

type event struct {
	at      time.Time
	pid     int
	version string
	what    string
}

func (h *testHome) events() []event {
	h.t.Helper()
	f, err := os.Open(filepath.Join(h.Dir, "testagent.events"))
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		h.t.Fatal(err)
	}
	defer f.Close()
	var evs []event
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) != 4 {
			continue
		}
		ns, _ := strconv.ParseInt(f[0], 10, 64)
		pid, _ := strconv.Atoi(f[1])
		evs = append(evs, event{time.Unix(0, ns), pid, f[2], f[3]})
	}
	return evs
}

// find returns the events with version v (any if empty) and what w.
func (h *testHome) find(v, w string) []event {
	var out []event
	for _, e := range h.events() {
		if (v == "" || e.version == v) && e.what == w {
			out = append(out, e)
		}
	}
	return out
}

func (h *testHome) waitFor(what string, d time.Duration, cond func() bool) {
	h.t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			h.t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitReady waits until n agents of version v said ready and returns the
// last one.
func (h *testHome) waitReady(v string, n int) event {
	h.t.Helper()
	h.waitFor(fmt.Sprintf("%d ready of %s", n, v), 20*time.Second, func() bool { return len(h.find(v, "ready")) >= n })
	r := h.find(v, "ready")
	return r[len(r)-1]
}

// upgrade stages build and switches to it under trial as the agent does,
// then makes the running agent exit 11.
func (h *testHome) upgrade(build string) string {
	h.t.Helper()
	prev := h.active().Current
	pids := h.agentPIDs()
	if len(pids) != 1 {
		h.t.Fatalf("want one running agent before an upgrade, found %v", pids)
	}
	v := h.install(build)
	h.setActive(home.Active{Current: v, Previous: prev, Trial: &home.Trial{Version: v, Switched: time.Now(), Order: "order-1"}})
	if err := syscall.Kill(pids[0], syscall.SIGHUP); err != nil {
		h.t.Fatal(err)
	}
	return v
}

func (h *testHome) result() (home.Result, bool) {
	h.t.Helper()
	r, ok, err := h.ReadResult()
	if err != nil {
		h.t.Fatal(err)
	}
	return r, ok
}

func (h *testHome) waitResult(outcome string, d time.Duration) home.Result {
	h.t.Helper()
	var r home.Result
	h.waitFor("result.json "+outcome, d, func() bool {
		var ok bool
		r, ok = h.result()
		return ok && r.Outcome == outcome
	})
	return r
}

func (h *testHome) supervisorLog() string {
	b, _ := os.ReadFile(filepath.Join(h.LogsDir(), "supervisor.log"))
	return string(b)
}

// assertOneAgent checks that exactly one agent process of the home runs,
// of version v, and returns its pid.
func (h *testHome) assertOneAgent(v string) int {
	h.t.Helper()
	pids := h.agentPIDs()
	if len(pids) != 1 {
		h.t.Fatalf("agents running: %v, want exactly one", pids)
	}
	exe, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", pids[0]))
	if exe != h.AgentBinary(v) {
		h.t.Fatalf("running agent is %s, want %s", exe, h.AgentBinary(v))
	}
	return pids[0]
}

func runVersion(t *testing.T, exe string) string {
	t.Helper()
	out, err := exec.Command(exe, "version", "--json").Output()
	if err != nil {
		t.Fatalf("%s version --json: %v", exe, err)
	}
	var info struct{ Version string }
	if err := json.Unmarshal(out, &info); err != nil {
		t.Fatal(err)
	}
	return info.Version
}
