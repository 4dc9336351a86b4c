package server

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/moltfleet/molt/protocol"
	"github.com/moltfleet/molt/server/lifecycle"
)

func (s *Server) handleCheckin(w http.ResponseWriter, r *http.Request, c caller) error {
	start := time.Now()
	req, err := decodeAgentJSON[protocol.CheckinRequest](r.Body)
	if err != nil {
		return err
	}
	if err := checkStatus(&req.Status); err != nil {
		return err
	}
	if req.WaitSeconds < 0 || req.WaitSeconds > protocol.MaxPollSeconds {
		return badRequest("wait_seconds %d is not between 0 and %d", req.WaitSeconds, protocol.MaxPollSeconds)
	}
	ctx := r.Context()
	ck, err := s.Checkin(ctx, c.Agent.ID, req.Status, s.baseURL(r))
	if err != nil {
		return err
	}
	s.met.observeCheckin(time.Since(start))
	hold := holdFor(ck.Poll, req.WaitSeconds)
	// The long poll is HTTP's part: a parked connection is answered from
	// park.go, a held one here.
	if ck.Waiting() && s.park(w, r, ck.wt, ck.a, ck.base, ck.Poll, hold) {
		return nil
	}
	orders := ck.Orders
	if ck.Waiting() {
		held := time.Now()
		orders = s.HoldCheckin(ctx, ck, hold)
		if sw, ok := w.(*statusWriter); ok {
			sw.held = time.Since(held)
		}
		w.Header().Set("Molt-Held-Ms", fmt.Sprint(time.Since(held).Milliseconds()))
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	writeJSON(w, 200, protocol.CheckinResponse{Orders: orders, Settings: protocol.AgentSettings{PollSeconds: int(ck.Poll / time.Second)}, ServerTime: s.clock.Now()})
	return nil
}

// A CheckinResult is what a check-in decided once it is committed: the
// agent's orders, or none and its long poll registered (Waiting), to be
// answered by HoldCheckin or a parked connection.
type CheckinResult struct {
	Orders []protocol.Order
	Poll   time.Duration // agents.poll-seconds, told to the agent

	a    *agentRec
	base string
	wt   *waiter
}

// Waiting says the agent has no orders and its long poll is registered:
// a new order or a newer check-in of the agent ends it.
func (c CheckinResult) Waiting() bool { return c.wt != nil }

// Checkin records agent agentID's status st (validated by checkStatus),
// moves its deployment on from it and returns its orders, with pack URLs
// under base, once what it changed is committed. With no orders, the
// agent's long poll is registered in place of any older one: the caller
// answers it by HoldCheckin (or parks it). A status from another
// machine is refused (409 identity_cloned).
func (s *Server) Checkin(ctx context.Context, agentID string, st protocol.Status, base string) (CheckinResult, error) {
	s.mu.Lock()
	a, err := s.agentLocked(agentID)
	if err != nil {
		s.mu.Unlock()
		return CheckinResult{}, err
	}
	wait, err := s.checkin(ctx, a, st)
	if err != nil {
		s.mu.Unlock()
		return CheckinResult{}, err
	}
	res := CheckinResult{Orders: s.ordersFor(a, base), a: a, base: base}
	if len(res.Orders) == 0 {
		if old, ok := s.waiters[a.ID]; ok {
			old.release()
		}
		res.wt = &waiter{ch: make(chan struct{})}
		s.waiters[a.ID] = res.wt
	}
	res.Poll = s.pollWait()
	s.mu.Unlock()
	// What the check-in changed is durable before anything is answered,
	// the orders of a parked poll included.
	if wait != nil {
		if err := wait(); err != nil {
			if res.wt != nil {
				s.mu.Lock()
				if s.waiters[a.ID] == res.wt {
					delete(s.waiters, a.ID)
				}
				s.mu.Unlock()
			}
			return CheckinResult{}, err
		}
	}
	return res, nil
}

// HoldCheckin waits out the long poll of a Waiting check-in c: until an
// order or a newer check-in wakes it, hold passes, the server closes or
// ctx ends. It returns the agent's orders then.
func (s *Server) HoldCheckin(ctx context.Context, c CheckinResult, hold time.Duration) []protocol.Order {
	if !c.Waiting() {
		return c.Orders
	}
	t := time.NewTimer(hold)
	select {
	case <-c.wt.ch:
	case <-t.C:
	case <-s.closing:
	case <-ctx.Done():
	}
	t.Stop()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.waiters[c.a.ID] == c.wt {
		delete(s.waiters, c.a.ID)
	}
	return s.ordersFor(c.a, c.base)
}

// holdFor is how long an idle check-in is held: the poll wait, but never
// longer than the agent said it waits (wait_seconds; agents that do not
// send it wait DefaultPollWait plus a margin).
func holdFor(poll time.Duration, waitSeconds int) time.Duration {
	agent := protocol.DefaultPollWait
	if waitSeconds > 0 {
		agent = time.Duration(waitSeconds) * time.Second
	}
	return min(poll, agent)
}

// checkin records a check-in's status and moves the agent's deployment on
// from it. When that changed anything, it returns the wait for its commit,
// to call after releasing s.mu. Call with s.mu held.
func (s *Server) checkin(ctx context.Context, a *agentRec, st protocol.Status) (func() error, error) {
	now := s.clock.Now()
	if st.Fingerprint != a.Fingerprint {
		if now.Sub(a.lastClone) > 10*time.Minute {
			a.lastClone = now
			_ = s.change(ctx, func(wr *writer) error {
				return wr.event(event{ID: protocol.EvCloneRefused, Agent: a.ID,
					Msg: fmt.Sprintf("check-in of agent %s refused: its identity is used from another machine (%s)", a.ID, st.Hostname)})
			})
		}
		return nil, errf(http.StatusConflict, protocol.CodeIdentityCloned, "agent %s is enrolled from another machine: this host must discard its identity and enroll again", a.ID)
	}
	if st.Name == "" {
		st.Name = a.St.Name
	}
	if st.Hostname == "" {
		st.Hostname = a.St.Hostname
	}
	prev := a.St
	key := persistKey(st)
	d := s.open[a.ID]
	repair := d == nil && s.settingLocked("repair.enabled") == "true" && a.Desired != "" && st.Version != a.Desired && st.Upgrade == nil
	if key == a.persisted && (d == nil || !protocol.Handed(d.State)) && !repair {
		// Nothing to make durable: most check-ins of an idle fleet end here,
		// without a transaction (last-seen times are flushed in batches).
		a.St, a.LastSeen, a.seenDirty = st, now, true
		s.wakeIfStartable(a, now)
		return nil, nil
	}
	wait, err := s.changeGrouped(func(wr *writer) error {
		if key != a.persisted {
			if err := wr.tx.RecordAgentStatus(a.ID, st, now); err != nil {
				return err
			}
			wr.then(func() { a.persisted = key })
		}
		if err := supervisorEvent(wr, a, prev.LastResult, st.LastResult); err != nil {
			return err
		}
		if !inTrial(d, st) {
			if err := workloadEvents(wr, a, prev.Workloads, st.Workloads, st.Name); err != nil {
				return err
			}
		}
		if prev.Version != st.Version {
			if err := wr.event(event{ID: protocol.EvAgentVersionSeen, Agent: a.ID, Msg: fmt.Sprintf("agent %s now runs %s (was %s)", st.Name, st.Version, prev.Version),
				Fields: map[string]string{"from": prev.Version, "to": st.Version}}); err != nil {
				return err
			}
		}
		wr.then(func() {
			a.St, a.LastSeen = st, now
			a.seenDirty = true
		})
		if d != nil && protocol.Handed(d.State) {
			return s.progressFromStatus(wr, a, d, st)
		}
		if repair {
			if err := wr.event(event{ID: protocol.EvRepairScheduled, Agent: a.ID,
				Msg:    fmt.Sprintf("agent %s came back with %s, not its last successful target %s: repair scheduled", st.Name, st.Version, a.Desired),
				Fields: map[string]string{"from": st.Version, "to": a.Desired}}); err != nil {
				return err
			}
			a2 := *a
			a2.St = st
			return s.newDeployment(wr, &a2, 0, protocol.KindRepair, a.Desired)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	s.wakeIfStartable(a, now)
	return wait, nil
}

// wakeIfStartable wakes the scheduler when a's deployment waits and a can
// take it now. Call with s.mu held.
func (s *Server) wakeIfStartable(a *agentRec, now time.Time) {
	if d := s.open[a.ID]; d != nil && protocol.Queued(d.State) {
		if s.availability(a, d, now) == "" {
			s.wake()
		}
	}
}

// progressFromStatus moves d on from what the agent says in its check-in:
// its upgrade phase, and the trial result once it is back.
func (s *Server) progressFromStatus(wr *writer, a *agentRec, d *depRec, st protocol.Status) error {
	if lr := st.LastResult; lr != nil && (lr.OrderID == depID(d.ID) || (lr.OrderID == "" && lr.Version == d.Target && lr.At.After(d.Started))) {
		switch {
		case lr.Outcome == protocol.TrialCommitted && st.Version == d.Target:
			return s.succeed(wr, a, d)
		case lr.Outcome == protocol.TrialRolledBack:
			return s.rollBack(wr, d, lr.Reason, lr.Logs, lr.Workload)
		}
	}
	if d.State == protocol.StateStuck {
		return s.unstickFromStatus(wr, d, st)
	}
	if u := st.Upgrade; u != nil && u.OrderID == depID(d.ID) {
		if u.Done != 0 || u.Total != 0 {
			if err := wr.tx.SetDeploymentProgress(d.ID, u.Done, u.Total); err != nil {
				return err
			}
		}
		if protocol.PhaseRank(u.Phase) > protocol.PhaseRank(d.State) {
			return s.advance(wr, d, u.Phase)
		}
	}
	if st.Version == d.Target && st.Version != d.From && protocol.PhaseRank(d.State) < protocol.PhaseRank(protocol.StateWatching) {
		// The new version runs, in its trial: wait for the committed result.
		return s.advance(wr, d, protocol.StateWatching)
	}
	return nil
}

func (s *Server) advance(wr *writer, d *depRec, phase string) error {
	if err := wr.event(event{ID: protocol.EvDeploymentProgress, Agent: d.AgentID, Run: d.RunID, Dep: d.ID, Msg: fmt.Sprintf("deployment %s: %s", depID(d.ID), phase)}); err != nil {
		return err
	}
	ev, ok := lifecycle.PhaseEvent(phase)
	if !ok {
		return fmt.Errorf("deployment %s: unknown phase %q: %w", depID(d.ID), phase, lifecycle.ErrIllegal)
	}
	return wr.setState(d, ev, "")
}

func (s *Server) succeed(wr *writer, a *agentRec, d *depRec) error {
	if err := wr.event(event{ID: protocol.EvUpgraded, Agent: d.AgentID, Run: d.RunID, Dep: d.ID,
		Msg: fmt.Sprintf("agent %s upgraded to %s", a.St.Name, d.Target), Fields: map[string]string{"from": d.From, "to": d.Target}}); err != nil {
		return err
	}
	if err := wr.setDesired(a, d.Target); err != nil {
		return err
	}
	keep := []string{d.Target}
	if d.From != "" && d.From != d.Target {
		keep = append(keep, d.From)
	}
	cid, err := wr.tx.InsertCleanup(a.ID, d.ID, keep, wr.now)
	if err != nil {
		return err
	}
	if err := wr.event(event{ID: protocol.EvCleanupRequested, Agent: a.ID, Run: d.RunID, Dep: d.ID, Msg: "cleanup ordered: keep " + strings.Join(keep, ", ")}); err != nil {
		return err
	}
	wr.then(func() {
		// One cleanup at a time is enough: the newest supersedes older ones.
		s.cleanups[a.ID] = []cleanupRec{{ID: cid, Keep: keep}}
	})
	return wr.setState(d, lifecycle.Succeed, "")
}

// supervisorEvent records the supervisor's self-upgrade (713, or 714 when
// it failed) whenever a trial result carries it: with the commit that ends
// the deployment, or on any later check-in once the supervisor restarted
// itself, even long after the deployment ended. It is recorded once per
// deployment: the marker is the server step "server: supervisor" of the
// DEPLOY report, keyed by the supervisor's own timestamp, so neither a
// repeated check-in nor a server restart records it twice.
func supervisorEvent(wr *writer, a *agentRec, prev, cur *protocol.TrialResult) error {
	if cur == nil || cur.Supervisor == nil {
		return nil
	}
	if prev != nil && prev.Supervisor != nil && prev.Supervisor.At.Equal(cur.Supervisor.At) && prev.OrderID == cur.OrderID {
		return nil
	}
	sr := cur.Supervisor
	if !sr.Upgraded && sr.Reason == "" {
		return nil
	}
	dep, _ := parseID(cur.OrderID, "d-")
	var run int64
	if dep != 0 {
		// Only a deployment of this agent is marked; an order id the agent
		// made up names nothing.
		var err error
		run, err = wr.tx.AgentDeploymentRun(a.ID, dep)
		if errors.Is(err, sql.ErrNoRows) {
			dep = 0
		} else if err != nil {
			return err
		}
	}
	detail := fmt.Sprintf("supervisor %s -> %s upgraded", sr.From, sr.To)
	if !sr.Upgraded {
		detail = fmt.Sprintf("supervisor %s -> %s not upgraded: %s", sr.From, sr.To, sr.Reason)
	}
	if dep != 0 {
		at := sr.At
		if at.IsZero() {
			at = cur.At
		}
		added, err := wr.tx.InsertStep(dep, at, "server: supervisor", detail)
		if err != nil {
			return err
		}
		if !added {
			return nil // recorded before
		}
	}
	if sr.Upgraded {
		return wr.event(event{ID: protocol.EvSupervisorUpgraded, Agent: a.ID, Run: run, Dep: dep, Msg: fmt.Sprintf("supervisor upgraded %s -> %s", sr.From, sr.To), Fields: map[string]string{"from": sr.From, "to": sr.To}})
	}
	return wr.event(event{ID: protocol.EvSupervisorFailed, Agent: a.ID, Run: run, Dep: dep, Msg: "supervisor self-upgrade failed: " + sr.Reason, Fields: map[string]string{"reason": sr.Reason}})
}

// rollBack ends d as rolled back with the reason as the agent sent it;
// workload names the workload whose failure rolled it back, if one did.
func (s *Server) rollBack(wr *writer, d *depRec, reason, logs, workload string) error {
	if reason == "" {
		reason = "rolled back by the supervisor"
	}
	f := map[string]string{"reason": reason}
	if logs != "" {
		f["logs"] = logs
	}
	if workload != "" {
		f["workload"] = workload
		if err := wr.tx.SetDeploymentWorkload(d.ID, workload); err != nil {
			return err
		}
	}
	if err := wr.event(event{ID: protocol.EvRolledBack, Agent: d.AgentID, Run: d.RunID, Dep: d.ID, Msg: fmt.Sprintf("upgrade to %s rolled back: %s", d.Target, reason), Fields: f}); err != nil {
		return err
	}
	if err := wr.setState(d, lifecycle.RollBack, reason); err != nil {
		return err
	}
	return s.noteRollback(wr, d)
}

func (s *Server) fail(wr *writer, d *depRec, reason string) error {
	if reason == "" {
		reason = "the agent reported a failure"
	}
	if err := wr.event(event{ID: protocol.EvUpgradeFailed, Agent: d.AgentID, Run: d.RunID, Dep: d.ID, Msg: fmt.Sprintf("upgrade to %s failed: %s", d.Target, reason), Fields: map[string]string{"reason": reason}}); err != nil {
		return err
	}
	return wr.setState(d, lifecycle.Fail, reason)
}
