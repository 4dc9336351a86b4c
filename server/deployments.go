package server

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/http"

	"github.com/moltfleet/molt/protocol"
	"github.com/moltfleet/molt/store"
)

// apiDeployment is deployment d as the API shows it.
func apiDeployment(d store.Deployment) protocol.Deployment {
	return protocol.Deployment{ID: depID(d.ID), RunID: runID(d.RunID), AgentID: d.AgentID, AgentName: d.AgentName,
		Platform: d.Platform, Kind: d.Kind, From: d.From, Target: d.Target, Revert: d.Revert, Wave: d.Wave, Canary: d.Canary,
		State: d.State, Reason: d.Reason, Workload: d.Workload, Done: d.Done, Total: d.Total,
		Created: d.Created, Started: d.Started, Ended: d.Ended, Updated: d.Updated}
}

// apiDeployments is ds as the API shows them.
func apiDeployments(ds []store.Deployment) []protocol.Deployment {
	out := make([]protocol.Deployment, 0, len(ds))
	for _, d := range ds {
		out = append(out, apiDeployment(d))
	}
	return out
}

func (s *Server) loadDeployment(ctx context.Context, ref string) (protocol.Deployment, int64, error) {
	id, ok := parseID(ref, "d-")
	if !ok {
		return protocol.Deployment{}, 0, notFound("no deployment %q (ids look like d-3)", ref)
	}
	d, err := s.st.Deployment(ctx, id)
	if errors.Is(err, sql.ErrNoRows) {
		return protocol.Deployment{}, 0, notFound("no deployment %s", ref)
	}
	if err != nil {
		return protocol.Deployment{}, 0, err
	}
	return apiDeployment(d), id, nil
}

func (s *Server) handleDeploymentShow(w http.ResponseWriter, r *http.Request, _ caller) error {
	d, id, err := s.loadDeployment(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	steps, err := s.st.Steps(r.Context(), id)
	if err != nil {
		return err
	}
	writeJSON(w, 200, protocol.DeploymentReport{Deployment: d, Steps: steps})
	return nil
}

func (s *Server) handleDeploymentSkip(w http.ResponseWriter, r *http.Request, c caller) error {
	_, id, err := s.loadDeployment(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	s.mu.Lock()
	var d *depRec
	for _, o := range s.open {
		if o.ID == id {
			d = o
		}
	}
	if d == nil || !protocol.Queued(d.State) {
		s.mu.Unlock()
		state := "ended"
		if d != nil {
			state = d.State
		} else if dd, _, err := s.loadDeployment(r.Context(), r.PathValue("id")); err == nil {
			state = dd.State
		}
		return conflict("deployment %s is %s: only a deployment the agent has not started (pending, waiting_for_host, waiting_for_window) can be skipped", depID(id), state)
	}
	a := s.agents[d.AgentID]
	err = s.change(r.Context(), func(wr *writer) error {
		if err := wr.event(event{ID: protocol.EvSkippedByOperator, Agent: d.AgentID, Run: d.RunID, Dep: d.ID, Msg: fmt.Sprintf("deployment %s skipped by %s", depID(d.ID), tokenName(c))}); err != nil {
			return err
		}
		// A skipped agent is not repaired back to an older target.
		if a != nil && a.Desired != "" {
			if err := wr.setDesired(a, ""); err != nil {
				return err
			}
		}
		return wr.setState(d, protocol.StateSkipped, "skipped by operator "+tokenName(c))
	})
	s.mu.Unlock()
	if err != nil {
		return err
	}
	dd, _, err := s.loadDeployment(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	writeJSON(w, 200, dd)
	return nil
}
