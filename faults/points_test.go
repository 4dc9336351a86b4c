//go:build linux

package faults

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moltfleet/molt/internal/e2etest"
)

// point is one crash point of the upgrade path and the process it is in.
type point struct {
	name string // as passed to faults.Point
	proc string // agent, supervisor or server
	hit  int    // the hit that kills (0: the first)
	// newOnly arms the point only in the new version's binaries (the old
	// agent passes it too, before any upgrade).
	newOnly bool
	// hosts is how many hosts the case runs (0: one).
	hosts int
	// midDownload: the kill loses what the agent had received and not yet
	// written (killLoss), and no more.
	midDownload bool
	// broken runs to badVersion, whose agent crashes at start: the
	// trial fails and is rolled back.
	broken bool
	// supervisor is the version bin/molt-supervisor must end at, with
	// result.json recording the self-upgrade ("": either version).
	supervisor string
	// patches upgrades with a pack that carries patches from the
	// installed version (delta_test.go).
	patches bool
}

// badVersion is a release whose agent crashes at start
// (testdata/testagent); its supervisor is the real one.
const badVersion = "1.2.0"

// points is every crash point in the code (TestPointsInCode keeps the two
// in step) with the process that passes it. docs/faults.md describes each.
var points = []point{
	{name: "agent/order-received", proc: "agent"},
	{name: "agent/mid-download", proc: "agent", hit: 44, midDownload: true}, // 11 MiB into molt-agent
	{name: "agent/after-download", proc: "agent"},
	{name: "agent/patch-applying", proc: "agent", patches: true},
	{name: "agent/mid-staging", proc: "agent"},
	{name: "agent/staging-workload-file", proc: "agent"},
	{name: "agent/before-valid", proc: "agent"},
	{name: "agent/after-valid", proc: "agent"},
	{name: "agent/before-switch", proc: "agent"},
	{name: "agent/after-switch", proc: "agent"},
	{name: "agent/before-exit-11", proc: "agent"},
	{name: "agent/before-ready", proc: "agent", newOnly: true},
	{name: "supervisor/saw-exit-11", proc: "supervisor"},
	{name: "supervisor/workload-stopped", proc: "supervisor"},
	// The first start is the old exporter's, when the host boots.
	{name: "supervisor/workload-started", proc: "supervisor", hit: 2},
	{name: "supervisor/before-commit", proc: "supervisor"},
	{name: "supervisor/mid-rollback", proc: "supervisor", broken: true},
	{name: "supervisor/replace-prepared", proc: "supervisor", supervisor: newVersion},
	{name: "supervisor/replace-committed", proc: "supervisor"},
	{name: "supervisor/before-exec", proc: "supervisor"},
	{name: "server/schedule-uncommitted", proc: "server", hosts: 2},
	{name: "server/schedule-committed", proc: "server", hosts: 2},
	{name: "server/report-acked", proc: "server"},
}

// pointCall finds the crash points in molt's source.
var pointCall = regexp.MustCompile(`faults\.Point(?:AfterFlush)?\("([^"]+)"`)

// codePoints lists the points passed in the module's non-test Go files,
// with where.
func codePoints(t *testing.T) map[string][]string {
	t.Helper()
	root := e2etest.ModuleRoot(t)
	found := map[string][]string{}
	err := filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "testdata" || strings.HasPrefix(d.Name(), ".")) && path != root {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		rel, _ := filepath.Rel(root, path)
		if strings.HasPrefix(rel, filepath.Join("internal", "faults")) {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, m := range pointCall.FindAllStringSubmatch(string(b), -1) {
			found[m[1]] = append(found[m[1]], rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return found
}

// TestPointsInCode: the table above and the code name the same points,
// and there are at least 12.
func TestPointsInCode(t *testing.T) {
	found := codePoints(t)
	var inCode, inTable []string
	for name := range found {
		inCode = append(inCode, name)
	}
	for _, p := range points {
		inTable = append(inTable, p.name)
		if !strings.HasPrefix(p.name, p.proc+"/") {
			t.Errorf("point %s is listed for process %s", p.name, p.proc)
		}
	}
	sort.Strings(inCode)
	sort.Strings(inTable)
	for _, n := range inCode {
		if !slices.Contains(inTable, n) {
			t.Errorf("point %s (in %v) is not in the suite's table", n, found[n])
		}
	}
	for _, n := range inTable {
		if _, ok := found[n]; !ok {
			t.Errorf("point %s of the suite's table is nowhere in the code", n)
		}
	}
	if len(inCode) < 12 {
		t.Errorf("%d crash points, want at least 12", len(inCode))
	}
}

// TestReleaseBuildHasNoPoints builds the release binaries with
// scripts/build.sh and checks that no point name and no variable of the
// faults build is in them; the faults build of the same code has them, so
// the check can fail.
func TestReleaseBuildHasNoPoints(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the release binaries (skipped with -short)")
	}
	// Beside the suites, whose cases mostly wait: run alone it held
	// them back by the time of a build.
	t.Parallel()
	root := e2etest.ModuleRoot(t)
	out := t.TempDir()
	cmd := exec.Command("bash", filepath.Join(root, "scripts", "build.sh"), "9.9.9", out)
	cmd.Dir = root
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("scripts/build.sh: %v\n%s", err, b)
	}
	markers := []string{"MOLT_FAULT"}
	for name := range codePoints(t) {
		markers = append(markers, name)
	}
	faultsBin := e2etest.Binaries(t, newVersion)
	for _, prog := range []string{"molt", "molt-agent", "molt-supervisor"} {
		rel, err := os.ReadFile(filepath.Join(out, e2etest.PlatformDir(), prog))
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range markers {
			if strings.Contains(string(rel), m) {
				t.Errorf("release %s contains %q", prog, m)
			}
		}
		tagged, err := os.ReadFile(filepath.Join(faultsBin, prog))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(tagged), "MOLT_FAULT") {
			t.Errorf("the faults build of %s lacks MOLT_FAULT: the check above proves nothing", prog)
		}
	}
	// Each point's name is in the faults build of the program that
	// passes it.
	progOf := map[string]string{"agent": "molt-agent", "supervisor": "molt-supervisor", "server": "molt"}
	for _, p := range points {
		b, err := os.ReadFile(filepath.Join(faultsBin, progOf[p.proc]))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(b), p.name) {
			t.Errorf("the faults build of %s lacks the point %s", progOf[p.proc], p.name)
		}
	}
}

// outcome is one case's result, for the summary.
type outcome struct {
	name, proc string
	recovered  bool
	detail     string
	took       time.Duration
}

// summary collects outcomes and prints the suite's line.
type summary struct {
	mu  sync.Mutex
	out []outcome
}

func (s *summary) add(o outcome) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.out = append(s.out, o)
}

func (s *summary) report(t *testing.T, suite string) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	sort.Slice(s.out, func(i, j int) bool { return s.out[i].name < s.out[j].name })
	var b strings.Builder
	rec := 0
	for _, o := range s.out {
		mark := "recovered"
		if o.recovered {
			rec++
		} else {
			mark = "NOT RECOVERED"
		}
		fmt.Fprintf(&b, "  %-32s %-10s %-14s %6.1fs  %s\n", o.name, o.proc, mark, o.took.Seconds(), o.detail)
	}
	line := fmt.Sprintf("faults: %d points × processes tried, %d recovered", len(s.out), rec)
	t.Logf("%s: %s\n%s", suite, line, b.String())
	fmt.Printf("%s (%s)\n", line, suite)
	if rec != len(s.out) {
		t.Errorf("%s: %d of %d cases recovered", suite, rec, len(s.out))
	}
}

// TestCrashPoints kills the process of each point with SIGKILL at that
// point during an upgrade of real hosts, restarts what a service manager
// restarts, and checks the recovery.
func TestCrashPoints(t *testing.T) {
	if testing.Short() {
		t.Skip("real processes (skipped with -short)")
	}
	// Beside the other suite: the network cases mostly wait.
	t.Parallel()
	// Built once before the cases run in parallel.
	e2etest.Binaries(t, oldVersion)
	e2etest.Binaries(t, newVersion)
	// The cases wait for a turn (-parallel) in the order they ask: behind
	// the network cases, so that the minute without server, the longest
	// case, starts first instead of last.
	if selected("TestNetwork") {
		select {
		case <-netQueued:
		case <-time.After(2 * time.Minute):
		}
	}
	var sum summary
	t.Run("point", func(t *testing.T) {
		for _, p := range points {
			t.Run(strings.ReplaceAll(p.name, "/", ":"), func(t *testing.T) {
				t.Parallel()
				start := time.Now()
				detail := crashCase(t, p)
				sum.add(outcome{name: p.name, proc: p.proc, recovered: !t.Failed(), detail: detail, took: time.Since(start)})
			})
		}
	})
	sum.report(t, "crash points")
}

// crashCase runs one point's case and returns a line about what happened.
func crashCase(t *testing.T, p point) string {
	dir := t.TempDir()
	fired := filepath.Join(dir, "fired")
	arm := "MOLT_FAULT=" + p.name
	if p.hit > 0 {
		arm += fmt.Sprintf("@%d", p.hit)
	}
	env := []string{arm, "MOLT_FAULT_ONCE=" + fired}
	if p.newOnly {
		env = append(env, "MOLT_FAULT_VERSION="+newVersion)
	}
	var hostEnv, srvEnv []string
	if p.proc == "server" {
		srvEnv = env
	} else {
		hostEnv = env
	}
	// Every host talks to the server through a proxy that counts the
	// bytes it receives.
	var px *Proxy
	var opts []fleetOption
	if p.patches {
		opts = append(opts, withPatches)
	}
	f := newFleet(t, max(p.hosts, 1), srvEnv, hostEnv, func(s *e2etest.Server) string {
		px = startProxy(t, s.Addr)
		return "https://" + px.Addr()
	}, true, opts...)
	if p.broken {
		f.target = badVersion
		f.srv.Import(workloadPack(t, badVersion, "crash-at-start"))
	}
	base := px.Stats().BytesDown
	detail := f.upgrade(fired)
	if p.supervisor != "" {
		// The self-upgrade killed before its swap is carried out by the
		// restarted supervisor.
		for _, h := range f.hosts {
			e2etest.Eventually(t, 20*time.Second, h.Name+"'s supervisor at "+p.supervisor, func() (bool, string) {
				v := h.SupervisorVersion()
				r, _, err := h.Home.ReadResult()
				if err != nil || r.Supervisor == nil {
					return false, fmt.Sprintf("bin/molt-supervisor %s, result.json: %v, no supervisor outcome", v, err)
				}
				sr := r.Supervisor
				return v == p.supervisor && sr.Upgraded && sr.To == p.supervisor,
					fmt.Sprintf("bin/molt-supervisor %s, result.json supervisor %+v", v, *sr)
			})
		}
	}
	got := px.Stats().BytesDown - base
	// Whatever the point, nothing downloaded and written is downloaded
	// again: a file in the cache, the staging directory or versions/ is
	// verified and used.
	n := int64(len(f.hosts))
	files := artifactBytes(t) + exporterBytes(t)
	limit := n * (files + slack)
	if p.midDownload {
		limit += killLoss
	}
	if got > limit && !p.broken {
		t.Errorf("the agents received %d bytes for %d × %d bytes of artifacts, more than %d: a download started over", got, n, files, limit)
	}
	return fmt.Sprintf("%s; received %.1f MiB", detail, float64(got)/(1<<20))
}

// exporterBytes is the size of the new version's exporter, the workload
// file an upgrade downloads besides the artifacts.
func exporterBytes(t *testing.T) int64 {
	st, err := os.Stat(e2etest.Exporter(t, newVersion))
	if err != nil {
		t.Fatal(err)
	}
	return st.Size()
}

// killLoss is what a killed agent may have received and not yet written:
// its HTTP/2 stream window (4 MiB in Go's client) and the socket buffers
// (about 5 MiB measured on loopback). The mid-download point kills 11 MiB
// into molt-agent, so a download that started over would exceed it.
const killLoss = 7 << 20

// artifactBytes is the size of the new version's molt-agent and
// molt-supervisor, the files an upgrade downloads.
func artifactBytes(t *testing.T) int64 {
	bin := e2etest.Binaries(t, newVersion)
	var n int64
	for _, f := range []string{"molt-agent", "molt-supervisor"} {
		st, err := os.Stat(filepath.Join(bin, f))
		if err != nil {
			t.Fatal(err)
		}
		n += st.Size()
	}
	return n
}
