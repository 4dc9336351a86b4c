package supervisor

import (
	"fmt"
	"path/filepath"

	"go.uber.org/zap"

	"github.com/moltfleet/molt/home"
	"github.com/moltfleet/molt/internal/faults"
	"github.com/moltfleet/molt/updater/pack"
)

// trialOf returns act's trial when it watches version, else nil.
func trialOf(act home.Active, version string) *home.Trial {
	if act.Trial != nil && act.Trial.Version == version && act.Current == version {
		return act.Trial
	}
	return nil
}

// prepare reads active.json and settles what to start: a version without
// its .valid marker is never started (a trial is rolled back, a plain
// current version falls back to the previous one); a trial about to run
// for the first time gets its window's start, which the caller persists
// (so that a restart of the supervisor or of the host carries on with the
// same window) once the agent is started.
func (s *Supervisor) prepare() (home.Active, error) {
	act, err := s.h.ReadActive()
	if err != nil {
		return act, err
	}
	if !pack.ValidVersion(act.Current) {
		return act, fmt.Errorf("state/active.json: current %q is not a version", act.Current)
	}
	if act.Trial != nil && act.Trial.Version != act.Current {
		s.log.Warn("dropping a trial for a version that is not current", zap.String("trial", act.Trial.Version), zap.String("current", act.Current))
		act.Trial = nil
		s.writeActive(act)
	}
	if !s.h.IsValid(act.Current) {
		s.rollback(act, fmt.Sprintf("versions/%s is not complete (no %s marker)", act.Current, home.ValidMarker))
		if act, err = s.h.ReadActive(); err != nil {
			return act, err
		}
		if !s.h.IsValid(act.Current) {
			return act, fmt.Errorf("versions/%s is not complete (no %s marker) and there is no valid version to fall back to", act.Current, home.ValidMarker)
		}
	}
	if act.Trial != nil && act.Trial.Started.IsZero() {
		// Persisted by Run right after the start, so that the fsyncs do
		// not delay the new version.
		act.Trial.Started = s.clock.Now()
		s.log.Info("trial started", zap.String("agent_version", act.Current), zap.String("previous", act.Previous),
			zap.Duration("watch", s.cfg.Watch), zap.Duration("ready_timeout", s.cfg.ReadyTimeout), zap.Int("crash_budget", s.cfg.CrashBudget))
	} else if act.Trial != nil {
		s.log.Info("trial goes on", zap.String("agent_version", act.Current), zap.Time("started", act.Trial.Started), zap.Int("failures", act.Trial.Crashes))
	}
	return act, nil
}

// commit ends the trial of version, which survived its window. It reads
// active.json afresh: the agent may have switched again meanwhile, and its
// switch must not be overwritten. It reports whether it committed.
func (s *Supervisor) commit(version string) bool {
	act, err := s.h.ReadActive()
	t := trialOf(act, version)
	if err != nil || t == nil {
		return false
	}
	faults.Point("supervisor/before-commit")
	act.Trial = nil
	s.writeActive(act)
	r := home.Result{
		Outcome:  home.OutcomeCommitted,
		Version:  act.Current,
		Previous: act.Previous,
		Logs:     s.agentLogRel(act.Current),
		Order:    t.Order,
		At:       s.clock.Now(),
		Steps:    s.wl.steps,
	}
	s.writeResult(r)
	s.log.Info("trial committed", zap.String("agent_version", act.Current), zap.String("previous", act.Previous), zap.Int("failures", t.Crashes))
	return true
}

// updateTrial changes the trial of version in active.json, read afresh.
func (s *Supervisor) updateTrial(version string, change func(*home.Trial)) {
	act, err := s.h.ReadActive()
	if t := trialOf(act, version); err == nil && t != nil {
		change(t)
		s.writeActive(act)
	}
}

// judge counts a workload's failure under the trial of version against
// the crash budget and returns the reason to roll back, or "".
func (s *Supervisor) judge(version string, v verdict) string {
	if v.rollback != "" {
		return v.rollback
	}
	if v.failure == "" {
		return ""
	}
	act, err := s.h.ReadActive()
	t := trialOf(act, version)
	if err != nil || t == nil {
		return ""
	}
	if t.WorkloadCrashes == nil {
		t.WorkloadCrashes = map[string]int{}
	}
	t.WorkloadCrashes[v.workload]++
	n := t.WorkloadCrashes[v.workload]
	s.writeActive(act)
	s.log.Warn("trial workload failed", zap.String("agent_version", version), zap.String("workload", v.workload),
		zap.String("why", v.failure), zap.Int("failures", n), zap.Int("crash_budget", s.cfg.CrashBudget))
	if n <= s.cfg.CrashBudget {
		return ""
	}
	return fmt.Sprintf("workload %s failed %d times within the %s watch window, more than the crash budget of %d; last: %s",
		v.workload, n, s.cfg.Watch, s.cfg.CrashBudget, v.failure)
}

// rollbackFor rolls back because workload failed: result.json names it
// and where its output of the failed version is kept.
func (s *Supervisor) rollbackFor(act home.Active, reason, workload string) {
	s.rollbackWith(act, reason, func(r *home.Result) {
		if workload != "" {
			r.Workload = workload
			r.WorkloadLogs = s.wl.logRel(workload, act.Current)
		}
	})
}

// rollback returns to the previous version: active.json names it (the
// trial dropped) and result.json says why and where the failed version's
// logs are. Without a valid previous version there is nothing to return
// to; the trial is dropped and the failed version keeps being restarted.
func (s *Supervisor) rollback(act home.Active, reason string) {
	s.rollbackWith(act, reason, nil)
}

func (s *Supervisor) rollbackWith(act home.Active, reason string, more func(*home.Result)) {
	failed := act.Current
	var order string
	if act.Trial != nil {
		order = act.Trial.Order
	}
	r := home.Result{
		Outcome:  home.OutcomeRolledBack,
		Version:  failed,
		Previous: act.Previous,
		Reason:   reason,
		Logs:     s.agentLogRel(failed),
		Order:    order,
		At:       s.clock.Now(),
		Steps:    s.wl.steps,
	}
	if more != nil {
		more(&r)
	}
	next := home.Active{Current: act.Previous}
	if act.Previous == "" || act.Previous == failed || !pack.ValidVersion(act.Previous) || !s.h.IsValid(act.Previous) {
		r.Reason += "; no valid previous version to return to"
		next = home.Active{Current: failed, Previous: act.Previous}
		s.log.Error("cannot roll back", zap.String("agent_version", failed), zap.String("previous", act.Previous), zap.String("reason", reason))
	} else {
		s.log.Warn("rolling back", zap.String("agent_version", failed), zap.String("to", act.Previous), zap.String("reason", reason))
	}
	// result.json first: an agent that finds active.json rolled back
	// reports result.json, so it must already say why.
	s.writeResult(r)
	faults.Point("supervisor/mid-rollback")
	s.writeActive(next)
}

// agentLogRel is where a version's output is kept on the host.
func (s *Supervisor) agentLogRel(version string) string {
	return filepath.Join(s.h.LogsDir(), agentLogName(version))
}

func (s *Supervisor) writeActive(a home.Active) {
	if err := s.h.WriteActive(a); err != nil {
		s.log.Error("write state/active.json", zap.Error(err))
	}
}

func (s *Supervisor) writeResult(r home.Result) {
	if err := s.h.WriteResult(r); err != nil {
		s.log.Error("write state/result.json", zap.Error(err))
	}
}
