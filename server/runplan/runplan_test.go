package runplan

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/moltfleet/molt/protocol"
)

var cat = Catalogue{
	"1.0.0": {Platforms: map[string]bool{"linux/amd64": true, "windows/amd64": true}},
	"1.5.0": {Floor: "1.2.0", Platforms: map[string]bool{"linux/amd64": true}},
	"2.0.0": {Platforms: map[string]bool{"linux/amd64": true, "windows/amd64": true}},
}

func agent(id, version string, mod ...func(*Agent)) Agent {
	a := Agent{ID: id, Name: "n-" + id, Platform: "linux/amd64", OSFamily: "debian", Version: version, Supervised: true}
	for _, m := range mod {
		m(&a)
	}
	return a
}

func TestMake(t *testing.T) {
	all := Rules{Scope: protocol.ScopeAll, Catalogue: cat}
	to := func(v string) TargetFunc { return Upgrade(v, nil, cat) }
	for _, tc := range []struct {
		name     string
		agents   []Agent
		rules    Rules
		target   TargetFunc
		todo     []string // agent:target
		excluded map[string]string
		lines    []protocol.PlanLine
	}{
		{
			name:   "upgrade",
			agents: []Agent{agent("a1", "1.0.0"), agent("a2", "1.0.0")},
			rules:  all, target: to("2.0.0"),
			todo:  []string{"a1:2.0.0", "a2:2.0.0"},
			lines: []protocol.PlanLine{{Platform: "linux/amd64", Target: "2.0.0", Agents: 2}},
		},
		{
			name:   "latest per platform",
			agents: []Agent{agent("l", "1.0.0"), agent("w", "1.0.0", func(a *Agent) { a.Platform = "windows/amd64" })},
			rules:  all, target: to("latest"),
			todo: []string{"l:2.0.0", "w:2.0.0"},
			lines: []protocol.PlanLine{{Platform: "linux/amd64", Target: "2.0.0", Agents: 1},
				{Platform: "windows/amd64", Target: "2.0.0", Agents: 1}},
		},
		{
			name:   "target for a platform without a pack",
			agents: []Agent{agent("w", "1.0.0", func(a *Agent) { a.Platform = "windows/amd64" })},
			rules:  all, target: Upgrade("2.0.0", map[string]string{"windows/amd64": "1.5.0"}, cat),
			excluded: map[string]string{"w": "no pack for platform windows/amd64"},
		},
		{
			name: "every rule",
			agents: []Agent{
				agent("rev", "1.0.0", func(a *Agent) { a.Revoked = true }),
				agent("uns", "1.0.0", func(a *Agent) { a.Supervised = false }),
				agent("old", "0.9.0"),
				agent("busy", "1.0.0", func(a *Agent) { a.Open, a.OpenKind = "d-7", protocol.KindRepair }),
				agent("at", "2.0.0"),
				agent("ok", "1.0.0"),
			},
			rules:  Rules{Scope: protocol.ScopeSupervised, MinAutoUpgrade: "1.0.0", Catalogue: cat},
			target: to("2.0.0"),
			todo:   []string{"ok:2.0.0"},
			excluded: map[string]string{
				"rev":  "agent revoked",
				"uns":  "not supervised (scope supervised): upgrade it by hand or use scope all",
				"old":  "agent too old for automatic upgrade (0.9.0 is below 1.0.0): manual upgrade required",
				"busy": "already in deployment d-7 (repair)",
				"at":   "already at target 2.0.0",
			},
			lines: []protocol.PlanLine{{Platform: "linux/amd64", Target: "2.0.0", Agents: 1}},
		},
		{
			name:     "unsupervised and too old in scope all",
			agents:   []Agent{agent("uns", "0.9.0", func(a *Agent) { a.Supervised = false })},
			rules:    Rules{Scope: protocol.ScopeAll, MinAutoUpgrade: "1.0.0", Catalogue: cat},
			target:   to("2.0.0"),
			excluded: map[string]string{"uns": "not supervised: manual upgrade required"},
		},
		{
			name:     "quarantined",
			agents:   []Agent{agent("q", "1.0.0")},
			rules:    Rules{Scope: protocol.ScopeAll, Catalogue: cat, Quarantines: map[QuarantineKey]string{{"2.0.0", "linux/amd64"}: "crashes"}},
			target:   to("2.0.0"),
			excluded: map[string]string{"q": "release 2.0.0 is quarantined for linux/amd64 (crashes): --force to upgrade anyway"},
		},
		{
			name:   "quarantined, forced",
			agents: []Agent{agent("q", "1.0.0")},
			rules:  Rules{Scope: protocol.ScopeAll, Force: true, Catalogue: cat, Quarantines: map[QuarantineKey]string{{"2.0.0", "linux/amd64"}: "crashes"}},
			target: to("2.0.0"),
			todo:   []string{"q:2.0.0"},
			lines:  []protocol.PlanLine{{Platform: "linux/amd64", Target: "2.0.0", Agents: 1}},
		},
		{
			name: "revert stops at the floor",
			agents: []Agent{
				agent("fl", "1.5.0"), // the 1.5.0 pack's floor 1.2.0
				agent("own", "2.0.0", func(a *Agent) { a.Floor = "1.1.0" }),
				agent("free", "2.0.0"),
			},
			rules: all, target: to("1.0.0"),
			todo: []string{"free:1.0.0"},
			excluded: map[string]string{
				"fl":  "below floor: target 1.0.0 is below the floor 1.2.0 of the newest pack the agent ran",
				"own": "below floor: target 1.0.0 is below the floor 1.1.0 of the newest pack the agent ran",
			},
			lines: []protocol.PlanLine{{Platform: "linux/amd64", Target: "1.0.0", Agents: 1, Revert: 1}},
		},
		{
			name: "rollback",
			agents: []Agent{
				agent("back", "2.0.0"),
				agent("since", "1.5.0"),
				agent("gone", "2.0.0"),
				agent("nopack", "2.0.0", func(a *Agent) { a.Platform = "windows/amd64" }),
			},
			rules: all,
			target: Rollback("r-4", map[string]Moved{
				"back":   {From: "1.0.0", To: "2.0.0"},
				"since":  {From: "1.0.0", To: "2.0.0"},
				"gone":   {From: "0.5.0", To: "2.0.0"},
				"nopack": {From: "1.5.0", To: "2.0.0"},
			}, cat),
			todo: []string{"back:1.0.0"},
			excluded: map[string]string{
				"since":  "moved since r-4: runs 1.5.0, not 2.0.0",
				"gone":   "release 0.5.0 it came from is no longer imported",
				"nopack": "release 1.5.0 it came from has no pack for windows/amd64",
			},
			lines: []protocol.PlanLine{{Platform: "linux/amd64", Target: "1.0.0", Agents: 1, Revert: 1}},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := Make(tc.agents, tc.rules, tc.target)
			var todo []string
			for _, d := range p.Todo {
				todo = append(todo, d.Agent.ID+":"+d.Target)
			}
			if diff := cmp.Diff(tc.todo, todo); diff != "" {
				t.Errorf("todo (-want +got):\n%s", diff)
			}
			excluded := map[string]string{}
			for _, x := range p.Excluded {
				excluded[x.AgentID] = x.Reason
				if x.AgentName != "n-"+x.AgentID {
					t.Errorf("exclusion of %s names %q", x.AgentID, x.AgentName)
				}
			}
			if tc.excluded == nil {
				tc.excluded = map[string]string{}
			}
			if diff := cmp.Diff(tc.excluded, excluded); diff != "" {
				t.Errorf("excluded (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.lines, p.Lines); diff != "" {
				t.Errorf("lines (-want +got):\n%s", diff)
			}
		})
	}
}

func TestCatalogue(t *testing.T) {
	if got := cat.Latest("windows/amd64"); got != "2.0.0" {
		t.Errorf("Latest(windows/amd64) = %q", got)
	}
	if got := cat.Latest("linux/arm64"); got != "" {
		t.Errorf("Latest(linux/arm64) = %q, want none", got)
	}
	for _, tc := range []struct {
		a    Agent
		want string
	}{
		{agent("x", "1.0.0"), ""},
		{agent("x", "1.5.0"), "1.2.0"},
		{agent("x", "1.5.0", func(a *Agent) { a.Floor = "1.3.0" }), "1.3.0"},
		{agent("x", "1.5.0", func(a *Agent) { a.Floor = "1.1.0" }), "1.2.0"},
	} {
		if got := cat.FloorOf(tc.a); got != tc.want {
			t.Errorf("FloorOf(%s, floor %q) = %q, want %q", tc.a.Version, tc.a.Floor, got, tc.want)
		}
	}
}

func TestDraft(t *testing.T) {
	p := Make([]Agent{agent("a1", "1.0.0"), agent("a2", "1.0.0"), agent("a3", "1.0.0"), agent("a4", "1.0.0")},
		Rules{Scope: protocol.ScopeAll, Catalogue: cat}, Upgrade("2.0.0", nil, cat))
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	req := protocol.RunRequest{Text: "t", Target: "2.0.0", Scope: protocol.ScopeAll, MaxConcurrent: 2,
		RunControls: protocol.RunControls{Canary: 1}}
	run, rplan := Draft(req, protocol.Selection{All: true}, p, "t-1", now)
	if run.Total != 4 || run.Counts[protocol.StatePending] != 4 || run.Status != protocol.RunRunning || run.CreatedBy != "t-1" || !run.Created.Equal(now) {
		t.Errorf("run %+v", run)
	}
	if len(run.WaveList) != 2 || run.WaveList[0].Agents != 1 || run.WaveList[0].State != "open" || run.WaveList[1].State != "waiting" {
		t.Fatalf("waves %+v, want a canary wave of 1 open and the rest waiting", run.WaveList)
	}
	if len(rplan.Wave) != 4 || len(rplan.Canary) != 4 {
		t.Fatalf("rollout plan %+v", rplan)
	}
	canaries := 0
	for _, c := range rplan.Canary {
		if c {
			canaries++
		}
	}
	if canaries != 1 {
		t.Errorf("%d canaries, want 1", canaries)
	}
}
