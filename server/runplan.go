package server

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"time"

	"github.com/moltfleet/molt/internal/semver"
	"github.com/moltfleet/molt/internal/window"
	"github.com/moltfleet/molt/protocol"
	"github.com/moltfleet/molt/rollout"
	"github.com/moltfleet/molt/store"
)

// plannedDep is one agent a run will move, to its own target.
type plannedDep struct {
	a      *agentRec
	target string
	revert bool
}

// runPlan is who a run moves where, who it leaves out and why, and the
// plan per platform and target as the API shows it.
type runPlan struct {
	todo     []plannedDep
	excluded []protocol.Exclusion
	lines    []protocol.PlanLine
}

// planAgents decides for each selected agent whether the run takes it,
// to the target targetOf gives it; targetOf returns instead a reason to
// leave the agent out. The rules of every run follow: scope, the oldest
// version upgraded automatically, one open deployment per agent,
// quarantine unless force, and a revert stops at the agent's floor.
// Call with s.mu held.
func (s *Server) planAgents(selected []*agentRec, scope string, force bool, targetOf func(a *agentRec) (target, reason string)) runPlan {
	var p runPlan
	type lineKey struct{ platform, target string }
	plan := map[lineKey]*protocol.PlanLine{}
	exclude := func(a *agentRec, reason string) {
		p.excluded = append(p.excluded, protocol.Exclusion{AgentID: a.ID, AgentName: a.St.Name, Reason: reason})
	}
	for _, a := range selected {
		if a.Revoked {
			exclude(a, "agent revoked")
			continue
		}
		target, reason := targetOf(a)
		switch {
		case reason != "":
			exclude(a, reason)
		case scope == protocol.ScopeSupervised && !a.St.Supervised:
			exclude(a, "not supervised (scope supervised): upgrade it by hand or use scope all")
		case s.settingLocked("agents.min-auto-upgrade-version") != "" && semver.Less(a.St.Version, s.settingLocked("agents.min-auto-upgrade-version")):
			exclude(a, s.tooOld(a))
		case s.open[a.ID] != nil:
			d := s.open[a.ID]
			exclude(a, fmt.Sprintf("already in deployment %s (%s)", depID(d.ID), d.Kind))
		case a.St.Version == target:
			exclude(a, "already at target "+target)
		case !force && s.isQuarantined(target, a.St.Platform):
			reason, _ := s.quarantined(target, a.St.Platform)
			exclude(a, fmt.Sprintf("release %s is quarantined for %s (%s): --force to upgrade anyway", target, a.St.Platform, reason))
		default:
			revert := semver.Less(target, a.St.Version)
			if floor := s.floorOf(a); revert && floor != "" && semver.Less(target, floor) {
				exclude(a, fmt.Sprintf("below floor: target %s is below the floor %s of the newest pack the agent ran", target, floor))
				continue
			}
			p.todo = append(p.todo, plannedDep{a, target, revert})
			k := lineKey{a.St.Platform, target}
			pl := plan[k]
			if pl == nil {
				pl = &protocol.PlanLine{Platform: a.St.Platform, Target: target}
				plan[k] = pl
			}
			pl.Agents++
			if revert {
				pl.Revert++
			}
		}
	}
	for _, pl := range plan {
		p.lines = append(p.lines, *pl)
	}
	sort.Slice(p.lines, func(i, j int) bool {
		if p.lines[i].Platform != p.lines[j].Platform {
			return p.lines[i].Platform < p.lines[j].Platform
		}
		return semver.Less(p.lines[i].Target, p.lines[j].Target)
	})
	return p
}

// draftRun is the run p makes as the API shows it before it exists, with
// its rollout plan (waves and canaries of p.todo, in order).
func (s *Server) draftRun(req protocol.RunRequest, sel protocol.Selection, p runPlan, c caller) (protocol.Run, rollout.Plan) {
	ragents := make([]rollout.Agent, len(p.todo))
	for i, d := range p.todo {
		ragents[i] = rollout.Agent{ID: d.a.ID, Platform: d.a.St.Platform, OSFamily: d.a.St.OSFamily, Labels: d.a.St.Labels}
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
		CreatedBy: tokenName(c), Created: s.clock.Now(), Plan: p.lines, Excluded: p.excluded,
		Counts: map[string]int{protocol.StatePending: len(p.todo)}, Total: len(p.todo),
		RunControls: req.RunControls, WaveList: waves,
	}
	return run, rplan
}

// insertRun creates run (drafted from req and p) in one change with its
// deployments, each to its own target, and its start events; to says
// where the agents go in the start event, and more, if not nil, adds to
// the change once the run has its id. Call with s.mu held.
func (s *Server) insertRun(ctx context.Context, req protocol.RunRequest, run protocol.Run, p runPlan, rplan rollout.Plan, to string, more func(w *writer, id int64) error) (protocol.Run, error) {
	waves := run.WaveList
	err := s.change(ctx, func(w *writer) error {
		stored := make([]protocol.WaveStatus, len(waves))
		for i, wv := range waves {
			stored[i] = protocol.WaveStatus{Wave: i, Name: wv.Name, Agents: wv.Agents}
		}
		id, err := w.tx.InsertRun(store.Run{
			Text: req.Text, Status: protocol.RunRunning, Target: req.Target, TargetFor: req.TargetFor, Scope: req.Scope,
			MaxConcurrent: req.MaxConcurrent, FailureThreshold: req.FailureThreshold, Selection: run.Selection, CreatedBy: run.CreatedBy,
			Created: w.now, Plan: p.lines, Excluded: p.excluded, Controls: req.RunControls, Waves: stored,
		})
		if err != nil {
			return err
		}
		run.ID, run.Created = runID(id), w.now
		rr := &runRec{ID: id, Text: req.Text, Status: protocol.RunRunning, MaxConcurrent: req.MaxConcurrent, FailureThreshold: req.FailureThreshold, Counts: map[string]int{},
			runRollout: runRollout{Created: w.now, Controls: req.RunControls}}
		if req.Window != "" {
			rr.window, _ = window.Parse(req.Window) // checked by rollout.Check
		}
		for _, wv := range waves {
			rr.Waves = append(rr.Waves, waveRec{Name: wv.Name, Size: wv.Agents, Counts: map[string]int{}})
		}
		w.then(func() { s.runs[id] = rr })
		// In the plan's order: a deployment's place in the run (its id
		// less the first's) is its slot in the spread.
		for i, d := range p.todo {
			if err := s.newRunDeployment(w, d.a, id, protocol.KindUpgrade, d.target, rplan.Wave[i], rplan.Canary[i]); err != nil {
				return err
			}
		}
		err = w.event(event{ID: protocol.EvRunStarted, Run: id,
			Msg:    fmt.Sprintf("run %s started: %d agents to %s, scope %s, max concurrent %s, %d excluded%s", run.ID, len(p.todo), to, req.Scope, limitText(req), len(p.excluded), wavesText(waves)),
			Fields: map[string]string{"target": req.Target, "scope": req.Scope, "max_concurrent": strconv.Itoa(req.MaxConcurrent), "agents": strconv.Itoa(len(p.todo))}})
		if err != nil {
			return err
		}
		if more != nil {
			if err := more(w, id); err != nil {
				return err
			}
		}
		if !req.StartAt.IsZero() && req.StartAt.After(w.now) {
			if err := w.event(event{ID: protocol.EvRunScheduled, Run: id, Msg: fmt.Sprintf("run %s starts at %s", run.ID, req.StartAt.UTC().Format(time.RFC3339)),
				Fields: map[string]string{"start_at": req.StartAt.UTC().Format(time.RFC3339)}}); err != nil {
				return err
			}
		}
		if len(waves) > 1 {
			return w.event(event{ID: protocol.EvWaveStarted, Run: id, Msg: fmt.Sprintf("run %s: wave 0 (%s) started: %d agents", run.ID, waves[0].Name, waves[0].Agents),
				Fields: map[string]string{"wave": "0", "agents": strconv.Itoa(waves[0].Agents)}})
		}
		return nil
	})
	if err != nil {
		return protocol.Run{}, err
	}
	return run, nil
}
