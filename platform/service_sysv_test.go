//go:build linux

package platform

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/moltfleet/molt/internal/e2etest/gobuild"
)

// TestSysVRespawnLoop runs the SysV script's start and stop from a temp
// dir (no root needed) with a supervisor that leaves a child behind: the
// loop restarts a killed supervisor, and stop leaves nothing of the
// session alive.
func TestSysVRespawnLoop(t *testing.T) {
	dir := t.TempDir()
	exe := filepath.Join(dir, "bin", "molt-supervisor")
	gobuild.Must(t, exe, gobuild.Options{Pkgs: []string{"github.com/moltfleet/molt/platform/testdata/fakesupervisor"}})
	def, err := RenderService(SystemSysV, ServiceSpec{Name: "molt-test", Home: dir, Exe: exe})
	if err != nil {
		t.Fatal(err)
	}
	script, pidfile := filepath.Join(dir, "molt-test"), filepath.Join(dir, "loop.pid")
	text := strings.NewReplacer(
		"self='/etc/init.d/molt-test'", "self='"+script+"'",
		"pidfile='/var/run/molt-test.pid'", "pidfile='"+pidfile+"'",
	).Replace(def.Text)
	if err := os.WriteFile(script, []byte(text), 0o755); err != nil {
		t.Fatal(err)
	}
	sh := func(action string) string {
		t.Helper()
		out, err := exec.Command(script, action).CombinedOutput()
		if err != nil {
			t.Fatalf("%s %s: %v\n%s", script, action, err, out)
		}
		return string(out)
	}
	pids := func(name string) []int {
		b, _ := os.ReadFile(filepath.Join(dir, name))
		var ps []int
		for _, f := range strings.Fields(string(b)) {
			p, _ := strconv.Atoi(f)
			ps = append(ps, p)
		}
		return ps
	}
	alive := func(pid int) bool {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		if err != nil {
			return false
		}
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		return i > 0 && len(s) > i+2 && s[i+2] != 'Z'
	}
	waitFor := func(what string, ok func() bool) {
		t.Helper()
		for deadline := time.Now().Add(15 * time.Second); !ok(); time.Sleep(50 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%s: not within 15s", what)
			}
		}
	}
	t.Cleanup(func() {
		_, _ = exec.Command(script, "stop").CombinedOutput()
		for _, p := range append(pids("supervisor.pids"), pids("child.pids")...) {
			_ = syscall.Kill(p, syscall.SIGKILL)
		}
	})

	if out := sh("start"); !strings.HasPrefix(out, "Started molt-test") {
		t.Fatalf("start said %q", out)
	}
	waitFor("supervisor started", func() bool { return len(pids("supervisor.pids")) == 1 })
	if out := sh("start"); !strings.Contains(out, "already running") {
		t.Fatalf("second start said %q", out)
	}
	first := pids("supervisor.pids")[0]
	if err := syscall.Kill(first, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	waitFor("supervisor restarted", func() bool { return len(pids("supervisor.pids")) == 2 })
	if d := time.Since(start); d < 900*time.Millisecond {
		t.Errorf("supervisor restarted after %s, before the 1s delay", d)
	}
	b, _ := os.ReadFile(filepath.Join(dir, "logs", "service.log"))
	if !strings.Contains(string(b), "supervisor exited with status 137; starting it again in 1s") {
		t.Errorf("service.log does not record the restart:\n%s", b)
	}

	if out := sh("stop"); !strings.HasPrefix(out, "Stopped molt-test") {
		t.Fatalf("stop said %q", out)
	}
	for _, p := range append(pids("supervisor.pids"), pids("child.pids")...) {
		if alive(p) {
			t.Errorf("process %d of the service's session survived stop", p)
		}
	}
	if _, err := os.Stat(pidfile); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("pid file left after stop: %v", err)
	}
	if out := sh("stop"); !strings.Contains(out, "is not running") {
		t.Fatalf("second stop said %q", out)
	}
}
