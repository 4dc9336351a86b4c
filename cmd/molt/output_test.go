package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/moltfleet/molt/internal/apiclient"
	"github.com/moltfleet/molt/internal/cli"
	"github.com/moltfleet/molt/protocol"
)

var updateGolden = flag.Bool("update-golden", false, "rewrite the CLI output golden files under testdata/golden")

// golden compares got with testdata/golden/name, or rewrites it.
func golden(t *testing.T, name, got string) {
	t.Helper()
	p := filepath.Join("testdata", "golden", name)
	if *updateGolden {
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("%v (run go test ./cmd/molt -update-golden)", err)
	}
	if d := cmp.Diff(string(want), got); d != "" {
		t.Errorf("%s differs (-want +got):\n%s", name, d)
	}
}

// The golden outputs are in UTC so they do not depend on the machine.
var (
	gNow = time.Date(2026, 3, 4, 12, 0, 0, 0, time.UTC)
	gAgo = func(d time.Duration) time.Time { return gNow.Add(-d) }
)

// inUTC shows local times in UTC for the test, so golden files do not
// depend on the machine. Tests that use it must not be parallel.
func inUTC(t *testing.T) {
	old := zone
	zone = time.UTC
	t.Cleanup(func() { zone = old })
}

func TestGoldenTables(t *testing.T) {
	inUTC(t)
	agents := []protocol.Agent{
		{ID: "a-1", Name: "web-1", Platform: "linux/amd64", OSFamily: "linux", Version: "1.5.0", Supervised: true, SupervisorVersion: "1.5.0",
			Status: protocol.AgentOnline, UpgradeStatus: protocol.UpgradeUpToDate, LastSeen: gAgo(12 * time.Second), Enrolled: gAgo(72 * time.Hour),
			Labels: map[string]string{"role": "web", "env": "prod"}, ProtocolVersion: 1},
		{ID: "a-2", Name: "db-1", Platform: "windows/amd64", Version: "1.4.0", Supervised: true, Status: protocol.AgentOffline,
			UpgradeStatus: protocol.UpgradeRecommended, TargetVersion: "1.5.0", LastSeen: gAgo(3 * time.Hour), Busy: true, Holds: []string{"backup"}},
		{ID: "a-3", Platform: "aix/ppc64", Version: "1.0.0", Status: protocol.AgentInactive, UpgradeStatus: protocol.UpgradeManualRequired},
	}
	agents[0].Workloads = []protocol.Workload{
		{Name: "exporter", Version: "1.5.0", State: protocol.WorkloadReady, Since: gAgo(time.Hour)},
		// What the agent says is shown escaped: ESC must not reach the terminal.
		{Name: "sensor", Version: "1.4.0", State: protocol.WorkloadCrashed, Restarts: 4, LastExit: "exit status 2",
			Reason: "GET http://127.0.0.1:9200/health: connection refused\x1b[2J", Since: gAgo(2 * time.Minute)},
	}
	agents[1].Workloads = []protocol.Workload{
		{Name: "exporter", Version: "1.4.0", State: protocol.WorkloadReady, Since: gAgo(time.Hour)},
		{Name: "backup", Version: "1.4.0", State: protocol.WorkloadReady, Since: gAgo(time.Hour)},
	}
	var b bytes.Buffer
	printAgents(&b, agents, gNow)
	golden(t, "agents-list.txt", b.String())

	b.Reset()
	a := agents[0]
	a.LastResult = &protocol.TrialResult{Outcome: protocol.TrialRolledBack, Version: "1.6.0", Previous: "1.5.0", Reason: "not ready within 60s",
		Logs: "logs/1.6.0", At: gAgo(time.Hour), Supervisor: &protocol.SupervisorResult{From: "1.5.0", To: "1.6.0", Upgraded: false, Reason: "trial rolled back"}}
	printAgent(&b, a, gNow)
	golden(t, "agents-show.txt", b.String())

	run := protocol.Run{ID: "r-7", Text: "monthly update", Status: protocol.RunRunning, Target: "latest", TargetFor: map[string]string{"windows/amd64": "1.4.2"},
		Scope: protocol.ScopeSupervised, MaxConcurrent: 10, FailureThreshold: 3, Selection: protocol.Selection{Labels: map[string]string{"env": "prod"}},
		CreatedBy: "ops", Created: gAgo(5 * time.Minute), Total: 40,
		Counts:   map[string]int{"succeeded": 20, "failed": 1, "downloading": 4, "waiting_for_host": 15},
		Plan:     []protocol.PlanLine{{Platform: "linux/amd64", Agents: 30, Target: "1.5.0"}, {Platform: "windows/amd64", Agents: 10, Target: "1.4.2", Revert: 2}},
		Excluded: []protocol.Exclusion{{AgentID: "a-9", AgentName: "lab", Reason: "not supervised (scope supervised)"}}}
	b.Reset()
	printRun(&b, run, gNow)
	golden(t, "runs-show.txt", b.String())

	b.Reset()
	printRuns(&b, []protocol.Run{run}, gNow)
	golden(t, "runs-list.txt", b.String())

	waved := run
	waved.MaxConcurrent, waved.FailureThreshold = 10000, 0
	waved.RunControls = protocol.RunControls{MaxConcurrentPercent: 5, MaxFailuresPercent: 2, MinSample: 20, Canary: 3, CanaryCover: []string{"role"},
		Waves: []string{"25%", "100%"}, WaveWaitSeconds: 1800, Window: "Mon-Fri 01:00-05:00 Europe/Berlin"}
	waved.Wave, waved.NextWave = 1, gNow.Add(20*time.Minute)
	waved.WaveList = []protocol.WaveStatus{
		{Wave: 0, Name: "canary", Agents: 3, State: "done", Counts: map[string]int{"succeeded": 3}},
		{Wave: 1, Name: "25%", Agents: 7, State: "done", Counts: map[string]int{"succeeded": 6, "waiting_for_host": 1}},
		{Wave: 2, Name: "100%", Agents: 30, State: "waiting", Counts: map[string]int{"pending": 30}},
	}
	b.Reset()
	printRun(&b, waved, gNow)
	golden(t, "runs-show-waves.txt", b.String())

	rep := protocol.DeploymentReport{
		Deployment: protocol.Deployment{ID: "d-12", RunID: "r-7", AgentID: "a-2", AgentName: "db-1", Platform: "windows/amd64", Kind: protocol.KindUpgrade,
			From: "1.4.0", Target: "1.5.0", State: protocol.StateRolledBack, Reason: "workload exporter crashed 3 times within the watch", Created: gAgo(time.Hour),
			Started: gAgo(50 * time.Minute), Ended: gAgo(40 * time.Minute), Workload: "exporter"},
		Steps: []protocol.Step{
			{At: gAgo(50 * time.Minute), Name: "requested", Detail: "upgrade to 1.5.0"},
			{At: gAgo(49 * time.Minute), Name: "download", Detail: "agent"},
			{At: gAgo(48 * time.Minute), Name: "switch", Detail: "active.json names 1.5.0 in trial"},
			{At: gAgo(48*time.Minute - 2*time.Second), Name: "workload exporter started", Detail: "pid 4242"},
			{At: gAgo(48*time.Minute - 5*time.Second), Name: "workload exporter ready", Detail: "after 3s\r"},
			{At: gAgo(40 * time.Minute), Name: "rollback", Detail: "1.5.0 rolled back to 1.4.0"},
		},
	}
	b.Reset()
	printDeployReport(&b, rep, gNow)
	golden(t, "history-show.txt", b.String())

	b.Reset()
	printDeployments(&b, []protocol.Deployment{rep.Deployment}, gNow, true)
	golden(t, "history.txt", b.String())

	b.Reset()
	printReleases(&b, []protocol.Release{{Version: "1.5.0", Released: gAgo(48 * time.Hour), Floor: "1.2.0", Platforms: []string{"linux/amd64", "windows/amd64"}, Imported: gAgo(24 * time.Hour), Size: 23 << 20}}, gNow)
	golden(t, "release-list.txt", b.String())

	b.Reset()
	printTokens(&b, []protocol.Token{
		{ID: "t-1", Name: "admin", Role: protocol.RoleAdmin, Created: gAgo(72 * time.Hour), LastUsed: gAgo(time.Minute)},
		{ID: "t-2", Role: protocol.RoleViewer, Created: gAgo(time.Hour), Revoked: true},
	}, gNow)
	printEnrollTokens(&b, []protocol.EnrollToken{
		{ID: "e-1", Name: "rollout-eu", Created: gAgo(time.Hour), Expires: gNow.Add(23 * time.Hour), Uses: 500, Used: 12},
		{ID: "e-2", Created: gAgo(48 * time.Hour), Expires: gAgo(24 * time.Hour), Uses: 1},
		{ID: "e-3", Created: gAgo(time.Hour), Expires: gNow.Add(time.Hour), Uses: 1, Used: 1},
	}, gNow)
	printSettings(&b, []protocol.Setting{
		{Key: "activation-upgrade.linux", Value: "true"},
		{Key: "hooks.on-run-end", Value: "", Default: true},
		{Key: "version.linux/amd64", Value: "latest", Default: true},
	})
	golden(t, "tokens-settings.txt", b.String())

	b.Reset()
	for _, e := range []protocol.Event{
		{Seq: 1, ID: 264, Name: "upgrade_requested", At: gAgo(time.Minute), AgentID: "a-2", RunID: "r-7", DeploymentID: "d-12", Message: "upgrade to 1.5.0 requested"},
		{Seq: 2, ID: 707, Name: "upgrade_failed", At: gNow, AgentID: "a-2", Fields: map[string]string{"reason": "no space"}, Message: "upgrade failed"},
	} {
		eventPrinter{w: &b}.print(e)
	}
	golden(t, "events.txt", b.String())
}

func TestUpgradeRequest(t *testing.T) {
	base := upgradeOpts{target: "latest", scope: "supervised", rolloutFlags: rolloutFlags{maxConcurrent: "10"}, interval: time.Second}
	tests := []struct {
		name    string
		mod     func(o *upgradeOpts)
		wantErr string
		check   func(t *testing.T, r protocol.RunRequest)
	}{
		{name: "no selection", mod: func(o *upgradeOpts) {}, wantErr: "exactly one of --agents, --label or --all"},
		{name: "two selections", mod: func(o *upgradeOpts) { o.all = true; o.agents = []string{"a"} }, wantErr: "exactly one"},
		{name: "bad scope", mod: func(o *upgradeOpts) { o.all = true; o.scope = "some" }, wantErr: "--scope"},
		{name: "bad concurrency", mod: func(o *upgradeOpts) { o.all = true; o.maxConcurrent = "0" }, wantErr: "--max-concurrent"},
		{name: "bad concurrency share", mod: func(o *upgradeOpts) { o.all = true; o.maxConcurrent = "150%" }, wantErr: "--max-concurrent: \"150%\" is not a share"},
		{name: "min sample without a failure share", mod: func(o *upgradeOpts) { o.all = true; o.minSample = 5 }, wantErr: "--min-sample: only with --max-failures N%"},
		{name: "waves not ending at 100%", mod: func(o *upgradeOpts) { o.all = true; o.waves = []string{"5%", "50%"} }, wantErr: "--waves: the last wave must be 100%"},
		{name: "bad window", mod: func(o *upgradeOpts) { o.all = true; o.window = "Mon-Fry 01:00-05:00" }, wantErr: "Fry"},
		{name: "bad start", mod: func(o *upgradeOpts) { o.all = true; o.startAt = "yesterday" }, wantErr: "--start-at"},
		{name: "ramp without rate", mod: func(o *upgradeOpts) { o.all = true; o.ramp = "2x" }, wantErr: "--ramp needs --rate"},
		{name: "rollout controls", mod: func(o *upgradeOpts) {
			o.all = true
			o.maxConcurrent, o.maxFailures, o.minSample = "5%", "2%", 50
			o.canary, o.canaryCover, o.canarySoak = 10, []string{"role"}, 10*time.Minute
			o.waves, o.waveWait = []string{"5%", "25%", "100%"}, time.Hour
			o.rate, o.ramp, o.spread, o.window, o.force = "20/min", "2x", 2*time.Hour, "Mon-Fri 01:00-05:00 Europe/Berlin", true
		}, check: func(t *testing.T, r protocol.RunRequest) {
			want := protocol.RunRequest{Target: "latest", Scope: "supervised", MaxConcurrent: 10000, Force: true, Selection: protocol.Selection{All: true},
				RunControls: protocol.RunControls{MaxConcurrentPercent: 5, MaxFailuresPercent: 2, MinSample: 50, Canary: 10, CanaryCover: []string{"role"}, CanarySoakSeconds: 600,
					Waves: []string{"5%", "25%", "100%"}, WaveWaitSeconds: 3600, RatePerMinute: 20, Ramp: 2, SpreadSeconds: 7200, Window: "Mon-Fri 01:00-05:00 Europe/Berlin"}}
			if d := cmp.Diff(want, r); d != "" {
				t.Error(d)
			}
		}},
		{name: "bad label", mod: func(o *upgradeOpts) { o.labels = []string{"env"} }, wantErr: "KEY=VALUE"},
		{name: "bad target-for", mod: func(o *upgradeOpts) { o.all = true; o.targetFor = []string{"linux=1.0"} }, wantErr: "PLATFORM=VERSION"},
		{name: "target-for platform not goos/goarch", mod: func(o *upgradeOpts) { o.all = true; o.targetFor = []string{"Linux/AMD64=1.0.0"} }, wantErr: "PLATFORM=VERSION"},
		{name: "target-for bad version", mod: func(o *upgradeOpts) { o.all = true; o.targetFor = []string{"linux/amd64=../1"} }, wantErr: "not latest or a version"},
		{name: "target-for twice for one platform", mod: func(o *upgradeOpts) {
			o.all = true
			o.targetFor = []string{"linux/amd64=1.5.0", "linux/amd64=1.4.0"}
		}, wantErr: "--target-for: linux/amd64 is given twice (1.5.0 and 1.4.0)"},
		{name: "labels and targets", mod: func(o *upgradeOpts) {
			o.labels = []string{"env=prod", "role=db"}
			o.targetFor = []string{"windows/amd64=1.4.2"}
			o.failureThreshold = 2
		}, check: func(t *testing.T, r protocol.RunRequest) {
			want := protocol.RunRequest{Target: "latest", Scope: "supervised", MaxConcurrent: 10, FailureThreshold: 2,
				Selection: protocol.Selection{Labels: map[string]string{"env": "prod", "role": "db"}},
				TargetFor: map[string]string{"windows/amd64": "1.4.2"}}
			if d := cmp.Diff(want, r); d != "" {
				t.Error(d)
			}
		}},
		{name: "agent ids", mod: func(o *upgradeOpts) { o.agents = []string{"a-1", " a-2", ""} }, check: func(t *testing.T, r protocol.RunRequest) {
			if strings.Join(r.Selection.AgentIDs, ",") != "a-1,a-2" {
				t.Errorf("ids %v", r.Selection.AgentIDs)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := base
			tt.mod(&o)
			r, err := o.request()
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, r)
		})
	}
}

// fakeRuns is a runsAPI whose run goes through the given statuses.
type fakeRuns struct {
	plan     protocol.Run
	statuses []protocol.Run
	created  []protocol.RunRequest
	polls    int
	down     int // Run calls that fail as if the server were away
}

func (f *fakeRuns) CreateRun(_ context.Context, req protocol.RunRequest) (protocol.Run, error) {
	f.created = append(f.created, req)
	if req.DryRun {
		return f.plan, nil
	}
	return f.statuses[0], nil
}

func (f *fakeRuns) Run(context.Context, string) (protocol.Run, error) {
	if f.down > 0 {
		f.down--
		return protocol.Run{}, &apiclient.ConnectError{Addr: "127.0.0.1:1", Err: errors.New("connection refused")}
	}
	f.polls++
	return f.statuses[min(f.polls, len(f.statuses)-1)], nil
}

func TestRunUpgrade(t *testing.T) {
	plan := protocol.Run{Plan: []protocol.PlanLine{{Platform: "linux/amd64", Agents: 3, Target: "1.5.0"}},
		Excluded: []protocol.Exclusion{{AgentID: "a-9", Reason: "not supervised"}}}
	running := protocol.Run{ID: "r-1", Status: protocol.RunRunning, Total: 3, Counts: map[string]int{"pending": 3}}
	mid := protocol.Run{ID: "r-1", Status: protocol.RunRunning, Total: 3, Counts: map[string]int{"succeeded": 1, "downloading": 2}}
	end := func(status string, counts map[string]int) protocol.Run {
		return protocol.Run{ID: "r-1", Status: status, Total: 3, Counts: counts, Reason: "done"}
	}
	tests := []struct {
		name        string
		o           upgradeOpts
		interactive bool
		answer      string
		statuses    []protocol.Run
		down        int
		wantCode    int
		wantCreated int
		wantOut     []string
	}{
		{name: "no terminal, no --yes", o: upgradeOpts{}, wantCode: 2, wantCreated: 1},
		{name: "answered no", o: upgradeOpts{}, interactive: true, answer: "n\n", wantCode: 1, wantCreated: 1},
		{name: "answered yes", o: upgradeOpts{}, interactive: true, answer: "yes\n", statuses: []protocol.Run{running}, wantCode: 0, wantCreated: 2,
			wantOut: []string{"linux/amd64  3", "a-9", "not supervised", "started run r-1"}},
		{name: "wait ok", o: upgradeOpts{yes: true, wait: true}, statuses: []protocol.Run{running, mid, end(protocol.RunEndedOK, map[string]int{"succeeded": 3})},
			wantCode: 0, wantCreated: 2, wantOut: []string{"run r-1 ended_ok: succeeded 3"}},
		{name: "wait survives an unreachable server", o: upgradeOpts{yes: true, wait: true}, down: 3,
			statuses: []protocol.Run{running, end(protocol.RunEndedOK, map[string]int{"succeeded": 3})}, wantCode: 0, wantCreated: 2},
		{name: "wait not ok", o: upgradeOpts{yes: true, wait: true}, statuses: []protocol.Run{running, end(protocol.RunEndedNotOK, map[string]int{"succeeded": 2, "rolled_back": 1})},
			wantCode: exitRunNotOK, wantCreated: 2, wantOut: []string{"rolled_back 1"}},
		{name: "wait paused", o: upgradeOpts{yes: true, wait: true}, statuses: []protocol.Run{running, end(protocol.RunPaused, map[string]int{"failed": 2, "pending": 1})},
			wantCode: exitRunPaused, wantCreated: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &fakeRuns{plan: plan, statuses: tt.statuses, down: tt.down}
			var out, errw bytes.Buffer
			o := tt.o
			o.interval = time.Millisecond
			err := runUpgrade(context.Background(), f, protocol.RunRequest{Target: "1.5.0", MaxConcurrent: 10}, o, upgradeIO{
				in: strings.NewReader(tt.answer), out: &out, errw: &errw, interactive: tt.interactive})
			code := 0
			var ee *cli.ExitError
			if errors.As(err, &ee) {
				code = ee.Code
			} else if err != nil {
				code = 1
			}
			if code != tt.wantCode {
				t.Fatalf("code %d (%v), want %d\nstdout:\n%s\nstderr:\n%s", code, err, tt.wantCode, out.String(), errw.String())
			}
			if len(f.created) != tt.wantCreated || !f.created[0].DryRun {
				t.Fatalf("created %d runs (first dry: %v), want %d", len(f.created), len(f.created) > 0 && f.created[0].DryRun, tt.wantCreated)
			}
			for _, w := range tt.wantOut {
				if !strings.Contains(out.String(), w) {
					t.Errorf("stdout lacks %q:\n%s", w, out.String())
				}
			}
		})
	}
}

func TestRunUpgradeInterrupted(t *testing.T) {
	running := protocol.Run{ID: "r-1", Status: protocol.RunRunning, Total: 1, Counts: map[string]int{"pending": 1}}
	f := &fakeRuns{plan: protocol.Run{Plan: []protocol.PlanLine{{Platform: "linux/amd64", Agents: 1, Target: "1.5.0"}}}, statuses: []protocol.Run{running}}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	time.AfterFunc(50*time.Millisecond, cancel) // as Ctrl-C does through signal.NotifyContext
	var out, errw bytes.Buffer
	err := runUpgrade(ctx, f, protocol.RunRequest{Target: "1.5.0", MaxConcurrent: 10}, upgradeOpts{yes: true, wait: true, interval: 5 * time.Millisecond},
		upgradeIO{in: strings.NewReader(""), out: &out, errw: &errw})
	var ee *cli.ExitError
	if !errors.As(err, &ee) || ee.Code != exitInterrupted || !strings.Contains(err.Error(), "run r-1 goes on") {
		t.Fatalf("error %v", err)
	}
}

func TestProgressView(t *testing.T) {
	var b bytes.Buffer
	v := progressView{w: &b}
	r := protocol.Run{ID: "r", Status: protocol.RunRunning, Total: 4, Counts: map[string]int{"pending": 4}}
	v.show(r)
	v.show(r)
	r.Counts = map[string]int{"succeeded": 2, "watching": 2}
	v.show(r)
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	if len(lines) != 2 || !strings.Contains(lines[1], "[############............] 2/4 running: watching 2, succeeded 2") {
		t.Fatalf("plain progress:\n%s", b.String())
	}
	b.Reset()
	lv := progressView{w: &b, live: true, width: 30}
	lv.show(r)
	lv.done()
	if got := b.String(); !strings.HasPrefix(got, "\r\x1b[K[####") || len(got) > len("\r\x1b[K")+30 || !strings.HasSuffix(got, "\n") {
		t.Fatalf("live progress %q", got)
	}
}

func TestParseSince(t *testing.T) {
	inUTC(t)
	for _, tt := range []struct {
		in   string
		want time.Time
		bad  bool
	}{
		{in: "15m", want: gNow.Add(-15 * time.Minute)},
		{in: "2026-03-01T00:00:00Z", want: time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)},
		{in: "2026-03-01", want: time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)},
		{in: "yesterday", bad: true},
		{in: "-5m", bad: true},
	} {
		got, err := parseSince(tt.in, gNow)
		if tt.bad != (err != nil) || !got.Equal(tt.want) {
			t.Errorf("parseSince(%q) = %v, %v", tt.in, got, err)
		}
	}
}

func TestWorkloadHealth(t *testing.T) {
	w := func(name, state string) protocol.Workload { return protocol.Workload{Name: name, State: state} }
	for _, tc := range []struct {
		ws   []protocol.Workload
		want string
	}{
		{nil, "-"},
		{[]protocol.Workload{w("a", "ready"), w("b", "ready")}, "2 ready"},
		{[]protocol.Workload{w("a", "ready"), w("exporter", "crashed")}, "1/2 ready, exporter crashed"},
		{[]protocol.Workload{w("a", "starting"), w("b", "unhealthy"), w("c", "stopped"), w("d", "crashed"), w("e", "ready")}, "1/5 ready, a starting, b unhealthy, +2 more"},
		{[]protocol.Workload{w("a\x1b[2J", "ready\x07")}, `0/1 ready, a\x1b[2J ready\x07`},
	} {
		if got := workloadHealth(tc.ws); got != tc.want {
			t.Errorf("workloadHealth(%v) = %q, want %q", tc.ws, got, tc.want)
		}
	}
}

func TestClean(t *testing.T) {
	for in, want := range map[string]string{
		"plain: GET http://x/ 200": "plain: GET http://x/ 200",
		"né ✓":                     "né ✓",
		"a\x1b[31mred":             `a\x1b[31mred`,
		"line\rover\nnext\ttab":    `line\x0dover\x0anext\x09tab`,
		"\u009b31m":                `\x9b31m`,
		"abc\u202edcb":             `abc\u202edcb`,
	} {
		if got := clean(in); got != want {
			t.Errorf("clean(%q) = %q, want %q", in, got, want)
		}
	}
}
