package server

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/moltfleet/molt/protocol"
	"github.com/moltfleet/molt/server/runplan"
)

func (s *Server) handleRunRollback(w http.ResponseWriter, r *http.Request, c caller) error {
	id, err := runParam(r)
	if err != nil {
		return err
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return err
	}
	var req protocol.RollbackRequest
	if len(bytes.TrimSpace(body)) > 0 {
		if req, err = decodeJSON[protocol.RollbackRequest](bytes.NewReader(body)); err != nil {
			return err
		}
	}
	run, err := s.RollbackRun(r.Context(), id, req, c)
	if err != nil {
		return err
	}
	status := http.StatusCreated
	if req.DryRun {
		status = http.StatusOK
	}
	writeJSON(w, status, run)
	return nil
}

// movedAgent is an agent the run rolled back moved: its deployment
// succeeded after it was handed to the agent, from one version to another.
type movedAgent struct {
	agentID, name, from, to string
}

// RollbackRun plans, and unless req.DryRun creates, a run that brings
// every agent run id moved back to the version it came from, with the
// limits and controls of run id unless req.Rollout replaces them. An
// agent that has moved since, or whose earlier version can no longer be
// installed (release removed, no pack for its platform, below its floor,
// quarantined without force), is left out with the reason; when none is
// left the request fails. The new run is an ordinary run whose
// deployments each carry their own target, so everything a run does
// (reverts, waves, limits, pausing) applies to it.
func (s *Server) RollbackRun(ctx context.Context, id int64, req protocol.RollbackRequest, c caller) (protocol.Run, error) {
	if err := checkString("text", req.Text, false); err != nil {
		return protocol.Run{}, err
	}
	orig, err := s.loadRun(ctx, id)
	if err != nil {
		return protocol.Run{}, err
	}
	rreq := protocol.RunRequest{
		Text: req.Text, Target: protocol.RollbackTarget, Scope: orig.Scope, DryRun: req.DryRun, Force: req.Force,
		MaxConcurrent: orig.MaxConcurrent, FailureThreshold: orig.FailureThreshold, RunControls: orig.RunControls,
	}
	// The original's start has passed: the rollback starts now.
	rreq.StartAt = time.Time{}
	if req.Rollout != nil {
		rreq.MaxConcurrent, rreq.FailureThreshold, rreq.RunControls = req.Rollout.MaxConcurrent, req.Rollout.FailureThreshold, req.Rollout.RunControls
	}
	if rreq.Text == "" {
		rreq.Text = "rollback of " + orig.ID
	}
	if err := s.checkRunLimits(&rreq); err != nil {
		return protocol.Run{}, err
	}
	moved, err := s.movedBy(ctx, id)
	if err != nil {
		return protocol.Run{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	// Its deployments still to start would race the rollback's.
	if rr := s.runs[id]; rr != nil && rr.Status == protocol.RunRunning {
		return protocol.Run{}, conflict("run %s is running: pause or cancel it first (molt runs pause %s), then roll it back", orig.ID, orig.ID)
	}
	if len(moved) == 0 {
		return protocol.Run{}, conflict("run %s moved no agent (none of its deployments succeeded): nothing to roll back", orig.ID)
	}
	sel := protocol.Selection{AgentIDs: make([]string, 0, len(moved))}
	back := map[string]runplan.Moved{}
	var selected []*agentRec
	var gone []protocol.Exclusion
	for _, m := range moved {
		sel.AgentIDs = append(sel.AgentIDs, m.agentID)
		back[m.agentID] = runplan.Moved{From: m.from, To: m.to}
		if a := s.agents[m.agentID]; a != nil {
			selected = append(selected, a)
		} else {
			gone = append(gone, protocol.Exclusion{AgentID: m.agentID, AgentName: m.name, Reason: "agent no longer known to the server"})
		}
	}
	cat := s.catalogue()
	p := s.planAgents(selected, rreq.Scope, rreq.Force, cat, runplan.Rollback(orig.ID, back, cat))
	p.Excluded = append(p.Excluded, gone...)
	run, rplan := runplan.Draft(rreq, sel, p, tokenName(c), s.clock.Now())
	if req.DryRun {
		return run, nil
	}
	if len(p.Todo) == 0 {
		return protocol.Run{}, conflict("nothing to roll back: none of the %d agents run %s moved can go back (%s)", len(moved), orig.ID, exclusionsText(p.Excluded, 10))
	}
	return s.insertRun(ctx, rreq, run, p, rplan, "the versions they came from", func(w *writer, nid int64) error {
		return w.event(event{ID: protocol.EvRunRollback, Run: nid,
			Msg:    fmt.Sprintf("run %s rolls back %s: %d agents back to the versions they came from, %d left out", runID(nid), orig.ID, len(p.Todo), len(p.Excluded)),
			Fields: map[string]string{"of": orig.ID, "agents": strconv.Itoa(len(p.Todo))}})
	})
}

// movedBy lists the agents run id moved, in the order it moved them: its
// succeeded deployments that were handed to the agent (one that found its
// agent already at the target moved nothing).
func (s *Server) movedBy(ctx context.Context, id int64) ([]movedAgent, error) {
	moved, err := s.st.MovedAgents(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("deployments of run %s: %w", runID(id), err)
	}
	var out []movedAgent
	for _, m := range moved {
		out = append(out, movedAgent{agentID: m.AgentID, name: m.AgentName, from: m.From, to: m.To})
	}
	return out, nil
}

// exclusionsText lists up to n exclusions as "name: reason; ...".
func exclusionsText(ex []protocol.Exclusion, n int) string {
	var parts []string
	for i, e := range ex {
		if i == n {
			parts = append(parts, fmt.Sprintf("and %d more", len(ex)-n))
			break
		}
		name := e.AgentName
		if name == "" {
			name = e.AgentID
		}
		parts = append(parts, name+": "+e.Reason)
	}
	return strings.Join(parts, "; ")
}
