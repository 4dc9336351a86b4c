package main

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/moltfleet/molt/agent"
	"github.com/moltfleet/molt/home"
	"github.com/moltfleet/molt/internal/cli"
	"github.com/moltfleet/molt/platform"
	"github.com/moltfleet/molt/updater"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

func TestPrintStatusGolden(t *testing.T) {
	at := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	for _, tc := range []struct {
		name string
		r    statusReport
	}{
		{"empty", statusReport{Home: "/opt/molt", Problems: []string{"nothing installed: no state/active.json (run molt-agent install)"}}},
		{"trial-and-holds", statusReport{
			Home: "/opt/molt",
			Config: &configSummary{Server: "https://molt.example.com:8443", Cluster: "db-east",
				Labels: []string{"env=prod", "role=db"}, TrustedKeys: 1},
			Identity: &identityStatus{ID: "agent-17", Enrolled: true, Server: "https://molt.example.com:8443", ThisMachine: true},
			Active: &home.Active{Current: "1.5.0", Previous: "1.4.0",
				Trial: &home.Trial{Version: "1.5.0", Switched: at, Started: at.Add(time.Second), Crashes: 1, Ready: true}},
			Versions: []versionStatus{{"1.5.0", true, "trial"}, {"1.4.0", true, "previous"}, {"1.3.0", false, ""}},
			LastResult: &home.Result{Outcome: home.OutcomeRolledBack, Version: "1.4.1", Previous: "1.4.0",
				Reason: "crashed 3 times within the watch window", Logs: "logs/agent-1.4.1.log", At: at.Add(-time.Hour)},
			Upgrade: &updater.UpgradeState{Order: "dep-9", Version: "1.6.0", Phase: updater.PhaseDownloading,
				Files: map[string]*updater.FileState{"agent": {Size: 400, Done: 100}, "supervisor": {Size: 100, Done: 0}}},
			Floor:      "1.2.0",
			Agent:      &agentProcess{DaemonInfo: agent.DaemonInfo{Pid: 4242, Version: "1.5.0", Started: at}, Running: true},
			Supervisor: &supervisorProcess{Pid: 4200, AgentPid: 4242, Version: "1.5.0", Running: true},
			Supervised: true,
			Busy:       true,
			Holds: []agent.Hold{
				{ID: "0011223344556677", Reason: "nightly backup", Pid: 777},
				{ID: "8899aabbccddeeff", Reason: "db migration", Expires: at.Add(2 * time.Hour)},
			},
		}},
		{"workloads", workloadsReport(at)},
		{"cloned", statusReport{
			Home:     "/srv/molt-b",
			Identity: &identityStatus{ID: "local-abc", ThisMachine: false},
			Active:   &home.Active{Current: "1.5.0"},
			Versions: []versionStatus{{"1.5.0", true, "current"}},
			LastResult: &home.Result{Outcome: home.OutcomeCommitted, Version: "1.5.0", At: at,
				Supervisor: &home.SupervisorResult{From: "1.4.0", To: "1.5.0", Upgraded: false, Reason: "selftest failed", At: at}},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var b bytes.Buffer
			printStatus(&b, tc.r, time.UTC)
			golden := filepath.Join("testdata", "status-"+tc.name+".golden")
			if *update {
				if err := os.WriteFile(golden, b.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if d := cmp.Diff(string(want), b.String()); d != "" {
				t.Errorf("status output (-want +got):\n%s", d)
			}
		})
	}
}

// workloadsReport is a home whose last trial a workload failed, running
// two workloads, one of them from an older version, and one busy probe.
func workloadsReport(at time.Time) statusReport {
	return statusReport{
		Home:     "/opt/molt",
		Active:   &home.Active{Current: "1.5.0", Previous: "1.4.0"},
		Versions: []versionStatus{{"1.5.0", true, "current"}, {"1.4.0", true, "previous"}, {"1.3.0", true, ""}},
		LastResult: &home.Result{Outcome: home.OutcomeRolledBack, Version: "1.6.0", Previous: "1.5.0",
			Reason:   "workload exporter did not pass its ready check within 30s: GET http://127.0.0.1:9100/metrics: connection refused",
			Logs:     "logs/agent-1.6.0.log",
			Workload: "exporter", WorkloadLogs: "logs/workload-exporter-1.6.0.log", At: at.Add(-time.Hour)},
		Busy:  true,
		Holds: []agent.Hold{{ID: "nightly-scan", Reason: "scan in progress", Pid: 5150, Created: at}},
		Workloads: []workloadStatus{
			{Name: "exporter", Version: "1.5.0", State: home.WorkloadReady, Pid: 5150, Restarts: 0, Since: at},
			{Name: "sensor", Version: "1.3.0", State: home.WorkloadCrashed, Restarts: 4, LastExit: "exit status 2",
				Reason: "restart in 8s (crash backoff)", Since: at.Add(time.Minute)},
		},
		DataDir: "/opt/molt/data",
	}
}

// The --json form of a status with workloads keeps its field names.
func TestStatusJSONGolden(t *testing.T) {
	var b bytes.Buffer
	if err := cli.PrintJSON(&b, workloadsReport(time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC))); err != nil {
		t.Fatal(err)
	}
	golden := filepath.Join("testdata", "status-workloads.json.golden")
	if *update {
		if err := os.WriteFile(golden, b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if d := cmp.Diff(string(want), b.String()); d != "" {
		t.Errorf("status --json (-want +got):\n%s", d)
	}
}

// collectStatus reads state/workloads.json and finds data/.
func TestCollectStatusWorkloads(t *testing.T) {
	h := home.New(t.TempDir())
	at := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	if err := h.WriteActive(home.Active{Current: "1.5.0"}); err != nil {
		t.Fatal(err)
	}
	if err := h.WriteWorkloadState(home.WorkloadState{Supervisor: 1, Updated: at, Workloads: []home.WorkloadStatus{
		{Name: "exporter", Version: "1.5.0", State: home.WorkloadReady, Process: platform.ProcessIdentity{PID: 5150}, Restarts: 2, LastExit: "exit status 1", Since: at},
	}}); err != nil {
		t.Fatal(err)
	}
	r := collectStatus(h)
	if r.DataDir != "" {
		t.Errorf("data_dir %q without data/", r.DataDir)
	}
	want := []workloadStatus{{Name: "exporter", Version: "1.5.0", State: "ready", Pid: 5150, Restarts: 2, LastExit: "exit status 1", Since: at}}
	if d := cmp.Diff(want, r.Workloads); d != "" {
		t.Errorf("workloads (-want +got):\n%s", d)
	}
	if err := os.MkdirAll(h.DataDir("exporter"), 0o750); err != nil {
		t.Fatal(err)
	}
	if r := collectStatus(h); r.DataDir != h.DataRoot() {
		t.Errorf("data_dir %q, want %s", r.DataDir, h.DataRoot())
	}
}

// status of a home that does not exist fails, with --json too: a mistyped
// --home must not look like a host with nothing installed.
func TestStatusMissingHome(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "agent.yaml")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "nonexistent")
	for _, tc := range []struct {
		name, home, want string
		json             bool
	}{
		{"missing", missing, "molt-agent: no agent home at " + missing + ": check --home or $MOLT_HOME\n", false},
		{"missing json", missing, "molt-agent: no agent home at " + missing + ": check --home or $MOLT_HOME\n", true},
		{"a file", file, "molt-agent: home " + file + " is not a directory: check --home or $MOLT_HOME\n", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := []string{"status", "--home", tc.home}
			if tc.json {
				args = append(args, "--json")
			}
			out, stderr, code := runCLI(t, args...)
			if code != 1 || stderr != tc.want || out != "" {
				t.Errorf("exit %d, stdout %q, stderr %q; want 1, nothing, %q", code, out, stderr, tc.want)
			}
		})
	}
	if _, stderr, code := runCLI(t, "status", "--home", dir); code != 0 {
		t.Errorf("status of an existing empty home: exit %d, %s", code, stderr)
	}
}
