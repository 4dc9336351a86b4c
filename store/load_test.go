package store

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/moltfleet/molt/protocol"
)

// Load reads what the server starts from: every agent, and only the
// deployments, runs and cleanups not ended, with their JSON columns
// decoded and each run's counts.
func TestLoad(t *testing.T) {
	forEachEngine(t, func(t *testing.T, db *DB) {
		ctx := context.Background()
		empty, err := db.Load(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(empty.Agents)+len(empty.Deployments)+len(empty.Runs)+len(empty.Cleanups)+len(empty.Releases)+len(empty.Settings) != 0 || empty.Settings == nil {
			t.Fatalf("an empty database loads %+v", empty)
		}

		seedAgent(t, db, "a-1", `{"name":"web-1","version":"1.0.0","platform":"linux/amd64"}`)
		seed(t, db, `INSERT INTO agents (id, cred_hash, fingerprint, enrolled, last_seen, revoked, desired, status, workload_alerts)
			VALUES ('a-2', 'cred-2', 'fp-2', ?, ?, 1, '1.5.0', '{"name":"web-2"}', '{"db":"crash_looping"}')`,
			time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC).UnixNano(), time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC).UnixNano())
		running := seedRun(t, db, "running", 0)
		seedRun(t, db, "ended_ok", 99)
		paused := seedRun(t, db, "paused", 0)
		seed(t, db, `UPDATE runs SET text = 'night', ack_failures = 1, controls = '{"canary":2,"window":"Mon 01:00-02:00"}',
			waves = '[{"wave":0,"name":"canary","agents":2,"counts":null,"state":""}]', wave = 1, wave_done_at = 50, wave_approval = 1 WHERE id = ?`, paused)
		open := seedDeployment(t, db, running, "a-1", "requested")
		seed(t, db, `UPDATE deployments SET from_version = '1.0.0', revert = 1, reason = 'r', updated = 10, started = 11, wave = 2, canary = 1 WHERE id = ?`, open)
		for _, st := range []string{"succeeded", "failed", "rolled_back", "skipped", "cancelled"} {
			seedDeployment(t, db, running, "a-2", st)
		}
		waiting := seedDeployment(t, db, 0, "a-2", "waiting_for_host")
		seed(t, db, `INSERT INTO cleanups (agent_id, deployment_id, keep, created, done) VALUES ('a-1', 1, '["1.0.0"]', 1, 0), ('a-1', 2, '["x"]', 1, 1), ('a-1', 3, '["2.0.0","1.0.0"]', 1, 0)`)
		seed(t, db, `INSERT INTO settings (key, value) VALUES ('events.keep', '720h'), ('agents.poll-seconds', '30')`)
		seed(t, db, `INSERT INTO releases (version, released, floor, platforms, imported, size) VALUES ('2.0.0', 5, '1.0.0', '["linux/amd64","linux/arm64"]', 6, 100)`)

		l, err := db.Load(ctx)
		if err != nil {
			t.Fatal(err)
		}
		byID := map[string]LoadedAgent{}
		for _, a := range l.Agents {
			byID[a.ID] = a
		}
		want := map[string]LoadedAgent{
			"a-1": {ID: "a-1", CredHash: "cred-a-1", Fingerprint: "fp-a-1", Enrolled: FromNanos(1), WorkloadAlerts: map[string]string{},
				Status: protocol.Status{Name: "web-1", Version: "1.0.0", Platform: "linux/amd64"}},
			"a-2": {ID: "a-2", CredHash: "cred-2", Fingerprint: "fp-2", Enrolled: time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC),
				LastSeen: time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC), Revoked: true, Desired: "1.5.0",
				Status: protocol.Status{Name: "web-2"}, WorkloadAlerts: map[string]string{"db": "crash_looping"}},
		}
		if d := cmp.Diff(want, byID); d != "" {
			t.Errorf("agents (-want +got):\n%s", d)
		}
		wantDeps := []LoadedDeployment{
			{ID: open, RunID: running, AgentID: "a-1", Platform: "linux/amd64", Kind: "upgrade", From: "1.0.0", Target: "2.0.0", Revert: true,
				State: "requested", Reason: "r", Updated: FromNanos(10), Started: FromNanos(11), Wave: 2, Canary: true},
			{ID: waiting, AgentID: "a-2", Platform: "linux/amd64", Kind: "upgrade", Target: "2.0.0", State: "waiting_for_host", Updated: FromNanos(1)},
		}
		if d := cmp.Diff(wantDeps, l.Deployments); d != "" {
			t.Errorf("deployments (-want +got):\n%s", d)
		}
		wantRuns := []LoadedRun{
			{ID: running, Status: "running", MaxConcurrent: 5, FailureThreshold: 2, Created: FromNanos(7), Waves: []protocol.WaveStatus{},
				Counts: map[string]int{"requested": 1, "succeeded": 1, "failed": 1, "rolled_back": 1, "skipped": 1, "cancelled": 1}},
			{ID: paused, Text: "night", Status: "paused", MaxConcurrent: 5, FailureThreshold: 2, AckFailures: 1, Created: FromNanos(7),
				Controls: protocol.RunControls{Canary: 2, Window: "Mon 01:00-02:00"}, Waves: []protocol.WaveStatus{{Name: "canary", Agents: 2}},
				Wave: 1, WaveDoneAt: FromNanos(50), WaveApproval: true, Counts: map[string]int{}},
		}
		if d := cmp.Diff(wantRuns, l.Runs); d != "" {
			t.Errorf("runs (-want +got):\n%s", d)
		}
		wantCleanups := []LoadedCleanup{{ID: 1, AgentID: "a-1", Keep: []string{"1.0.0"}}, {ID: 3, AgentID: "a-1", Keep: []string{"2.0.0", "1.0.0"}}}
		if d := cmp.Diff(wantCleanups, l.Cleanups); d != "" {
			t.Errorf("cleanups (-want +got):\n%s", d)
		}
		if d := cmp.Diff(map[string]string{"events.keep": "720h", "agents.poll-seconds": "30"}, l.Settings); d != "" {
			t.Errorf("settings (-want +got):\n%s", d)
		}
		wantRel := []LoadedRelease{{Version: "2.0.0", Floor: "1.0.0", Platforms: []string{"linux/amd64", "linux/arm64"}, Released: FromNanos(5)}}
		if d := cmp.Diff(wantRel, l.Releases); d != "" {
			t.Errorf("releases (-want +got):\n%s", d)
		}

		// A status that is not JSON stops the load, naming the agent.
		seed(t, db, `UPDATE agents SET status = '{' WHERE id = 'a-1'`)
		if _, err := db.Load(ctx); err == nil || !strings.Contains(err.Error(), "agent a-1") {
			t.Errorf("a broken status loaded: %v", err)
		}
	})
}
