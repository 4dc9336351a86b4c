package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/moltfleet/molt/protocol"
)

// TestRunsWatch: after molt upgrade --wait stopped on a pause, the pause
// message says how to follow the run again, and molt runs watch does: the
// same display, then the exit code of how the run ended.
func TestRunsWatch(t *testing.T) {
	run := func(status string, counts map[string]int) protocol.Run {
		return protocol.Run{ID: "r-4", Status: status, Target: "1.5.0", Total: 3, Counts: counts,
			Plan: []protocol.PlanLine{{Platform: "linux/amd64", Agents: 3, Target: "1.5.0"}}}
	}
	paused := run(protocol.RunPaused, map[string]int{"failed": 1, "pending": 2})
	paused.Reason = "failure threshold reached: 1 failed or rolled back (threshold 1)"
	var mu sync.Mutex
	var seq []protocol.Run
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		switch {
		case r.Method == "GET" && r.URL.Path == "/v1/runs/r-4":
			cur := seq[0]
			if len(seq) > 1 {
				seq = seq[1:]
			}
			json.NewEncoder(w).Encode(cur)
		case r.Method == "POST" && r.URL.Path == "/v1/runs":
			json.NewEncoder(w).Encode(seq[0])
		default:
			w.WriteHeader(http.StatusNotFound)
			json.NewEncoder(w).Encode(protocol.Error{Error: "no run " + strings.TrimPrefix(r.URL.Path, "/v1/runs/"), Code: "not_found"})
		}
	}))
	defer hs.Close()
	t.Setenv("XDG_CONFIG_HOME", filepath.Join(t.TempDir(), "noconfig"))
	t.Setenv(envToken, "molt_test")
	conn := []string{"--server", hs.URL}

	for _, tc := range []struct {
		name   string
		seq    []protocol.Run
		args   []string
		code   int
		stdout string
		stderr []string
	}{
		{name: "upgrade --wait stops on a pause", seq: []protocol.Run{run(protocol.RunRunning, map[string]int{"pending": 3}), paused},
			args: []string{"upgrade", "--agents", "a-1", "--yes", "--wait", "--interval", "200ms"}, code: exitRunPaused, stdout: "run r-4 paused: pending 2, failed 1",
			stderr: []string{"resume it with: molt runs resume r-4, and follow it again with: molt runs watch r-4"}},
		{name: "watch a paused run", seq: []protocol.Run{paused},
			args: []string{"runs", "watch", "r-4", "--interval", "200ms"}, code: exitRunPaused, stdout: "reason: failure threshold reached",
			stderr: []string{"molt runs watch r-4"}},
		{name: "watch it to its end after a resume", seq: []protocol.Run{run(protocol.RunRunning, map[string]int{"failed": 1, "downloading": 2}),
			run(protocol.RunRunning, map[string]int{"failed": 1, "succeeded": 1, "watching": 1}), run(protocol.RunEndedNotOK, map[string]int{"failed": 1, "succeeded": 2})},
			args: []string{"runs", "watch", "r-4", "--interval", "200ms"}, code: exitRunNotOK, stdout: "run r-4 ended_not_ok: succeeded 2, failed 1",
			stderr: []string{"1/3 running: downloading 2, failed 1", "2/3 running: watching 1, succeeded 1, failed 1", "see molt runs report r-4"}},
		{name: "watch to ended_ok", seq: []protocol.Run{run(protocol.RunEndedOK, map[string]int{"succeeded": 3})},
			args: []string{"runs", "watch", "r-4", "--json", "--interval", "200ms"}, code: 0, stdout: `"status": "ended_ok"`},
		{name: "no such run", seq: []protocol.Run{paused}, args: []string{"runs", "watch", "r-9"}, code: 1, stderr: []string{"no run r-9"}},
		{name: "bad interval", seq: []protocol.Run{paused}, args: []string{"runs", "watch", "r-4", "--interval", "1ms"}, code: 2, stderr: []string{"--interval"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mu.Lock()
			seq = tc.seq
			mu.Unlock()
			out, errOut, code := runPack(t, append(tc.args, conn...)...)
			if code != tc.code {
				t.Fatalf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tc.code, out, errOut)
			}
			if !strings.Contains(out, tc.stdout) {
				t.Errorf("stdout lacks %q:\n%s", tc.stdout, out)
			}
			for _, w := range tc.stderr {
				if !strings.Contains(errOut, w) {
					t.Errorf("stderr lacks %q:\n%s", w, errOut)
				}
			}
		})
	}
}

// TestFmtTarget: a run's target is shown as what it resolved to per
// platform (its plan), not as "latest".
func TestFmtTarget(t *testing.T) {
	line := func(p, v string) protocol.PlanLine { return protocol.PlanLine{Platform: p, Agents: 1, Target: v} }
	for _, tc := range []struct {
		name string
		run  protocol.Run
		want string
	}{
		{"no plan: as asked", protocol.Run{Target: "latest", TargetFor: map[string]string{"windows/amd64": "1.4.2"}}, "latest windows/amd64=1.4.2"},
		{"latest resolved to one version", protocol.Run{Target: "latest", Plan: []protocol.PlanLine{line("windows/amd64", "1.5.0"), line("linux/amd64", "1.5.0")}}, "1.5.0"},
		{"per platform", protocol.Run{Target: "latest", TargetFor: map[string]string{"windows/amd64": "1.4.2"},
			Plan: []protocol.PlanLine{line("windows/amd64", "1.4.2"), line("linux/amd64", "1.5.0")}}, "linux/amd64=1.5.0 windows/amd64=1.4.2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := fmtTarget(tc.run); got != tc.want {
				t.Errorf("fmtTarget = %q, want %q", got, tc.want)
			}
		})
	}
}
