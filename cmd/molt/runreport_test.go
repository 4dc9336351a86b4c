package main

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/moltfleet/molt/protocol"
)

// reportFixture is the report of a run of 300 agents, two waves, with
// failures of two kinds and one agent whose name carries evil.
func reportFixture() protocol.RunReport {
	at := time.Date(2026, 3, 4, 11, 0, 0, 0, time.UTC)
	run := protocol.Run{ID: "r-4", Text: "monthly", Status: protocol.RunEndedNotOK, Target: "1.5.0", Total: 300,
		Plan: []protocol.PlanLine{{Platform: "linux/amd64", Agents: 300, Target: "1.5.0"}}}
	deps := []protocol.Deployment{
		{ID: "d-1", AgentID: "a-1", AgentName: "web-1", Kind: protocol.KindUpgrade, From: "1.4.0", Target: "1.5.0", State: protocol.StateSucceeded, Ended: at},
		{ID: "d-2", AgentID: "a-2", AgentName: "web-2" + evil, Kind: protocol.KindUpgrade, From: "1.4.0", Target: "1.5.0", State: protocol.StateFailed,
			Reason: "download: timed out after 31m2s", Ended: at},
	}
	ex := func(id, name, reason string, secs float64) protocol.ReportAgent {
		return protocol.ReportAgent{DeploymentID: id, AgentID: "a-" + strings.TrimPrefix(id, "d-"), AgentName: name, Reason: reason, Seconds: secs}
	}
	sum := protocol.RunSummary{Total: 300,
		States:   map[string]int{protocol.StateSucceeded: 280, protocol.StateFailed: 17, protocol.StateRolledBack: 3},
		Versions: []protocol.VersionMove{{From: "1.4.0", To: "1.5.0", Count: 290, Succeeded: 270}, {From: "", To: "1.5.0", Count: 10, Succeeded: 10}},
		Failures: []protocol.FailureGroup{
			{State: protocol.StateFailed, Reason: "download: timed out after <duration>", Count: 17, Examples: []protocol.ReportAgent{
				ex("d-2", "web-2"+evil, "download: timed out after 31m2s", 0), ex("d-9", "web-9", "download: timed out after 30m58s", 0)}},
			{State: protocol.StateRolledBack, Reason: "workload sensor crashed <n> times", Count: 3, Examples: []protocol.ReportAgent{
				ex("d-7", "", "workload sensor crashed 3 times", 0)}},
		},
		Waves: []protocol.WaveSummary{
			{Wave: 0, Total: 10, States: map[string]int{protocol.StateSucceeded: 10}, Started: at, Ended: at.Add(5 * time.Minute)},
			{Wave: 1, Total: 290, States: map[string]int{protocol.StateSucceeded: 270, protocol.StateFailed: 17, protocol.StateRolledBack: 3}, Failures: 20,
				Started: at.Add(10 * time.Minute), Ended: at.Add(50 * time.Minute)},
		},
		Stages: []protocol.StageStats{
			{Stage: protocol.StageQueue, Count: 300, P50Seconds: 0.25, P95Seconds: 12.34, MaxSeconds: 65.4, Slowest: []protocol.ReportAgent{ex("d-300", "web-300", "", 65.4)}},
			{Stage: protocol.StageDownload, Count: 297, P50Seconds: 31, P95Seconds: 1862, MaxSeconds: 1900, Slowest: []protocol.ReportAgent{
				ex("d-2", "web-2"+evil, "", 1900), ex("d-9", "web-9", "", 1858.4)}},
			{Stage: protocol.StageStage, Slowest: []protocol.ReportAgent{}},
		},
		Health: []protocol.HealthHalt{{At: at.Add(20 * time.Minute), Signal: "health_crash_loop",
			Reason: "health: workload exporter crash-looping on 3 of 20 upgraded agents (web-01, web-07, web-2" + evil + ")"}},
	}
	return protocol.RunReport{Run: run, Deployments: deps, Summary: sum}
}

// TestRunReportGolden: the text of molt runs report, summary then
// deployments, and with --deployments=false the summary only.
func TestRunReportGolden(t *testing.T) {
	inUTC(t)
	now := time.Date(2026, 3, 4, 12, 0, 0, 0, time.UTC)
	var b bytes.Buffer
	if err := printRunReport(&b, reportFixture(), now, true); err != nil {
		t.Fatal(err)
	}
	checkTerminalSafe(t, "report", b.String())
	golden(t, "runs-report.txt", b.String())

	b.Reset()
	if err := printRunReport(&b, reportFixture(), now, false); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(b.String(), "ENDED") && strings.Contains(b.String(), "KIND") {
		t.Errorf("--deployments=false printed the deployment table:\n%s", b.String())
	}
}

// TestRunsReportCommand: molt runs report against a server: the summary
// and the table, --deployments=false, --json exactly as sent, and the
// report of a server that sends no summary.
func TestRunsReportCommand(t *testing.T) {
	inUTC(t)
	rep := reportFixture()
	old := protocol.RunReport{Run: rep.Run, Deployments: rep.Deployments}
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/v1/runs/r-4/report":
			json.NewEncoder(w).Encode(rep)
		case "/v1/runs/r-3/report":
			json.NewEncoder(w).Encode(old)
		default:
			w.WriteHeader(http.StatusNotFound)
			json.NewEncoder(w).Encode(protocol.Error{Error: "no run r-9", Code: "not_found"})
		}
	}))
	defer hs.Close()
	t.Setenv("XDG_CONFIG_HOME", filepath.Join(t.TempDir(), "noconfig"))
	t.Setenv(envToken, "molt_test")
	conn := []string{"--server", hs.URL}

	for _, tc := range []struct {
		name        string
		args        []string
		code        int
		want, avoid []string
	}{
		{"summary and deployments", []string{"runs", "report", "r-4"}, 0,
			[]string{"succeeded 280, failed 17, rolled_back 3", "download: timed out after <duration>", `web-2\x1b[2J`, "+15 more",
				"download  297    31s    31m2s  31m40s", "WAVE", "ID   AGENT"}, nil},
		{"summary only", []string{"runs", "report", "r-4", "--deployments=false"}, 0,
			[]string{"SLOWEST", "STAGE"}, []string{"ID   AGENT"}},
		{"a server without the summary", []string{"runs", "report", "r-3"}, 0,
			[]string{"Run r-4", "ID   AGENT"}, []string{"STAGE", "FAILED AS"}},
		{"no such run", []string{"runs", "report", "r-9"}, 1, nil, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, errOut, code := runPack(t, append(tc.args, conn...)...)
			if code != tc.code {
				t.Fatalf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tc.code, out, errOut)
			}
			checkTerminalSafe(t, "stdout", out)
			for _, s := range tc.want {
				if !strings.Contains(out, s) {
					t.Errorf("output lacks %q:\n%s", s, out)
				}
			}
			for _, s := range tc.avoid {
				if strings.Contains(out, s) {
					t.Errorf("output has %q:\n%s", s, out)
				}
			}
		})
	}

	t.Run("--json", func(t *testing.T) {
		out, errOut, code := runPack(t, append([]string{"runs", "report", "r-4", "--json", "--deployments=false"}, conn...)...)
		if code != 0 {
			t.Fatalf("exit %d: %s", code, errOut)
		}
		var got protocol.RunReport
		if err := json.Unmarshal([]byte(out), &got); err != nil {
			t.Fatal(err)
		}
		if d := cmp.Diff(rep, got); d != "" {
			t.Errorf("(-sent +printed):\n%s", d)
		}
	})
}
