//go:build faults

package faults

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		in   string
		name string
		hit  int
		bad  bool
	}{
		{in: "agent/mid-download", name: "agent/mid-download", hit: 1},
		{in: "agent/mid-download@3", name: "agent/mid-download", hit: 3},
		{in: " server/report-acked@1 ", name: "server/report-acked", hit: 1},
		{in: "x@0", bad: true},
		{in: "x@-1", bad: true},
		{in: "x@two", bad: true},
		{in: "@2", bad: true},
	} {
		t.Run(tc.in, func(t *testing.T) {
			name, hit, err := Parse(tc.in)
			if (err != nil) != tc.bad || (!tc.bad && (name != tc.name || hit != tc.hit)) {
				t.Fatalf("Parse(%q) = %q, %d, %v", tc.in, name, hit, err)
			}
		})
	}
}

// TestHelperProcess passes the point "test/point" three times; run by
// TestKill with the environment that arms it.
func TestHelperProcess(t *testing.T) {
	if os.Getenv("FAULTS_HELPER") == "" {
		t.Skip("run by TestKill")
	}
	for range 3 {
		Point("test/other")
		Point("test/point")
		os.Stdout.WriteString("passed\n")
	}
	os.Exit(0)
}

func TestKill(t *testing.T) {
	once := filepath.Join(t.TempDir(), "fired")
	run := func(env ...string) (string, error) {
		cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$")
		cmd.Env = append(os.Environ(), append(env, "FAULTS_HELPER=1")...)
		out, err := cmd.Output()
		return string(out), err
	}
	for _, tc := range []struct {
		name   string
		env    []string
		passes int
		killed bool
	}{
		{name: "unarmed", passes: 3},
		{name: "first hit", env: []string{"MOLT_FAULT=test/point"}, passes: 0, killed: true},
		{name: "second hit", env: []string{"MOLT_FAULT=test/point@2"}, passes: 1, killed: true},
		{name: "beyond the hits", env: []string{"MOLT_FAULT=test/point@4"}, passes: 3},
		{name: "other version", env: []string{"MOLT_FAULT=test/point", "MOLT_FAULT_VERSION=9.9.9"}, passes: 3},
		{name: "once, first", env: []string{"MOLT_FAULT=test/point", "MOLT_FAULT_ONCE=" + once}, passes: 0, killed: true},
		{name: "once, again", env: []string{"MOLT_FAULT=test/point", "MOLT_FAULT_ONCE=" + once}, passes: 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := run(tc.env...)
			if n := strings.Count(out, "passed"); n != tc.passes {
				t.Errorf("passed %d times, want %d (%v)", n, tc.passes, err)
			}
			var ee *exec.ExitError
			killed := errors.As(err, &ee) && killedBySignal(ee)
			if killed != tc.killed {
				t.Errorf("killed = %v (%v), want %v", killed, err, tc.killed)
			}
		})
	}
	b, err := os.ReadFile(once)
	if err != nil || !strings.HasPrefix(string(b), "test/point pid ") {
		t.Errorf("once file: %q, %v", b, err)
	}
}

func killedBySignal(ee *exec.ExitError) bool {
	if runtime.GOOS == "windows" {
		return ee.ExitCode() == 1 // TerminateProcess's code from os.Process.Kill
	}
	ws, ok := ee.Sys().(syscall.WaitStatus)
	return ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL
}
