package server

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/moltfleet/molt/internal/faults"
	"github.com/moltfleet/molt/internal/semver"
	"github.com/moltfleet/molt/protocol"
	"github.com/moltfleet/molt/updater/pack"
	"github.com/moltfleet/molt/workload/spec"
)

var (
	platformRe = regexp.MustCompile(`^[a-z0-9]+/[a-z0-9]+$`)
	labelKeyRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._/-]{0,62}$`)
)

func checkString(field, v string, required bool) error {
	if required && strings.TrimSpace(v) == "" {
		return badRequest("%s is required", field)
	}
	if len(v) > protocol.MaxStringLen {
		return badRequest("%s is longer than %d bytes", field, protocol.MaxStringLen)
	}
	if strings.ContainsAny(v, "\x00\n\r") {
		return badRequest("%s contains a control character", field)
	}
	return nil
}

func checkLabels(labels map[string]string) error {
	if len(labels) > protocol.MaxLabels {
		return badRequest("labels: more than %d", protocol.MaxLabels)
	}
	for k, v := range labels {
		if !labelKeyRe.MatchString(k) {
			return badRequest("label key %q: use letters, digits, '.', '_', '/', '-' (at most 63)", k)
		}
		if err := checkString("label "+k, v, false); err != nil {
			return err
		}
	}
	return nil
}

// checkStatus validates what an agent says about itself.
func checkStatus(st *protocol.Status) error {
	if st.ProtocolVersion < protocol.MinVersion {
		return errf(http.StatusUpgradeRequired, protocol.CodeProtocol, "protocol version %d is not supported (this server serves %d to %d): upgrade the agent by hand", st.ProtocolVersion, protocol.MinVersion, protocol.Version)
	}
	for _, f := range []struct {
		name, v  string
		required bool
	}{
		{"fingerprint", st.Fingerprint, true}, {"name", st.Name, false}, {"hostname", st.Hostname, false},
		{"supervisor_version", st.SupervisorVersion, false}, {"cluster", st.Cluster, false}, {"floor", st.Floor, false},
	} {
		if err := checkString(f.name, f.v, f.required); err != nil {
			return err
		}
	}
	if !platformRe.MatchString(st.Platform) {
		return badRequest("platform %q is not goos/goarch", st.Platform)
	}
	switch st.OSFamily {
	case protocol.FamilyLinux, protocol.FamilyWindows, protocol.FamilyUnix:
	default:
		return badRequest("os_family %q is not linux, windows or unix", st.OSFamily)
	}
	if !pack.ValidVersion(st.Version) {
		return badRequest("version %q is not a valid version", st.Version)
	}
	if err := checkLabels(st.Labels); err != nil {
		return err
	}
	if len(st.Holds) > protocol.MaxHolds {
		return badRequest("holds: more than %d", protocol.MaxHolds)
	}
	for _, h := range st.Holds {
		if err := checkString("hold", h, true); err != nil {
			return err
		}
	}
	if st.FreeDiskBytes < 0 {
		return badRequest("free_disk_bytes is negative")
	}
	if u := st.Upgrade; u != nil {
		if err := checkString("upgrade.order_id", u.OrderID, true); err != nil {
			return err
		}
		if u.Done < 0 || u.Total < 0 {
			return badRequest("upgrade progress is negative")
		}
	}
	if err := checkWorkloads(st.Workloads); err != nil {
		return err
	}
	if lr := st.LastResult; lr != nil {
		if lr.Workload != "" && !spec.ValidName(lr.Workload) {
			return badRequest("last_result.workload %q is not a workload name (1 to 32 of a-z 0-9 _ -)", lr.Workload)
		}
		if lr.Outcome != protocol.TrialCommitted && lr.Outcome != protocol.TrialRolledBack {
			return badRequest("last_result.outcome %q is not committed or rolled_back", lr.Outcome)
		}
		if len(lr.Reason) > 4096 || len(lr.Logs) > 4096 || len(lr.WorkloadLogs) > 4096 {
			return badRequest("last_result: reason or logs longer than 4096 bytes")
		}
		if hasControl(lr.WorkloadLogs) {
			return badRequest("last_result.workload_logs contains a control character")
		}
	}
	return nil
}

// persistKey is the part of a status worth a database write when it
// changes: busy, holds, free disk and download progress change often and
// live only in memory.
func persistKey(st protocol.Status) string {
	st.Busy, st.Holds, st.FreeDiskBytes, st.Upgrade = false, nil, 0, nil
	b, _ := json.Marshal(st)
	return string(b)
}

// targetFor is the version the policy wants on platform ("" for none).
// Call with s.mu held.
func (s *Server) targetFor(platform string) string {
	switch pol := s.settingLocked("version." + platform); pol {
	case "none":
		return ""
	case "latest":
		return s.latestFor(platform)
	default:
		if r, ok := s.releases[pol]; ok && r.Platforms[platform] {
			return pol
		}
		return ""
	}
}

func (s *Server) latestFor(platform string) string {
	best := ""
	for v, r := range s.releases {
		if r.Platforms[platform] && (best == "" || semver.Less(best, v)) {
			best = v
		}
	}
	return best
}

func (s *Server) connStatus(a *agentRec, now time.Time) string {
	seen := a.LastSeen
	if seen.IsZero() {
		seen = a.Enrolled // enrolled, never checked in: offline until it does
	}
	switch {
	case now.Sub(seen) > s.durationSetting("agents.inactive-after"):
		return protocol.AgentInactive
	case a.LastSeen.IsZero() || now.Sub(seen) > s.durationSetting("agents.offline-after"):
		return protocol.AgentOffline
	}
	return protocol.AgentOnline
}

// tooOld says why an agent cannot be upgraded automatically ("" if it can).
func (s *Server) tooOld(a *agentRec) string {
	if !a.St.Supervised {
		return "not supervised: manual upgrade required"
	}
	if min := s.settingLocked("agents.min-auto-upgrade-version"); min != "" && semver.Less(a.St.Version, min) {
		return fmt.Sprintf("agent too old for automatic upgrade (%s is below %s): manual upgrade required", a.St.Version, min)
	}
	return ""
}

func (s *Server) upgradeStatus(a *agentRec) string {
	if a.St.ProtocolVersion < protocol.Version {
		return protocol.UpgradeRequired
	}
	target := s.targetFor(a.St.Platform)
	if target == "" || !semver.Less(a.St.Version, target) {
		return protocol.UpgradeUpToDate
	}
	if s.tooOld(a) != "" {
		return protocol.UpgradeManualRequired
	}
	return protocol.UpgradeRecommended
}

func (s *Server) handleEnroll(w http.ResponseWriter, r *http.Request, _ caller) error {
	req, err := decodeAgentJSON[protocol.EnrollRequest](r.Body)
	if err != nil {
		return err
	}
	st := protocol.Status{
		ProtocolVersion: req.ProtocolVersion, Fingerprint: req.Fingerprint, Name: req.Name, Hostname: req.Hostname,
		Platform: req.Platform, OSFamily: req.OSFamily, Version: req.Version, Supervised: req.Supervised,
		SupervisorVersion: req.SupervisorVersion, Labels: req.Labels, Cluster: req.Cluster,
		PendingReboot: req.PendingReboot, FreeDiskBytes: req.FreeDiskBytes, Floor: req.Floor,
	}
	if err := checkStatus(&st); err != nil {
		return err
	}
	if err := checkString("enrollment_token", req.EnrollmentToken, true); err != nil {
		return err
	}
	if st.Name == "" {
		st.Name = st.Hostname
	}
	if err := checkString("name or hostname", st.Name, true); err != nil {
		return err
	}
	ctx := r.Context()
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.clock.Now()
	var tokID int64
	var expires int64
	var uses, used int
	var revoked bool
	err = s.st.w.QueryRowContext(ctx, `SELECT id, expires, uses, used, revoked FROM enroll_tokens WHERE hash = ?`, hashSecret(req.EnrollmentToken)).Scan(&tokID, &expires, &uses, &used, &revoked)
	reason := ""
	switch {
	case errors.Is(err, sql.ErrNoRows):
		reason = "the enrollment token is unknown"
	case err != nil:
		return err
	case revoked:
		reason = "the enrollment token was revoked"
	case now.After(fromNanos(expires)):
		reason = "the enrollment token expired at " + fromNanos(expires).Format(time.RFC3339)
	case used >= uses:
		reason = fmt.Sprintf("the enrollment token is used up (%d of %d uses)", used, uses)
	}
	if reason != "" {
		_ = s.change(ctx, func(wr *writer) error {
			return wr.event(event{ID: protocol.EvEnrollRefused, Msg: fmt.Sprintf("enrollment of %s refused: %s", st.Name, reason), Fields: map[string]string{"reason": reason, "hostname": st.Hostname}})
		})
		return errf(http.StatusUnauthorized, protocol.CodeEnrollToken, "%s: ask an admin for a new one (molt enroll-token create)", reason)
	}
	// LastSeen stays zero until the first check-in: an agent that enrolled
	// and never checked in is "never connected" for the scheduler.
	a := &agentRec{ID: newAgentID(), Fingerprint: st.Fingerprint, Enrolled: now, St: st}
	cred := newSecret("molta_")
	a.CredHash = hashSecret(cred)
	a.persisted = persistKey(st)
	resp := protocol.EnrollResponse{AgentID: a.ID, Credential: cred, Settings: protocol.AgentSettings{PollSeconds: int(s.pollWait() / time.Second)}}
	err = s.change(ctx, func(wr *writer) error {
		if _, err := wr.exec(`INSERT INTO agents (id, cred_hash, fingerprint, enrolled, status) VALUES (?, ?, ?, ?, ?)`,
			a.ID, a.CredHash, a.Fingerprint, nanos(now), mustJSON(st)); err != nil {
			return err
		}
		if _, err := wr.exec(`UPDATE enroll_tokens SET used = used + 1 WHERE id = ?`, tokID); err != nil {
			return err
		}
		if err := wr.event(event{ID: protocol.EvAgentEnrolled, Agent: a.ID, Msg: fmt.Sprintf("agent %s (%s, %s) enrolled", st.Name, st.Version, st.Platform),
			Fields: map[string]string{"version": st.Version, "platform": st.Platform, "name": st.Name}}); err != nil {
			return err
		}
		wr.then(func() {
			s.agents[a.ID] = a
			s.byCred[a.CredHash] = a.ID
		})
		return s.activation(wr, a, &resp)
	})
	if err != nil {
		return err
	}
	writeJSON(w, 200, resp)
	return nil
}

// activation decides upgrade on activation for a newly enrolled agent: a
// deployment (event 264 follows when it is handed over) or a recorded skip
// with its reason (event 277).
func (s *Server) activation(wr *writer, a *agentRec, resp *protocol.EnrollResponse) error {
	st := a.St
	family := st.OSFamily
	if s.settingLocked("version."+st.Platform) == "none" {
		return nil
	}
	target := s.targetFor(st.Platform)
	if target == st.Version {
		return nil
	}
	reason := ""
	goos, _, _ := strings.Cut(st.Platform, "/")
	off := s.settingLocked("activation-upgrade."+family) != "true"
	switch {
	case off && target == "":
		// No release for its platform: there was nothing to skip.
		return nil
	case off:
		// Recorded, so an operator who sees an old agent enroll learns why
		// it was not upgraded and which setting would change that.
		reason = fmt.Sprintf("upgrade on activation is off for %s agents (activation-upgrade.%s)", family, family)
	case !activationOS[goos]:
		reason = "platform not supported: upgrade on activation does not support " + st.Platform + "; upgrade it by hand"
	case target == "":
		reason = "no pack for its platform " + st.Platform
	case !st.Supervised:
		reason = "not supervised: the agent cannot be restarted after an upgrade"
	case s.tooOld(a) != "":
		reason = s.tooOld(a)
	case st.PendingReboot:
		reason = "pending reboot: restart the host; the upgrade is tried again at its next activation"
	case st.FreeDiskBytes > 0 && st.FreeDiskBytes < int64(s.intSetting("agents.min-free-disk-mb"))<<20:
		reason = fmt.Sprintf("not enough disk: %d MB free, %d MB needed", st.FreeDiskBytes>>20, s.intSetting("agents.min-free-disk-mb"))
	}
	if reason != "" {
		resp.Activation, resp.ActivationReason = "skipped", reason
		return wr.event(event{ID: protocol.EvActivationUpgradeSkipped, Agent: a.ID,
			Msg:    fmt.Sprintf("upgrade on activation skipped (%s -> %s): %s", st.Version, target, reason),
			Fields: map[string]string{"from": st.Version, "to": target, "reason": reason}})
	}
	resp.Activation = "requested"
	return s.newDeployment(wr, a, 0, protocol.KindActivation, target)
}

// activationOS are the systems molt's supervisor runs on as a service, so
// an agent there can be restarted after an upgrade on activation.
var activationOS = map[string]bool{
	"linux": true, "windows": true, "darwin": true, "freebsd": true, "openbsd": true, "netbsd": true,
	"solaris": true, "illumos": true, "aix": true,
}

// newDeployment creates a pending deployment of a to target outside a run
// (activation, repair) and wakes the scheduler.
func (s *Server) newDeployment(wr *writer, a *agentRec, run int64, kind, target string) error {
	revert := semver.Less(target, a.St.Version)
	res, err := wr.exec(`INSERT INTO deployments (run_id, agent_id, agent_name, platform, kind, from_version, target, revert, state, created, updated) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		run, a.ID, a.St.Name, a.St.Platform, kind, a.St.Version, target, revert, protocol.StatePending, nanos(wr.now), nanos(wr.now))
	if err != nil {
		return err
	}
	id, err := res.LastInsertId()
	if err != nil {
		return err
	}
	d := &depRec{ID: id, RunID: run, AgentID: a.ID, Platform: a.St.Platform, Kind: kind, From: a.St.Version, Target: target, Revert: revert, State: protocol.StatePending, Updated: wr.now}
	if err := wr.step(id, "server: created", kind+" to "+target); err != nil {
		return err
	}
	wr.then(func() {
		s.open[a.ID] = d
		s.wake()
	})
	return nil
}

func (s *Server) baseURL(r *http.Request) string {
	if s.opt.PublicURL != "" {
		return strings.TrimRight(s.opt.PublicURL, "/")
	}
	return "https://" + r.Host
}

// ordersFor lists what agent a should do now. Call with s.mu held.
func (s *Server) ordersFor(a *agentRec, base string) []protocol.Order {
	var out []protocol.Order
	if d := s.open[a.ID]; d != nil && protocol.InProgress(d.State) {
		out = append(out, protocol.Order{ID: depID(d.ID), Kind: protocol.OrderUpgrade, Version: d.Target,
			PackURL: base + "/v1/packs/" + d.Target, Repair: d.Kind == protocol.KindRepair, Revert: d.Revert})
	}
	for _, c := range s.cleanups[a.ID] {
		out = append(out, protocol.Order{ID: cleanupID(c.ID), Kind: protocol.OrderCleanup, Keep: c.Keep})
	}
	return out
}

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
	base := s.baseURL(r)
	a := c.Agent
	s.mu.Lock()
	if err := s.checkin(ctx, a, req.Status); err != nil {
		s.mu.Unlock()
		return err
	}
	orders := s.ordersFor(a, base)
	var wt *waiter
	if len(orders) == 0 {
		if old, ok := s.waiters[a.ID]; ok {
			old.release()
		}
		wt = &waiter{ch: make(chan struct{})}
		s.waiters[a.ID] = wt
	}
	poll := s.pollWait()
	s.mu.Unlock()
	s.met.observeCheckin(time.Since(start))
	if wt != nil && s.park(w, r, wt, a, base, poll, holdFor(poll, req.WaitSeconds)) {
		return nil
	}
	if wt != nil {
		held := time.Now()
		t := time.NewTimer(holdFor(poll, req.WaitSeconds))
		select {
		case <-wt.ch:
		case <-t.C:
		case <-s.closing:
		case <-ctx.Done():
		}
		t.Stop()
		s.mu.Lock()
		if s.waiters[a.ID] == wt {
			delete(s.waiters, a.ID)
		}
		orders = s.ordersFor(a, base)
		s.mu.Unlock()
		if sw, ok := w.(*statusWriter); ok {
			sw.held = time.Since(held)
		}
		w.Header().Set("Molt-Held-Ms", fmt.Sprint(time.Since(held).Milliseconds()))
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	writeJSON(w, 200, protocol.CheckinResponse{Orders: orders, Settings: protocol.AgentSettings{PollSeconds: int(poll / time.Second)}, ServerTime: s.clock.Now()})
	return nil
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
// from it. Call with s.mu held.
func (s *Server) checkin(ctx context.Context, a *agentRec, st protocol.Status) error {
	now := s.clock.Now()
	if st.Fingerprint != a.Fingerprint {
		if now.Sub(a.lastClone) > 10*time.Minute {
			a.lastClone = now
			_ = s.change(ctx, func(wr *writer) error {
				return wr.event(event{ID: protocol.EvCloneRefused, Agent: a.ID,
					Msg: fmt.Sprintf("check-in of agent %s refused: its identity is used from another machine (%s)", a.ID, st.Hostname)})
			})
		}
		return errf(http.StatusConflict, protocol.CodeIdentityCloned, "agent %s is enrolled from another machine: this host must discard its identity and enroll again", a.ID)
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
	if key == a.persisted && (d == nil || !protocol.InProgress(d.State)) && !repair {
		// Nothing to make durable: most check-ins of an idle fleet end here,
		// without a transaction (last-seen times are flushed in batches).
		a.St, a.LastSeen, a.seenDirty = st, now, true
		s.wakeIfStartable(a, now)
		return nil
	}
	err := s.change(ctx, func(wr *writer) error {
		if key != a.persisted {
			if _, err := wr.exec(`UPDATE agents SET status = ?, last_seen = ? WHERE id = ?`, mustJSON(st), nanos(now), a.ID); err != nil {
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
		if d != nil && protocol.InProgress(d.State) {
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
		return err
	}
	s.wakeIfStartable(a, now)
	return nil
}

// wakeIfStartable wakes the scheduler when a's deployment waits and a can
// take it now. Call with s.mu held.
func (s *Server) wakeIfStartable(a *agentRec, now time.Time) {
	if d := s.open[a.ID]; d != nil && (d.State == protocol.StatePending || d.State == protocol.StateWaitingForHost) {
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
	if u := st.Upgrade; u != nil && u.OrderID == depID(d.ID) {
		if u.Done != 0 || u.Total != 0 {
			if _, err := wr.exec(`UPDATE deployments SET done = ?, total = ? WHERE id = ?`, u.Done, u.Total, d.ID); err != nil {
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
	return wr.setState(d, phase, "")
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
	res, err := wr.exec(`INSERT INTO cleanups (agent_id, deployment_id, keep, created) VALUES (?, ?, ?, ?)`, a.ID, d.ID, mustJSON(keep), nanos(wr.now))
	if err != nil {
		return err
	}
	cid, err := res.LastInsertId()
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
	return wr.setState(d, protocol.StateSucceeded, "")
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
		err := wr.tx.QueryRow(`SELECT run_id FROM deployments WHERE id = ? AND agent_id = ?`, dep, a.ID).Scan(&run)
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
		res, err := wr.exec(`INSERT OR IGNORE INTO steps (deployment_id, at, name, detail) VALUES (?, ?, ?, ?)`, dep, nanos(at), "server: supervisor", detail)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
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
		if _, err := wr.exec(`UPDATE deployments SET workload = ? WHERE id = ?`, workload, d.ID); err != nil {
			return err
		}
	}
	if err := wr.event(event{ID: protocol.EvRolledBack, Agent: d.AgentID, Run: d.RunID, Dep: d.ID, Msg: fmt.Sprintf("upgrade to %s rolled back: %s", d.Target, reason), Fields: f}); err != nil {
		return err
	}
	return wr.setState(d, protocol.StateRolledBack, reason)
}

func (s *Server) fail(wr *writer, d *depRec, reason string) error {
	if reason == "" {
		reason = "the agent reported a failure"
	}
	if err := wr.event(event{ID: protocol.EvUpgradeFailed, Agent: d.AgentID, Run: d.RunID, Dep: d.ID, Msg: fmt.Sprintf("upgrade to %s failed: %s", d.Target, reason), Fields: map[string]string{"reason": reason}}); err != nil {
		return err
	}
	return wr.setState(d, protocol.StateFailed, reason)
}

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

func (s *Server) handlePack(w http.ResponseWriter, r *http.Request, _ caller) error {
	version, p := r.PathValue("version"), r.PathValue("path")
	if !pack.ValidVersion(version) || !pack.SafePath(p) {
		return notFound("no such pack file")
	}
	s.mu.Lock()
	_, ok := s.releases[version]
	s.mu.Unlock()
	if !ok {
		return notFound("release %s is not imported", version)
	}
	f, err := os.Open(filepath.Join(s.opt.DataDir, "packs", version, filepath.FromSlash(p)))
	if err != nil {
		return notFound("release %s has no file %s", version, p)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() {
		return notFound("release %s has no file %s", version, p)
	}
	// Large artifacts over slow links need longer than the default write
	// timeout; the deadline still bounds a stuck client.
	_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(30 * time.Minute))
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("ETag", fmt.Sprintf(`"%s-%x-%x"`, version, fi.Size(), fi.ModTime().UnixNano()))
	http.ServeContent(w, r, "", fi.ModTime(), f)
	return nil
}
