package server

import (
	"cmp"
	"database/sql"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/moltfleet/molt/protocol"
	"github.com/moltfleet/molt/store"
)

// handleRunReport reads the run, its deployments and their server steps'
// times in one snapshot (a step is never newer than the state it is read
// with) and hands them to summarizeRun. The steps are streamed: for
// 10,000 deployments that is about 70,000 rows folded into one small
// struct per deployment.
func (s *Server) handleRunReport(w http.ResponseWriter, r *http.Request, _ caller) error {
	id, err := runParam(r)
	if err != nil {
		return err
	}
	names := make([]string, 0, len(reportSteps))
	for name := range reportSteps {
		names = append(names, name)
	}
	byID := map[int64]*stepTimes{}
	rep, err := s.st.RunReport(r.Context(), id, names, func(st store.StepTime) {
		t := byID[st.Deployment]
		if t == nil {
			t = &stepTimes{}
			byID[st.Deployment] = t
		}
		if p := reportSteps[st.Name](t); p.IsZero() || st.At.Before(*p) {
			*p = st.At
		}
	})
	if errors.Is(err, sql.ErrNoRows) {
		return notFound("no run %s", runID(id))
	}
	if err != nil {
		return fmt.Errorf("run report %s: %w", runID(id), err)
	}
	run := withWaveCounts(runView(rep.Run), rep.Run)
	deps := make([]protocol.Deployment, len(rep.Deployments))
	for i, d := range rep.Deployments {
		deps[i] = d.Deployment
		deps[i].ID, deps[i].RunID = depID(d.ID), runID(d.RunID)
	}
	times := make(map[string]stepTimes, len(byID))
	for dep, t := range byID {
		times[depID(dep)] = *t
	}
	sum := summarizeRun(deps, times)
	sum.Health = healthHalts(rep.Halts)
	writeJSON(w, 200, protocol.RunReport{Run: run, Deployments: deps, Summary: sum})
	return nil
}

// healthHalts are the run's health-driven halts (health.go) among its
// halts: those pruned from the events (events.keep) are no longer
// listed.
func healthHalts(halts []store.RunHalt) []protocol.HealthHalt {
	var out []protocol.HealthHalt
	for _, h := range halts {
		if strings.HasPrefix(h.Fields["signal"], "health_") {
			out = append(out, protocol.HealthHalt{At: h.At, Signal: h.Fields["signal"], Reason: h.Fields["reason"]})
		}
	}
	return out
}

// reportSteps are the server steps the report's stages are measured
// between: setState records "server: <state>" at each transition.
var reportSteps = func() map[string]func(*stepTimes) *time.Time {
	m := map[string]func(*stepTimes) *time.Time{
		"server: created":                      func(t *stepTimes) *time.Time { return &t.created },
		"server: " + protocol.StateRequested:   func(t *stepTimes) *time.Time { return &t.requested },
		"server: " + protocol.StateDownloading: func(t *stepTimes) *time.Time { return &t.downloading },
		"server: " + protocol.StateStaged:      func(t *stepTimes) *time.Time { return &t.staged },
		"server: " + protocol.StateRestarting:  func(t *stepTimes) *time.Time { return &t.restarting },
		"server: " + protocol.StateWatching:    func(t *stepTimes) *time.Time { return &t.watching },
	}
	for _, st := range protocol.DeploymentStates {
		if protocol.Terminal(st) {
			m["server: "+st] = func(t *stepTimes) *time.Time { return &t.end }
		}
	}
	return m
}()

// stepTimes are the first times of a deployment's server steps (zero:
// not recorded); end is its end, whichever it was.
type stepTimes struct {
	created, requested, downloading, staged, restarting, watching, end time.Time
}

// reportExamples and reportSlowest bound the deployments a report names
// per failure group and per stage.
const (
	reportExamples = 5
	reportSlowest  = 5
)

// failureState reports whether a deployment in state st counts as a
// failure of its run (as the failure threshold counts them).
func failureState(st string) bool {
	return st == protocol.StateFailed || st == protocol.StateRolledBack || st == protocol.StateStuck
}

// span is how long one stage took; ok when both its ends were recorded,
// in order.
type span struct {
	dur time.Duration
	ok  bool
}

// stageSpans measures the stages of one deployment, in the order of
// protocol.ReportStages. The deployment's own started and ended stand in
// for the steps "server: requested" and its end when those are missing.
func stageSpans(d protocol.Deployment, t stepTimes) []span {
	requested, end := t.requested, t.end
	if requested.IsZero() {
		requested = d.Started
	}
	if end.IsZero() && protocol.Terminal(d.State) {
		end = d.Ended
	}
	downloadFrom := t.downloading
	if downloadFrom.IsZero() {
		downloadFrom = requested
	}
	pairs := [][2]time.Time{
		{t.created, requested},     // queue
		{downloadFrom, t.staged},   // download
		{t.staged, t.restarting},   // stage
		{t.restarting, t.watching}, // restart
		{t.watching, end},          // watch
		{requested, end},           // total
	}
	out := make([]span, len(pairs))
	for i, p := range pairs {
		if !p[0].IsZero() && !p[1].IsZero() && !p[1].Before(p[0]) {
			out[i] = span{p[1].Sub(p[0]), true}
		}
	}
	return out
}

// summarizeRun is the summary of a run's report: deps are the run's
// deployments (ordered by id), times their server steps' times by
// deployment id. Pure, so every rule of the report is a table test.
func summarizeRun(deps []protocol.Deployment, times map[string]stepTimes) protocol.RunSummary {
	sum := protocol.RunSummary{Total: len(deps), States: map[string]int{}, Versions: []protocol.VersionMove{},
		Failures: []protocol.FailureGroup{}, Waves: []protocol.WaveSummary{}, Stages: []protocol.StageStats{}}
	versions := map[[2]string]*protocol.VersionMove{}
	failures := map[[2]string]*protocol.FailureGroup{}
	waves := map[int]*protocol.WaveSummary{}
	waveOpen := map[int]bool{}
	type sample struct {
		dur time.Duration
		i   int // index in deps
	}
	samples := make([][]sample, len(protocol.ReportStages))
	for i, d := range deps {
		sum.States[d.State]++
		vk := [2]string{d.From, d.Target}
		v := versions[vk]
		if v == nil {
			v = &protocol.VersionMove{From: d.From, To: d.Target}
			versions[vk] = v
		}
		v.Count++
		if d.State == protocol.StateSucceeded {
			v.Succeeded++
		}

		w := waves[d.Wave]
		if w == nil {
			w = &protocol.WaveSummary{Wave: d.Wave, States: map[string]int{}}
			waves[w.Wave] = w
		}
		w.Total++
		w.States[d.State]++

		if failureState(d.State) {
			w.Failures++
			fk := [2]string{d.State, normalizeReason(d.Reason)}
			f := failures[fk]
			if f == nil {
				f = &protocol.FailureGroup{State: d.State, Reason: fk[1], Examples: []protocol.ReportAgent{}}
				failures[fk] = f
			}
			f.Count++
			if len(f.Examples) < reportExamples {
				f.Examples = append(f.Examples, protocol.ReportAgent{DeploymentID: d.ID, AgentID: d.AgentID, AgentName: d.AgentName, Reason: d.Reason})
			}
		}

		t := times[d.ID]
		for k, sp := range stageSpans(d, t) {
			if sp.ok {
				samples[k] = append(samples[k], sample{sp.dur, i})
			}
		}
		if started := cmp.Or(t.requested, d.Started); !started.IsZero() && (w.Started.IsZero() || started.Before(w.Started)) {
			w.Started = started
		}
		if !protocol.Terminal(d.State) {
			waveOpen[w.Wave] = true
		} else if end := cmp.Or(t.end, d.Ended); end.After(w.Ended) {
			w.Ended = end
		}
	}

	for _, v := range versions {
		sum.Versions = append(sum.Versions, *v)
	}
	slices.SortFunc(sum.Versions, func(a, b protocol.VersionMove) int {
		return cmp.Or(b.Count-a.Count, strings.Compare(a.From, b.From), strings.Compare(a.To, b.To))
	})
	for _, f := range failures {
		sum.Failures = append(sum.Failures, *f)
	}
	slices.SortFunc(sum.Failures, func(a, b protocol.FailureGroup) int {
		return cmp.Or(b.Count-a.Count, strings.Compare(a.State, b.State), strings.Compare(a.Reason, b.Reason))
	})
	for _, w := range waves {
		if waveOpen[w.Wave] {
			w.Ended = time.Time{}
		}
		sum.Waves = append(sum.Waves, *w)
	}
	slices.SortFunc(sum.Waves, func(a, b protocol.WaveSummary) int { return a.Wave - b.Wave })

	for k, stage := range protocol.ReportStages {
		ss := samples[k]
		// Shortest first; among equals the higher id first, so that read
		// from the end the slowest come with the lowest id first.
		slices.SortFunc(ss, func(a, b sample) int { return cmp.Or(cmp.Compare(a.dur, b.dur), b.i-a.i) })
		st := protocol.StageStats{Stage: stage, Count: len(ss), Slowest: []protocol.ReportAgent{}}
		if len(ss) > 0 {
			st.P50Seconds = percentile(ss, 50, func(s sample) time.Duration { return s.dur }).Seconds()
			st.P95Seconds = percentile(ss, 95, func(s sample) time.Duration { return s.dur }).Seconds()
			st.MaxSeconds = ss[len(ss)-1].dur.Seconds()
		}
		for j := len(ss) - 1; j >= 0 && len(st.Slowest) < reportSlowest; j-- {
			d := deps[ss[j].i]
			st.Slowest = append(st.Slowest, protocol.ReportAgent{DeploymentID: d.ID, AgentID: d.AgentID, AgentName: d.AgentName, Seconds: ss[j].dur.Seconds()})
		}
		sum.Stages = append(sum.Stages, st)
	}
	return sum
}

// percentile is the p-th percentile of sorted (ascending, not empty) by
// the nearest-rank method: the smallest value with at least p% of the
// values at or below it, always one of the values measured.
func percentile[T any](sorted []T, p int, val func(T) time.Duration) time.Duration {
	rank := (p*len(sorted) + 99) / 100
	return val(sorted[max(rank, 1)-1])
}

// reasonVarying matches the parts of a failure's reason that differ from
// one agent to the next for the same cause, in the order tried at each
// place: a UUID, an RFC 3339 time, a Go duration (31m2s, 1.5s, 250ms), a
// run of 8 or more hex digits (a hash, an id), a number at the start of a
// word (42, 1.5.0, v1.5.0, 10.0.0.1 in parts). A number inside a word
// (sha256, eth0) is part of the word and kept.
var reasonVarying = regexp.MustCompile(
	`\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b` +
		`|\b\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:\d{2})?` +
		`|\b(?:\d+(?:\.\d+)?(?:ns|us|µs|ms|s|m|h))+\b` +
		`|\b[0-9a-fA-F]{8,}\b` +
		`|\bv?\d+(?:\.\d+)*`)

// normalizeReason is the key failures are grouped by: reason with what
// reasonVarying matches replaced by <id>, <time>, <duration>, <hex> or
// <n>, so that 300 "timed out after 31m2s", "... 30m58s" are one group.
// An empty reason stays empty.
func normalizeReason(reason string) string {
	return reasonVarying.ReplaceAllStringFunc(reason, func(m string) string {
		switch {
		case len(m) == 36 && m[8] == '-':
			return "<id>"
		case len(m) >= 19 && m[4] == '-' && m[7] == '-':
			return "<time>"
		case strings.Trim(m, "0123456789.v") == "":
			return "<n>"
		case strings.ContainsAny(m[len(m)-1:], "smh"):
			return "<duration>"
		case strings.ContainsAny(m, "0123456789"):
			return "<hex>"
		}
		return m // hex letters only: a word such as "deadbeef" or "accede"
	})
}
