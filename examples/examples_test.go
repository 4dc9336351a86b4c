// The examples run as real processes, the way the supervisor runs them:
// MOLT_* variables pointing at a temporary home, stopped with SIGTERM.
package examples_test

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/moltfleet/molt/agent"
	"github.com/moltfleet/molt/home"
	"github.com/moltfleet/molt/internal/e2etest/gobuild"
	"github.com/moltfleet/molt/internal/testtool"
	"github.com/moltfleet/molt/updater/pack"
)

// exporterBin is examples/exporter built by TestMain at exporterVersion.
var exporterBin string

const exporterVersion = "1.2.3"

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "examples-test")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	exporterBin = filepath.Join(dir, "exporter")
	if runtime.GOOS == "windows" {
		exporterBin += ".exe"
	}
	_, err = gobuild.Build(exporterBin, gobuild.Options{
		Pkgs: []string{"./exporter"}, LDFlags: "-X main.version=" + exporterVersion, Env: []string{"CGO_ENABLED=0"},
	})
	if err != nil {
		fmt.Fprintf(os.Stderr, "build exporter: %v\n", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// buffer is a process's output, safe to read while it writes.
type buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *buffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *buffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// host is a temporary molt home as the supervisor prepares it for one
// workload.
type host struct {
	home home.Home
	name string
}

func newHost(t *testing.T, name string) host {
	h := host{home: home.New(t.TempDir()), name: name}
	if err := os.MkdirAll(h.home.DataDir(name), 0o750); err != nil {
		t.Fatal(err)
	}
	return h
}

// env is what the supervisor gives a workload (docs/workloads.md).
func (h host) env() []string {
	return append(os.Environ(),
		"MOLT_HOME="+h.home.Dir,
		"MOLT_WORKLOAD="+h.name,
		"MOLT_WORKLOAD_VERSION=1.0.0",
		"MOLT_WORKLOAD_DIR="+h.home.WorkloadDir("1.0.0", h.name),
		"MOLT_DATA_DIR="+h.home.DataDir(h.name),
		"MOLT_AGENT_ID=",
		"MOLT_HOLDS_DIR="+h.home.HoldsDir(),
		"MOLT_READY_FILE="+h.home.ReadyFile(h.name),
	)
}

// holds is what the agent sees: the active holds' reasons.
func (h host) holds(t *testing.T) []string {
	t.Helper()
	hs, err := agent.HoldsOf(h.home).List()
	if err != nil {
		t.Fatal(err)
	}
	return agent.Reasons(hs)
}

// holdFiles lists state/holds/, temp files included.
func (h host) holdFiles() []string {
	ents, _ := os.ReadDir(h.home.HoldsDir())
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out
}

// proc is a running example.
type proc struct {
	cmd  *exec.Cmd
	out  *buffer
	done chan struct{}
}

func start(t *testing.T, h host, argv ...string) *proc {
	t.Helper()
	p := &proc{cmd: exec.Command(argv[0], argv[1:]...), out: &buffer{}, done: make(chan struct{})}
	p.cmd.Env = h.env()
	p.cmd.Dir = h.home.DataDir(h.name)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		<-p.done
		if t.Failed() {
			t.Logf("output of %s:\n%s", filepath.Base(argv[0]), p.out)
		}
	})
	return p
}

// stop sends SIGTERM and wants exit 0 within d.
func (p *proc) stop(t *testing.T, d time.Duration) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.done:
	case <-time.After(d):
		t.Fatalf("still running %s after SIGTERM", d)
	}
	if code := p.cmd.ProcessState.ExitCode(); code != 0 {
		t.Fatalf("exit code %d after SIGTERM, want 0", code)
	}
}

// eventually polls cond every 50ms until it holds or d passes.
func eventually(t *testing.T, d time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		ok, seen := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %s: %s; last seen: %s", d, what, seen)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

var listenRe = regexp.MustCompile(`listening on (127\.0\.0\.1:\d+)`)

// addr waits for the exporter to say where it listens.
func (p *proc) addr(t *testing.T) string {
	t.Helper()
	var a string
	eventually(t, 10*time.Second, "the exporter says where it listens", func() (bool, string) {
		m := listenRe.FindStringSubmatch(p.out.String())
		if m != nil {
			a = m[1]
		}
		return m != nil, p.out.String()
	})
	return a
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, string(b)
}

// metric returns the value of a metric without labels in a scrape.
func metric(body, name string) string {
	for l := range strings.Lines(body) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(l), name+" "); ok {
			return v
		}
	}
	return ""
}

func TestExporterVersion(t *testing.T) {
	out, err := exec.Command(exporterBin, "-version").CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "exporter "+exporterVersion {
		t.Fatalf("-version: %q, %v; want %q", out, err, "exporter "+exporterVersion)
	}
}

// TestExporter: /metrics answers, a scan holds molt (the agent sees the
// hold) and releases after, the data-dir state survives a restart, SIGTERM
// exits 0 and releases a hold taken mid-scan.
func TestExporter(t *testing.T) {
	t.Parallel()
	h := newHost(t, "exporter")
	p := start(t, h, exporterBin, "-listen", "127.0.0.1:0", "-scan-every", "700ms", "-scan-for", "700ms")
	base := "http://" + p.addr(t)
	eventually(t, 10*time.Second, "the exporter says ready (the ready file)", func() (bool, string) {
		_, err := os.Stat(h.home.ReadyFile("exporter"))
		return err == nil, fmt.Sprint(err)
	})
	code, body := get(t, base+"/metrics")
	if code != 200 || metric(body, "exporter_starts_total") != "1" || metric(body, "exporter_scrapes_total") != "1" ||
		!strings.Contains(body, `exporter_build_info{version="1.2.3",workload_version="1.0.0"} 1`) {
		t.Fatalf("first /metrics: %d\n%s", code, body)
	}
	if code, body := get(t, base+"/healthz"); code != 200 || body != "ok\n" {
		t.Errorf("/healthz: %d %q", code, body)
	}

	eventually(t, 10*time.Second, "the agent lists the scan's hold", func() (bool, string) {
		r := h.holds(t)
		return len(r) == 1 && r[0] == "exporter scan", fmt.Sprint(r)
	})
	eventually(t, 10*time.Second, "a scan completes and releases its hold", func() (bool, string) {
		_, body := get(t, base+"/metrics")
		return metric(body, "exporter_scans_total") != "0" && metric(body, "exporter_scan_in_progress") == "0" &&
			len(h.holdFiles()) == 0, fmt.Sprint(h.holdFiles(), "\n", body)
	})
	p.stop(t, 5*time.Second)
	if f := h.holdFiles(); len(f) != 0 {
		t.Errorf("hold files after SIGTERM: %v", f)
	}

	// The next version starts: the state kept in data/exporter/ carries on.
	p = start(t, h, exporterBin, "-listen", "127.0.0.1:0", "-scan-every", "50ms", "-scan-for", "1m")
	base = "http://" + p.addr(t)
	_, body = get(t, base+"/metrics")
	if metric(body, "exporter_starts_total") != "2" || metric(body, "exporter_scans_total") == "0" {
		t.Fatalf("after a restart: want starts 2 and the scans kept\n%s", body)
	}
	eventually(t, 10*time.Second, "a second scan holds", func() (bool, string) {
		r := h.holds(t)
		return len(r) == 1, fmt.Sprint(r)
	})
	p.stop(t, 5*time.Second)
	if f := h.holdFiles(); len(f) != 0 {
		t.Errorf("SIGTERM during a scan left hold files: %v", f)
	}
	if !strings.Contains(p.out.String(), "scan interrupted") {
		t.Errorf("no \"scan interrupted\" in the output:\n%s", p.out)
	}
}

// TestExporterFailReady is the broken release of the demo: alive, but
// /metrics (its ready check) never answers 2xx and it never says ready.
// Its address comes from a file in its data directory, as in the demo.
func TestExporterFailReady(t *testing.T) {
	t.Parallel()
	h := newHost(t, "exporter")
	cmd := exec.Command(exporterBin, "-listen-file", "listen", "-fail-ready")
	cmd.Env = h.env()
	if out, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(out), "-listen-file") {
		t.Errorf("without its listen file: %v, %q; want a failure naming -listen-file", err, out)
	}
	writeFile(t, filepath.Join(h.home.DataDir("exporter"), "listen"), []byte("127.0.0.1:0\n"), 0o644)
	p := start(t, h, exporterBin, "-listen-file", "listen", "-scan-every", "0", "-fail-ready")
	base := "http://" + p.addr(t)
	if code, _ := get(t, base+"/metrics"); code/100 == 2 {
		t.Errorf("/metrics with -fail-ready answers %d", code)
	}
	if code, _ := get(t, base+"/healthz"); code != 200 {
		t.Errorf("/healthz with -fail-ready: %d", code)
	}
	if _, err := os.Stat(h.home.ReadyFile("exporter")); err == nil {
		t.Error("-fail-ready wrote the ready file")
	}
	p.stop(t, 5*time.Second)
}

func shell(t *testing.T) string {
	t.Helper()
	if _, err := os.Stat("/bin/sh"); err != nil {
		testtool.Missing(t, "/bin/sh not found: the script example needs a POSIX shell")
	}
	return "/bin/sh"
}

// TestScriptAgent: the shell workload says ready with the file protocol,
// holds while it works (the agent sees the hold) and releases after.
func TestScriptAgent(t *testing.T) {
	t.Parallel()
	sh := shell(t)
	h := newHost(t, "script-agent")
	script, _ := filepath.Abs(filepath.Join("script-agent", "agent.sh"))
	p := start(t, h, "/usr/bin/env", "HEARTBEAT_EVERY=1", "WORK_EVERY=1", "WORK_FOR=1", sh, script)

	eventually(t, 10*time.Second, "the ready file", func() (bool, string) {
		_, err := os.Stat(h.home.ReadyFile("script-agent"))
		return err == nil, fmt.Sprint(err)
	})
	eventually(t, 10*time.Second, "the agent lists the script's hold", func() (bool, string) {
		r := h.holds(t)
		return len(r) == 1 && strings.HasPrefix(r[0], "script-agent batch"), fmt.Sprint(r)
	})
	eventually(t, 10*time.Second, "the batch ends and the hold is released", func() (bool, string) {
		return strings.Contains(p.out.String(), "batch 1 done") && !strings.Contains(fmt.Sprint(h.holdFiles()), "batch"),
			fmt.Sprint(h.holdFiles())
	})
	if b, err := os.ReadFile(filepath.Join(h.home.DataDir("script-agent"), "heartbeat")); err != nil || len(bytes.TrimSpace(b)) == 0 {
		t.Errorf("heartbeat in the data directory: %q, %v", b, err)
	}
	p.stop(t, 5*time.Second)
}

// TestScriptAgentStop: SIGTERM in the middle of the work releases the hold
// and exits 0 at once.
func TestScriptAgentStop(t *testing.T) {
	t.Parallel()
	sh := shell(t)
	h := newHost(t, "script-agent")
	script, _ := filepath.Abs(filepath.Join("script-agent", "agent.sh"))
	p := start(t, h, "/usr/bin/env", "HEARTBEAT_EVERY=1", "WORK_EVERY=1", "WORK_FOR=60", sh, script)
	eventually(t, 10*time.Second, "the script holds", func() (bool, string) {
		r := h.holds(t)
		return len(r) == 1, fmt.Sprint(r)
	})
	p.stop(t, 5*time.Second)
	if f := h.holdFiles(); len(f) != 0 {
		t.Errorf("hold files after SIGTERM: %v", f)
	}
	if !strings.Contains(p.out.String(), "stopping") {
		t.Errorf("no \"stopping\" in the output:\n%s", p.out)
	}
}

// TestPackBuild builds a pack the way README.md says: the examples' trees
// under <bin-dir>/<goos>_<goarch>/workloads/ and their specs in
// <bin-dir>/pack.yaml. molt-agent and molt-supervisor are placeholders
// here: the pack's molt side has tests of its own.
func TestPackBuild(t *testing.T) {
	t.Parallel()
	plat := runtime.GOOS + "/" + runtime.GOARCH
	bin := t.TempDir()
	platDir := filepath.Join(bin, runtime.GOOS+"_"+runtime.GOARCH)
	exe := ""
	if runtime.GOOS == "windows" {
		exe = ".exe"
	}
	for _, n := range []string{"molt-agent", "molt-supervisor"} {
		writeFile(t, filepath.Join(platDir, n+exe), []byte("placeholder "+n+"\n"), 0o755)
	}
	b, err := os.ReadFile(exporterBin)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(platDir, "workloads", "exporter", "exporter"+exe), b, 0o755)
	yml, err := os.ReadFile(filepath.Join("exporter", "pack.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"exporter": "exporter" + exe}
	if runtime.GOOS != "windows" {
		b, err := os.ReadFile(filepath.Join("script-agent", "agent.sh"))
		if err != nil {
			t.Fatal(err)
		}
		writeFile(t, filepath.Join(platDir, "workloads", "script-agent", "agent.sh"), b, 0o755)
		// As README.md joins them: the script-agent's list item after the
		// exporter's file.
		s, err := os.ReadFile(filepath.Join("script-agent", "pack.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		i := bytes.Index(s, []byte("\n  - name:"))
		if i < 0 {
			t.Fatal("script-agent/pack.yaml: no \"  - name:\" line")
		}
		yml = append(yml, s[i+1:]...)
		want["script-agent"] = "agent.sh"
	}
	writeFile(t, filepath.Join(bin, "pack.yaml"), yml, 0o644)

	pub, sec, err := pack.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "molt-1.5.0.zip")
	if err := pack.Build(pack.BuildOptions{Version: "1.5.0", BinDir: bin, Key: sec, Out: out, SkipVersionCheck: true}); err != nil {
		t.Fatal(err)
	}
	r, err := pack.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	m, err := r.VerifyAll([]pack.Key{pub})
	if err != nil {
		t.Fatal(err)
	}
	ws := m.PlatformWorkloads(plat)
	if len(ws) != len(want) {
		t.Fatalf("%s carries %d workloads, want %d: %+v", plat, len(ws), len(want), ws)
	}
	for _, w := range ws {
		cmd, ok := want[w.Spec.Name]
		if !ok || w.Spec.Command != cmd || len(w.Files) != 1 || w.Files[0].Path != cmd || !w.Files[0].Executable() {
			t.Errorf("workload %s: command %q, files %+v; want the one executable file %q", w.Spec.Name, w.Spec.Command, w.Files, cmd)
		}
	}
}

func writeFile(t *testing.T, path string, b []byte, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}
