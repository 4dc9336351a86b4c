package server

import (
	"context"
	"database/sql"
	"errors"
	"slices"
	"sort"
	"time"

	"github.com/moltfleet/molt/protocol"
	"github.com/moltfleet/molt/rollout"
)

// runHealth is the health watch of one run (docs/server.md, "Health-driven
// halt"): each deployment's baseline, the agent as it was before its
// upgrade, and the deployments that committed and are soaking. Baselines
// are kept in deployments.baseline, so a restarted server compares with
// the same baseline; the soaking set is read back from the store.
type runHealth struct {
	since   time.Time                      // the watch began in this process: silence counts from here at most
	base    map[int64]rollout.HealthSample // deployment id -> its agent before the upgrade
	tracked map[int64]*depRec              // deployments seen open, until they end
	stored  map[int64]bool                 // baselines written to the store
	soaking map[int64]soakRec              // committed deployments in their soak
}

// soakRec is a deployment that committed, watched until its soak ends.
type soakRec struct {
	Agent string
	Wave  int
	Ended time.Time
	Base  rollout.HealthSample
}

// sample is what the health watch compares of a now.
func sample(a *agentRec) rollout.HealthSample {
	hs := rollout.HealthSample{Workloads: a.St.Workloads, AgentRestarts: a.St.AgentRestarts}
	for n, al := range a.alerts {
		if al == alertLooping {
			hs.Looping = append(hs.Looping, n)
		}
	}
	sort.Strings(hs.Looping)
	return hs
}

// sameSample says whether two samples compare the same (versions, times
// and messages aside): a baseline is written again only when it changed.
func sameSample(a, b rollout.HealthSample) bool {
	if len(a.Workloads) != len(b.Workloads) || !slices.Equal(a.Looping, b.Looping) || a.AgentRestarts != b.AgentRestarts {
		return false
	}
	for i, w := range a.Workloads {
		v := b.Workloads[i]
		if w.Name != v.Name || w.State != v.State || w.Restarts != v.Restarts {
			return false
		}
	}
	return true
}

// loadHealth reads back r's baselines and soaking deployments (the first
// pass after the server started).
func (s *Server) loadHealth(ctx context.Context, r *runRec, now time.Time, soak time.Duration) (*runHealth, error) {
	h := &runHealth{since: now, base: map[int64]rollout.HealthSample{}, tracked: map[int64]*depRec{},
		stored: map[int64]bool{}, soaking: map[int64]soakRec{}}
	bases, err := s.st.HealthBaselines(ctx, r.ID, now.Add(-soak))
	if err != nil {
		return nil, err
	}
	for _, b := range bases {
		var hs rollout.HealthSample
		if err := jsonUnmarshal(b.Baseline, &hs); err != nil {
			return nil, err
		}
		h.stored[b.ID] = true
		switch {
		case !protocol.Terminal(b.State):
			h.base[b.ID] = hs
		case b.State == protocol.StateSucceeded && !b.Ended.Before(now.Add(-soak)):
			h.soaking[b.ID] = soakRec{Agent: b.AgentID, Wave: b.Wave, Ended: b.Ended, Base: hs}
		}
	}
	return h, nil
}

// healthPass watches r's upgraded agents: it keeps the baseline of each
// deployment of an open wave until it starts, moves those that committed
// into their soak, and halts a running r when the soaking agents do
// measurably worse than their baselines (rollout.HealthHalt). Call with
// s.mu held, from rolloutPass.
func (s *Server) healthPass(ctx context.Context, r *runRec, now time.Time) error {
	soak, on := rollout.HealthSoak(r.Controls)
	if !on {
		return nil
	}
	if r.health == nil {
		h, err := s.loadHealth(ctx, r, now, soak)
		if err != nil {
			return err
		}
		r.health = h
	}
	h := r.health
	open := map[int64]bool{}
	var store []int64
	for _, d := range s.open {
		if d.RunID != r.ID || d.Wave > r.Wave {
			continue
		}
		open[d.ID] = true
		h.tracked[d.ID] = d
		a := s.agents[d.AgentID]
		if a == nil {
			continue
		}
		// Until it starts, and until the agent runs its target, the
		// agent as it is now is its baseline.
		if old, ok := h.base[d.ID]; protocol.Queued(d.State) || (!ok && a.St.Version != d.Target) {
			if cur := sample(a); !ok || !sameSample(old, cur) {
				h.base[d.ID], h.stored[d.ID] = cur, false
			}
		}
		if _, ok := h.base[d.ID]; ok && !h.stored[d.ID] {
			store = append(store, d.ID)
		}
	}
	var ended []*depRec
	for id, d := range h.tracked {
		if !open[id] {
			ended = append(ended, d)
		}
	}
	if len(store) > 0 || len(ended) > 0 {
		sort.Slice(ended, func(i, j int) bool { return ended[i].ID < ended[j].ID })
		err := s.change(ctx, func(wr *writer) error {
			for _, id := range store {
				if err := wr.tx.SetDeploymentBaseline(id, mustJSON(h.base[id])); err != nil {
					return err
				}
			}
			soaked := map[int64]soakRec{}
			for _, d := range ended {
				state, at, err := wr.tx.DeploymentEnd(d.ID)
				if errors.Is(err, sql.ErrNoRows) {
					continue
				} else if err != nil {
					return err
				}
				base, ok := h.base[d.ID]
				if ok && !h.stored[d.ID] {
					if err := wr.tx.SetDeploymentBaseline(d.ID, mustJSON(base)); err != nil {
						return err
					}
				}
				if state == protocol.StateSucceeded {
					soaked[d.ID] = soakRec{Agent: d.AgentID, Wave: d.Wave, Ended: at, Base: base}
				}
			}
			wr.then(func() {
				for _, id := range store {
					h.stored[id] = true
				}
				for _, d := range ended {
					delete(h.tracked, d.ID)
					delete(h.base, d.ID)
					delete(h.stored, d.ID)
				}
				for id, sr := range soaked {
					h.soaking[id] = sr
				}
			})
			return nil
		})
		if err != nil {
			return err
		}
	}
	silence := rollout.HealthSilence(s.pollWait())
	var agents []rollout.HealthAgent
	var regressed []int64
	for id, sr := range h.soaking {
		if !now.Before(sr.Ended.Add(soak)) {
			delete(h.soaking, id)
			continue
		}
		a := s.agents[sr.Agent]
		if a == nil || a.Revoked {
			continue
		}
		seen := a.LastSeen
		for _, t := range []time.Time{h.since, sr.Ended} {
			if t.After(seen) {
				seen = t
			}
		}
		regs := rollout.Regressions(sr.Base, sample(a), now.Sub(seen) > silence)
		agents = append(agents, rollout.HealthAgent{Name: a.St.Name, Regressions: regs})
		if len(regs) > 0 {
			regressed = append(regressed, id)
		}
	}
	if r.Status != protocol.RunRunning {
		return nil
	}
	signal, reason := rollout.HealthHalt(r.Controls, agents)
	if signal == "" {
		return nil
	}
	names := make([]string, 0, len(regressed))
	for _, id := range regressed {
		if a := s.agents[h.soaking[id].Agent]; a != nil {
			names = append(names, a.St.Name)
		}
	}
	if err := s.halt(ctx, r, signal, reason, names...); err != nil {
		return err
	}
	// The operator who resumes has seen these agents: they are no
	// longer watched, so a resumed run is not halted again by what halted
	// it (a silent agent stays silent). Their baselines go with them, a
	// restarted server does not read them back.
	return s.change(ctx, func(wr *writer) error {
		for _, id := range regressed {
			if err := wr.tx.SetDeploymentBaseline(id, ""); err != nil {
				return err
			}
		}
		wr.then(func() {
			for _, id := range regressed {
				delete(h.soaking, id)
			}
		})
		return nil
	})
}

// soaking says whether wave w of r still has upgraded agents in their
// health soak: the wave is not done before they soaked. Only a run that
// sets health_soak_seconds holds its waves so; by default the watch runs
// through the wave waits and the canary soak, and later waves.
func (r *runRec) soaking(w int, now time.Time) bool {
	if r.health == nil || r.Controls.HealthSoakSeconds == 0 || r.Controls.NoHealthHalt {
		return false
	}
	soak, _ := rollout.HealthSoak(r.Controls)
	for _, sr := range r.health.soaking {
		if sr.Wave == w && now.Before(sr.Ended.Add(soak)) {
			return true
		}
	}
	return false
}
