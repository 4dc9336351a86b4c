package server

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/moltfleet/molt/internal/window"
	"github.com/moltfleet/molt/protocol"
	"github.com/moltfleet/molt/rollout"
	"github.com/moltfleet/molt/server/runplan"
	"github.com/moltfleet/molt/store"
)

// planAgent is a as planning sees it (package runplan). Call with s.mu
// held.
func (s *Server) planAgent(a *agentRec) runplan.Agent {
	pa := runplan.Agent{ID: a.ID, Name: a.St.Name, Platform: a.St.Platform, OSFamily: a.St.OSFamily, Labels: a.St.Labels,
		Version: a.St.Version, Supervised: a.St.Supervised, Revoked: a.Revoked, Floor: a.St.Floor}
	if d := s.open[a.ID]; d != nil {
		pa.Open, pa.OpenKind = depID(d.ID), d.Kind
	}
	return pa
}

// catalogue is the imported releases as planning sees them. Call with
// s.mu held.
func (s *Server) catalogue() runplan.Catalogue {
	c := make(runplan.Catalogue, len(s.releases))
	for v, r := range s.releases {
		c[v] = runplan.Release{Floor: r.Floor, Platforms: r.Platforms}
	}
	return c
}

// planAgents gathers what planning needs, selected agents in order, the
// catalogue c, the quarantines and the settings, and plans a run of
// them (runplan.Make). Call with s.mu held.
func (s *Server) planAgents(selected []*agentRec, scope string, force bool, c runplan.Catalogue, targetOf runplan.TargetFunc) runplan.Plan {
	agents := make([]runplan.Agent, len(selected))
	for i, a := range selected {
		agents[i] = s.planAgent(a)
	}
	q := make(map[runplan.QuarantineKey]string, len(s.quarantines))
	for k, r := range s.quarantines {
		q[runplan.QuarantineKey{Version: k.version, Platform: k.platform}] = r.Reason
	}
	rules := runplan.Rules{Scope: scope, Force: force, MinAutoUpgrade: s.settingLocked("agents.min-auto-upgrade-version"), Catalogue: c, Quarantines: q}
	return runplan.Make(agents, rules, targetOf)
}

// insertRun creates run (drafted from req and p) in one change with its
// deployments, each to its own target, and its start events; to says
// where the agents go in the start event, and more, if not nil, adds to
// the change once the run has its id. Call with s.mu held.
func (s *Server) insertRun(ctx context.Context, req protocol.RunRequest, run protocol.Run, p runplan.Plan, rplan rollout.Plan, to string, more func(w *writer, id int64) error) (protocol.Run, error) {
	waves := run.WaveList
	err := s.change(ctx, func(w *writer) error {
		stored := make([]protocol.WaveStatus, len(waves))
		for i, wv := range waves {
			stored[i] = protocol.WaveStatus{Wave: i, Name: wv.Name, Agents: wv.Agents}
		}
		id, err := w.tx.InsertRun(store.Run{
			Text: req.Text, Status: protocol.RunRunning, Target: req.Target, TargetFor: req.TargetFor, Scope: req.Scope,
			MaxConcurrent: req.MaxConcurrent, FailureThreshold: req.FailureThreshold, Selection: run.Selection, CreatedBy: run.CreatedBy,
			Created: w.now, Plan: p.Lines, Excluded: p.Excluded, Controls: req.RunControls, Waves: stored,
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
		for i, d := range p.Todo {
			if err := s.newRunDeployment(w, s.agents[d.Agent.ID], id, protocol.KindUpgrade, d.Target, rplan.Wave[i], rplan.Canary[i]); err != nil {
				return err
			}
		}
		err = w.event(event{ID: protocol.EvRunStarted, Run: id,
			Msg:    fmt.Sprintf("run %s started: %d agents to %s, scope %s, max concurrent %s, %d excluded%s", run.ID, len(p.Todo), to, req.Scope, limitText(req), len(p.Excluded), wavesText(waves)),
			Fields: map[string]string{"target": req.Target, "scope": req.Scope, "max_concurrent": strconv.Itoa(req.MaxConcurrent), "agents": strconv.Itoa(len(p.Todo))}})
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
