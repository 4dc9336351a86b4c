package server

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/moltfleet/molt/internal/window"
	"github.com/moltfleet/molt/protocol"
	"github.com/moltfleet/molt/rollout"
	"github.com/moltfleet/molt/server/lifecycle"
)

// runRollout is a run's rollout state beside its runRec: its controls,
// its waves and which is open, and what its limits need (rollout.go).
type runRollout struct {
	Created      time.Time
	Controls     protocol.RunControls
	window       window.Window // Controls.Window, parsed
	Waves        []waveRec
	Wave         int       // the wave open now: deployments of waves up to it may start
	WaveDoneAt   time.Time // when the open wave was seen done (zero: not yet)
	WaveApproval bool      // the open wave is done and the next waits for promotion
	FirstDep     int64     // the run's lowest deployment id: d.ID-FirstDep is d's place in the run
	Total        int
	FirstStart   time.Time   // the first deployment started (rate ramp)
	recent       []time.Time // starts in the last minute (rate); not kept across restarts
	health       *runHealth  // the health watch of its upgraded agents (health.go)
}

// waveRec is one wave: its name, its size and its deployments by state.
type waveRec struct {
	Name   string
	Size   int
	Counts map[string]int
}

// countWave moves one of r's deployments of wave w from state from to to
// ("" for a new one). Call from a writer's then.
func (r *runRec) countWave(w int, from, to string) {
	if w < 0 || w >= len(r.Waves) {
		return
	}
	if from != "" {
		r.Waves[w].Counts[from]--
	}
	r.Waves[w].Counts[to]++
}

// loadRollout reads r's rollout state (load at startup).
func (s *Server) loadRollout(ctx context.Context, r *runRec, controls, waves string, created, doneAt int64) error {
	r.Created, r.WaveDoneAt = fromNanos(created), fromNanos(doneAt)
	if err := jsonUnmarshal(controls, &r.Controls); err != nil {
		return err
	}
	if r.Controls.Window != "" {
		w, err := window.Parse(r.Controls.Window)
		if err != nil {
			return fmt.Errorf("run %s: %w", runID(r.ID), err)
		}
		r.window = w
	}
	var ws []protocol.WaveStatus
	if err := jsonUnmarshal(waves, &ws); err != nil {
		return err
	}
	for _, w := range ws {
		r.Waves = append(r.Waves, waveRec{Name: w.Name, Size: w.Agents, Counts: map[string]int{}})
	}
	if len(r.Waves) == 0 {
		// A run created before waves: one wave of all its deployments.
		r.Waves = []waveRec{{Name: "all", Counts: map[string]int{}}}
	}
	tallies, err := s.st.RunWaveTallies(ctx, r.ID)
	if err != nil {
		return err
	}
	for _, t := range tallies {
		r.Total += t.Count
		if r.FirstDep == 0 || t.FirstID < r.FirstDep {
			r.FirstDep = t.FirstID
		}
		if !t.FirstStarted.IsZero() && (r.FirstStart.IsZero() || t.FirstStarted.Before(r.FirstStart)) {
			r.FirstStart = t.FirstStarted
		}
		if t.Wave >= 0 && t.Wave < len(r.Waves) {
			r.Waves[t.Wave].Counts[t.State] += t.Count
			if len(ws) == 0 {
				r.Waves[t.Wave].Size += t.Count
			}
		}
	}
	return nil
}

// rolloutPass applies r's own rules before its deployments are looked at:
// it halts the run on its failure rate or a failed canary, and moves the
// open wave on once it is done (after the soak, or on promotion). Call
// with s.mu held.
func (s *Server) rolloutPass(ctx context.Context, r *runRec, now time.Time) error {
	if r.Status != protocol.RunRunning && r.Status != protocol.RunPaused {
		return nil
	}
	c := r.Controls
	if r.Status == protocol.RunRunning {
		if c.Canary > 0 && len(r.Waves) > 0 && r.Wave == 0 {
			can := r.Waves[0].Counts
			if bad := can[protocol.StateFailed] + can[protocol.StateRolledBack]; bad > r.AckFailures {
				return s.halt(ctx, r, "canary", fmt.Sprintf("%d of %d canaries failed or rolled back", bad, r.Waves[0].Size))
			}
		}
		ended := 0
		for st, n := range r.Counts {
			if protocol.Terminal(st) && st != protocol.StateSkipped && st != protocol.StateCancelled {
				ended += n
			}
		}
		if reason := rollout.FailureHalt(c, r.failures()-r.AckFailures, ended); reason != "" {
			return s.halt(ctx, r, "failure_rate", reason)
		}
	}
	if err := s.healthPass(ctx, r, now); err != nil {
		return err
	}
	for r.Wave < len(r.Waves)-1 && rollout.WaveDone(c, r.Waves[r.Wave].Counts, r.Waves[r.Wave].Size) && !r.soaking(r.Wave, now) {
		w := r.Wave
		// The soak counts from when the wave was seen done, paused or
		// not: a halt on a failed canary, once resumed, does not restart
		// the canaries' soak.
		if r.WaveDoneAt.IsZero() {
			if err := s.waveDone(ctx, r, w, now); err != nil {
				return err
			}
		}
		if r.Status != protocol.RunRunning || r.WaveApproval || now.Before(r.WaveDoneAt.Add(rollout.WaveWait(c, w))) {
			return nil
		}
		if err := s.change(ctx, func(wr *writer) error { return s.openWave(wr, r, w+1, "") }); err != nil {
			return err
		}
	}
	return nil
}

// waveDone records that wave w of r is done, and that the next waits for
// promotion if the run says so.
func (s *Server) waveDone(ctx context.Context, r *runRec, w int, now time.Time) error {
	c, counts := r.Controls, r.Waves[w].Counts
	return s.change(ctx, func(wr *writer) error {
		if err := wr.tx.SetWaveDone(r.ID, now, c.WaveApprove); err != nil {
			return err
		}
		failed := counts[protocol.StateFailed] + counts[protocol.StateRolledBack]
		notDone := r.Waves[w].Size - counts[protocol.StateSucceeded] - failed
		if err := wr.event(event{ID: protocol.EvWaveDone, Run: r.ID, Msg: fmt.Sprintf("run %s: wave %d (%s) done: %d succeeded, %d failed, %d not done", runID(r.ID), w, r.Waves[w].Name,
			counts[protocol.StateSucceeded], failed, notDone),
			Fields: map[string]string{"wave": strconv.Itoa(w), "succeeded": strconv.Itoa(counts[protocol.StateSucceeded]),
				"failed": strconv.Itoa(failed), "not_done": strconv.Itoa(notDone)}}); err != nil {
			return err
		}
		if c.WaveApprove {
			if err := wr.event(event{ID: protocol.EvWaveApproval, Run: r.ID, Msg: fmt.Sprintf("run %s: wave %d waits for promotion (molt runs promote %s)", runID(r.ID), w+1, runID(r.ID)),
				Fields: map[string]string{"wave": strconv.Itoa(w + 1)}}); err != nil {
				return err
			}
		}
		wr.then(func() { r.WaveDoneAt, r.WaveApproval = now, c.WaveApprove })
		return nil
	})
}

// openWave lets wave w of r start; by is the operator who promoted it, or
// "" when the soak ended.
func (s *Server) openWave(wr *writer, r *runRec, w int, by string) error {
	if err := wr.tx.OpenWave(r.ID, w); err != nil {
		return err
	}
	if by != "" {
		if err := wr.event(event{ID: protocol.EvRunPromoted, Run: r.ID, Msg: fmt.Sprintf("run %s promoted to wave %d by %s", runID(r.ID), w, by), Fields: map[string]string{"wave": strconv.Itoa(w)}}); err != nil {
			return err
		}
	}
	if err := wr.event(event{ID: protocol.EvWaveStarted, Run: r.ID, Msg: fmt.Sprintf("run %s: wave %d (%s) started: %d agents", runID(r.ID), w, r.Waves[w].Name, r.Waves[w].Size),
		Fields: map[string]string{"wave": strconv.Itoa(w), "agents": strconv.Itoa(r.Waves[w].Size)}}); err != nil {
		return err
	}
	wr.then(func() { r.Wave, r.WaveDoneAt, r.WaveApproval = w, time.Time{}, false })
	return nil
}

// halt pauses r on its own rules, with the signal that tripped.
func (s *Server) halt(ctx context.Context, r *runRec, signal, reason string, agents ...string) error {
	fields := map[string]string{"signal": signal, "reason": reason}
	if len(agents) > 0 {
		if len(agents) > 50 {
			agents = append(agents[:50:50], fmt.Sprintf("and %d more", len(agents)-50))
		}
		fields["agents"] = strings.Join(agents, ",")
	}
	return s.change(ctx, func(wr *writer) error {
		full := "halted: " + reason
		status, err := wr.runStatus(r, lifecycle.RunHalt)
		if err != nil {
			return err
		}
		if err := wr.tx.SetRunStatus(r.ID, status, full); err != nil {
			return err
		}
		if err := wr.event(event{ID: protocol.EvRunHalted, Run: r.ID, Msg: "run " + runID(r.ID) + " " + full, Fields: fields}); err != nil {
			return err
		}
		wr.then(func() { r.Status = status; s.met.observeHalt(signal) })
		return nil
	})
}

// gate says whether deployment d of r may start now as far as r's rollout
// is concerned: "" when it may; protocol.StatePending when it waits
// silently (its wave is not open, its spread slot not reached, the rate
// spent); protocol.StateWaitingForWindow with the reason when its window
// is closed.
func (r *runRec) gate(d *depRec, now time.Time) (state, reason string) {
	if d.Wave > r.Wave {
		return protocol.StatePending, ""
	}
	if now.Before(rollout.EarliestStart(r.Controls, r.Created, int(d.ID-r.FirstDep), r.Total)) {
		return protocol.StatePending, ""
	}
	if !r.window.IsZero() && !r.window.Contains(now) {
		return protocol.StateWaitingForWindow, fmt.Sprintf("outside the maintenance window %s (opens %s)", r.window, r.window.NextOpen(now).UTC().Format(time.RFC3339))
	}
	return "", ""
}

// startsAllowed is how many more of r's deployments its rate lets start
// now.
func (r *runRec) startsAllowed(now time.Time) int {
	if r.Controls.RatePerMinute == 0 {
		return rollout.Unlimited
	}
	keep := r.recent[:0]
	for _, t := range r.recent {
		if now.Sub(t) < time.Minute {
			keep = append(keep, t)
		}
	}
	r.recent = keep
	return rollout.StartsAllowed(r.Controls, r.FirstStart, now, len(r.recent))
}

// started notes a start of one of r's deployments (rate). Call from a
// writer's then.
func (r *runRec) started(now time.Time) {
	if r.FirstStart.IsZero() {
		r.FirstStart = now
	}
	if r.Controls.RatePerMinute > 0 {
		r.recent = append(r.recent, now)
	}
}

func (s *Server) handleRunPromote(w http.ResponseWriter, r *http.Request, c caller) error {
	id, err := runParam(r)
	if err != nil {
		return err
	}
	run, err := s.PromoteRun(r.Context(), id, tokenName(c))
	if err != nil {
		return err
	}
	writeJSON(w, 200, run)
	return nil
}
