package server

import (
	"context"
	"fmt"

	"github.com/moltfleet/molt/protocol"
	"github.com/moltfleet/molt/server/lifecycle"
)

// An operator's actions on one deployment, without HTTP: the handlers
// decode the request, call one of these and encode what it returns. ref
// is the deployment's id (d-3), by the operator's token name.

// SkipDeployment ends a deployment its agent has not started (pending,
// waiting_for_host, waiting_for_window) as skipped, and returns it.
func (s *Server) SkipDeployment(ctx context.Context, ref, by string) (protocol.Deployment, error) {
	_, id, err := s.loadDeployment(ctx, ref)
	if err != nil {
		return protocol.Deployment{}, err
	}
	s.mu.Lock()
	d := s.openDeployment(id)
	if d == nil || !protocol.Queued(d.State) {
		s.mu.Unlock()
		state := "ended"
		if d != nil {
			state = d.State
		} else if dd, _, err := s.loadDeployment(ctx, ref); err == nil {
			state = dd.State
		}
		return protocol.Deployment{}, conflict("deployment %s is %s: only a deployment the agent has not started (pending, waiting_for_host, waiting_for_window) can be skipped", depID(id), state)
	}
	a := s.agents[d.AgentID]
	err = s.change(ctx, func(wr *writer) error {
		if err := wr.event(event{ID: protocol.EvSkippedByOperator, Agent: d.AgentID, Run: d.RunID, Dep: d.ID, Msg: fmt.Sprintf("deployment %s skipped by %s", depID(d.ID), by)}); err != nil {
			return err
		}
		// A skipped agent is not repaired back to an older target.
		if a != nil && a.Desired != "" {
			if err := wr.setDesired(a, ""); err != nil {
				return err
			}
		}
		return wr.setState(d, lifecycle.Skip, "skipped by operator "+by)
	})
	s.mu.Unlock()
	if err != nil {
		return protocol.Deployment{}, err
	}
	dd, _, err := s.loadDeployment(ctx, ref)
	return dd, err
}

// RetryDeployment ends a stuck deployment (cancelled) or leaves a
// failed one as it is, queues a new deployment of the same agent to the
// same target in the same run and wave, and returns the new one.
func (s *Server) RetryDeployment(ctx context.Context, ref, by string) (protocol.Deployment, error) {
	dd, id, err := s.loadDeployment(ctx, ref)
	if err != nil {
		return protocol.Deployment{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	d := s.openDeployment(id)
	state := dd.State
	if d != nil {
		state = d.State
	}
	if state != protocol.StateStuck && state != protocol.StateFailed {
		return protocol.Deployment{}, conflict("deployment %s is %s: only a stuck or failed deployment can be retried", depID(id), state)
	}
	rid, ok := parseID(dd.RunID, "r-")
	if !ok {
		return protocol.Deployment{}, conflict("deployment %s is a %s, not part of a run: only a run's deployment can be retried", depID(id), dd.Kind)
	}
	run := s.runs[rid]
	if run == nil {
		return protocol.Deployment{}, conflict("run %s has ended: start a new run (molt upgrade) to upgrade agent %s again", dd.RunID, dd.AgentID)
	}
	a := s.agents[dd.AgentID]
	if a == nil || a.Revoked {
		return protocol.Deployment{}, conflict("agent %s of deployment %s is revoked or removed: there is nothing to retry", dd.AgentID, depID(id))
	}
	if o := s.open[a.ID]; o != nil && o.ID != id {
		return protocol.Deployment{}, conflict("agent %s already has deployment %s (%s): cancel or skip it first", a.ID, depID(o.ID), o.State)
	}
	var newID int64
	err = s.change(ctx, func(wr *writer) error {
		if err := s.newRunDeployment(wr, a, rid, dd.Kind, dd.Target, dd.Wave, dd.Canary); err != nil {
			return err
		}
		id, err := wr.tx.LastDeploymentOf(a.ID)
		if err != nil {
			return err
		}
		newID = id
		why := "retried as " + depID(newID)
		if d != nil {
			if err := wr.setState(d, lifecycle.Cancel, why); err != nil {
				return err
			}
		}
		// The mark retriedIn counts: the run's outcome is its retry's.
		if err := wr.step(id, stepRetried, why); err != nil {
			return err
		}
		if err := wr.step(newID, "server: retry", "retry of "+depID(id)+" by "+by); err != nil {
			return err
		}
		return wr.event(event{ID: protocol.EvDeploymentRetried, Agent: a.ID, Run: rid, Dep: newID,
			Msg:    fmt.Sprintf("deployment %s (%s) retried as %s by %s", depID(id), state, depID(newID), by),
			Fields: map[string]string{"retry_of": depID(id), "by": by}})
	})
	if err != nil {
		return protocol.Deployment{}, err
	}
	nd, _, err := s.loadDeployment(ctx, depID(newID))
	return nd, err
}

// CancelDeployment ends a stuck deployment: the agent is left out of its
// run (a deployment not yet started is skipped instead, and one in
// progress is left to its agent). It returns the deployment.
func (s *Server) CancelDeployment(ctx context.Context, ref, by string) (protocol.Deployment, error) {
	dd, id, err := s.loadDeployment(ctx, ref)
	if err != nil {
		return protocol.Deployment{}, err
	}
	s.mu.Lock()
	d := s.openDeployment(id)
	if d == nil || d.State != protocol.StateStuck {
		s.mu.Unlock()
		state := dd.State
		if d != nil {
			state = d.State
		}
		return protocol.Deployment{}, conflict("deployment %s is %s: only a stuck deployment can be cancelled (skip one that has not started)", depID(id), state)
	}
	a := s.agents[d.AgentID]
	err = s.change(ctx, func(wr *writer) error {
		if err := wr.event(event{ID: protocol.EvDeploymentCancelled, Agent: d.AgentID, Run: d.RunID, Dep: d.ID,
			Msg: fmt.Sprintf("stuck deployment %s cancelled by %s", depID(d.ID), by)}); err != nil {
			return err
		}
		// The host may come back on either version: it is not repaired
		// back to an older one.
		if a != nil && a.Desired != "" {
			if err := wr.setDesired(a, ""); err != nil {
				return err
			}
		}
		return wr.setState(d, lifecycle.Cancel, "cancelled by operator "+by)
	})
	s.mu.Unlock()
	if err != nil {
		return protocol.Deployment{}, err
	}
	nd, _, err := s.loadDeployment(ctx, depID(id))
	return nd, err
}
