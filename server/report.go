package server

import (
	"context"
	"fmt"
	"net/http"
	"slices"

	"github.com/moltfleet/molt/internal/faults"
	"github.com/moltfleet/molt/protocol"
)

func (s *Server) handleReport(w http.ResponseWriter, r *http.Request, c caller) error {
	req, err := decodeAgentJSON[protocol.ReportRequest](r.Body)
	if err != nil {
		return err
	}
	if err := checkReport(&req); err != nil {
		return err
	}
	resp, open, err := s.Report(r.Context(), c.Agent.ID, req)
	if err != nil {
		return err
	}
	writeJSON(w, 200, resp)
	if open {
		faults.PointAfterFlush("server/report-acked", w)
	}
	return nil
}

// Report records agent agentID's report req (validated by checkReport)
// and returns the answer once what it changed is committed. open says
// the report went to the agent's open deployment: its answer is the
// acknowledgement the agent forgets its report on, which a crash right
// after must not lose. A report on an order that is not the agent's is
// not found; new steps for a deployment that ended are a conflict.
func (s *Server) Report(ctx context.Context, agentID string, req protocol.ReportRequest) (resp protocol.ReportResponse, open bool, err error) {
	s.mu.Lock()
	// The answer waits for the commit, which waits for nobody's s.mu:
	// Report releases it first (and says so in unlocked).
	unlocked := false
	defer func() {
		if !unlocked {
			s.mu.Unlock()
		}
	}()
	a, err := s.agentLocked(agentID)
	if err != nil {
		return protocol.ReportResponse{}, false, err
	}
	if cid, ok := parseID(req.OrderID, "c-"); ok {
		wait, resp, err := s.reportCleanup(ctx, a, cid, req)
		if err != nil || wait == nil {
			return resp, false, err
		}
		s.mu.Unlock()
		unlocked = true
		if err := wait(); err != nil {
			return protocol.ReportResponse{}, false, err
		}
		return resp, false, nil
	}
	id, ok := parseID(req.OrderID, "d-")
	if !ok {
		return protocol.ReportResponse{}, false, notFound("order %q is not one of this agent's", req.OrderID)
	}
	d := s.open[a.ID]
	if d == nil || d.ID != id {
		owner, state, err := s.st.DeploymentAgentState(ctx, id)
		if err != nil || owner != a.ID {
			return protocol.ReportResponse{}, false, notFound("order %q is not one of this agent's", req.OrderID)
		}
		resp, err := s.reportEnded(ctx, id, state, req)
		return resp, false, err
	}
	wait, err := s.changeGrouped(func(wr *writer) error {
		if err := insertSteps(wr, d.ID, req.Steps); err != nil {
			return err
		}
		if req.Done != 0 || req.Total != 0 {
			if err := wr.tx.ReportDeploymentProgress(d.ID, req.Done, req.Total, wr.now); err != nil {
				return err
			}
			now := wr.now
			wr.then(func() { d.Updated = now })
		}
		if !protocol.Handed(d.State) {
			return nil // a report for an order not yet handed over changes nothing
		}
		if e := req.End; e != nil {
			switch e.Outcome {
			case protocol.EndSucceeded:
				return s.succeed(wr, a, d)
			case protocol.EndRolledBack:
				return s.rollBack(wr, d, e.Reason, "", "")
			default:
				return s.fail(wr, d, e.Reason)
			}
		}
		if d.State == protocol.StateStuck {
			return s.unstickFromReport(wr, d, req)
		}
		if protocol.PhaseRank(req.Phase) > protocol.PhaseRank(d.State) {
			return s.advance(wr, d, req.Phase)
		}
		return nil
	})
	if err != nil {
		return protocol.ReportResponse{}, false, err
	}
	resp = protocol.ReportResponse{State: d.State}
	s.mu.Unlock()
	unlocked = true
	if err := wait(); err != nil {
		return protocol.ReportResponse{}, false, err
	}
	return resp, true, nil
}

// stepsDropped is the server step that says a deployment's report is
// full: steps the agent sent after it are not recorded.
const stepsDropped = "server: steps dropped"

// serverStepRoom is kept free of agent steps under MaxDeploymentSteps for
// the server's own (phases, the end, the supervisor), a handful each.
const serverStepRoom = 32

// insertSteps records an agent's steps of deployment dep, each once (same
// time and name), so that with the server's a deployment keeps at most
// protocol.MaxDeploymentSteps: an agent must not grow a deployment's
// report without bound. Past the bound, one
// server step says that steps were dropped, and the report's phase,
// progress and end still count.
func insertSteps(wr *writer, dep int64, steps []protocol.Step) error {
	if len(steps) == 0 {
		return nil
	}
	n, dropped, err := wr.tx.CountSteps(dep, stepsDropped)
	if err != nil {
		return err
	}
	for _, st := range steps {
		at := st.At
		if at.IsZero() {
			at = wr.now
		}
		if n >= protocol.MaxDeploymentSteps-serverStepRoom {
			if dropped > 0 {
				return nil
			}
			_, err := wr.tx.InsertStep(dep, wr.now, stepsDropped,
				fmt.Sprintf("this report holds %d steps: later ones the agent sent are not recorded", n))
			return err
		}
		added, err := wr.tx.InsertStep(dep, at, st.Name, st.Detail)
		if err != nil {
			return err
		}
		if added {
			n++
		}
	}
	return nil
}

// reportEnded answers a report on deployment id, which is no longer the
// agent's open one: it ended, and its DEPLOY report is closed: nothing
// is recorded. A report that adds
// nothing (the retry of the final report whose answer was lost) is
// answered with the end state, as is any report on a cancelled or
// skipped deployment, whose answer tells the agent to drop the order.
// New steps for a deployment that ran to its end are refused (409).
func (s *Server) reportEnded(ctx context.Context, id int64, state string, req protocol.ReportRequest) (protocol.ReportResponse, error) {
	cancelled := state == protocol.StateCancelled || state == protocol.StateSkipped
	if !cancelled {
		for _, st := range req.Steps {
			known, err := s.st.HasStep(ctx, id, st.At, st.Name)
			if err != nil {
				return protocol.ReportResponse{}, err
			}
			if !known || st.At.IsZero() {
				return protocol.ReportResponse{}, conflict("deployment %s ended (%s): its report is closed, step %q is not recorded", depID(id), state, st.Name)
			}
		}
	}
	return protocol.ReportResponse{State: state, Cancelled: cancelled}, nil
}

// reportCleanup records the report on cleanup cid. It returns the answer
// and, when the report changed something, the wait for its commit. Call
// with s.mu held.
func (s *Server) reportCleanup(ctx context.Context, a *agentRec, cid int64, req protocol.ReportRequest) (func() error, protocol.ReportResponse, error) {
	idx := slices.IndexFunc(s.cleanups[a.ID], func(c cleanupRec) bool { return c.ID == cid })
	if idx < 0 {
		owner, _, err := s.st.CleanupAgent(ctx, cid)
		if err != nil || owner != a.ID {
			return nil, protocol.ReportResponse{}, notFound("order %q is not one of this agent's", req.OrderID)
		}
		return nil, protocol.ReportResponse{State: protocol.StateSucceeded}, nil
	}
	if req.End == nil {
		return nil, protocol.ReportResponse{State: protocol.StateRequested}, nil
	}
	state := protocol.StateSucceeded
	if req.End.Outcome != protocol.EndSucceeded {
		state = protocol.StateFailed
	}
	wait, err := s.changeGrouped(func(wr *writer) error {
		if err := wr.tx.FinishCleanup(cid); err != nil {
			return err
		}
		msg := "cleanup done"
		if state == protocol.StateFailed {
			msg = "cleanup failed: " + req.End.Reason
		}
		wr.then(func() {
			s.cleanups[a.ID] = slices.DeleteFunc(s.cleanups[a.ID], func(c cleanupRec) bool { return c.ID == cid })
			if len(s.cleanups[a.ID]) == 0 {
				delete(s.cleanups, a.ID)
			}
		})
		return wr.event(event{ID: protocol.EvCleanupDone, Agent: a.ID, Msg: msg, Fields: map[string]string{"outcome": req.End.Outcome}})
	})
	return wait, protocol.ReportResponse{State: state}, err
}
