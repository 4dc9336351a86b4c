package server

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"time"

	"github.com/moltfleet/molt/protocol"
	"github.com/moltfleet/molt/rollout"
	"github.com/moltfleet/molt/server/lifecycle"
	"github.com/moltfleet/molt/server/runplan"
	"github.com/moltfleet/molt/store"
	"github.com/moltfleet/molt/updater/pack"
)

func (s *Server) handleRunCreate(w http.ResponseWriter, r *http.Request, c caller) error {
	req, err := decodeJSON[protocol.RunRequest](r.Body)
	if err != nil {
		return err
	}
	run, err := s.CreateRun(r.Context(), req, c)
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

// CreateRun plans a run over the selected agents and, unless DryRun,
// creates it with one pending deployment per agent not excluded.
func (s *Server) CreateRun(ctx context.Context, req protocol.RunRequest, c caller) (protocol.Run, error) {
	if err := checkString("text", req.Text, false); err != nil {
		return protocol.Run{}, err
	}
	if req.Scope == "" {
		req.Scope = protocol.ScopeSupervised
	}
	if req.Scope != protocol.ScopeSupervised && req.Scope != protocol.ScopeAll {
		return protocol.Run{}, badRequest("scope %q is not supervised or all", req.Scope)
	}
	if err := s.checkRunLimits(&req); err != nil {
		return protocol.Run{}, err
	}
	sel := req.Selection
	if selectionSize(sel) != 1 {
		return protocol.Run{}, badRequest("selection: give exactly one of agent_ids, labels, all or filter")
	}
	if len(sel.AgentIDs) > protocol.MaxRunAgents {
		return protocol.Run{}, badRequest("selection: more than %d agent ids", protocol.MaxRunAgents)
	}
	if err := checkLabels(sel.Labels); err != nil {
		return protocol.Run{}, err
	}
	if err := checkSelectionFilter(sel.Filter); err != nil {
		return protocol.Run{}, err
	}
	if req.Target != "latest" && !pack.ValidVersion(req.Target) {
		return protocol.Run{}, badRequest("target %q is not latest or a version", req.Target)
	}
	if len(req.TargetFor) > 256 {
		return protocol.Run{}, badRequest("target_for: too many platforms")
	}
	for p, v := range req.TargetFor {
		if !platformRe.MatchString(p) {
			return protocol.Run{}, badRequest("target_for: %q is not goos/goarch", p)
		}
		if v != "latest" && !pack.ValidVersion(v) {
			return protocol.Run{}, badRequest("target_for %s: %q is not latest or a version", p, v)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if req.Target != "latest" {
		if _, ok := s.releases[req.Target]; !ok {
			return protocol.Run{}, conflict("release %s is not imported (molt release list shows what is)", req.Target)
		}
	}
	// A target for one platform is refused as version.<platform> is: a
	// platform no pack has would only exclude every agent of it.
	for _, p := range slices.Sorted(maps.Keys(req.TargetFor)) {
		if err := s.checkPackFor("target_for "+p, p, req.TargetFor[p]); err != nil {
			return protocol.Run{}, err
		}
	}
	// Select.
	var selected []*agentRec
	if len(sel.AgentIDs) > 0 {
		seen := map[string]bool{}
		for _, ref := range sel.AgentIDs {
			a, err := s.findAgent(ref)
			if err != nil {
				return protocol.Run{}, badRequest("selection: %v", err)
			}
			if !seen[a.ID] {
				seen[a.ID] = true
				selected = append(selected, a)
			}
		}
	} else if sel.Filter != nil {
		// Evaluated now: the run keeps the filter, its deployments are
		// the agents it matched at creation.
		selected = s.filterAgents(*sel.Filter)
	} else {
		for _, a := range s.agents {
			if a.Revoked {
				continue
			}
			if sel.All || labelsMatch(a.St.Labels, sel.Labels) {
				selected = append(selected, a)
			}
		}
		sort.Slice(selected, func(i, j int) bool { return selected[i].ID < selected[j].ID })
	}
	cat := s.catalogue()
	p := s.planAgents(selected, req.Scope, req.Force, cat, runplan.Upgrade(req.Target, req.TargetFor, cat))
	run, rplan := runplan.Draft(req, sel, p, tokenName(c), s.clock.Now())
	if req.DryRun {
		return run, nil
	}
	if len(p.Todo) == 0 {
		msg := "nothing to upgrade: no agent matches the selection"
		if len(p.Excluded) > 0 {
			msg = fmt.Sprintf("nothing to upgrade: all %d selected agents are excluded (%s: %s)", len(p.Excluded), p.Excluded[0].AgentName, p.Excluded[0].Reason)
		}
		return protocol.Run{}, conflict("%s", msg)
	}
	return s.insertRun(ctx, req, run, p, rplan, req.Target, nil)
}

// checkRunLimits checks (and defaults) what bounds a run: its
// concurrency, its failure threshold and its rollout controls.
func (s *Server) checkRunLimits(req *protocol.RunRequest) error {
	if req.MaxConcurrent == 0 {
		req.MaxConcurrent = 10
	}
	if req.MaxConcurrent < 1 || req.MaxConcurrent > 10000 {
		return badRequest("max_concurrent %d is not from 1 to 10000", req.MaxConcurrent)
	}
	if req.FailureThreshold < 0 || req.FailureThreshold > 1000000 {
		return badRequest("failure_threshold %d is out of range", req.FailureThreshold)
	}
	if err := rollout.Check(req.RunControls, 0); err != nil {
		return badRequest("%v", err)
	}
	if now := s.clock.Now(); !req.StartAt.IsZero() && (req.StartAt.Before(now.Add(-time.Minute)) || req.StartAt.After(now.AddDate(1, 0, 0))) {
		return badRequest("start_at %s is in the past or more than a year ahead", req.StartAt.Format(time.RFC3339))
	}
	return nil
}

// limitText says a run's concurrency limit as given.
func limitText(req protocol.RunRequest) string {
	if req.MaxConcurrentPercent > 0 {
		return strconv.FormatFloat(req.MaxConcurrentPercent, 'g', -1, 64) + "%"
	}
	return strconv.Itoa(req.MaxConcurrent)
}

// wavesText lists a run's waves for its start event ("" for one wave).
func wavesText(waves []protocol.WaveStatus) string {
	if len(waves) < 2 {
		return ""
	}
	t := ", waves"
	for i, w := range waves {
		sep := ", "
		if i == 0 {
			sep = " "
		}
		t += sep + w.Name + " (" + strconv.Itoa(w.Agents) + ")"
	}
	return t
}

// checkPackFor refuses version ("latest" or a release) for platform
// unless a release holds a pack for it: the rule of settings set
// version.<platform>, for every field that names a version per platform.
// what starts the message. Call with s.mu held.
func (s *Server) checkPackFor(what, platform, version string) error {
	if version == "latest" {
		if s.catalogue().Latest(platform) == "" {
			return conflict("%s: no release has a pack for %s (molt release list shows the platforms of each)", what, platform)
		}
		return nil
	}
	rel, ok := s.releases[version]
	if !ok {
		return conflict("%s: release %s is not imported (molt release list shows what is)", what, version)
	}
	if !rel.Platforms[platform] {
		return conflict("%s: release %s has no pack for %s", what, version, platform)
	}
	return nil
}

func tokenName(c caller) string {
	if c.TokenID == 0 {
		return ""
	}
	return "t-" + strconv.FormatInt(c.TokenID, 10)
}

func mapValues(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for _, v := range m {
		out = append(out, v)
	}
	return out
}

func labelsMatch(have, want map[string]string) bool {
	for k, v := range want {
		if have[k] != v {
			return false
		}
	}
	return true
}

// runView is the protocol's view of run r with its counts: its id named,
// each wave's state, when the next wave may open. Its waves' counts are
// loadRun's to add.
func runView(sr store.Run) protocol.Run {
	r := protocol.Run{
		ID: runID(sr.ID), Text: sr.Text, Status: sr.Status, Target: sr.Target, TargetFor: sr.TargetFor, Scope: sr.Scope,
		MaxConcurrent: sr.MaxConcurrent, FailureThreshold: sr.FailureThreshold, Selection: sr.Selection, CreatedBy: sr.CreatedBy,
		Created: sr.Created, Ended: sr.Ended, Reason: sr.Reason, Plan: sr.Plan, Excluded: sr.Excluded,
		Counts: sr.Counts, RunControls: sr.Controls, WaveList: sr.Waves, Wave: sr.Wave,
	}
	for _, n := range sr.Counts {
		r.Total += n
	}
	for i := range r.WaveList {
		w := &r.WaveList[i]
		switch {
		case i < r.Wave:
			w.State = "done"
		case i > r.Wave:
			w.State = "waiting"
		case sr.WaveApproval:
			w.State = "approval"
		case !sr.WaveDoneAt.IsZero():
			w.State = "done"
		default:
			w.State = "open"
		}
	}
	if !sr.WaveDoneAt.IsZero() && !sr.WaveApproval && r.Wave < len(r.WaveList)-1 {
		r.NextWave = sr.WaveDoneAt.Add(rollout.WaveWait(r.RunControls, r.Wave))
	}
	return r
}

// withWaveCounts adds to r, a run of waves, its waves' counts.
func withWaveCounts(r protocol.Run, sr store.Run) protocol.Run {
	if len(r.WaveList) < 2 {
		return r
	}
	for w, counts := range sr.WaveCounts {
		if w >= 0 && w < len(r.WaveList) {
			r.WaveList[w].Counts = counts
		}
	}
	return r
}

func (s *Server) loadRun(ctx context.Context, id int64) (protocol.Run, error) {
	sr, err := s.st.Run(ctx, id)
	if errors.Is(err, sql.ErrNoRows) {
		return protocol.Run{}, notFound("no run %s", runID(id))
	}
	if err != nil {
		return protocol.Run{}, err
	}
	return withWaveCounts(runView(sr), sr), nil
}

func runParam(r *http.Request) (int64, error) {
	id, ok := parseID(r.PathValue("id"), "r-")
	if !ok {
		if n, err := strconv.ParseInt(r.PathValue("id"), 10, 64); err == nil && n > 0 {
			return n, nil
		}
		return 0, notFound("no run %q (ids look like r-3)", r.PathValue("id"))
	}
	return id, nil
}

func (s *Server) handleRunList(w http.ResponseWriter, r *http.Request, _ caller) error {
	runs, err := s.st.Runs(r.Context(), r.URL.Query().Get("status"), 500)
	if err != nil {
		return err
	}
	out := protocol.Runs{Runs: make([]protocol.Run, 0, len(runs))}
	for _, sr := range runs {
		out.Runs = append(out.Runs, runView(sr))
	}
	writeJSON(w, 200, out)
	return nil
}

func (s *Server) handleRunShow(w http.ResponseWriter, r *http.Request, _ caller) error {
	id, err := runParam(r)
	if err != nil {
		return err
	}
	run, err := s.loadRun(r.Context(), id)
	if err != nil {
		return err
	}
	writeJSON(w, 200, run)
	return nil
}

func (s *Server) handleRunPause(w http.ResponseWriter, r *http.Request, c caller) error {
	return s.handleRunEvent(w, r, lifecycle.RunPause, tokenName(c))
}

func (s *Server) handleRunResume(w http.ResponseWriter, r *http.Request, c caller) error {
	return s.handleRunEvent(w, r, lifecycle.RunResume, tokenName(c))
}

func (s *Server) handleRunCancel(w http.ResponseWriter, r *http.Request, c caller) error {
	return s.handleRunEvent(w, r, lifecycle.RunCancel, tokenName(c))
}

func (s *Server) handleRunEvent(w http.ResponseWriter, r *http.Request, ev lifecycle.Event, by string) error {
	id, err := runParam(r)
	if err != nil {
		return err
	}
	run, err := s.RunEvent(r.Context(), id, ev, by)
	if err != nil {
		return err
	}
	writeJSON(w, 200, run)
	return nil
}
