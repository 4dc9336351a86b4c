package lifecycle

import "github.com/moltfleet/molt/protocol"

// Run events. Each moves a run to one status (Run has the table).
const (
	// RunPause and RunResume are an operator's; a resume counts the
	// run's failures afresh.
	RunPause  Event = "pause"
	RunResume Event = "resume_run"
	// RunCancel: an operator cancelled it. Its deployments that have not
	// started are cancelled; started ones finish, and the run ends when
	// they did (RunEndCancelled).
	RunCancel Event = "cancel_run"
	// RunHalt pauses it on its own rules: the failure threshold, a failed
	// canary, the failure rate, the health watch.
	RunHalt Event = "halt"
	// RunEndOK and RunEndNotOK: none of its deployments is open any more.
	RunEndOK    Event = "end_ok"
	RunEndNotOK Event = "end_not_ok"
	// RunEndCancelled: the last open deployment of a cancelled run ended.
	// The status stays cancelled; the run's end is recorded.
	RunEndCancelled Event = "end_cancelled"
)

// RunStatuses lists every run status in order.
var RunStatuses = []string{protocol.RunRunning, protocol.RunPaused, protocol.RunEndedOK, protocol.RunEndedNotOK, protocol.RunCancelled}

var active = []string{protocol.RunRunning, protocol.RunPaused}

// Run is the runs' state machine. A cancelled run is final for
// operators (Terminal) but not yet ended while deployments it started
// still run: RunEndCancelled, its one way out, leads back to it.
var Run = []Transition{
	{RunPause, []string{protocol.RunRunning}, protocol.RunPaused, false},
	{RunResume, []string{protocol.RunPaused}, protocol.RunRunning, false},
	{RunHalt, []string{protocol.RunRunning}, protocol.RunPaused, false},
	{RunCancel, active, protocol.RunCancelled, true},
	{RunEndOK, active, protocol.RunEndedOK, true},
	{RunEndNotOK, active, protocol.RunEndedNotOK, true},
	{RunEndCancelled, []string{protocol.RunCancelled}, protocol.RunCancelled, true},
}

// NextRun is the status event ev moves a run in status from to, or
// ErrIllegal.
func NextRun(from string, ev Event) (string, error) {
	return next(Run, from, ev)
}

// RunEnd is the event that ends a run in status from whose deployments
// all ended, ok saying whether none failed, rolled back or was cancelled
// without a retry.
func RunEnd(from string, ok bool) Event {
	switch {
	case from == protocol.RunCancelled:
		return RunEndCancelled
	case ok:
		return RunEndOK
	}
	return RunEndNotOK
}
