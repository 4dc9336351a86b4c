// Package runplan decides what a run will do before it exists: for each
// selected agent the version it goes to or the reason it is left out,
// the plan per platform and target, and the run as the API shows it
// (waves and canaries). It is a function of plain values, the agents,
// the release catalogue, the quarantines and the request, which the
// server gathers under its lock: no server, database or clock.
package runplan

import (
	"fmt"
	"sort"
	"time"

	"github.com/moltfleet/molt/internal/semver"
	"github.com/moltfleet/molt/protocol"
	"github.com/moltfleet/molt/rollout"
)

// Agent is what planning needs to know of one agent.
type Agent struct {
	ID, Name   string
	Platform   string
	OSFamily   string
	Labels     map[string]string
	Version    string
	Supervised bool
	Revoked    bool
	// Floor is the floor the agent reports (the catalogue adds the one
	// of the pack of the version it runs).
	Floor string
	// Open and OpenKind are its open deployment (d-3) and its kind, ""
	// when it has none: an agent has one open deployment at a time.
	Open, OpenKind string
}

// Release is one imported release: its floor and the platforms it has a
// pack for.
type Release struct {
	Floor     string
	Platforms map[string]bool
}

// Catalogue is the imported releases by version.
type Catalogue map[string]Release

// Latest is the newest release with a pack for platform, "" for none.
func (c Catalogue) Latest(platform string) string {
	best := ""
	for v, r := range c {
		if r.Platforms[platform] && (best == "" || semver.Less(best, v)) {
			best = v
		}
	}
	return best
}

// FloorOf is the highest floor a must respect: the one it reports and
// the one of the pack of the version it runs.
func (c Catalogue) FloorOf(a Agent) string {
	return Floor(a.Floor, c[a.Version].Floor)
}

// Floor is the higher of two floors ("" for none).
func Floor(reported, pack string) string {
	if pack != "" && (reported == "" || semver.Less(reported, pack)) {
		return pack
	}
	return reported
}

// QuarantineKey is a release kept from a platform.
type QuarantineKey struct{ Version, Platform string }

// Rules are what every run obeys besides its targets.
type Rules struct {
	Scope string // protocol.ScopeAll or protocol.ScopeSupervised
	Force bool   // include agents whose target is quarantined
	// MinAutoUpgrade is agents.min-auto-upgrade-version ("" for none).
	MinAutoUpgrade string
	Catalogue      Catalogue
	// Quarantines gives each quarantined release and platform its reason.
	Quarantines map[QuarantineKey]string
}

// TargetFunc gives agent a its target, or instead a reason to leave it
// out.
type TargetFunc func(a Agent) (target, reason string)

// Planned is one agent the run moves, to its own target; Revert says the
// target is below the version it runs.
type Planned struct {
	Agent  Agent
	Target string
	Revert bool
}

// Plan is who a run moves where, who it leaves out and why, and the plan
// per platform and target as the API shows it.
type Plan struct {
	Todo     []Planned
	Excluded []protocol.Exclusion
	Lines    []protocol.PlanLine
}

// Make decides for each of agents, in order, whether the run takes it,
// to the target targetOf gives it. The rules of every run follow: scope,
// the oldest version upgraded automatically, one open deployment per
// agent, quarantine unless forced, and a revert stops at the agent's
// floor.
func Make(agents []Agent, rules Rules, targetOf TargetFunc) Plan {
	var p Plan
	type lineKey struct{ platform, target string }
	plan := map[lineKey]*protocol.PlanLine{}
	exclude := func(a Agent, reason string) {
		p.Excluded = append(p.Excluded, protocol.Exclusion{AgentID: a.ID, AgentName: a.Name, Reason: reason})
	}
	for _, a := range agents {
		if a.Revoked {
			exclude(a, "agent revoked")
			continue
		}
		target, reason := targetOf(a)
		qreason, quarantined := rules.Quarantines[QuarantineKey{target, a.Platform}]
		switch {
		case reason != "":
			exclude(a, reason)
		case rules.Scope == protocol.ScopeSupervised && !a.Supervised:
			exclude(a, "not supervised (scope supervised): upgrade it by hand or use scope all")
		case rules.MinAutoUpgrade != "" && semver.Less(a.Version, rules.MinAutoUpgrade):
			exclude(a, TooOld(a, rules.MinAutoUpgrade))
		case a.Open != "":
			exclude(a, fmt.Sprintf("already in deployment %s (%s)", a.Open, a.OpenKind))
		case a.Version == target:
			exclude(a, "already at target "+target)
		case !rules.Force && quarantined:
			exclude(a, fmt.Sprintf("release %s is quarantined for %s (%s): --force to upgrade anyway", target, a.Platform, qreason))
		default:
			revert := semver.Less(target, a.Version)
			if floor := rules.Catalogue.FloorOf(a); revert && floor != "" && semver.Less(target, floor) {
				exclude(a, fmt.Sprintf("below floor: target %s is below the floor %s of the newest pack the agent ran", target, floor))
				continue
			}
			p.Todo = append(p.Todo, Planned{a, target, revert})
			k := lineKey{a.Platform, target}
			pl := plan[k]
			if pl == nil {
				pl = &protocol.PlanLine{Platform: a.Platform, Target: target}
				plan[k] = pl
			}
			pl.Agents++
			if revert {
				pl.Revert++
			}
		}
	}
	for _, pl := range plan {
		p.Lines = append(p.Lines, *pl)
	}
	sort.Slice(p.Lines, func(i, j int) bool {
		if p.Lines[i].Platform != p.Lines[j].Platform {
			return p.Lines[i].Platform < p.Lines[j].Platform
		}
		return semver.Less(p.Lines[i].Target, p.Lines[j].Target)
	})
	return p
}

// TooOld says why a cannot be upgraded automatically ("" if it can),
// min being agents.min-auto-upgrade-version.
func TooOld(a Agent, min string) string {
	if !a.Supervised {
		return "not supervised: manual upgrade required"
	}
	if min != "" && semver.Less(a.Version, min) {
		return fmt.Sprintf("agent too old for automatic upgrade (%s is below %s): manual upgrade required", a.Version, min)
	}
	return ""
}

// Upgrade is the target of an upgrade run: target (a version or
// "latest") unless targetFor names one for the agent's platform, which
// must have a pack in c.
func Upgrade(target string, targetFor map[string]string, c Catalogue) TargetFunc {
	return func(a Agent) (string, string) {
		want := target
		if v, ok := targetFor[a.Platform]; ok {
			want = v
		}
		t := want
		if want == "latest" {
			t = c.Latest(a.Platform)
		}
		if t == "" || !c[t].Platforms[a.Platform] {
			return "", "no pack for platform " + a.Platform
		}
		return t, ""
	}
}

// Moved is what a run did to one agent: from the version it ran to the
// one it runs since.
type Moved struct{ From, To string }

// Rollback is the target of the rollback of run orig: the version each
// agent came from (moved, by agent id), while it still runs the one orig
// moved it to and a pack for it is imported.
func Rollback(orig string, moved map[string]Moved, c Catalogue) TargetFunc {
	return func(a Agent) (string, string) {
		m := moved[a.ID]
		if a.Version != m.To {
			return "", fmt.Sprintf("moved since %s: runs %s, not %s", orig, a.Version, m.To)
		}
		// The packs are checked first: without one nothing else matters.
		rel, ok := c[m.From]
		if !ok {
			return "", fmt.Sprintf("release %s it came from is no longer imported", m.From)
		}
		if !rel.Platforms[a.Platform] {
			return "", fmt.Sprintf("release %s it came from has no pack for %s", m.From, a.Platform)
		}
		return m.From, ""
	}
}

// Draft is the run p makes as the API shows it before it exists, asked
// by req for sel, by createdBy at now, with its rollout plan (waves and
// canaries of p.Todo, in order).
func Draft(req protocol.RunRequest, sel protocol.Selection, p Plan, createdBy string, now time.Time) (protocol.Run, rollout.Plan) {
	ragents := make([]rollout.Agent, len(p.Todo))
	for i, d := range p.Todo {
		ragents[i] = rollout.Agent{ID: d.Agent.ID, Platform: d.Agent.Platform, OSFamily: d.Agent.OSFamily, Labels: d.Agent.Labels}
	}
	rplan := rollout.NewPlan(ragents, req.RunControls)
	waves := make([]protocol.WaveStatus, len(rplan.Waves))
	for i, w := range rplan.Waves {
		waves[i] = protocol.WaveStatus{Wave: i, Name: w.Name, Agents: len(w.Members), Counts: map[string]int{protocol.StatePending: len(w.Members)}, State: "waiting"}
	}
	if len(waves) > 0 {
		waves[0].State = "open"
	}
	run := protocol.Run{
		Text: req.Text, Status: protocol.RunRunning, Target: req.Target, TargetFor: req.TargetFor, Scope: req.Scope,
		MaxConcurrent: req.MaxConcurrent, FailureThreshold: req.FailureThreshold, Selection: sel,
		CreatedBy: createdBy, Created: now, Plan: p.Lines, Excluded: p.Excluded,
		Counts: map[string]int{protocol.StatePending: len(p.Todo)}, Total: len(p.Todo),
		RunControls: req.RunControls, WaveList: waves,
	}
	return run, rplan
}
