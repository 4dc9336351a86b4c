package server

import (
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
	if err := checkString("order_id", req.OrderID, true); err != nil {
		return err
	}
	if len(req.Steps) > protocol.MaxReportSteps {
		return badRequest("steps: more than %d in one report", protocol.MaxReportSteps)
	}
	for _, st := range req.Steps {
		if err := checkString("step name", st.Name, true); err != nil {
			return err
		}
		if len(st.Detail) > 4096 {
			return badRequest("step %s: detail longer than 4096 bytes", st.Name)
		}
	}
	if req.Phase != "" && protocol.PhaseRank(req.Phase) < protocol.PhaseRank(protocol.StateDownloading) {
		return badRequest("phase %q is not downloading, staged, restarting or watching", req.Phase)
	}
	if req.Done < 0 || req.Total < 0 {
		return badRequest("done and total must not be negative")
	}
	if e := req.End; e != nil {
		switch e.Outcome {
		case protocol.EndSucceeded, protocol.EndFailed, protocol.EndRolledBack:
		default:
			return badRequest("end.outcome %q is not succeeded, failed or rolled_back", e.Outcome)
		}
		if len(e.Reason) > 4096 {
			return badRequest("end.reason longer than 4096 bytes")
		}
	}
	a := c.Agent
	ctx := r.Context()
	s.mu.Lock()
	defer s.mu.Unlock()
	if cid, ok := parseID(req.OrderID, "c-"); ok {
		return s.reportCleanup(w, r, a, cid, req)
	}
	id, ok := parseID(req.OrderID, "d-")
	if !ok {
		return notFound("order %q is not one of this agent's", req.OrderID)
	}
	d := s.open[a.ID]
	if d == nil || d.ID != id {
		var owner, state string
		err := s.st.w.QueryRowContext(ctx, `SELECT agent_id, state FROM deployments WHERE id = ?`, id).Scan(&owner, &state)
		if err != nil || owner != a.ID {
			return notFound("order %q is not one of this agent's", req.OrderID)
		}
		if err := s.change(ctx, func(wr *writer) error { return insertSteps(wr, id, req.Steps) }); err != nil {
			return err
		}
		writeJSON(w, 200, protocol.ReportResponse{State: state, Cancelled: state == protocol.StateCancelled || state == protocol.StateSkipped})
		return nil
	}
	err = s.change(ctx, func(wr *writer) error {
		if err := insertSteps(wr, d.ID, req.Steps); err != nil {
			return err
		}
		if req.Done != 0 || req.Total != 0 {
			if _, err := wr.exec(`UPDATE deployments SET done = ?, total = ?, updated = ? WHERE id = ?`, req.Done, req.Total, nanos(wr.now), d.ID); err != nil {
				return err
			}
			now := wr.now
			wr.then(func() { d.Updated = now })
		}
		if !protocol.InProgress(d.State) {
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
		if protocol.PhaseRank(req.Phase) > protocol.PhaseRank(d.State) {
			return s.advance(wr, d, req.Phase)
		}
		return nil
	})
	if err != nil {
		return err
	}
	writeJSON(w, 200, protocol.ReportResponse{State: d.State})
	faults.PointAfterFlush("server/report-acked", w)
	return nil
}

func insertSteps(wr *writer, dep int64, steps []protocol.Step) error {
	for _, st := range steps {
		at := st.At
		if at.IsZero() {
			at = wr.now
		}
		if _, err := wr.exec(`INSERT OR IGNORE INTO steps (deployment_id, at, name, detail) VALUES (?, ?, ?, ?)`, dep, nanos(at), st.Name, st.Detail); err != nil {
			return err
		}
	}
	return nil
}

func (s *Server) reportCleanup(w http.ResponseWriter, r *http.Request, a *agentRec, cid int64, req protocol.ReportRequest) error {
	idx := slices.IndexFunc(s.cleanups[a.ID], func(c cleanupRec) bool { return c.ID == cid })
	if idx < 0 {
		var owner string
		var done bool
		err := s.st.w.QueryRowContext(r.Context(), `SELECT agent_id, done FROM cleanups WHERE id = ?`, cid).Scan(&owner, &done)
		if err != nil || owner != a.ID {
			return notFound("order %q is not one of this agent's", req.OrderID)
		}
		writeJSON(w, 200, protocol.ReportResponse{State: protocol.StateSucceeded})
		return nil
	}
	if req.End == nil {
		writeJSON(w, 200, protocol.ReportResponse{State: protocol.StateRequested})
		return nil
	}
	state := protocol.StateSucceeded
	if req.End.Outcome != protocol.EndSucceeded {
		state = protocol.StateFailed
	}
	err := s.change(r.Context(), func(wr *writer) error {
		if _, err := wr.exec(`UPDATE cleanups SET done = 1 WHERE id = ?`, cid); err != nil {
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
	if err != nil {
		return err
	}
	writeJSON(w, 200, protocol.ReportResponse{State: state})
	return nil
}
