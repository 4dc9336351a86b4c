package server

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/moltfleet/molt/protocol"
	"github.com/moltfleet/molt/store"
)

var r0 = time.Date(2026, 5, 6, 7, 0, 0, 0, time.UTC)

// at is r0 plus s seconds; a negative s is "not recorded".
func at(s float64) time.Time {
	if s < 0 {
		return time.Time{}
	}
	return r0.Add(time.Duration(s * float64(time.Second)))
}

// fullRun is a deployment that went through every stage: queued q s,
// downloaded for dl s, staged, restarted in 2 s, watched for w s.
func fullRun(q, dl, w float64) stepTimes {
	return stepTimes{created: at(0), requested: at(q), downloading: at(q), staged: at(q + dl), restarting: at(q + dl + 1),
		watching: at(q + dl + 3), end: at(q + dl + 3 + w)}
}

func dep(i int, state, reason string) protocol.Deployment {
	return protocol.Deployment{ID: depID(int64(i)), AgentID: fmt.Sprintf("a-%d", i), AgentName: fmt.Sprintf("web-%d", i),
		From: "1.4.0", Target: "1.5.0", State: state, Reason: reason}
}

// stage finds one stage's stats in a summary.
func stage(t *testing.T, sum protocol.RunSummary, name string) protocol.StageStats {
	t.Helper()
	for _, s := range sum.Stages {
		if s.Stage == name {
			return s
		}
	}
	t.Fatalf("no stage %s in %+v", name, sum.Stages)
	return protocol.StageStats{}
}

type stageWant struct {
	count    int
	p50, p95 float64
	slowest  []string // deployment ids, slowest first
}

func stageGot(s protocol.StageStats) stageWant {
	w := stageWant{count: s.Count, p50: s.P50Seconds, p95: s.P95Seconds}
	for _, a := range s.Slowest {
		w.slowest = append(w.slowest, a.DeploymentID)
	}
	return w
}

// TestRunReportStages: p50 and p95 are nearest-rank percentiles of the
// deployments that went through a stage; a stage not recorded (failed in
// its download, rolled back while watched) is left out of that stage and
// not of the others; the slowest 5 come slowest first.
func TestRunReportStages(t *testing.T) {
	hundred := func() ([]protocol.Deployment, map[string]stepTimes) {
		var deps []protocol.Deployment
		times := map[string]stepTimes{}
		for i := 1; i <= 100; i++ {
			d := dep(i, protocol.StateSucceeded, "")
			deps = append(deps, d)
			times[d.ID] = fullRun(float64(i), 10, 60) // queue i seconds
		}
		return deps, times
	}
	for _, tc := range []struct {
		name  string
		deps  func() ([]protocol.Deployment, map[string]stepTimes)
		stage string
		want  stageWant
	}{
		{"one value", func() ([]protocol.Deployment, map[string]stepTimes) {
			d := dep(1, protocol.StateSucceeded, "")
			return []protocol.Deployment{d}, map[string]stepTimes{d.ID: fullRun(5, 10, 60)}
		}, protocol.StageQueue, stageWant{1, 5, 5, []string{"d-1"}}},
		{"two values", func() ([]protocol.Deployment, map[string]stepTimes) {
			a, b := dep(1, protocol.StateSucceeded, ""), dep(2, protocol.StateSucceeded, "")
			return []protocol.Deployment{a, b}, map[string]stepTimes{a.ID: fullRun(5, 10, 60), b.ID: fullRun(5, 30, 60)}
		}, protocol.StageDownload, stageWant{2, 10, 30, []string{"d-2", "d-1"}}},
		{"100 values: queue", hundred, protocol.StageQueue, stageWant{100, 50, 95, []string{"d-100", "d-99", "d-98", "d-97", "d-96"}}},
		{"100 values: restart gap", hundred, protocol.StageRestart, stageWant{100, 2, 2, []string{"d-1", "d-2", "d-3", "d-4", "d-5"}}},
		{"100 values: total, all equal", hundred, protocol.StageTotal, stageWant{100, 73, 73, []string{"d-1", "d-2", "d-3", "d-4", "d-5"}}},
		{"failed in its download: no download, stage, watch", func() ([]protocol.Deployment, map[string]stepTimes) {
			a, b := dep(1, protocol.StateSucceeded, ""), dep(2, protocol.StateFailed, "download: timed out")
			return []protocol.Deployment{a, b}, map[string]stepTimes{a.ID: fullRun(5, 10, 60),
				b.ID: {created: at(0), requested: at(1), downloading: at(2), end: at(100)}}
		}, protocol.StageDownload, stageWant{1, 10, 10, []string{"d-1"}}},
		{"failed in its download: total counts it", func() ([]protocol.Deployment, map[string]stepTimes) {
			a, b := dep(1, protocol.StateSucceeded, ""), dep(2, protocol.StateFailed, "download: timed out")
			return []protocol.Deployment{a, b}, map[string]stepTimes{a.ID: fullRun(5, 10, 60),
				b.ID: {created: at(0), requested: at(1), downloading: at(2), end: at(100)}}
		}, protocol.StageTotal, stageWant{2, 73, 99, []string{"d-2", "d-1"}}},
		{"no downloading step: the download is measured from requested", func() ([]protocol.Deployment, map[string]stepTimes) {
			a := dep(1, protocol.StateSucceeded, "")
			tt := fullRun(5, 10, 60)
			tt.downloading = time.Time{}
			return []protocol.Deployment{a}, map[string]stepTimes{a.ID: tt}
		}, protocol.StageDownload, stageWant{1, 10, 10, []string{"d-1"}}},
		{"rolled back mid-watch: the watch until the rollback", func() ([]protocol.Deployment, map[string]stepTimes) {
			a, b := dep(1, protocol.StateSucceeded, ""), dep(2, protocol.StateRolledBack, "workload sensor crashed")
			tt := fullRun(5, 10, 60)
			tt.end = tt.watching.Add(7 * time.Second)
			return []protocol.Deployment{a, b}, map[string]stepTimes{a.ID: fullRun(5, 10, 60), b.ID: tt}
		}, protocol.StageWatch, stageWant{2, 7, 60, []string{"d-1", "d-2"}}},
		{"still watching: no watch, no total", func() ([]protocol.Deployment, map[string]stepTimes) {
			a := dep(1, protocol.StateWatching, "")
			tt := fullRun(5, 10, 60)
			tt.end = time.Time{}
			return []protocol.Deployment{a}, map[string]stepTimes{a.ID: tt}
		}, protocol.StageWatch, stageWant{0, 0, 0, nil}},
		{"no steps at all: started and ended stand in for the total", func() ([]protocol.Deployment, map[string]stepTimes) {
			a := dep(1, protocol.StateFailed, "x")
			a.Started, a.Ended = at(10), at(40)
			return []protocol.Deployment{a}, nil
		}, protocol.StageTotal, stageWant{1, 30, 30, []string{"d-1"}}},
		{"a step out of order is not a negative duration", func() ([]protocol.Deployment, map[string]stepTimes) {
			a := dep(1, protocol.StateSucceeded, "")
			tt := fullRun(5, 10, 60)
			tt.staged = tt.downloading.Add(-time.Second)
			return []protocol.Deployment{a}, map[string]stepTimes{a.ID: tt}
		}, protocol.StageDownload, stageWant{0, 0, 0, nil}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			deps, times := tc.deps()
			got := stageGot(stage(t, summarizeRun(deps, times), tc.stage))
			if d := cmp.Diff(tc.want, got, cmp.AllowUnexported(stageWant{})); d != "" {
				t.Errorf("stage %s (-want +got):\n%s", tc.stage, d)
			}
		})
	}
}

// TestRunReportCounts: counts by state, versions moved, failures grouped
// by state and normalised reason with at most 5 examples, and waves.
func TestRunReportCounts(t *testing.T) {
	var deps []protocol.Deployment
	for i := 1; i <= 300; i++ {
		deps = append(deps, dep(i, protocol.StateFailed, fmt.Sprintf("download: timed out after %dm%ds", 30+i%3, i%60)))
	}
	for i := 301; i <= 310; i++ {
		d := dep(i, protocol.StateRolledBack, fmt.Sprintf("workload sensor: exit status %d", i%4))
		d.From = "1.3.0"
		deps = append(deps, d)
	}
	deps = append(deps, dep(311, protocol.StateFailed, ""), dep(312, protocol.StateSucceeded, ""), dep(313, protocol.StateSucceeded, ""),
		dep(314, protocol.StatePending, ""))
	sum := summarizeRun(deps, nil)

	if sum.Total != 314 {
		t.Errorf("total %d", sum.Total)
	}
	if d := cmp.Diff(map[string]int{"failed": 301, "rolled_back": 10, "succeeded": 2, "pending": 1}, sum.States); d != "" {
		t.Errorf("states (-want +got):\n%s", d)
	}
	if d := cmp.Diff([]protocol.VersionMove{{From: "1.4.0", To: "1.5.0", Count: 304, Succeeded: 2}, {From: "1.3.0", To: "1.5.0", Count: 10}}, sum.Versions); d != "" {
		t.Errorf("versions (-want +got):\n%s", d)
	}
	type group struct {
		State, Reason string
		Count         int
		Examples      []string
	}
	var got []group
	for _, f := range sum.Failures {
		g := group{f.State, f.Reason, f.Count, nil}
		for _, e := range f.Examples {
			g.Examples = append(g.Examples, e.DeploymentID+" "+e.Reason)
		}
		got = append(got, g)
	}
	want := []group{
		{"failed", "download: timed out after <duration>", 300, []string{"d-1 download: timed out after 31m1s", "d-2 download: timed out after 32m2s",
			"d-3 download: timed out after 30m3s", "d-4 download: timed out after 31m4s", "d-5 download: timed out after 32m5s"}},
		{"rolled_back", "workload sensor: exit status <n>", 10, []string{"d-301 workload sensor: exit status 1", "d-302 workload sensor: exit status 2",
			"d-303 workload sensor: exit status 3", "d-304 workload sensor: exit status 0", "d-305 workload sensor: exit status 1"}},
		{"failed", "", 1, []string{"d-311 "}},
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("failures (-want +got):\n%s", d)
	}
	if len(sum.Waves) != 1 || sum.Waves[0].Total != 314 || sum.Waves[0].Failures != 311 || !sum.Waves[0].Ended.IsZero() {
		t.Errorf("waves %+v: want one wave of 314 with 311 failures, not ended", sum.Waves)
	}
	if len(sum.Stages) != len(protocol.ReportStages) {
		t.Errorf("stages %+v: want every stage, counted or not", sum.Stages)
	}

	empty := summarizeRun(nil, nil)
	if empty.States == nil || empty.Versions == nil || empty.Failures == nil || empty.Waves == nil || len(empty.Stages) != len(protocol.ReportStages) {
		t.Errorf("the summary of no deployments must be empty lists, not null: %+v", empty)
	}
}

// TestRunReportWaves: one line per wave value, in order, with its counts,
// its first start and its last end, no end while one of it is open.
func TestRunReportWaves(t *testing.T) {
	mk := func(i, wave int, state string, started, ended float64) protocol.Deployment {
		d := dep(i, state, "")
		d.Wave, d.Started, d.Ended = wave, at(started), at(ended)
		return d
	}
	deps := []protocol.Deployment{
		mk(1, 0, protocol.StateSucceeded, 0, 60), mk(2, 0, protocol.StateRolledBack, 5, 30),
		mk(3, 2, protocol.StateWatching, 300, -1), mk(4, 2, protocol.StateSucceeded, 290, 400),
		mk(5, 1, protocol.StateSucceeded, 100, 200), mk(6, 1, protocol.StateFailed, 90, 250), mk(7, 1, protocol.StatePending, -1, -1),
	}
	// wave 1 has a pending deployment: not ended; its start is the earliest requested.
	times := map[string]stepTimes{"d-5": {requested: at(80)}}
	want := []protocol.WaveSummary{
		{Wave: 0, Total: 2, States: map[string]int{"succeeded": 1, "rolled_back": 1}, Failures: 1, Started: at(0), Ended: at(60)},
		{Wave: 1, Total: 3, States: map[string]int{"succeeded": 1, "failed": 1, "pending": 1}, Failures: 1, Started: at(80)},
		{Wave: 2, Total: 2, States: map[string]int{"succeeded": 1, "watching": 1}, Started: at(290)},
	}
	if d := cmp.Diff(want, summarizeRun(deps, times).Waves); d != "" {
		t.Errorf("waves (-want +got):\n%s", d)
	}
}

// TestRunReportNormalizeReason: reasons that differ only in numbers,
// durations, ids, hashes and times are one group; words with digits in
// them stay.
func TestRunReportNormalizeReason(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"timed out after 31m2s", "timed out after <duration>"},
		{"timed out after 250ms", "timed out after <duration>"},
		{"timed out after 1h0m0.5s", "timed out after <duration>"},
		{"exit status 2", "exit status <n>"},
		{"deployment d-12 of run r-3", "deployment d-<n> of run r-<n>"},
		{"GET http://10.0.0.7:8443/packs/1.5.0/x: connection refused", "GET http://<n>:<n>/packs/<n>/x: connection refused"},
		{"version v1.5.0 is below the floor", "version <n> is below the floor"},
		{"sha256 mismatch: got 9f86d081884c7d65 want 2c26b46b68ffc68f", "sha256 mismatch: got <hex> want <hex>"},
		{"order 550e8400-e29b-41d4-a716-446655440000 unknown", "order <id> unknown"},
		{"no check-in since 2026-01-02T03:04:05Z", "no check-in since <time>"},
		{"eth0 down, 1st try", "eth0 down, <n>st try"},
		{"deadbeef", "deadbeef"},
		{"", ""},
	} {
		t.Run(tc.in, func(t *testing.T) {
			if got := normalizeReason(tc.in); got != tc.want {
				t.Errorf("normalizeReason(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

// TestRunReportAPI: through the real HTTP API, a run of three agents (one
// succeeds, one fails in its download, one rolls back while watched)
// reports its deployments as before and a summary whose stages are timed
// by the server's steps.
func TestRunReportAPI(t *testing.T) {
	e := newEnv(t)
	e.importPack("1.5.0", "", "linux/amd64")
	ok, dl, rb := e.newAgent("ok", "1.4.0"), e.newAgent("dl", "1.4.0"), e.newAgent("rb", "1.4.0")
	run := e.createRun(protocol.RunRequest{Selection: protocol.Selection{AgentIDs: []string{ok.id, dl.id, rb.id}}, Target: "1.5.0", MaxConcurrent: 10})
	e.clock.Add(10 * time.Second)
	e.schedule()
	orders := map[*simAgent]protocol.Order{}
	for _, a := range []*simAgent{ok, dl, rb} {
		o := upgradeOrder(a.checkin())
		if o == nil {
			t.Fatalf("agent %s has no upgrade order", a.st.Name)
		}
		orders[a] = *o
	}
	phase := func(p string, as ...*simAgent) {
		for _, a := range as {
			a.report(protocol.ReportRequest{OrderID: orders[a].ID, Phase: p})
		}
	}
	e.clock.Add(20 * time.Second)
	phase(protocol.StateDownloading, ok, dl, rb)
	e.clock.Add(30 * time.Second)
	phase(protocol.StateStaged, ok, rb)
	dl.report(protocol.ReportRequest{OrderID: orders[dl].ID, End: &protocol.End{Outcome: protocol.EndFailed, Reason: "download: timed out after 31m2s"}})
	e.clock.Add(5 * time.Second)
	phase(protocol.StateRestarting, ok, rb)
	e.clock.Add(4 * time.Second)
	for _, a := range []*simAgent{ok, rb} {
		a.st.Version = "1.5.0"
		a.checkin()
	}
	e.clock.Add(7 * time.Second)
	rb.report(protocol.ReportRequest{OrderID: orders[rb].ID, End: &protocol.End{Outcome: protocol.EndRolledBack, Reason: "workload sensor crashed 3 times", Version: "1.4.0"}})
	e.clock.Add(53 * time.Second)
	ok.st.LastResult = &protocol.TrialResult{Outcome: protocol.TrialCommitted, Version: "1.5.0", Previous: "1.4.0", OrderID: orders[ok].ID, At: e.clock.Now()}
	ok.checkin()

	var rep protocol.RunReport
	e.must("GET", "/v1/runs/"+run.ID+"/report", protocol.RoleViewer, nil, &rep)
	if rep.Run.ID != run.ID || len(rep.Deployments) != 3 {
		t.Fatalf("report of run %s with %d deployments, want %s with 3", rep.Run.ID, len(rep.Deployments), run.ID)
	}
	sum := rep.Summary
	if d := cmp.Diff(map[string]int{"succeeded": 1, "failed": 1, "rolled_back": 1}, sum.States); d != "" {
		t.Errorf("states (-want +got):\n%s", d)
	}
	if d := cmp.Diff([]protocol.VersionMove{{From: "1.4.0", To: "1.5.0", Count: 3, Succeeded: 1}}, sum.Versions); d != "" {
		t.Errorf("versions (-want +got):\n%s", d)
	}
	var reasons []string
	for _, f := range sum.Failures {
		reasons = append(reasons, fmt.Sprintf("%s %d %s (%s)", f.State, f.Count, f.Reason, f.Examples[0].AgentName))
	}
	if d := cmp.Diff([]string{"failed 1 download: timed out after <duration> (dl)", "rolled_back 1 workload sensor crashed <n> times (rb)"}, reasons); d != "" {
		t.Errorf("failures (-want +got):\n%s", d)
	}
	got := map[string]stageWant{}
	for _, st := range sum.Stages {
		w := stageGot(st)
		for i, id := range w.slowest {
			for _, d := range rep.Deployments {
				if d.ID == id {
					w.slowest[i] = d.AgentName
				}
			}
		}
		got[st.Stage] = w
	}
	want := map[string]stageWant{
		protocol.StageQueue:    {3, 10, 10, []string{"ok", "dl", "rb"}},
		protocol.StageDownload: {2, 30, 30, []string{"ok", "rb"}},
		protocol.StageStage:    {2, 5, 5, []string{"ok", "rb"}},
		protocol.StageRestart:  {2, 4, 4, []string{"ok", "rb"}},
		protocol.StageWatch:    {2, 7, 60, []string{"ok", "rb"}},
		protocol.StageTotal:    {3, 66, 119, []string{"ok", "rb", "dl"}},
	}
	if d := cmp.Diff(want, got, cmp.AllowUnexported(stageWant{})); d != "" {
		t.Errorf("stages (-want +got):\n%s", d)
	}
	if len(sum.Waves) != 1 || sum.Waves[0].Total != 3 || sum.Waves[0].Failures != 2 || !sum.Waves[0].Ended.Equal(e.clock.Now()) {
		t.Errorf("waves %+v: want one of 3 with 2 failures, ended now", sum.Waves)
	}

	if code, pe := e.do("GET", "/v1/runs/r-99/report", e.tokens[protocol.RoleViewer], nil, nil); code != 404 {
		t.Errorf("report of no run: %d %s, want 404", code, pe.Error)
	}
}

// seedRun adds n deployments to run, each with the server steps of a
// whole upgrade and 5 agent steps, written directly to the store; every
// tenth failed with a reason that differs in its numbers.
func seedRun(t testing.TB, e *env, run string, n int) {
	t.Helper()
	id, _ := parseID(run, "r-")
	ctx := context.Background()
	tx, err := e.s.st.(*store.DB).Writer().BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback() }()
	dep, err := tx.PrepareContext(ctx, `INSERT INTO deployments (run_id, agent_id, agent_name, platform, kind, from_version, target, state, reason, created, started, ended, updated) VALUES (?, ?, ?, 'linux/amd64', 'upgrade', '1.4.0', '1.5.0', ?, ?, ?, ?, ?, ?) RETURNING id`)
	if err != nil {
		t.Fatal(err)
	}
	step, err := tx.PrepareContext(ctx, `INSERT INTO steps (deployment_id, at, name, detail) VALUES (?, ?, ?, '')`)
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		state, reason := protocol.StateSucceeded, ""
		if i%10 == 9 {
			state, reason = protocol.StateFailed, fmt.Sprintf("download: timed out after %dm%ds", 30+i%3, i%60)
		}
		t0 := r0.Add(time.Duration(i) * time.Second)
		ts := []time.Time{t0, t0.Add(time.Duration(i%97) * time.Second)}
		for _, d := range []time.Duration{5, 30 + time.Duration(i%13), 2, 4, 60} {
			ts = append(ts, ts[len(ts)-1].Add(d*time.Second))
		}
		var did int64
		if err := dep.QueryRowContext(ctx, id, fmt.Sprintf("a-%d", i), fmt.Sprintf("web-%05d", i), state, reason, nanos(ts[0]), nanos(ts[1]), nanos(ts[6]), nanos(ts[6])).Scan(&did); err != nil {
			t.Fatal(err)
		}
		names := []string{"server: created", "server: requested", "server: downloading", "server: staged", "server: restarting", "server: watching", "server: " + state}
		for k, name := range names {
			if _, err := step.ExecContext(ctx, did, nanos(ts[k]), name); err != nil {
				t.Fatal(err)
			}
		}
		for k, name := range []string{"download", "verify", "stage", "exit", "start"} {
			if _, err := step.ExecContext(ctx, did, nanos(ts[2].Add(time.Duration(k)*time.Millisecond)), name); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
}

// TestRunReportLarge: the report of a run of 10,000 deployments (120,000
// steps) is whole and says where the time went; how long it took is
// logged (BenchmarkRunReport measures it).
func TestRunReportLarge(t *testing.T) {
	if testing.Short() {
		t.Skip("writes 120,000 steps")
	}
	e := newEnv(t)
	e.importPack("1.5.0", "", "linux/amd64")
	a := e.newAgent("seed", "1.4.0")
	run := e.createRun(protocol.RunRequest{Selection: protocol.Selection{AgentIDs: []string{a.id}}, Target: "1.5.0"})
	seedRun(t, e, run.ID, 10000)
	start := time.Now()
	var rep protocol.RunReport
	e.must("GET", "/v1/runs/"+run.ID+"/report", protocol.RoleViewer, nil, &rep)
	t.Logf("report of %d deployments in %v", len(rep.Deployments), time.Since(start))
	if len(rep.Deployments) != 10001 || rep.Summary.States[protocol.StateFailed] != 1000 {
		t.Fatalf("%d deployments, %d failed; want 10001, 1000", len(rep.Deployments), rep.Summary.States[protocol.StateFailed])
	}
	if len(rep.Summary.Failures) != 1 || rep.Summary.Failures[0].Count != 1000 {
		t.Errorf("failures %+v: want one group of 1000", rep.Summary.Failures)
	}
	q := stage(t, rep.Summary, protocol.StageQueue)
	if q.Count != 10000 || q.P50Seconds != 48 || q.P95Seconds != 92 || q.Slowest[0].Seconds != 96 {
		t.Errorf("queue %+v: want 10000 counted, p50 48s, p95 92s, slowest 96s", q)
	}
}

// BenchmarkRunReport: GET /v1/runs/{id}/report of a run of 10,000
// deployments, over HTTP, JSON decoded.
func BenchmarkRunReport(b *testing.B) {
	e := newEnv(b)
	e.importPack("1.5.0", "", "linux/amd64")
	a := e.newAgent("seed", "1.4.0")
	run := e.createRun(protocol.RunRequest{Selection: protocol.Selection{AgentIDs: []string{a.id}}, Target: "1.5.0"})
	seedRun(b, e, run.ID, 10000)
	b.ResetTimer()
	for b.Loop() {
		var rep protocol.RunReport
		e.must("GET", "/v1/runs/"+run.ID+"/report", protocol.RoleViewer, nil, &rep)
	}
}
