package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/moltfleet/molt/protocol"
)

// TestRunsRollback: molt runs rollback asks the server for the plan, shows
// it, and starts the rollback only when confirmed and not a dry run; the
// rollout flags replace the run's controls only when given.
func TestRunsRollback(t *testing.T) {
	plan := protocol.Run{ID: "", Status: protocol.RunRunning, Target: protocol.RollbackTarget, Total: 3, MaxConcurrent: 10,
		Plan:     []protocol.PlanLine{{Platform: "linux/amd64", Agents: 3, Target: "1.0.0", Revert: 3}},
		Excluded: []protocol.Exclusion{{AgentID: "a-4", AgentName: "w4", Reason: "moved since r-1: runs 3.0.0, not 2.0.0"}}}
	started := plan
	started.ID = "r-2"
	var mu sync.Mutex
	var got []protocol.RollbackRequest
	refuse := ""
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		if r.Method != "POST" || r.URL.Path != "/v1/runs/r-1/rollback" {
			w.WriteHeader(http.StatusNotFound)
			json.NewEncoder(w).Encode(protocol.Error{Error: "no run", Code: "not_found"})
			return
		}
		var req protocol.RollbackRequest
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			t.Errorf("body: %v", err)
		}
		got = append(got, req)
		switch {
		case refuse != "":
			w.WriteHeader(http.StatusConflict)
			json.NewEncoder(w).Encode(protocol.Error{Error: refuse, Code: protocol.CodeConflict})
		case req.DryRun:
			json.NewEncoder(w).Encode(plan)
		default:
			w.WriteHeader(http.StatusCreated)
			json.NewEncoder(w).Encode(started)
		}
	}))
	defer hs.Close()
	t.Setenv("XDG_CONFIG_HOME", filepath.Join(t.TempDir(), "noconfig"))
	t.Setenv(envToken, "molt_test")
	conn := []string{"--server", hs.URL}

	for _, tc := range []struct {
		name   string
		args   []string
		refuse string
		code   int
		stdout []string
		stderr []string
		// reqs are the requests the server got.
		reqs []protocol.RollbackRequest
	}{
		{name: "dry run", args: []string{"--dry-run"},
			stdout: []string{"Rollback of r-1: 3 agent(s) back to the versions they came from, at most 10 at once", "linux/amd64  3       1.0.0  (3 revert to a lower version)", "w4", "moved since r-1"},
			reqs:   []protocol.RollbackRequest{{DryRun: true}}},
		{name: "dry run as JSON", args: []string{"--dry-run", "--json"},
			stdout: []string{`"target": "rollback"`}, stderr: []string{"Rollback of r-1"},
			reqs: []protocol.RollbackRequest{{DryRun: true}}},
		{name: "confirmed", args: []string{"--yes", "--text", "back"},
			stdout: []string{"started run r-2 (rollback of r-1); follow it with: molt runs watch r-2"},
			reqs:   []protocol.RollbackRequest{{DryRun: true, Text: "back"}, {Text: "back"}}},
		{name: "rollout flags replace the controls", args: []string{"--yes", "--canary", "2", "--force"},
			stdout: []string{"started run r-2"},
			reqs: []protocol.RollbackRequest{
				{DryRun: true, Force: true, Rollout: &protocol.RolloutSettings{MaxConcurrent: 10, RunControls: protocol.RunControls{Canary: 2}}},
				{Force: true, Rollout: &protocol.RolloutSettings{MaxConcurrent: 10, RunControls: protocol.RunControls{Canary: 2}}}}},
		{name: "not confirmed without a terminal", args: nil, code: 2, stderr: []string{"pass --yes"},
			reqs: []protocol.RollbackRequest{{DryRun: true}}},
		{name: "a running run", args: []string{"--yes"}, refuse: "run r-1 is running: pause or cancel it first", code: 1,
			stderr: []string{"plan the rollback of r-1: run r-1 is running: pause or cancel it first"},
			reqs:   []protocol.RollbackRequest{{DryRun: true}}},
		{name: "a bad rollout flag", args: []string{"--max-concurrent", "0"}, code: 2, stderr: []string{"--max-concurrent"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mu.Lock()
			got, refuse = nil, tc.refuse
			mu.Unlock()
			out, errOut, code := runPack(t, append(append([]string{"runs", "rollback", "r-1"}, tc.args...), conn...)...)
			if code != tc.code {
				t.Fatalf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tc.code, out, errOut)
			}
			for _, s := range tc.stdout {
				if !strings.Contains(out, s) {
					t.Errorf("stdout lacks %q:\n%s", s, out)
				}
			}
			for _, s := range tc.stderr {
				if !strings.Contains(errOut, s) {
					t.Errorf("stderr lacks %q:\n%s", s, errOut)
				}
			}
			mu.Lock()
			defer mu.Unlock()
			if diff := cmp.Diff(tc.reqs, got); diff != "" {
				t.Errorf("requests (-want +got):\n%s", diff)
			}
		})
	}
}
