package main

import (
	"bytes"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/moltfleet/molt/agent"
	"github.com/moltfleet/molt/home"
	"github.com/moltfleet/molt/internal/atomicfile"
	"github.com/moltfleet/molt/internal/cli"
)

// runCLI runs molt-agent in this process and returns its stdout, stderr
// and exit code.
func runCLI(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	t.Setenv("MOLT_HOME", "")
	var out, errb bytes.Buffer
	root := newRootCmd()
	root.SetOut(&out)
	root.SetErr(&errb)
	code := cli.Main(root, args, &errb)
	return out.String(), errb.String(), code
}

// reset-identity refuses while an agent runs for the home, as uninstall
// does, unless --force; it says how to stop the agent.
func TestResetIdentityRefusesWhileAgentRuns(t *testing.T) {
	for _, tc := range []struct {
		name       string
		supervised bool
		force      bool
		wantCode   int
		// want is the stderr, given the agent's pid and the home.
		want func(pid int, dir string) string
	}{
		{"supervised", true, false, 1, func(pid int, dir string) string {
			return fmt.Sprintf("molt-agent: an agent runs for this home (pid %d); stop it first (molt-supervisor stop --home %s), or pass --force\n", pid, dir)
		}},
		{"by hand", false, false, 1, func(pid int, _ string) string {
			return fmt.Sprintf("molt-agent: an agent runs for this home (pid %d); it runs unsupervised: stop it first (kill %d), or pass --force\n", pid, pid)
		}},
		{"force", true, true, 0, func(pid int, _ string) string {
			return fmt.Sprintf("warning: an agent runs for this home (pid %d)", pid)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := home.New(t.TempDir())
			id, _, err := agent.EnsureIdentity(h, "fp", time.Now(), nil)
			if err != nil {
				t.Fatal(err)
			}
			// This test process stands for the running agent.
			pid := os.Getpid()
			if err := atomicfile.WriteJSON(agent.DaemonPath(h), agent.DaemonInfo{Pid: pid, Supervised: tc.supervised}, 0o644); err != nil {
				t.Fatal(err)
			}
			args := []string{"reset-identity", "--home", h.Dir}
			if tc.force {
				args = append(args, "--force")
			}
			out, stderr, code := runCLI(t, args...)
			want := tc.want(pid, h.Dir)
			if code != tc.wantCode {
				t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", code, tc.wantCode, out, stderr)
			}
			if tc.force {
				if !strings.Contains(stderr, want) || !strings.Contains(out, "removed identity "+id.ID) {
					t.Errorf("--force: stdout %q stderr %q", out, stderr)
				}
				return
			}
			if stderr != want {
				t.Errorf("stderr %q\nwant   %q", stderr, want)
			}
			if _, err := agent.ReadIdentity(h); err != nil {
				t.Errorf("the identity is gone after a refusal: %v", err)
			}
		})
	}
}
