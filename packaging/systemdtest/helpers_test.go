package systemdtest

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moltfleet/molt/internal/e2etest"
	"github.com/moltfleet/molt/internal/nspawn"
	"github.com/moltfleet/molt/internal/release"
	"github.com/moltfleet/molt/internal/testtool"
)

func TestMain(m *testing.M) { os.Exit(e2etest.Main(m)) }

// The versions the agent's package installs and the run upgrades to.
const (
	vA = "1.0.0"
	vB = "1.1.0"
)

// machine is a booted container with the test's helpers.
type machine struct {
	*nspawn.Machine
	t    *testing.T
	spec nspawn.Spec
}

// need skips t with one line when this machine cannot boot s: not Linux
// on a platform the packages are made for, not root, or (failing in CI
// instead: internal/testtool) a tool missing. Tests call it first, before
// building anything.
func need(t *testing.T, s nspawn.Spec) {
	t.Helper()
	if runtime.GOOS != "linux" || (runtime.GOARCH != "amd64" && runtime.GOARCH != "arm64") {
		t.Skipf("the packages are for linux/amd64 and linux/arm64, not %s/%s", runtime.GOOS, runtime.GOARCH)
	}
	// As the other tests that need root (platform's real service):
	// without it, a skip, also in CI.
	if os.Geteuid() != 0 {
		t.Skip("booting a container with systemd-nspawn needs root")
	}
	if err := nspawn.Check(s); err != nil {
		testtool.Missing(t, "%v", err)
	}
}

// boot boots a throwaway overlay of s's cached root (made first when
// there is none) and waits for its init to finish booting. It is powered
// off when the test ends, and the test fails if anything of it is left.
// Without root or the tools it skips (fails in CI: internal/testtool).
func boot(t *testing.T, s nspawn.Spec) *machine {
	t.Helper()
	m := mount(t, s)
	m.boot()
	return m
}

// mount is boot without booting: the root is mounted for the test to
// change before m.boot.
func mount(t *testing.T, s nspawn.Spec) *machine {
	t.Helper()
	need(t, s)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	var log bytes.Buffer
	if _, err := nspawn.Make(ctx, s, &log); err != nil {
		t.Fatalf("%v\n%s", err, e2etest.Tail(writeTemp(t, log.Bytes()), 30))
	}
	dir := t.TempDir()
	m, err := nspawn.Mount(s, dir)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("%s console (last lines):\n%s", m.Name, lastLines(m.Console(), 30))
		}
		if err := m.Poweroff(30 * time.Second); err != nil {
			t.Error(err)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	return &machine{Machine: m, t: t, spec: s}
}

// boot boots the mounted root and waits for its init to finish booting.
func (m *machine) boot() {
	t := m.t
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	start := time.Now()
	if err := m.Boot(ctx); err != nil {
		t.Fatal(err)
	}
	state, err := m.WaitRunning(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if state == "degraded" {
		t.Logf("booted %s: %s; failed units:\n%s", m.Name, state, m.run("systemctl", "--failed", "--no-legend"))
	}
	t.Logf("booted %s (%s) in %s", m.Name, m.spec.Name, time.Since(start).Round(time.Millisecond))
}

func writeTemp(t *testing.T, b []byte) string {
	p := filepath.Join(t.TempDir(), "out")
	_ = os.WriteFile(p, b, 0o644)
	return p
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// run runs args inside and returns the output, failing the test on an
// error.
func (m *machine) run(args ...string) string {
	m.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := m.Run(ctx, args...)
	if err != nil {
		m.t.Fatal(err)
	}
	return out
}

// try runs args inside and returns the output and whether they exited 0.
func (m *machine) try(args ...string) (string, bool) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := m.Run(ctx, args...)
	return out, err == nil
}

// write writes a file inside the container.
func (m *machine) write(p string, mode os.FileMode, content []byte) {
	m.t.Helper()
	if err := os.MkdirAll(filepath.Dir(m.Path(p)), 0o755); err != nil {
		m.t.Fatal(err)
	}
	if err := os.WriteFile(m.Path(p), content, mode); err != nil {
		m.t.Fatal(err)
	}
}

// copyIn copies the host's file into the container at p.
func (m *machine) copyIn(from, p string, mode os.FileMode) {
	m.t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		m.t.Fatal(err)
	}
	m.write(p, mode, b)
}

// install installs the package file deb with dpkg, as an operator does.
func (m *machine) install(deb string) string {
	m.t.Helper()
	p := "/root/" + filepath.Base(deb)
	m.copyIn(deb, p, 0o644)
	return m.run("dpkg", "-i", p)
}

// show is a property of a unit (systemctl show -P).
func (m *machine) show(unit, prop string) string {
	m.t.Helper()
	return strings.TrimSpace(m.run("systemctl", "show", "-P", prop, unit))
}

// procs are the container's processes whose command name is one of comms.
func (m *machine) procs(comms ...string) []nspawn.Proc {
	var out []nspawn.Proc
	for _, p := range m.Processes() {
		for _, c := range comms {
			if p.Comm == c {
				out = append(out, p)
			}
		}
	}
	return out
}

// debs caches the packages this test process made: version+name -> path.
var debs struct {
	mu    sync.Mutex
	paths map[string]string
}

// deb returns spec's .deb of version for this machine, made once per test
// process by the release code from that version's binaries.
func deb(t *testing.T, version string, spec release.PackageSpec) string {
	t.Helper()
	key := version + " " + spec.Name
	debs.mu.Lock()
	defer debs.mu.Unlock()
	if p, ok := debs.paths[key]; ok {
		return p
	}
	bin := filepath.Dir(e2etest.Binaries(t, version))
	o := release.Options{
		Version: version, BinDir: bin, Platforms: []string{runtime.GOOS + "/" + runtime.GOARCH},
		Root: e2etest.ModuleRoot(t), MTime: time.Unix(1700000000, 0).UTC(), Now: time.Now(),
		// Stored, not compressed: what is tested does not depend on it,
		// and deflating the binaries would take most of a minute.
		Compression: "gzip:0",
		// Beside the binaries: the cache outlives this test.
		Out: filepath.Join(filepath.Dir(bin), "pkg-"+version),
	}
	if err := os.MkdirAll(o.Out, 0o755); err != nil {
		t.Fatal(err)
	}
	a, err := release.LinuxPackage(o, release.Platform{OS: runtime.GOOS, Arch: runtime.GOARCH}, spec, "deb")
	if err != nil {
		t.Fatal(err)
	}
	if debs.paths == nil {
		debs.paths = map[string]string{}
	}
	debs.paths[key] = a.Path
	return a.Path
}

// waitFor polls cond every 10 ms until it holds or d has passed, and
// returns how long it took; on a timeout it fails the test with what
// cond last said.
func waitFor(t *testing.T, d time.Duration, what string, cond func() (bool, string)) time.Duration {
	t.Helper()
	start := time.Now()
	var seen string
	for {
		ok, s := cond()
		if ok {
			return time.Since(start)
		}
		seen = s
		if time.Since(start) > d {
			t.Fatalf("%s: not within %s (last: %s)", what, d, seen)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// count is how many lines of the container's file p contain s.
func (m *machine) count(p, s string) int {
	b, _ := os.ReadFile(m.Path(p))
	return bytes.Count(b, []byte(s))
}

func pids(ps []nspawn.Proc) string {
	var b strings.Builder
	for _, p := range ps {
		fmt.Fprintf(&b, "[%d %s] ", p.NSPID, p.Cmdline)
	}
	return b.String()
}
