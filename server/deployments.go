package server

import (
	"context"
	"database/sql"
	"errors"
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
	d, err := s.SkipDeployment(r.Context(), r.PathValue("id"), tokenName(c))
	if err != nil {
		return err
	}
	writeJSON(w, 200, d)
	return nil
}
