package server

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"time"

	"github.com/moltfleet/molt/protocol"
	"github.com/moltfleet/molt/server/lifecycle"
	"github.com/moltfleet/molt/supervisor"
)

// Stuck deployments: handed to their agent, then silent. A dead host must
// not hang its run, so a deployment with no progress for
// deployments.stuck-after becomes stuck, which frees its slot of the run's
// max-concurrent and counts as a failure; a host that was only slow moves
// it back on with its next progress; deployments.timeout fails it for good
// unless an operator retried or cancelled it first.

// trialBound is how long a supervisor's trial can legitimately keep a
// deployment in watching with the supervisor's defaults: the watch window,
// plus a ready timeout and the longest crash backoff for each start the
// crash budget allows, plus the grace of the stop before the commit.
const trialBound = supervisor.DefaultWatch +
	(supervisor.DefaultCrashBudget+1)*(supervisor.DefaultReadyTimeout+supervisor.DefaultBackoffMax) +
	supervisor.DefaultStopGrace

// watchMargin covers what follows the trial's end before the server hears
// of it: the agent's next check-in after its supervisor committed.
const watchMargin = 10 * time.Minute

// stuckAfter is how long a deployment in state may go without progress
// before it is stuck: deployments.stuck-after, and for watching at least
// the trial's bound, so a trial is never stuck.
func (s *Server) stuckAfter(state string) time.Duration {
	after := s.durationSetting("deployments.stuck-after")
	if state == protocol.StateWatching {
		after = max(after, trialBound+watchMargin+2*time.Duration(s.intSetting("agents.poll-seconds"))*time.Second)
	}
	return after
}

// failAfter is deployments.timeout: how long a deployment handed to its
// agent may go without progress before it fails, 0 for off.
func (s *Server) failAfter() time.Duration {
	v := s.settingLocked("deployments.timeout")
	if v == "off" {
		return 0
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		d, _ = time.ParseDuration(settingDefaults["deployments.timeout"])
	}
	return d
}

// sweepIdle marks deployments without progress stuck, and fails those
// idle past deployments.timeout. A deployment's updated time is its last
// progress: becoming stuck keeps it. Call with s.mu held.
func (s *Server) sweepIdle(ctx context.Context, now time.Time) error {
	timeout := s.failAfter()
	var stuck, failed []*depRec
	for _, d := range s.open {
		if !protocol.Handed(d.State) {
			continue
		}
		idle, after := now.Sub(d.Updated), s.stuckAfter(d.State)
		switch {
		case timeout > 0 && idle > max(timeout, after):
			failed = append(failed, d)
		case d.State != protocol.StateStuck && idle > after:
			stuck = append(stuck, d)
		}
	}
	if len(stuck)+len(failed) == 0 {
		return nil
	}
	byID := func(ds []*depRec) {
		sort.Slice(ds, func(i, j int) bool { return ds[i].ID < ds[j].ID })
	}
	byID(stuck)
	byID(failed)
	return s.change(ctx, func(w *writer) error {
		for _, d := range stuck {
			if err := w.markStuck(d); err != nil {
				return err
			}
		}
		for _, d := range failed {
			idle := w.now.Sub(d.Updated).Round(time.Second)
			if err := w.event(event{ID: protocol.EvUpgradeFailed, Agent: d.AgentID, Run: d.RunID, Dep: d.ID, Msg: fmt.Sprintf("deployment %s timed out in state %s", depID(d.ID), d.State)}); err != nil {
				return err
			}
			if err := w.setState(d, lifecycle.TimeOut, fmt.Sprintf("timed out: no progress for %s in state %s (deployments.timeout %s)", idle, d.State, timeout)); err != nil {
				return err
			}
		}
		return nil
	})
}

// markStuck moves d to stuck with event 722, keeping its updated time as
// the time of its last progress.
func (w *writer) markStuck(d *depRec) error {
	last, idle, state := d.Updated, w.now.Sub(d.Updated).Round(time.Second), d.State
	heard := "nothing"
	name, at, err := w.tx.LastStep(d.ID)
	switch {
	case err == nil:
		heard = name + " at " + at.UTC().Format(time.RFC3339)
	case !errors.Is(err, sql.ErrNoRows):
		return err
	}
	if err := w.event(event{ID: protocol.EvDeploymentStuck, Agent: d.AgentID, Run: d.RunID, Dep: d.ID,
		Msg:    fmt.Sprintf("deployment %s stuck in %s: no progress for %s (last heard: %s)", depID(d.ID), state, idle, heard),
		Fields: map[string]string{"state": state, "last_heard": heard, "after": idle.String()}}); err != nil {
		return err
	}
	if err := w.setState(d, lifecycle.MarkStuck, fmt.Sprintf("no progress for %s in %s (last heard: %s)", idle, state, heard)); err != nil {
		return err
	}
	if err := w.tx.SetDeploymentUpdated(d.ID, last); err != nil {
		return err
	}
	w.then(func() { d.Updated = last })
	return nil
}

// stuckFrom is the state stuck deployment dep was in: the last phase the
// server recorded in its report.
func (w *writer) stuckFrom(dep int64) (string, error) {
	name, err := w.tx.LastStepNamed(dep,
		"server: "+protocol.StateRequested, "server: "+protocol.StateDownloading, "server: "+protocol.StateStaged,
		"server: "+protocol.StateRestarting, "server: "+protocol.StateWatching)
	if errors.Is(err, sql.ErrNoRows) {
		return protocol.StateRequested, nil
	}
	if err != nil {
		return "", err
	}
	return name[len("server: "):], nil
}

// unstick moves stuck d back on: to phase when it is further than where d
// was stuck, else back to that state.
func (s *Server) unstick(wr *writer, d *depRec, from, phase string) error {
	if protocol.PhaseRank(phase) > protocol.PhaseRank(from) {
		from = phase
	}
	if err := wr.event(event{ID: protocol.EvDeploymentProgress, Agent: d.AgentID, Run: d.RunID, Dep: d.ID,
		Msg: fmt.Sprintf("deployment %s: %s (no longer stuck)", depID(d.ID), from)}); err != nil {
		return err
	}
	ev, ok := lifecycle.PhaseEvent(from)
	if !ok {
		return fmt.Errorf("deployment %s: unknown phase %q: %w", depID(d.ID), from, lifecycle.ErrIllegal)
	}
	return wr.setState(d, ev, "progress after it was stuck")
}

// unstickFromReport moves stuck d back on when the agent's report shows
// it works on the order (a phase, progress or steps).
func (s *Server) unstickFromReport(wr *writer, d *depRec, req protocol.ReportRequest) error {
	if req.Phase == "" && req.Done == 0 && req.Total == 0 && len(req.Steps) == 0 {
		return nil
	}
	from, err := wr.stuckFrom(d.ID)
	if err != nil {
		return err
	}
	return s.unstick(wr, d, from, req.Phase)
}

// unstickFromStatus moves stuck d back on when a check-in shows a phase
// further than where it was stuck (an agent that checks in but stays
// where it was is alive, not progressing: d stays stuck).
func (s *Server) unstickFromStatus(wr *writer, d *depRec, st protocol.Status) error {
	phase := ""
	if u := st.Upgrade; u != nil && u.OrderID == depID(d.ID) {
		phase = u.Phase
	}
	if st.Version == d.Target && st.Version != d.From && protocol.PhaseRank(phase) < protocol.PhaseRank(protocol.StateWatching) {
		phase = protocol.StateWatching
	}
	if phase == "" {
		return nil
	}
	from, err := wr.stuckFrom(d.ID)
	if err != nil {
		return err
	}
	if protocol.PhaseRank(phase) <= protocol.PhaseRank(from) {
		return nil
	}
	return s.unstick(wr, d, from, phase)
}

// openDeployment is deployment id when it has not ended. Call with s.mu
// held.
func (s *Server) openDeployment(id int64) *depRec {
	for _, o := range s.open {
		if o.ID == id {
			return o
		}
	}
	return nil
}

func (s *Server) handleDeploymentRetry(w http.ResponseWriter, r *http.Request, c caller) error {
	nd, err := s.RetryDeployment(r.Context(), r.PathValue("id"), tokenName(c))
	if err != nil {
		return err
	}
	writeJSON(w, 200, nd)
	return nil
}

func (s *Server) handleDeploymentCancel(w http.ResponseWriter, r *http.Request, c caller) error {
	d, err := s.CancelDeployment(r.Context(), r.PathValue("id"), tokenName(c))
	if err != nil {
		return err
	}
	writeJSON(w, 200, d)
	return nil
}

// stepRetried marks a deployment an operator retried.
const stepRetried = "server: retried"

// retriedIn is how many of run's deployments were retried: they ended
// failed or cancelled, and their retries decide the run's outcome. The
// marks are committed by the retry itself, before any check of the run.
func (s *Server) retriedIn(ctx context.Context, run int64) (int, error) {
	n, err := s.st.RunDeploymentsMarked(ctx, run, stepRetried)
	if err != nil {
		return 0, fmt.Errorf("run %s: count retried deployments: %w", runID(run), err)
	}
	return n, nil
}
