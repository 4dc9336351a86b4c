package server

import (
	"context"
	"errors"
	"fmt"

	"github.com/moltfleet/molt/protocol"
	"github.com/moltfleet/molt/server/lifecycle"
)

// An operator's actions on a run, without HTTP: the handlers decode the
// request, call one of these and encode what it returns.

// runOperatorEvents are the run events an operator may send, with the
// event recorded, the verb of the reason and of a refusal.
var runOperatorEvents = map[lifecycle.Event]struct {
	id   int
	verb string
}{
	lifecycle.RunPause:  {protocol.EvRunPaused, "paused"},
	lifecycle.RunResume: {protocol.EvRunResumed, "resumed"},
	lifecycle.RunCancel: {protocol.EvRunCancelled, "cancelled"},
}

// RunEvent applies an operator's event ev (lifecycle.RunPause, RunResume
// or RunCancel) to run id on behalf of by, and returns the run as it is
// then. A resume counts the run's failures afresh; a cancel cancels its
// deployments the agents have not started. An event the run's status
// does not allow is a conflict naming the status.
func (s *Server) RunEvent(ctx context.Context, id int64, ev lifecycle.Event, by string) (protocol.Run, error) {
	op, ok := runOperatorEvents[ev]
	if !ok {
		return protocol.Run{}, fmt.Errorf("run %s: %q is not an operator's event: %w", runID(id), ev, lifecycle.ErrIllegal)
	}
	reason := op.verb + " by " + by
	s.mu.Lock()
	rr := s.runs[id]
	if rr != nil {
		if _, err := lifecycle.NextRun(rr.Status, ev); err != nil {
			rr = nil
		}
	}
	if rr == nil {
		s.mu.Unlock()
		run, err := s.loadRun(ctx, id)
		if err != nil {
			return protocol.Run{}, err
		}
		return protocol.Run{}, conflict("run %s is %s: it cannot be %s", run.ID, run.Status, op.verb)
	}
	err := s.change(ctx, func(wr *writer) error {
		to, err := wr.runStatus(rr, ev)
		if err != nil {
			return err
		}
		if to == protocol.RunRunning {
			ack := rr.failures()
			if err := wr.tx.SetRunStatusAck(id, to, reason, ack); err != nil {
				return err
			}
			wr.then(func() { rr.AckFailures = ack })
		} else if err := wr.tx.SetRunStatus(id, to, reason); err != nil {
			return err
		}
		if to == protocol.RunCancelled {
			for _, d := range s.open {
				if d.RunID != id {
					continue
				}
				if _, err := lifecycle.Next(d.State, lifecycle.CancelWithRun); errors.Is(err, lifecycle.ErrIllegal) {
					continue // started: it finishes
				}
				if err := wr.event(event{ID: protocol.EvDeploymentCancelled, Agent: d.AgentID, Run: id, Dep: d.ID, Msg: "deployment " + depID(d.ID) + " cancelled with its run"}); err != nil {
					return err
				}
				if err := wr.setState(d, lifecycle.CancelWithRun, "run cancelled"); err != nil {
					return err
				}
			}
		}
		wr.then(func() {
			rr.Status = to
			s.wake()
		})
		return wr.event(event{ID: op.id, Run: id, Msg: fmt.Sprintf("run %s %s", runID(id), reason), Fields: map[string]string{"reason": reason}})
	})
	s.mu.Unlock()
	if err != nil {
		return protocol.Run{}, err
	}
	return s.loadRun(ctx, id)
}

// PromoteRun opens the next wave of run id, which waits for an
// operator's approval (wave_approve), on behalf of by.
func (s *Server) PromoteRun(ctx context.Context, id int64, by string) (protocol.Run, error) {
	s.mu.Lock()
	rr := s.runs[id]
	if rr == nil || !rr.WaveApproval || rr.Status != protocol.RunRunning {
		s.mu.Unlock()
		run, err := s.loadRun(ctx, id)
		if err != nil {
			return protocol.Run{}, err
		}
		return protocol.Run{}, conflict("run %s does not wait for promotion (status %s, wave %d of %d)", run.ID, run.Status, run.Wave, len(run.WaveList))
	}
	err := s.change(ctx, func(wr *writer) error { return s.openWave(wr, rr, rr.Wave+1, by) })
	s.mu.Unlock()
	if err != nil {
		return protocol.Run{}, err
	}
	s.wake()
	return s.loadRun(ctx, id)
}
