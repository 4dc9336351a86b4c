package rollout

import (
	"fmt"
	"math"
	"time"

	"github.com/moltfleet/molt/protocol"
)

// Unlimited is what StartsAllowed returns when the run has no rate.
const Unlimited = math.MaxInt32

// MaxConcurrent is how many of a run's total deployments may be in
// progress at once: the percentage when the run gives one (at least 1),
// else its count.
func MaxConcurrent(c protocol.RunControls, count, total int) int {
	if c.MaxConcurrentPercent > 0 {
		return max(1, int(math.Floor(c.MaxConcurrentPercent/100*float64(total)+1e-9)))
	}
	return count
}

// FailureHalt says why a run must halt for its failure rate, or "": the
// failed and rolled back deployments reached MaxFailuresPercent of those
// ended, once at least MinSample (and one) ended.
func FailureHalt(c protocol.RunControls, failures, ended int) string {
	if c.MaxFailuresPercent <= 0 || ended < max(1, c.MinSample) {
		return ""
	}
	rate := 100 * float64(failures) / float64(ended)
	if rate+1e-9 < c.MaxFailuresPercent {
		return ""
	}
	return fmt.Sprintf("failure rate %.0f%% (%d of %d ended failed or rolled back) reached the limit of %g%%", rate, failures, ended, c.MaxFailuresPercent)
}

// StartsAllowed is how many more deployments the run's rate lets start
// now, given those started in the last minute: RatePerMinute, multiplied
// by Ramp for every whole minute since the run's first start.
func StartsAllowed(c protocol.RunControls, first, now time.Time, lastMinute int) int {
	if c.RatePerMinute == 0 {
		return Unlimited
	}
	rate := float64(c.RatePerMinute)
	if c.Ramp > 1 && !first.IsZero() && now.After(first) {
		rate *= math.Pow(c.Ramp, math.Floor(now.Sub(first).Minutes()))
	}
	if rate >= Unlimited {
		return Unlimited
	}
	return max(0, int(rate)-lastMinute)
}

// EarliestStart is when the i-th of a run's n deployments (in the run's
// order, from 0) may start: StartAt (or the run's creation), plus its
// even share of SpreadSeconds.
func EarliestStart(c protocol.RunControls, created time.Time, i, n int) time.Time {
	at := c.StartAt
	if at.IsZero() {
		at = created
	}
	if c.SpreadSeconds > 0 && n > 1 && i > 0 {
		at = at.Add(time.Duration(c.SpreadSeconds) * time.Second * time.Duration(i) / time.Duration(n))
	}
	return at
}

// WaveDone reports whether a wave of size deployments, counted by state,
// is done: none in progress, and the done share succeeded or every one
// ended. Deployments that never started (dead hosts) do not hold it up
// once the share is reached.
func WaveDone(c protocol.RunControls, counts map[string]int, size int) bool {
	ended, inProgress := 0, 0
	for st, n := range counts {
		if protocol.InProgress(st) {
			inProgress += n
		}
		if protocol.Terminal(st) {
			ended += n
		}
	}
	if inProgress > 0 {
		return false
	}
	share := c.WaveDonePercent
	if share == 0 {
		share = DefaultDonePercent
	}
	return ended >= size || counts[protocol.StateSucceeded]*100 >= share*size
}

// WaveWait is how long after wave w is done the next may start (w is 0
// and the run has canaries: the canary soak).
func WaveWait(c protocol.RunControls, w int) time.Duration {
	if w == 0 && c.Canary > 0 {
		if c.CanarySoakSeconds > 0 {
			return time.Duration(c.CanarySoakSeconds) * time.Second
		}
		return DefaultCanarySoak
	}
	return time.Duration(c.WaveWaitSeconds) * time.Second
}
