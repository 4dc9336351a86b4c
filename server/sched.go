package server

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/moltfleet/molt/internal/faults"
	"github.com/moltfleet/molt/internal/semver"
	"github.com/moltfleet/molt/protocol"
	"github.com/moltfleet/molt/rollout"
	"github.com/moltfleet/molt/server/lifecycle"
	"github.com/moltfleet/molt/server/runplan"
	"github.com/moltfleet/molt/store"
)

// writer is one state change: a database transaction plus what to mirror
// in memory, events to publish and hooks to start once it committed.
type writer struct {
	s     *Server
	ctx   context.Context
	tx    *store.Tx
	now   time.Time
	after []func()
	hooks []hookJob
	// states and statuses are what this change moved deployments and runs
	// to: their records are mirrored only once it committed, and a second
	// transition in the same change starts where the first left.
	states   map[*depRec]string
	statuses map[*runRec]string
}

func (w *writer) then(f func()) { w.after = append(w.after, f) }

// event records e in the transaction.
func (w *writer) event(e event) error {
	return w.tx.InsertEvent(store.Event{ID: e.ID, Name: protocol.EventName(e.ID), At: w.now,
		AgentID: e.Agent, RunID: e.Run, DeploymentID: e.Dep, Message: e.Msg, Fields: e.Fields})
}

// step adds a server-side line to a deployment's DEPLOY report.
func (w *writer) step(dep int64, name, detail string) error {
	_, err := w.tx.InsertStep(dep, w.now, name, detail)
	return err
}

// runStatus is the status event ev moves run r to, refusing an event
// that does not apply to r's status. The caller writes it.
func (w *writer) runStatus(r *runRec, ev lifecycle.Event) (string, error) {
	from := r.Status
	if st, ok := w.statuses[r]; ok {
		from = st
	}
	status, err := lifecycle.NextRun(from, ev)
	if err != nil {
		w.s.log.Error("run transition refused", zap.Int64("run", r.ID), zap.String("status", from), zap.String("event", string(ev)), zap.Error(err))
		return "", fmt.Errorf("run %s: %w", runID(r.ID), err)
	}
	if w.statuses == nil {
		w.statuses = map[*runRec]string{}
	}
	w.statuses[r] = status
	return status, nil
}

// setState moves d on with event ev (lifecycle.Deployment), refusing an
// event that does not apply to d's state. Ending a deployment frees its
// agent and its run's slot, queues the on-deployment-end hook and wakes
// the scheduler.
func (w *writer) setState(d *depRec, ev lifecycle.Event, reason string) error {
	from := d.State
	if st, ok := w.states[d]; ok {
		from = st
	}
	state, err := lifecycle.Next(from, ev)
	if err != nil {
		w.s.log.Error("deployment transition refused", zap.Int64("deployment", d.ID), zap.String("state", from), zap.String("event", string(ev)), zap.Error(err))
		return fmt.Errorf("deployment %s: %w", depID(d.ID), err)
	}
	if w.states == nil {
		w.states = map[*depRec]string{}
	}
	w.states[d] = state
	s := w.s
	err = w.tx.SetDeploymentState(d.ID, store.DeploymentState{State: state, Reason: reason, At: w.now,
		Started: state == protocol.StateRequested, Ended: protocol.Terminal(state)})
	if err != nil {
		return fmt.Errorf("deployment %d: %w", d.ID, err)
	}
	detail := reason
	if err := w.step(d.ID, "server: "+state, detail); err != nil {
		return err
	}
	now := w.now
	w.then(func() {
		if r := s.runs[d.RunID]; r != nil && d.RunID != 0 {
			r.Counts[d.State]--
			r.Counts[state]++
			r.countWave(d.Wave, d.State, state)
			if state == protocol.StateRequested {
				r.started(now)
			}
		}
		d.State, d.Reason, d.Updated = state, reason, now
		if state == protocol.StateRequested {
			d.Started = now
		}
		if protocol.Terminal(state) {
			if s.open[d.AgentID] == d {
				delete(s.open, d.AgentID)
			}
			s.wake()
		}
		s.notify(d.AgentID)
	})
	if protocol.Terminal(state) {
		w.hooks = append(w.hooks, s.deploymentHook(d, state))
	}
	return nil
}

func depID(id int64) string { return "d-" + strconv.FormatInt(id, 10) }
func runID(id int64) string {
	if id == 0 {
		return ""
	}
	return "r-" + strconv.FormatInt(id, 10)
}
func cleanupID(id int64) string { return "c-" + strconv.FormatInt(id, 10) }

func parseID(s, prefix string) (int64, bool) {
	n, err := strconv.ParseInt(strings.TrimPrefix(s, prefix), 10, 64)
	return n, err == nil && n > 0 && strings.HasPrefix(s, prefix)
}

// availability says why agent a cannot start deployment d now ("" when it
// can). Call with s.mu held.
func (s *Server) availability(a *agentRec, d *depRec, now time.Time) string {
	switch {
	case a == nil:
		return "agent unknown"
	case a.Revoked:
		return "agent revoked"
	case a.LastSeen.IsZero():
		return "never connected"
	case now.Sub(a.LastSeen) > s.durationSetting("agents.offline-after"):
		return "offline since " + a.LastSeen.Format(time.RFC3339)
	case len(a.St.Holds) > 0:
		// Before Busy: an agent with holds also reports busy, and the
		// operator must see the holds' reasons (a workload's "scan in
		// progress"), not just "busy".
		return "held: " + strings.Join(a.St.Holds, ", ")
	case a.St.Busy:
		return "busy"
	case a.St.Upgrade != nil && a.St.Upgrade.OrderID != depID(d.ID):
		return "busy with order " + a.St.Upgrade.OrderID
	}
	return ""
}

// floorOf is the highest floor agent a must respect: the one it reports
// and the one of the pack of the version it runs.
func (s *Server) floorOf(a *agentRec) string {
	return runplan.Floor(a.St.Floor, s.releases[a.St.Version].Floor)
}

// Schedule makes one pass over every run that is not ended: deployments
// whose agent is available start while their run has free slots (and their
// cluster has none in progress), the others wait; runs whose failures reach
// their threshold pause; runs with nothing left end. Everything it decides
// is in the database before it returns, so a restart resumes from there.
func (s *Server) Schedule(ctx context.Context) {
	s.mu.Lock()
	defer s.mu.Unlock()
	start := time.Now()
	if err := s.schedule(ctx); err != nil && ctx.Err() == nil {
		s.log.Error("schedule", zap.Error(err))
	}
	s.met.schedPasses.Add(1)
	s.met.schedNanos.Add(int64(time.Since(start)))
}

func (s *Server) schedule(ctx context.Context) error {
	now := s.clock.Now()
	byRun := map[int64][]*depRec{}
	busyClusters := map[string]bool{}
	if err := s.sweepIdle(ctx, now); err != nil {
		return err
	}
	for _, d := range s.open {
		byRun[d.RunID] = append(byRun[d.RunID], d)
		// A stuck host keeps its cluster busy: it may be half way
		// through its restart, and its peers must not go down with it.
		if protocol.Handed(d.State) {
			if a := s.agents[d.AgentID]; a != nil && a.St.Cluster != "" {
				busyClusters[a.St.Cluster] = true
			}
		}
	}
	runIDs := make([]int64, 0, len(byRun)+len(s.runs))
	seen := map[int64]bool{}
	for id := range byRun {
		runIDs, seen[id] = append(runIDs, id), true
	}
	for id := range s.runs {
		if !seen[id] {
			runIDs = append(runIDs, id)
		}
	}
	sort.Slice(runIDs, func(i, j int) bool { return runIDs[i] < runIDs[j] })
	for _, rid := range runIDs {
		deps := byRun[rid]
		sort.Slice(deps, func(i, j int) bool { return deps[i].ID < deps[j].ID })
		limit := s.intSetting("repair.max-concurrent")
		running := true
		allowed := rollout.Unlimited
		var r *runRec
		if rid != 0 {
			r = s.runs[rid]
			if r == nil {
				continue // a run removed under us; its deployments are left as they are
			}
			if err := s.rolloutPass(ctx, r, now); err != nil {
				return err
			}
			if err := s.checkRun(ctx, r); err != nil {
				return err
			}
			// A paused run starts nothing, but the reasons its
			// deployments wait for are kept true: an operator deciding
			// whether to resume reads them.
			if r.Status != protocol.RunRunning && r.Status != protocol.RunPaused {
				continue
			}
			running = r.Status == protocol.RunRunning
			limit = rollout.MaxConcurrent(r.Controls, r.MaxConcurrent, r.Total)
			allowed = r.startsAllowed(now)
		}
		inprog := 0
		for _, d := range deps {
			if protocol.InProgress(d.State) {
				inprog++
			}
		}
		// What the pass decides for a run is written in one transaction,
		// not one each: a run of 10,000 has thousands in its queue and
		// hundreds to start at once, and every commit is an fsync made
		// while check-ins wait for s.mu. Nothing below reads what they
		// change: their state is mirrored after the commit, and the
		// counts the decisions depend on (in progress, busy clusters) are
		// kept here.
		var decided []func(w *writer) error
		starts := 0
		for _, d := range deps {
			if !protocol.Queued(d.State) {
				continue
			}
			if r != nil && d.Wave > r.Wave {
				continue // its wave is not open: it stays as it is
			}
			a := s.agents[d.AgentID]
			reason := s.availability(a, d, now)
			if reason == "" && a.St.Cluster != "" && busyClusters[a.St.Cluster] {
				reason = "another agent of cluster " + a.St.Cluster + " is upgrading"
			}
			if reason == "" && r != nil {
				st, why := r.gate(d, now)
				win := r.window
				if st == "" {
					st, why, win = s.windowGate(a, now)
				}
				switch st {
				case protocol.StatePending:
					// Not its time yet (the spread); a window that
					// closed on it no longer holds.
					if d.State != protocol.StatePending {
						decided = append(decided, func(w *writer) error { return w.setState(d, lifecycle.Defer, "") })
					}
					continue
				case protocol.StateWaitingForWindow:
					if d.State == st && d.Reason == why {
						continue
					}
					decided = append(decided, func(w *writer) error {
						if d.State != protocol.StateWaitingForWindow {
							if err := w.event(event{ID: protocol.EvWaitingForWindow, Agent: d.AgentID, Run: d.RunID, Dep: d.ID, Msg: "waiting for window: " + why,
								Fields: map[string]string{"window": win.String(), "opens": win.NextOpen(now).UTC().Format(time.RFC3339)}}); err != nil {
								return err
							}
						}
						return w.setState(d, lifecycle.WaitForWindow, why)
					})
					continue
				}
			}
			if reason == "" && (!running || inprog >= limit || allowed <= 0) {
				// The host is free but the run is paused or full: a
				// reason given earlier no longer holds, the deployment is
				// back in the queue.
				if d.State != protocol.StatePending {
					decided = append(decided, func(w *writer) error { return w.setState(d, lifecycle.Defer, "") })
				}
				continue
			}
			if reason != "" {
				if d.State == protocol.StateWaitingForHost && d.Reason == reason {
					continue
				}
				decided = append(decided, func(w *writer) error {
					if d.State != protocol.StateWaitingForHost {
						if err := w.event(event{ID: protocol.EvDeploymentWaiting, Agent: d.AgentID, Run: d.RunID, Dep: d.ID, Msg: "waiting for host: " + reason, Fields: map[string]string{"reason": reason}}); err != nil {
							return err
						}
					}
					return w.setState(d, lifecycle.WaitForHost, reason)
				})
				continue
			}
			start, counts := s.start(a, d)
			decided = append(decided, start)
			if counts {
				starts++
				inprog++
				allowed--
				if a.St.Cluster != "" {
					busyClusters[a.St.Cluster] = true
				}
			}
		}
		if len(decided) > 0 {
			err := s.change(ctx, func(w *writer) error {
				for _, f := range decided {
					if err := f(w); err != nil {
						return err
					}
				}
				return nil
			})
			if err != nil {
				return err
			}
			s.met.schedStarts.Add(int64(starts))
			if starts > 0 {
				// Started and persisted; no agent has its order yet (the
				// check-ins that would carry it wait for s.mu).
				faults.Point("server/schedule-committed")
			}
		}
		if rid != 0 {
			if err := s.checkRun(ctx, s.runs[rid]); err != nil {
				return err
			}
		}
	}
	return nil
}

// start decides what to do with d now that its agent is free and its run
// has a slot: hand it to the agent (requested), or end it at once when the
// agent already runs the target or the target is below its floor. It
// returns the change to commit and whether d will count as in progress.
func (s *Server) start(a *agentRec, d *depRec) (func(w *writer) error, bool) {
	if a.St.Version == d.Target {
		return func(w *writer) error {
			if err := w.event(event{ID: protocol.EvAlreadyAtTarget, Agent: d.AgentID, Run: d.RunID, Dep: d.ID, Msg: "agent already runs " + d.Target}); err != nil {
				return err
			}
			if err := w.setDesired(a, d.Target); err != nil {
				return err
			}
			return w.setState(d, lifecycle.AlreadyAtTarget, "already at target")
		}, false
	}
	if floor := s.floorOf(a); floor != "" && semver.Less(d.Target, floor) {
		reason := fmt.Sprintf("target %s is below the floor %s of the newest pack the agent ran", d.Target, floor)
		return func(w *writer) error {
			if err := w.event(event{ID: protocol.EvBelowFloor, Agent: d.AgentID, Run: d.RunID, Dep: d.ID, Msg: reason}); err != nil {
				return err
			}
			if err := w.event(event{ID: protocol.EvUpgradeFailed, Agent: d.AgentID, Run: d.RunID, Dep: d.ID, Msg: "upgrade failed: " + reason, Fields: map[string]string{"reason": reason}}); err != nil {
				return err
			}
			return w.setState(d, lifecycle.BelowFloor, reason)
		}, false
	}
	return func(w *writer) error {
		err := w.event(event{ID: protocol.EvUpgradeRequested, Agent: d.AgentID, Run: d.RunID, Dep: d.ID,
			Msg:    fmt.Sprintf("upgrade requested: %s -> %s (%s)", a.St.Version, d.Target, d.Kind),
			Fields: map[string]string{"from": a.St.Version, "to": d.Target, "kind": d.Kind}})
		if err != nil {
			return err
		}
		if err := w.tx.SetDeploymentFromVersion(d.ID, a.St.Version); err != nil {
			return err
		}
		from := a.St.Version
		w.then(func() { d.From = from })
		faults.Point("server/schedule-uncommitted")
		return w.setState(d, lifecycle.Start, "")
	}, true
}

func (w *writer) setDesired(a *agentRec, v string) error {
	if err := w.tx.SetAgentDesired(a.ID, v); err != nil {
		return err
	}
	w.then(func() { a.Desired = v })
	return nil
}

// checkRun pauses r when its failures reach the threshold and ends it when
// none of its deployments is open. Call with s.mu held.
func (s *Server) checkRun(ctx context.Context, r *runRec) error {
	counts, failures := r.Counts, r.failures()
	if r.open() == 0 {
		ok := true
		if failures+counts[protocol.StateCancelled] > 0 {
			retried, err := s.retriedIn(ctx, r.ID)
			if err != nil {
				return err
			}
			ok = failures+counts[protocol.StateCancelled] <= retried
		}
		return s.change(ctx, func(w *writer) error {
			status, err := w.runStatus(r, lifecycle.RunEnd(r.Status, ok))
			if err != nil {
				return err
			}
			if err := w.tx.EndRun(r.ID, status, w.now); err != nil {
				return err
			}
			hs := protocol.HookEndedOK
			if status != protocol.RunEndedOK {
				hs = protocol.HookEndedNotOK
			}
			msg := fmt.Sprintf("run %s ended: %s (%d succeeded, %d failed, %d rolled back, %d skipped, %d cancelled)", runID(r.ID), hs,
				counts[protocol.StateSucceeded], counts[protocol.StateFailed], counts[protocol.StateRolledBack], counts[protocol.StateSkipped], counts[protocol.StateCancelled])
			if err := w.event(event{ID: protocol.EvRunEnded, Run: r.ID, Msg: msg, Fields: map[string]string{"status": hs}}); err != nil {
				return err
			}
			w.hooks = append(w.hooks, s.runHook(r, hs))
			w.then(func() {
				r.Status = status
				delete(s.runs, r.ID)
			})
			return nil
		})
	}
	if r.Status == protocol.RunRunning && r.FailureThreshold > 0 && failures-r.AckFailures >= r.FailureThreshold {
		reason := fmt.Sprintf("failure threshold reached: %d failed or rolled back (threshold %d)", failures, r.FailureThreshold)
		return s.change(ctx, func(w *writer) error {
			status, err := w.runStatus(r, lifecycle.RunHalt)
			if err != nil {
				return err
			}
			if err := w.tx.SetRunStatus(r.ID, status, reason); err != nil {
				return err
			}
			if err := w.event(event{ID: protocol.EvRunPaused, Run: r.ID, Msg: "run " + runID(r.ID) + " paused: " + reason, Fields: map[string]string{"reason": reason}}); err != nil {
				return err
			}
			w.then(func() { r.Status = status })
			return nil
		})
	}
	return nil
}
