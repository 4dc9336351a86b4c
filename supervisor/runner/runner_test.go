//go:build linux

// The runner's tests run real processes, with Linux's /proc telling
// which still run.

package runner

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"
	"golang.org/x/sys/unix"

	"github.com/moltfleet/molt/home"
	"github.com/moltfleet/molt/internal/e2etest/gobuild"
	"github.com/moltfleet/molt/platform"
	"github.com/moltfleet/molt/workload/spec"
)

// testWorkload is testdata/testworkload and handoffHelper
// testdata/handoff, built once by TestMain.
var testWorkload, handoffHelper string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "runner-test")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	testWorkload = filepath.Join(dir, "testworkload")
	handoffHelper = filepath.Join(dir, "handoff")
	for bin, pkg := range map[string]string{testWorkload: "./testdata/testworkload", handoffHelper: "./testdata/handoff"} {
		if _, err := gobuild.Build(bin, gobuild.Options{Pkgs: []string{pkg}}); err != nil {
			fmt.Fprintf(os.Stderr, "build %s: %v\n", pkg, err)
			os.RemoveAll(dir)
			os.Exit(1)
		}
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

const testVersion = "1.0.0"

// install puts the test workload into a fresh home as workload name of
// testVersion, with args, and returns the config to run it.
func install(t *testing.T, sp spec.Spec) Config {
	t.Helper()
	h := home.New(t.TempDir())
	if sp.Name == "" {
		sp.Name = "exporter"
	}
	sp.Command = "bin/w"
	dir := h.WorkloadDir(testVersion, sp.Name)
	if err := os.MkdirAll(filepath.Join(dir, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(testWorkload, filepath.Join(dir, "bin", "w")); err != nil {
		b, err := os.ReadFile(testWorkload)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "bin", "w"), b, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	w := spec.Workload{Spec: sp, Files: []spec.File{{Path: "bin/w", Size: 1, SHA256: strings.Repeat("a", 64), Mode: "0755"}}}
	if err := w.Check(); err != nil {
		t.Fatal(err)
	}
	return Config{Home: h, Version: testVersion, Workload: w, AgentID: "agent-1",
		BaseEnv: []string{"PATH=" + os.Getenv("PATH"), "KEEP=base", "OVERRIDE=base"}, Log: zaptest.NewLogger(t)}
}

func start(t *testing.T, cfg Config) *Instance {
	t.Helper()
	i, err := Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stopped := make(chan struct{})
		go func() { i.Stop(); close(stopped) }()
		select {
		case <-stopped:
		case <-time.After(20 * time.Second):
			t.Errorf("Stop did not return")
		}
	})
	return i
}

// next returns the next event, failing after d.
func next(t *testing.T, i *Instance, d time.Duration) Event {
	t.Helper()
	select {
	case ev, ok := <-i.Events():
		if !ok {
			t.Fatal("events closed")
		}
		return ev
	case <-time.After(d):
		t.Fatalf("no event within %s", d)
	}
	return Event{}
}

func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func dur(d time.Duration) spec.Duration { return spec.Duration(d) }

// alive reports whether pid runs (a zombie does not).
func alive(pid int) bool {
	_, err := platform.IdentifyProcess(pid)
	return err == nil
}

func TestStartEnvironmentAndDirectories(t *testing.T) {
	envFile := filepath.Join(t.TempDir(), "env")
	cfg := install(t, spec.Spec{
		Args:  []string{"-env-file", envFile, "-ready-file", "-ready-after", "100ms"},
		Env:   map[string]string{"OVERRIDE": "spec", "EXTRA": "x y"},
		Ready: spec.Ready{Probe: spec.Probe{File: true}, Within: dur(10 * time.Second), Interval: dur(50 * time.Millisecond)},
	})
	h := cfg.Home
	i := start(t, cfg)
	if ev := next(t, i, 10*time.Second); ev.Kind != Ready {
		t.Fatalf("got %v %q, want ready", ev.Kind, ev.Reason)
	}
	if !i.Ready() {
		t.Error("Ready() is false after the Ready event")
	}
	fi, err := os.Stat(h.DataDir("exporter"))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o750 || !fi.IsDir() {
		t.Errorf("data dir mode %v, want drwxr-x---", fi.Mode())
	}
	b, err := os.ReadFile(envFile)
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{}
	for _, l := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(l, "="); ok {
			if _, dup := env[k]; dup && k != "PWD" {
				t.Errorf("%s set twice", k)
			}
			env[k] = v
		}
	}
	want := map[string]string{
		"PWD":                   h.DataDir("exporter"),
		"KEEP":                  "base",
		"OVERRIDE":              "spec",
		"EXTRA":                 "x y",
		"MOLT_HOME":             h.Dir,
		"MOLT_WORKLOAD":         "exporter",
		"MOLT_WORKLOAD_VERSION": testVersion,
		"MOLT_WORKLOAD_DIR":     h.WorkloadDir(testVersion, "exporter"),
		"MOLT_DATA_DIR":         h.DataDir("exporter"),
		"MOLT_AGENT_ID":         "agent-1",
		"MOLT_HOLDS_DIR":        h.HoldsDir(),
		"MOLT_READY_FILE":       h.ReadyFile("exporter"),
	}
	for k, v := range want {
		if env[k] != v {
			t.Errorf("%s = %q, want %q", k, env[k], v)
		}
	}
	if i.Name() != "exporter" || i.Version() != testVersion || i.Identity() != cfg.Workload.Identity() {
		t.Errorf("Name, Version, Identity = %q, %q, %q", i.Name(), i.Version(), i.Identity())
	}
	id := i.Process()
	if cur, err := platform.IdentifyProcess(id.PID); err != nil || !cur.Same(id) {
		t.Errorf("Process() = %+v, the OS says %+v (%v)", id, cur, err)
	}
}

// TestStartDir: spec.dir is the working directory, inside the workload's
// directory.
func TestStartDir(t *testing.T) {
	envFile := filepath.Join(t.TempDir(), "env")
	cfg := install(t, spec.Spec{Args: []string{"-env-file", envFile}, Dir: "bin",
		Ready: spec.Ready{Probe: spec.Probe{Running: dur(50 * time.Millisecond)}, Interval: dur(20 * time.Millisecond)}})
	i := start(t, cfg)
	if ev := next(t, i, 10*time.Second); ev.Kind != Ready {
		t.Fatalf("got %v %q", ev.Kind, ev.Reason)
	}
	b := waitFile(t, envFile)
	if want := "PWD=" + filepath.Join(cfg.Home.WorkloadDir(testVersion, "exporter"), "bin") + "\n"; !strings.HasPrefix(string(b), want) {
		t.Errorf("env file starts %.80q, want %q", b, want)
	}
}

// TestStaleReadyFile: a ready file left from an earlier run does not make
// the new one ready.
func TestStaleReadyFile(t *testing.T) {
	cfg := install(t, spec.Spec{Ready: spec.Ready{Probe: spec.Probe{File: true}, Within: dur(400 * time.Millisecond), Interval: dur(50 * time.Millisecond)}})
	rf := cfg.Home.ReadyFile("exporter")
	if err := os.MkdirAll(filepath.Dir(rf), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(rf, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	i := start(t, cfg)
	ev := next(t, i, 10*time.Second)
	if ev.Kind != NotReady || ev.Reason != "did not pass its ready check within 400ms: no ready file yet" {
		t.Fatalf("got %v %q", ev.Kind, ev.Reason)
	}
}

func TestReadyKinds(t *testing.T) {
	for _, tc := range []struct {
		name  string
		args  func(addr string) []string
		probe func(addr string) spec.Probe
	}{
		{"http", func(a string) []string { return []string{"-listen", a, "-ready-after", "300ms"} },
			func(a string) spec.Probe { return spec.Probe{HTTP: "http://" + a + "/ready"} }},
		{"tcp", func(a string) []string { return []string{"-listen", a, "-ready-after", "300ms"} },
			func(a string) spec.Probe { return spec.Probe{TCP: a} }},
		// The probe runs with the workload's environment.
		{"command", func(string) []string { return []string{"-ready-file", "-ready-after", "300ms"} },
			func(string) spec.Probe {
				return spec.Probe{Command: []string{"/bin/sh", "-c", `test -e "$MOLT_READY_FILE"`}}
			}},
		{"running", func(string) []string { return nil },
			func(string) spec.Probe { return spec.Probe{Running: dur(300 * time.Millisecond)} }},
		{"file", func(string) []string { return []string{"-ready-file", "-ready-after", "300ms"} },
			func(string) spec.Probe { return spec.Probe{File: true} }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr := freePort(t)
			cfg := install(t, spec.Spec{Args: tc.args(addr),
				Ready: spec.Ready{Probe: tc.probe(addr), Within: dur(10 * time.Second), Interval: dur(50 * time.Millisecond)}})
			i := start(t, cfg)
			ev := next(t, i, 10*time.Second)
			if ev.Kind != Ready {
				t.Fatalf("got %v %q, want ready", ev.Kind, ev.Reason)
			}
			if d := ev.At.Sub(i.Started()); d < 300*time.Millisecond {
				t.Errorf("ready after %s, before the workload was", d)
			}
			i.Stop()
			ev = next(t, i, 10*time.Second)
			if ev.Kind != Exited || !ev.Asked || ev.Reason != "signal: terminated" || ev.Code != -1 {
				t.Errorf("got %+v, want an asked exit by SIGTERM", ev)
			}
		})
	}
}

func TestNotReady(t *testing.T) {
	addr := freePort(t)
	cfg := install(t, spec.Spec{Ready: spec.Ready{Probe: spec.Probe{HTTP: "http://" + addr + "/metrics"},
		Within: dur(500 * time.Millisecond), Interval: dur(100 * time.Millisecond)}})
	i := start(t, cfg)
	ev := next(t, i, 10*time.Second)
	want := "did not pass its ready check within 500ms: GET http://" + addr + "/metrics: connection refused"
	if ev.Kind != NotReady || ev.Reason != want {
		t.Fatalf("got %v %q\nwant not ready %q", ev.Kind, ev.Reason, want)
	}
	if d := ev.At.Sub(i.Started()); d < 500*time.Millisecond || d > 3*time.Second {
		t.Errorf("not ready after %s, want about 500ms", d)
	}
	// Left running: the caller decides.
	time.Sleep(100 * time.Millisecond)
	if !alive(i.Process().PID) || i.Ready() {
		t.Fatalf("alive %v, ready %v after NotReady; want running, not ready", alive(i.Process().PID), i.Ready())
	}
}

func TestUnhealthy(t *testing.T) {
	addr := freePort(t)
	cfg := install(t, spec.Spec{Args: []string{"-listen", addr, "-unhealthy-after", "600ms"},
		Ready: spec.Ready{Probe: spec.Probe{HTTP: "http://" + addr + "/ready"}, Interval: dur(50 * time.Millisecond)},
		Live:  &spec.Live{Probe: spec.Probe{HTTP: "http://" + addr + "/healthz"}, Interval: dur(100 * time.Millisecond), Failures: 3}})
	i := start(t, cfg)
	if ev := next(t, i, 10*time.Second); ev.Kind != Ready {
		t.Fatalf("got %v %q, want ready", ev.Kind, ev.Reason)
	}
	ev := next(t, i, 10*time.Second)
	want := "failed its live check 3 times in a row: GET http://" + addr + "/healthz: 500 Internal Server Error"
	if ev.Kind != Unhealthy || ev.Reason != want {
		t.Fatalf("got %v %q\nwant unhealthy %q", ev.Kind, ev.Reason, want)
	}
	if d := ev.At.Sub(i.Started()); d < 800*time.Millisecond {
		t.Errorf("unhealthy after %s: before three failures", d)
	}
	// Once: the failures go on, the event does not repeat.
	select {
	case ev := <-i.Events():
		t.Fatalf("second event %v %q", ev.Kind, ev.Reason)
	case <-time.After(600 * time.Millisecond):
	}
}

func TestExited(t *testing.T) {
	cfg := install(t, spec.Spec{Args: []string{"-exit-after", "400ms", "-exit-code", "3"},
		Ready: spec.Ready{Probe: spec.Probe{Running: dur(100 * time.Millisecond)}, Interval: dur(20 * time.Millisecond)}})
	i := start(t, cfg)
	if ev := next(t, i, 10*time.Second); ev.Kind != Ready {
		t.Fatalf("got %v %q, want ready", ev.Kind, ev.Reason)
	}
	ev := next(t, i, 10*time.Second)
	if ev.Kind != Exited || ev.Code != 3 || ev.Reason != "exit status 3" || ev.Asked {
		t.Fatalf("got %+v, want exit status 3 not asked", ev)
	}
	select {
	case <-i.Done():
	default:
		t.Error("Done not closed at Exited")
	}
	if _, ok := <-i.Events(); ok {
		t.Error("events not closed after Exited")
	}
	i.Stop() // after the exit: returns at once
}

// TestExitBeforeReady: a workload that exits during its ready check gets
// Exited, not NotReady.
func TestExitBeforeReady(t *testing.T) {
	cfg := install(t, spec.Spec{Args: []string{"-exit-after", "100ms", "-exit-code", "2"},
		Ready: spec.Ready{Probe: spec.Probe{Running: dur(time.Second)}, Interval: dur(20 * time.Millisecond)}})
	i := start(t, cfg)
	if ev := next(t, i, 10*time.Second); ev.Kind != Exited || ev.Code != 2 {
		t.Fatalf("got %+v, want exit status 2", ev)
	}
}

func TestStopKillsGroupAfterGrace(t *testing.T) {
	childFile := filepath.Join(t.TempDir(), "child")
	cfg := install(t, spec.Spec{Args: []string{"-ignore-term", "-child", childFile},
		Ready: spec.Ready{Probe: spec.Probe{Running: dur(200 * time.Millisecond)}, Interval: dur(20 * time.Millisecond)},
		Stop:  spec.Stop{Signal: "SIGTERM", Grace: dur(700 * time.Millisecond)}})
	i := start(t, cfg)
	if ev := next(t, i, 10*time.Second); ev.Kind != Ready {
		t.Fatalf("got %v %q, want ready", ev.Kind, ev.Reason)
	}
	var child int
	fmt.Sscan(string(waitFile(t, childFile)), &child)
	if !alive(child) {
		t.Fatalf("child %d not running", child)
	}
	begin := time.Now()
	i.Stop()
	took := time.Since(begin)
	if took < 700*time.Millisecond || took > 5*time.Second {
		t.Errorf("Stop took %s, want the grace of 700ms and then a kill", took)
	}
	ev := next(t, i, time.Second)
	if ev.Kind != Exited || !ev.Asked || ev.Reason != "signal: killed" {
		t.Errorf("got %+v, want an asked exit by SIGKILL", ev)
	}
	deadline := time.Now().Add(5 * time.Second)
	for alive(child) {
		if time.Now().After(deadline) {
			t.Fatalf("the workload's child %d survives its stop", child)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestExitKillsGroup: what the workload started does not outlive it.
func TestExitKillsGroup(t *testing.T) {
	childFile := filepath.Join(t.TempDir(), "child")
	cfg := install(t, spec.Spec{Args: []string{"-child", childFile, "-exit-after", "300ms", "-exit-code", "1"},
		Ready: spec.Ready{Probe: spec.Probe{Running: dur(100 * time.Millisecond)}, Interval: dur(20 * time.Millisecond)}})
	i := start(t, cfg)
	for ev := next(t, i, 10*time.Second); ev.Kind != Exited; ev = next(t, i, 10*time.Second) {
	}
	var child int
	fmt.Sscan(string(waitFile(t, childFile)), &child)
	deadline := time.Now().Add(5 * time.Second)
	for child == 0 || alive(child) {
		if time.Now().After(deadline) {
			t.Fatalf("the workload's child %d survives its exit", child)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestStopSignalKill(t *testing.T) {
	cfg := install(t, spec.Spec{Ready: spec.Ready{Probe: spec.Probe{Running: dur(50 * time.Millisecond)}, Interval: dur(20 * time.Millisecond)},
		Stop: spec.Stop{Signal: "kill", Grace: dur(time.Minute)}})
	i := start(t, cfg)
	next(t, i, 10*time.Second)
	begin := time.Now()
	i.Stop()
	if d := time.Since(begin); d > 5*time.Second {
		t.Errorf("Stop with signal kill took %s", d)
	}
	if ev := next(t, i, time.Second); ev.Reason != "signal: killed" || !ev.Asked {
		t.Errorf("got %+v", ev)
	}
}

func TestLogs(t *testing.T) {
	cfg := install(t, spec.Spec{Args: []string{"-print", "50", "-long", "10000", "-exit-after", "200ms"},
		Ready: spec.Ready{Probe: spec.Probe{Running: dur(50 * time.Millisecond)}, Interval: dur(20 * time.Millisecond)}})
	i := start(t, cfg)
	<-i.Done()
	b, err := os.ReadFile(filepath.Join(cfg.Home.LogsDir(), "workload-exporter-1.0.0.log"))
	if err != nil {
		t.Fatal(err)
	}
	log := string(b)
	for n := 1; n <= 50; n++ {
		for _, s := range []string{"stdout", "stderr"} {
			if want := fmt.Sprintf(" %s %s line %d\n", s, s, n); strings.Count(log, want) != 1 {
				t.Fatalf("log has %q %d times, want once", want, strings.Count(log, want))
			}
		}
	}
	if !strings.Contains(log, " stdout "+strings.Repeat("x", maxLineLen)+" [truncated]\n") {
		t.Error("the long line is not cut at 4096 bytes and marked")
	}
	if !strings.Contains(log, " stdout after the long line\n") {
		t.Error("the line after the long one is lost")
	}
	for _, l := range strings.Split(strings.TrimSuffix(log, "\n"), "\n") {
		ts, _, _ := strings.Cut(l, " ")
		if _, err := time.Parse(time.RFC3339Nano, ts); err != nil {
			t.Fatalf("line %.60q does not start with a time", l)
		}
	}
}

func TestStartMissingCommand(t *testing.T) {
	cfg := install(t, spec.Spec{Ready: spec.Ready{Probe: spec.Probe{Running: dur(time.Second)}}})
	os.Remove(filepath.Join(cfg.Home.WorkloadDir(testVersion, "exporter"), "bin", "w"))
	_, err := Start(cfg)
	want := "start versions/1.0.0/workloads/exporter/bin/w: no such file or directory"
	if !errors.Is(err, ErrStart) || err.Error() != want {
		t.Fatalf("got %v, want %q", err, want)
	}
}

// TestHandoffAdopt hands an instance over within one process, as the
// supervisor's exec in place does across two images: the output goes on
// into the log with no line lost or written twice, the readiness is
// kept, and the adopted instance stops the process.
func TestHandoffAdopt(t *testing.T) {
	addr := freePort(t)
	cfg := install(t, spec.Spec{Args: []string{"-listen", addr, "-print-every", "5ms"},
		Ready: spec.Ready{Probe: spec.Probe{TCP: addr}, Interval: dur(20 * time.Millisecond)},
		Live:  &spec.Live{Probe: spec.Probe{TCP: addr}, Interval: dur(50 * time.Millisecond)}})
	// Not start: the old instance is handed off, the adopted one stops
	// the process.
	old, err := Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if ev := next(t, old, 10*time.Second); ev.Kind != Ready {
		t.Fatalf("got %v %q", ev.Kind, ev.Reason)
	}
	time.Sleep(200 * time.Millisecond)
	h, files := old.Handoff()
	if len(files) != 2 || h.Process != old.Process() || !h.Ready || h.Stdout != int(files[0].Fd()) {
		t.Fatalf("handoff %+v with %d files", h, len(files))
	}
	for _, f := range files {
		flags, err := fcntlFlags(f)
		if err != nil || flags&unix.FD_CLOEXEC != 0 {
			t.Errorf("fd %d: close-on-exec still set (%v)", f.Fd(), err)
		}
	}
	time.Sleep(100 * time.Millisecond) // lines wait in the pipe
	// A real exec would give the descriptors to the new image; here they
	// are shared, so the old instance's files must stay reachable.
	defer runtime.KeepAlive(old)
	adopted, err := Adopt(cfg, h)
	if err != nil {
		t.Fatal(err)
	}
	if !adopted.Ready() || adopted.Process() != old.Process() || !adopted.Started().Equal(old.Started()) {
		t.Errorf("adopted: ready %v, process %+v, started %v", adopted.Ready(), adopted.Process(), adopted.Started())
	}
	time.Sleep(200 * time.Millisecond)
	adopted.Stop()
	checkTicks(t, cfg, 20)
}

// checkTicks checks that the log holds the ticks of -print-every, each
// once and in order, at least least of them.
func checkTicks(t *testing.T, cfg Config, least int) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(cfg.Home.LogsDir(), "workload-exporter-1.0.0.log"))
	if err != nil {
		t.Fatal(err)
	}
	last := 0
	for _, l := range strings.Split(strings.TrimSuffix(string(b), "\n"), "\n") {
		var n int
		_, rest, _ := strings.Cut(l, " stdout tick ")
		if _, err := fmt.Sscan(rest, &n); err != nil {
			t.Fatalf("line %q", l)
		}
		if n != last+1 {
			t.Fatalf("tick %d follows tick %d: a line lost or written twice", n, last)
		}
		last = n
	}
	if last < least {
		t.Errorf("only %d ticks logged, want at least %d", last, least)
	}
}

// TestHandoffAcrossExec runs the handoff for real: a process starts the
// workload, hands it off and execs itself; its new image adopts it,
// waits for it as its child and stops it.
func TestHandoffAcrossExec(t *testing.T) {
	cfg := install(t, spec.Spec{Args: []string{"-print-every", "5ms"},
		Ready: spec.Ready{Probe: spec.Probe{Running: dur(50 * time.Millisecond)}, Interval: dur(20 * time.Millisecond)},
		Live:  &spec.Live{Probe: spec.Probe{Command: []string{"/bin/true"}}, Interval: dur(50 * time.Millisecond)}})
	w, _ := json.Marshal(cfg.Workload)
	cmd := exec.Command(handoffHelper, cfg.Home.Dir, testVersion, string(w))
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%v: %s", err, stderr.String())
	}
	var got struct {
		Event
		Ready bool
		PID   int
	}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("%v: %q", err, out)
	}
	if got.Kind != Exited || !got.Asked || got.Reason != "signal: terminated" || !got.Ready || got.PID != cmd.Process.Pid {
		t.Fatalf("second image saw %+v (helper pid %d)", got, cmd.Process.Pid)
	}
	checkTicks(t, cfg, 30)
}

// TestHandoffResume: after an exec that failed, the instance reads its
// output again and stops as before.
func TestHandoffResume(t *testing.T) {
	cfg := install(t, spec.Spec{Args: []string{"-print-every", "5ms"},
		Ready: spec.Ready{Probe: spec.Probe{Running: dur(50 * time.Millisecond)}, Interval: dur(20 * time.Millisecond)}})
	i := start(t, cfg)
	next(t, i, 10*time.Second)
	i.Handoff()
	time.Sleep(100 * time.Millisecond)
	i.Resume()
	for _, f := range []*os.File{i.out, i.errOut} {
		flags, err := fcntlFlags(f)
		if err != nil || flags&unix.FD_CLOEXEC == 0 {
			t.Errorf("fd %d: close-on-exec not set again (%v)", f.Fd(), err)
		}
	}
	time.Sleep(200 * time.Millisecond)
	// A second handoff must interrupt the pumps again (the descriptors
	// are served by the poller again).
	handed := make(chan struct{})
	go func() { i.Handoff(); close(handed) }()
	select {
	case <-handed:
	case <-time.After(5 * time.Second):
		t.Fatal("a second Handoff hangs")
	}
	i.Resume()
	time.Sleep(100 * time.Millisecond)
	i.Stop()
	checkTicks(t, cfg, 20)
}

func TestAdoptRefusesAnotherProcess(t *testing.T) {
	cfg := install(t, spec.Spec{Ready: spec.Ready{Probe: spec.Probe{Running: dur(50 * time.Millisecond)}}})
	i := start(t, cfg)
	h, _ := i.Handoff()
	defer i.Resume()
	// Adopt owns the descriptors it is given (it closes them when it
	// refuses): give it copies, the instance keeps its own.
	var err error
	if h.Stdout, err = unix.Dup(h.Stdout); err != nil {
		t.Fatal(err)
	}
	if h.Stderr, err = unix.Dup(h.Stderr); err != nil {
		t.Fatal(err)
	}
	h.Process.Start++
	if _, err := Adopt(cfg, h); !errors.Is(err, ErrAdopt) || !strings.Contains(err.Error(), "no longer runs") {
		t.Fatalf("got %v, want a refusal", err)
	}
}

// startStale starts the test workload as a previous supervisor would
// have: in its own process group, with a child; it returns both pids.
func startStale(t *testing.T, args ...string) (*exec.Cmd, int) {
	t.Helper()
	childFile := filepath.Join(t.TempDir(), "child")
	cmd := exec.Command(testWorkload, append([]string{"-child", childFile}, args...)...)
	platform.PrepareGroup(cmd)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go cmd.Wait()
	t.Cleanup(func() { _ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) })
	var child int
	deadline := time.Now().Add(10 * time.Second)
	for child == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no child started")
		}
		time.Sleep(20 * time.Millisecond)
		b, _ := os.ReadFile(childFile)
		fmt.Sscan(string(b), &child)
	}
	return cmd, child
}

func TestStopStale(t *testing.T) {
	log := zaptest.NewLogger(t)
	t.Run("same process, whole group", func(t *testing.T) {
		cmd, child := startStale(t)
		id, err := platform.IdentifyProcess(cmd.Process.Pid)
		if err != nil {
			t.Fatal(err)
		}
		if err := StopStale(id, "SIGTERM", 2*time.Second, log); err != nil {
			t.Fatal(err)
		}
		if alive(cmd.Process.Pid) || waitGone(child) != nil {
			t.Fatalf("workload %v, child %v after StopStale", alive(cmd.Process.Pid), alive(child))
		}
	})
	t.Run("ignores SIGTERM: killed after grace", func(t *testing.T) {
		cmd, child := startStale(t, "-ignore-term")
		id, _ := platform.IdentifyProcess(cmd.Process.Pid)
		begin := time.Now()
		if err := StopStale(id, "SIGTERM", 500*time.Millisecond, log); err != nil {
			t.Fatal(err)
		}
		if d := time.Since(begin); d < 500*time.Millisecond {
			t.Errorf("killed after %s, before the grace", d)
		}
		if alive(cmd.Process.Pid) || waitGone(child) != nil {
			t.Fatalf("workload %v, child %v after StopStale", alive(cmd.Process.Pid), alive(child))
		}
	})
	t.Run("another process with the pid", func(t *testing.T) {
		cmd, child := startStale(t)
		id, _ := platform.IdentifyProcess(cmd.Process.Pid)
		others := []platform.ProcessIdentity{{PID: id.PID, Start: id.Start + 1000, Exe: id.Exe}}
		if !exactStart {
			others = append(others, platform.ProcessIdentity{PID: id.PID, Start: id.Start, Exe: "/usr/bin/other"})
		}
		for _, other := range others {
			if err := StopStale(other, "kill", time.Second, log); err != nil {
				t.Fatal(err)
			}
		}
		time.Sleep(200 * time.Millisecond)
		if !alive(cmd.Process.Pid) || !alive(child) {
			t.Fatal("StopStale signalled a process that is not the recorded one")
		}
	})
	t.Run("the recorded process exec'd its program", func(t *testing.T) {
		if !exactStart {
			t.Skip("the start time is rounded here: the executable must match")
		}
		// Recorded while it was still the interpreter of a wrapper
		// script (exec java ...): the same pid and start time.
		cmd, child := startStale(t)
		id, _ := platform.IdentifyProcess(cmd.Process.Pid)
		id.Exe = "/bin/sh"
		if err := StopStale(id, "SIGTERM", 2*time.Second, log); err != nil {
			t.Fatal(err)
		}
		if alive(cmd.Process.Pid) || waitGone(child) != nil {
			t.Fatalf("workload %v, child %v after StopStale", alive(cmd.Process.Pid), alive(child))
		}
	})
	t.Run("gone", func(t *testing.T) {
		if err := StopStale(platform.ProcessIdentity{PID: 1 << 22, Start: 1, Exe: "/x"}, "SIGTERM", time.Second, zap.NewNop()); err != nil {
			t.Fatal(err)
		}
	})
}

func waitFile(t *testing.T, name string) []byte {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		b, err := os.ReadFile(name)
		if err == nil && len(b) > 0 {
			return b
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not written", name)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func waitGone(pid int) error {
	deadline := time.Now().Add(5 * time.Second)
	for alive(pid) {
		if time.Now().After(deadline) {
			return fmt.Errorf("pid %d still runs", pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return nil
}

func fcntlFlags(f *os.File) (int, error) { return unix.FcntlInt(f.Fd(), unix.F_GETFD, 0) }
