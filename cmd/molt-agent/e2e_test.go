package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/moltfleet/molt/agent"
	"github.com/moltfleet/molt/home"
	"github.com/moltfleet/molt/internal/buildinfo"
	"github.com/moltfleet/molt/internal/e2etest"
	"github.com/moltfleet/molt/updater/pack"
)

// The end-to-end tests build molt-agent and molt-supervisor at two
// versions, and the test agent that crashes at start as a third version,
// once per run; they pack each version (1.2.0 with the 1.1.0 supervisor)
// with a key made for the run, and run real supervisors on homes in
// temporary directories.
var (
	e2eDir   string
	plat     = buildinfo.Platform()
	platDir  = strings.ReplaceAll(plat, "/", "_")
	pubKey   string // inline public key for agent.yaml
	otherKey string // a key that signed nothing
	packs    = map[string]string{}
)

const modPath = "github.com/moltfleet/molt"

// binDir returns where the binaries of version v are, laid out as
// scripts/build.sh does.
func binDir(v string) string { return filepath.Join(e2eDir, "bin", v, platDir) }

// cli is the molt-agent used to run commands: the 1.0.0 one.
func cliBin() string { return filepath.Join(binDir("1.0.0"), "molt-agent") }

func TestMain(m *testing.M) {
	flag.Parse()
	if runtime.GOOS == "windows" || testing.Short() {
		os.Exit(m.Run())
	}
	os.Exit(e2etest.MainBuilt(m, "molt-agent-e2e", func(dir string) error {
		e2eDir = dir
		return buildE2E()
	}))
}

func buildE2E() error {
	var builds []e2etest.Build
	for _, v := range []string{"1.0.0", "1.1.0"} {
		builds = append(builds,
			e2etest.Build{Out: filepath.Join(binDir(v), "molt-agent"), Pkg: modPath + "/cmd/molt-agent", Version: v},
			e2etest.Build{Out: filepath.Join(binDir(v), "molt-supervisor"), Pkg: modPath + "/cmd/molt-supervisor", Version: v})
	}
	builds = append(builds, e2etest.Build{Out: filepath.Join(binDir("1.2.0"), "molt-agent"), Pkg: modPath + "/testdata/testagent", Version: "1.2.0", Mode: "crash-at-start"})
	if err := e2etest.BuildAll(builds...); err != nil {
		return err
	}
	// 1.2.0 ships the 1.1.0 supervisor beside its crashing agent.
	b, err := os.ReadFile(filepath.Join(binDir("1.1.0"), "molt-supervisor"))
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(binDir("1.2.0"), "molt-supervisor"), b, 0o755); err != nil {
		return err
	}
	pub, sec, err := pack.GenerateKey(nil)
	if err != nil {
		return err
	}
	other, _, err := pack.GenerateKey(nil)
	if err != nil {
		return err
	}
	pubKey, otherKey = pub.String(), other.String()
	for _, v := range []string{"1.0.0", "1.1.0", "1.2.0"} {
		out := filepath.Join(e2eDir, "molt-"+v+".pack")
		if err := pack.Build(pack.BuildOptions{
			Version: v, BinDir: filepath.Dir(binDir(v)), Key: sec, Out: out,
			SkipVersionCheck: v == "1.2.0",
		}); err != nil {
			return fmt.Errorf("pack %s: %w", v, err)
		}
		packs[v] = out
	}
	return nil
}

func needE2E(t *testing.T) {
	t.Helper()
	if e2eDir == "" {
		t.Skip("end-to-end: not on Windows, not with -short")
	}
}

// molt runs the molt-agent CLI and returns its combined output and exit
// code.
func molt(t *testing.T, args ...string) (string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, cliBin(), args...)
	cmd.Env = append(os.Environ(), "MOLT_HOME=")
	out, err := cmd.CombinedOutput()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("molt-agent %v: %v", args, err)
	}
	return string(out), code
}

// newHome installs 1.0.0 into a fresh home, trusting the run's key; extra
// is more of agent.yaml.
func newHome(t *testing.T, key string, extra ...string) home.Home {
	t.Helper()
	h := home.New(filepath.Join(t.TempDir(), "home"))
	cfg := filepath.Join(t.TempDir(), "agent.yaml")
	if err := os.WriteFile(cfg, []byte("trusted_keys:\n  - "+key+"\n"+strings.Join(extra, "")), 0o600); err != nil {
		t.Fatal(err)
	}
	out, code := molt(t, "install", "--home", h.Dir, "--config", cfg, "--no-service")
	if code != 0 {
		t.Fatalf("install: exit %d\n%s", code, out)
	}
	return h
}

// supervise runs the home's supervisor with a short watch window until the
// test ends.
func supervise(t *testing.T, h home.Home, watch string) {
	t.Helper()
	cmd := exec.Command(h.SupervisorBinary(), "run", "--home", h.Dir, "--watch", watch,
		"--crash-budget", "1", "--ready-timeout", "10s", "--backoff-min", "100ms", "--stop-grace", "5s")
	cmd.Env = append(os.Environ(), "MOLT_HOME=")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			log, _ := os.ReadFile(filepath.Join(h.LogsDir(), "supervisor.log"))
			t.Logf("supervisor output:\n%s\nsupervisor.log:\n%s", out.String(), log)
		}
	})
}

// waitAgent waits until an agent of version v runs for h and returns it.
func waitAgent(t *testing.T, h home.Home, v string) agent.DaemonInfo {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if d, ok := agent.RunningDaemon(h); ok && d.Version == v {
			return d
		}
		if time.Now().After(deadline) {
			d, ok := agent.RunningDaemon(h)
			t.Fatalf("no agent %s runs (state/daemon.json: %+v running %v)", v, d, ok)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestUpgradePackUnsupervised(t *testing.T) {
	needE2E(t)
	h := newHome(t, pubKey)
	out, code := molt(t, "upgrade", "--home", h.Dir, "--pack", packs["1.1.0"])
	if code != 0 {
		t.Fatalf("upgrade: exit %d\n%s", code, out)
	}
	if !strings.Contains(out, "starts with the next start") {
		t.Errorf("output does not say when 1.1.0 starts:\n%s", out)
	}
	a, err := h.ReadActive()
	if err != nil || a.Current != "1.1.0" || a.Previous != "1.0.0" || a.Trial == nil || a.Trial.Version != "1.1.0" {
		t.Errorf("active = %+v, %v; want 1.1.0 in trial after 1.0.0", a, err)
	}
	if !h.IsValid("1.1.0") {
		t.Error("versions/1.1.0 not valid")
	}
	if out, _ := exec.Command(h.AgentBinary("1.1.0"), "version").Output(); !strings.Contains(string(out), "1.1.0") {
		t.Errorf("staged agent says %q", out)
	}

	// A second upgrade while the trial is pending is refused.
	out, code = molt(t, "upgrade", "--home", h.Dir, "--pack", packs["1.2.0"])
	if code != 1 || !strings.Contains(out, "trial of 1.1.0 is in progress") {
		t.Errorf("upgrade during a trial: exit %d\n%s", code, out)
	}
}

func TestUpgradePackRefusalsChangeNothing(t *testing.T) {
	needE2E(t)
	h := newHome(t, otherKey)
	junk := filepath.Join(t.TempDir(), "junk.pack")
	os.WriteFile(junk, []byte("not a zip"), 0o644)
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"untrusted key", []string{"--pack", packs["1.1.0"]}, "untrusted key"},
		{"not a pack", []string{"--pack", junk}, "bad pack"},
		{"missing file", []string{"--pack", filepath.Join(t.TempDir(), "nope.pack")}, "no such file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := treeOf(t, h.Dir)
			out, code := molt(t, append([]string{"upgrade", "--home", h.Dir}, tc.args...)...)
			if code != 1 || !strings.Contains(out, tc.want) {
				t.Errorf("exit %d, want 1 with %q:\n%s", code, tc.want, out)
			}
			if lines := strings.Count(strings.TrimSpace(out), "\n"); lines != 0 {
				t.Errorf("refusal is %d lines, want one:\n%s", lines+1, out)
			}
			if after := treeOf(t, h.Dir); after != before {
				t.Errorf("the home changed:\nbefore\n%s\nafter\n%s", before, after)
			}
		})
	}
}

// Test 6: a manual upgrade of a supervised agent ends with the new version
// running and committed; a pack whose agent crashes at start ends rolled
// back with the old version running again.
func TestSupervisedUpgradeCommitsAndCrashRollsBack(t *testing.T) {
	needE2E(t)
	h := newHome(t, pubKey)
	supervise(t, h, "2s")
	old := waitAgent(t, h, "1.0.0")
	if !old.Supervised {
		t.Errorf("agent does not know it is supervised: %+v", old)
	}

	start := time.Now()
	out, code := molt(t, "upgrade", "--home", h.Dir, "--pack", packs["1.1.0"], "--wait", "--timeout", "90s")
	t.Logf("upgrade to 1.1.0 committed after %s", time.Since(start).Round(time.Millisecond))
	if code != 0 || !strings.Contains(out, "committed: 1.1.0 runs") {
		t.Fatalf("upgrade to 1.1.0: exit %d\n%s", code, out)
	}
	if !strings.Contains(out, "handing the pack to the running agent") {
		t.Errorf("upgrade did not go through the running agent:\n%s", out)
	}
	r, ok, err := h.ReadResult()
	if err != nil || !ok || r.Outcome != home.OutcomeCommitted || r.Version != "1.1.0" {
		t.Errorf("result.json = %+v %v %v, want committed 1.1.0", r, ok, err)
	}
	now := waitAgent(t, h, "1.1.0")
	if now.Pid == old.Pid {
		t.Errorf("agent pid %d did not change", now.Pid)
	}

	start = time.Now()
	out, code = molt(t, "upgrade", "--home", h.Dir, "--pack", packs["1.2.0"], "--wait", "--timeout", "90s")
	t.Logf("upgrade to the crashing 1.2.0 rolled back after %s", time.Since(start).Round(time.Millisecond))
	if code != 1 || !strings.Contains(out, "rolled back to 1.1.0") {
		t.Fatalf("upgrade to the crashing 1.2.0: exit %d, want 1 and a rollback\n%s", code, out)
	}
	r, _, _ = h.ReadResult()
	if r.Outcome != home.OutcomeRolledBack || r.Version != "1.2.0" || r.Reason == "" || r.Logs == "" {
		t.Errorf("result.json = %+v, want rolled_back 1.2.0 with a reason and logs", r)
	}
	if a, _ := h.ReadActive(); a.Current != "1.1.0" || a.Trial != nil {
		t.Errorf("active after rollback = %+v, want 1.1.0 without a trial", a)
	}
	waitAgent(t, h, "1.1.0")

	status, code := molt(t, "status", "--home", h.Dir, "--json")
	var st statusReport
	if code != 0 || json.Unmarshal([]byte(status), &st) != nil {
		t.Fatalf("status --json: exit %d\n%s", code, status)
	}
	if !st.Supervised || st.Agent == nil || !st.Agent.Running || st.LastResult == nil || st.LastResult.Outcome != home.OutcomeRolledBack {
		t.Errorf("status = %s", status)
	}

	// A revert to the first version goes the same way.
	start = time.Now()
	out, code = molt(t, "upgrade", "--home", h.Dir, "--pack", packs["1.0.0"], "--wait", "--timeout", "90s")
	t.Logf("revert to 1.0.0 committed after %s", time.Since(start).Round(time.Millisecond))
	if code != 0 || !strings.Contains(out, "revert 1.1.0 -> 1.0.0") || !strings.Contains(out, "committed: 1.0.0 runs") {
		t.Fatalf("revert to 1.0.0: exit %d\n%s", code, out)
	}
	waitAgent(t, h, "1.0.0")
}

// Test 7: an upgrade requested during a hold restarts the agent only after
// the hold ends.
//
// The home names a server that refuses connections: the agent must still
// say ready (the trial commits only then).
func TestHoldDelaysRestart(t *testing.T) {
	needE2E(t)
	h := newHome(t, pubKey, "server: https://127.0.0.1:1\n")
	supervise(t, h, "1s")
	old := waitAgent(t, h, "1.0.0")
	if id, err := agent.ReadIdentity(h); err != nil || id.Enrolled() {
		t.Errorf("identity on the first start = %+v, %v; want one, not enrolled", id, err)
	}

	// The held job runs until the test lets it end.
	release := filepath.Join(t.TempDir(), "job-done")
	hold := exec.Command(cliBin(), "hold", "--home", h.Dir, "--reason", "e2e job", "--",
		"sh", "-c", `while [ ! -e "$0" ]; do sleep 0.05; done`, release)
	if err := hold.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { hold.Process.Kill(); hold.Wait() })
	waitFor(t, "the hold", func() bool { hs, _ := agent.HoldsOf(h).List(); return len(hs) == 1 })

	upgraded := make(chan string, 1)
	go func() {
		out, _ := exec.Command(cliBin(), "upgrade", "--home", h.Dir, "--pack", packs["1.1.0"]).CombinedOutput()
		upgraded <- string(out)
	}()
	// The agent staged 1.1.0 and waits for the hold.
	waitForLong(t, "the agent to wait for the hold", func() bool {
		ms, _ := filepath.Glob(filepath.Join(agent.RequestsDir(h), "*.status"))
		for _, m := range ms {
			var st agent.RequestStatus
			if b, err := os.ReadFile(m); err == nil && json.Unmarshal(b, &st) == nil && st.Step == "wait" {
				return true
			}
		}
		return false
	})
	if !h.IsValid("1.1.0") {
		t.Error("1.1.0 not staged while the switch waits")
	}
	time.Sleep(1500 * time.Millisecond) // several of the agent's hold polls
	if d, ok := agent.RunningDaemon(h); !ok || d.Pid != old.Pid {
		t.Errorf("during the hold the agent is %+v (running %v), want still pid %d", d, ok, old.Pid)
	}
	if a, _ := h.ReadActive(); a.Current != "1.0.0" {
		t.Errorf("switched to %s during the hold", a.Current)
	}
	if err := os.WriteFile(release, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := hold.Wait(); err != nil {
		t.Errorf("hold -- sh: %v", err)
	}
	holdEnded := time.Now()
	var out string
	select {
	case out = <-upgraded:
	case <-time.After(60 * time.Second):
		t.Fatal("upgrade did not return after the hold ended")
	}
	if !strings.Contains(out, "waiting for 1 hold(s)") || !strings.Contains(out, "e2e job") {
		t.Errorf("upgrade did not say it waits for the hold:\n%s", out)
	}
	now := waitAgent(t, h, "1.1.0")
	if now.Started.Before(holdEnded.Add(-time.Second)) {
		t.Errorf("1.1.0 started at %v, before the hold ended at %v", now.Started, holdEnded)
	}
	if a, _ := h.ReadActive(); a.Trial == nil || a.Trial.Switched.Before(holdEnded.Add(-time.Second)) {
		t.Errorf("switched at %+v, before the hold ended at %v", a.Trial, holdEnded)
	}
}

// The real OS service: install registers and starts the supervisor, which
// starts the agent; uninstall stops and removes it and the home but logs/.
// Needs root and a service manager (SysV init on the development machine).
func TestInstallServiceAndUninstall(t *testing.T) {
	needE2E(t)
	if os.Geteuid() != 0 {
		t.Skip("needs root to install a service")
	}
	if _, err := os.Stat("/etc/init.d"); err != nil {
		t.Skip("no /etc/init.d")
	}
	h := home.New(filepath.Join(t.TempDir(), "home"))
	name := fmt.Sprintf("molt-agent-e2e-%d", os.Getpid())
	t.Cleanup(func() {
		exec.Command(h.SupervisorBinary(), "stop", "--home", h.Dir, "--name", name).Run()
		exec.Command(h.SupervisorBinary(), "uninstall", "--home", h.Dir, "--name", name).Run()
	})
	out, code := molt(t, "install", "--home", h.Dir, "--name", name)
	if code != 0 {
		if strings.Contains(out, "no service manager") {
			t.Skipf("no service manager: %s", out)
		}
		t.Fatalf("install: exit %d\n%s", code, out)
	}
	if !strings.Contains(out, "started service "+name) {
		t.Errorf("install did not start the service:\n%s", out)
	}
	waitAgent(t, h, "1.0.0")
	out, code = molt(t, "uninstall", "--home", h.Dir, "--name", name)
	if code != 0 || !strings.Contains(out, "uninstalled service "+name) {
		t.Fatalf("uninstall: exit %d\n%s", code, out)
	}
	if _, ok := agent.RunningDaemon(h); ok {
		t.Error("an agent still runs after uninstall")
	}
	ents, _ := os.ReadDir(h.Dir)
	if len(ents) != 1 || ents[0].Name() != "logs" {
		t.Errorf("left in the home: %v, want logs/ only", ents)
	}
}

func TestInstallFromPack(t *testing.T) {
	needE2E(t)
	keyFile := filepath.Join(t.TempDir(), "release.pub")
	os.WriteFile(keyFile, []byte(pubKey+"\n"), 0o644)
	otherFile := filepath.Join(t.TempDir(), "other.pub")
	os.WriteFile(otherFile, []byte(otherKey+"\n"), 0o644)

	h := home.New(filepath.Join(t.TempDir(), "home"))
	out, code := molt(t, "install", "--home", h.Dir, "--pack", packs["1.1.0"], "--key", otherFile, "--no-service")
	if code != 1 || !strings.Contains(out, "untrusted key") {
		t.Errorf("install from a pack with the wrong key: exit %d\n%s", code, out)
	}
	if _, err := os.Stat(h.Dir); err == nil {
		t.Errorf("a refused install made the home")
	}

	out, code = molt(t, "install", "--home", h.Dir, "--pack", packs["1.1.0"], "--key", keyFile, "--no-service")
	if code != 0 || !strings.Contains(out, "installing molt 1.1.0") {
		t.Fatalf("install --pack: exit %d\n%s", code, out)
	}
	if a, err := h.ReadActive(); err != nil || a.Current != "1.1.0" || !h.IsValid("1.1.0") {
		t.Errorf("active %+v, %v; valid %v", a, err, h.IsValid("1.1.0"))
	}
	if v, _ := exec.Command(h.SupervisorBinary(), "version").Output(); !strings.Contains(string(v), "1.1.0") {
		t.Errorf("bin/molt-supervisor says %q, want 1.1.0", v)
	}
	// Over it, the older release beside the CLI is refused: no downgrade.
	out, code = molt(t, "install", "--home", h.Dir, "--no-service")
	if code != 1 || !strings.Contains(out, "does not downgrade") {
		t.Errorf("install of 1.0.0 over 1.1.0: exit %d\n%s", code, out)
	}
}

func TestRunBadConfigExits12(t *testing.T) {
	needE2E(t)
	h := newHome(t, pubKey)
	for _, tc := range []struct {
		name, config, env, want string
	}{
		{"unknown key", "servr: https://x\n", "", "servr"},
		{"bad value", "log_level: loud\n", "", "log_level"},
		{"bad environment", "", "MOLT_SERVER=ftp://x", "MOLT_SERVER"},
		{"missing key file", "trusted_keys: [/nonexistent/release.pub]\n", "", "trusted_keys"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			os.WriteFile(h.ConfigPath(), []byte(tc.config), 0o600)
			cmd := exec.Command(cliBin(), "run", "--home", h.Dir)
			cmd.Env = append(os.Environ(), "MOLT_HOME=", tc.env)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			err := cmd.Run()
			if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 12 {
				t.Fatalf("run: %v, want exit 12\n%s", err, stderr.String())
			}
			line := strings.TrimSpace(stderr.String())
			if strings.Contains(line, "\n") || !strings.HasPrefix(line, "molt-agent: ") || !strings.Contains(line, tc.want) {
				t.Errorf("stderr %q is not one line naming %q", line, tc.want)
			}
		})
	}
}

func TestHoldCommand(t *testing.T) {
	needE2E(t)
	h := home.New(t.TempDir())
	if out, code := molt(t, "hold", "--home", h.Dir, "--reason", "job", "--for", "1h"); code != 1 || !strings.Contains(out, "not a molt home") {
		t.Errorf("hold in a directory that is no home: exit %d\n%s", code, out)
	}
	h.WriteActive(home.Active{Current: "1.0.0"})
	out, code := molt(t, "hold", "--home", h.Dir, "--reason", "job", "--", "sh", "-c", "ls \"$0\" | wc -l; exit 7", filepath.Join(h.StateDir(), "holds"))
	if code != 7 || strings.TrimSpace(out) != "1" {
		t.Errorf("hold -- sh: exit %d output %q; want 7 and one hold while it ran", code, out)
	}
	if hs, _ := agent.HoldsOf(h).List(); len(hs) != 0 {
		t.Errorf("holds after the command: %+v", hs)
	}
	if _, code := molt(t, "hold", "--home", h.Dir, "--reason", "job", "--", "/nonexistent/cmd"); code != 127 {
		t.Errorf("hold of a missing command: exit %d, want 127", code)
	}
	if out, code := molt(t, "hold", "--home", h.Dir, "--reason", "job"); code != 2 || !strings.Contains(out, "--for") {
		t.Errorf("hold without --for or a command: exit %d\n%s", code, out)
	}
	out, code = molt(t, "hold", "--home", h.Dir, "--reason", "window", "--for", "1h", "--json")
	var hold agent.Hold
	if code != 0 || json.Unmarshal([]byte(out), &hold) != nil || hold.ID == "" {
		t.Fatalf("hold --for: exit %d\n%s", code, out)
	}
	if out, code := molt(t, "release", "--home", h.Dir, "--id", hold.ID); code != 0 || !strings.Contains(out, hold.ID) {
		t.Errorf("release: exit %d\n%s", code, out)
	}
}

func TestResetIdentityCommand(t *testing.T) {
	needE2E(t)
	h := home.New(t.TempDir())
	id, _, err := agent.EnsureIdentity(h, "fp", time.Now(), nil)
	if err != nil {
		t.Fatal(err)
	}
	out, code := molt(t, "reset-identity", "--home", h.Dir)
	if code != 0 || !strings.Contains(out, "removed identity "+id.ID) {
		t.Errorf("reset-identity: exit %d\n%s", code, out)
	}
	if out, code := molt(t, "reset-identity", "--home", h.Dir); code != 0 || !strings.Contains(out, "nothing to remove") {
		t.Errorf("second reset-identity: exit %d\n%s", code, out)
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	waitUntil(t, what, 10*time.Second, cond)
}

// waitForLong allows for staging a pack on a loaded machine.
func waitForLong(t *testing.T, what string, cond func() bool) {
	t.Helper()
	waitUntil(t, what, 60*time.Second, cond)
}

func waitUntil(t *testing.T, what string, limit time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// treeOf lists every file under dir with its size and modification time.
func treeOf(t *testing.T, dir string) string {
	t.Helper()
	var b strings.Builder
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		fmt.Fprintf(&b, "%s %d %d\n", p, fi.Size(), fi.ModTime().UnixNano())
		return nil
	})
	return b.String()
}
