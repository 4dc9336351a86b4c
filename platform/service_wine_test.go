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
	"strings"
	"testing"
	"time"

	"github.com/moltfleet/molt/internal/e2etest/gobuild"
	"github.com/moltfleet/molt/internal/testtool"
)

// winPath is the Windows name Wine gives a Unix path (drive Z:).
func winPath(p string) string { return `Z:` + strings.ReplaceAll(p, "/", `\`) }

// TestServiceUnderWine installs and uninstalls the Windows service with
// molt-supervisor.exe under Wine. Wine 8's service manager cannot start a
// Go service (it times out), so start and stop are not exercised here.
func TestServiceUnderWine(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("slow: every Wine command takes seconds")
	}
	// Wine boots a prefix of the test's own while the binaries build.
	wineReady := testtool.StartWine(t)
	dir := t.TempDir()
	exe, query := filepath.Join(dir, "molt-supervisor.exe"), filepath.Join(dir, "svcquery.exe")
	for _, j := range []struct{ out, pkg string }{
		{exe, "github.com/moltfleet/molt/cmd/molt-supervisor"},
		{query, "github.com/moltfleet/molt/platform/testdata/svcquery"},
	} {
		gobuild.Must(t, j.out, gobuild.Options{
			Pkgs: []string{j.pkg}, LDFlags: "-X github.com/moltfleet/molt/internal/buildinfo.Version=1.0.0",
			Env: []string{"GOOS=windows", "GOARCH=amd64", "CGO_ENABLED=0"},
		})
	}
	wine, env := wineReady()
	run := func(args ...string) (string, int) {
		t.Helper()
		cmd := exec.Command(wine, args...)
		cmd.Env = env
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				return out.String(), ee.ExitCode()
			}
			if err != nil {
				t.Fatal(err)
			}
			return out.String(), 0
		case <-time.After(2 * time.Minute):
			_ = cmd.Process.Kill()
			t.Fatalf("wine %s: still running after 2m", strings.Join(args, " "))
			return "", 0
		}
	}
	must := func(wantCode int, wantOut string, args ...string) string {
		t.Helper()
		out, code := run(append([]string{exe}, args...)...)
		if code != wantCode || !strings.Contains(out, wantOut) {
			t.Fatalf("molt-supervisor.exe %s: exit %d, output %q; want exit %d and output containing %q",
				strings.Join(args, " "), code, out, wantCode, wantOut)
		}
		return out
	}

	homeDir := filepath.Join(dir, "home")
	name := fmt.Sprintf("molt-wine-test-%d", os.Getpid())
	flags := []string{"--home", winPath(homeDir), "--name", name}

	out := must(0, "installed service "+name, append([]string{"install"}, flags...)...)
	if _, err := os.Stat(filepath.Join(homeDir, "bin", "molt-supervisor.exe")); err != nil {
		t.Errorf("install did not copy the supervisor into the home: %v", err)
	}
	// Wine's service manager accepts the recovery actions but has no
	// FailureActionsOnNonCrashFailures; install says so and succeeds.
	t.Logf("install under Wine said: %s", strings.TrimSpace(out))
	must(0, "already installed", append([]string{"install"}, flags...)...)
	must(1, "a different service named "+name, "install", "--home", winPath(filepath.Join(dir, "other")), "--name", name)
	must(3, "installed, stopped", append([]string{"status"}, flags...)...)

	// The recovery settings, where Wine can report them. Wine 8 answers
	// "Invalid level" for both queries: it does not keep them.
	qout, code := run(query, name)
	var q struct {
		Actions []struct {
			Type    int   `json:"type"`
			DelayMS int64 `json:"delay_ms"`
		} `json:"actions"`
		ActionsError     string  `json:"actions_error"`
		NonCrash         *bool   `json:"on_non_crash_failures"`
		NonCrashError    string  `json:"on_non_crash_failures_error"`
		PreshutdownMS    *uint32 `json:"preshutdown_timeout_ms"`
		PreshutdownError string  `json:"preshutdown_timeout_error"`
	}
	if code != 0 || json.Unmarshal([]byte(qout), &q) != nil {
		t.Fatalf("svcquery: exit %d: %s", code, qout)
	}
	if q.ActionsError == "" {
		if len(q.Actions) != 3 {
			t.Errorf("recovery actions %+v, want 3 restarts", q.Actions)
		}
		for _, a := range q.Actions {
			if a.Type != 1 || a.DelayMS != 1000 { // SC_ACTION_RESTART after 1 s
				t.Errorf("recovery action %+v, want restart after 1000 ms", a)
			}
		}
	} else {
		t.Logf("Wine cannot report the recovery actions: %s", q.ActionsError)
	}
	if q.NonCrash != nil && !*q.NonCrash {
		t.Errorf("recovery on non-crash failures is off")
	}
	if q.PreshutdownMS == nil {
		t.Logf("Wine cannot report the pre-shutdown timeout: %s", q.PreshutdownError)
	} else if *q.PreshutdownMS != 45000 {
		t.Errorf("pre-shutdown timeout %d ms, want 45000 (stop grace 30s plus 15s)", *q.PreshutdownMS)
	}

	must(0, "uninstalled service "+name, append([]string{"uninstall"}, flags...)...)
	must(4, "not installed", append([]string{"status"}, flags...)...)
	must(0, "not installed; nothing to remove", append([]string{"uninstall"}, flags...)...)
}

// TestSCMHandlerUnderWine runs the Windows-only tests of this package (the
// SCM handler behind RunService) as a Windows test binary under Wine.
func TestSCMHandlerUnderWine(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("slow: builds and runs a Windows test binary under Wine")
	}
	wineReady := testtool.StartWine(t)
	bin := filepath.Join(t.TempDir(), "platform.test.exe")
	cmd := exec.Command("go", "test", "-c", "-o", bin, "github.com/moltfleet/molt/platform")
	cmd.Env = append(os.Environ(), "GOOS=windows", "GOARCH=amd64", "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build Windows test binary: %v\n%s", err, out)
	}
	wine, env := wineReady()
	cmd = exec.Command(wine, bin, "-test.run", "^(TestSCMHandler|TestWindowsBinaryPath)$", "-test.v")
	cmd.Env = env
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("Windows tests under Wine: %v\n%s", err, out)
	}
	for _, want := range []string{"--- PASS: TestSCMHandler ", "--- PASS: TestWindowsBinaryPath "} {
		if !strings.Contains(string(out), want) {
			t.Fatalf("Windows tests under Wine did not report %q:\n%s", want, out)
		}
	}
}
